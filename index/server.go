package index

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// ServerOptions bounds what one request to the retrieval server may ask and
// how long a connection may take. Zero fields take the defaults shown; the
// defaults accept a Search-R1 training turn (train_grpo.sh: 512 prompts × 5
// samples = 2,560 queries in one request, topk 3).
type ServerOptions struct {
	MaxTopK          int   // largest accepted topk (100)
	DefaultTopK      int   // topk when the request gives none, null or 0 (3)
	MaxQueries       int   // most queries in one request (8192)
	MaxBodyBytes     int64 // largest request body (16 MiB)
	MaxResponseBytes int64 // largest answer, estimated before searching (256 MiB)

	ReadHeaderTimeout time.Duration // to read a request's headers (10 s)
	ReadTimeout       time.Duration // to read a whole request, body included (60 s)
	IdleTimeout       time.Duration // a keep-alive connection's wait for its next request (120 s)
	WriteTimeout      time.Duration // longest stall writing one part of an answer (60 s)
	ShutdownGrace     time.Duration // Serve's wait for in-flight requests after its context ends (10 s)

	// Log receives Serve's messages (shutdown); nil discards them.
	Log *log.Logger
}

func (o *ServerOptions) fill() {
	def := func(v *int64, d int64) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if o.MaxTopK <= 0 {
		o.MaxTopK = 100
	}
	if o.DefaultTopK <= 0 {
		o.DefaultTopK = 3
	}
	if o.MaxQueries <= 0 {
		o.MaxQueries = 8192
	}
	def(&o.MaxBodyBytes, 16<<20)
	def(&o.MaxResponseBytes, 256<<20)
	defDur(&o.ReadHeaderTimeout, 10*time.Second)
	defDur(&o.ReadTimeout, 60*time.Second)
	defDur(&o.IdleTimeout, 120*time.Second)
	defDur(&o.WriteTimeout, 60*time.Second)
	defDur(&o.ShutdownGrace, 10*time.Second)
}

// Searcher is what the server needs of an index: an *Index, or a *Sharded
// set of shards searched as one.
type Searcher interface {
	Retriever
	NumDocs() int
	Doc(doc uint32) (Doc, error)
}

// Server serves Search-R1's retrieval API (search_r1/search/retrieval_server.py)
// over a Searcher:
//
//	POST /retrieve {"queries": [..], "topk": 3, "return_scores": true}
//	  → {"result": [[{"document": {"id", "contents"}, "score": s}, ..], ..]}
//	  (without return_scores each inner list holds just the documents)
//	GET /health → {"status": "ok", "docs": N}
//
// As in Search-R1, an empty "queries" list gets {"result": []}, and a topk
// of 0 or null means the server's default. "contents" is the corpus row's
// contents exactly as it was (see ContentsDoc). The answer is streamed, a
// bounded group of queries at a time, so a large answer does not stay in
// memory. Bad requests get a 4xx status and {"error": "..."}. A Server is an
// http.Handler and is safe for concurrent use.
type Server struct {
	ix  Searcher
	opt ServerOptions
	// entryBytes is the mean JSON size of one scored passage, measured on a
	// sample of the index when the server starts; it prices a request's
	// answer before any search is run.
	entryBytes int64

	mu       sync.Mutex
	reading  map[*http.ResponseController]bool // handlers still reading their request body
	stopping bool
}

// NewServer returns the retrieval API over ix.
func NewServer(ix Searcher, opt ServerOptions) *Server {
	opt.fill()
	return &Server{ix: ix, opt: opt, entryBytes: meanEntryBytes(ix), reading: map[*http.ResponseController]bool{}}
}

// meanEntryBytes is the mean size of {"document": {"id", "contents"},
// "score": s} over up to 1,000 passages spread evenly over the index,
// rounded up (at least 64 bytes).
func meanEntryBytes(ix Searcher) int64 {
	n := ix.NumDocs()
	samples := min(n, 1000)
	var total, count int64
	for i := 0; i < samples; i++ {
		d, err := ix.Doc(uint32(int64(i) * int64(n) / int64(samples)))
		if err != nil {
			continue
		}
		b, _ := json.Marshal(ScoredDoc{Document: RetrievedDoc{ID: d.ID, Contents: d.Contents()}, Score: 1.2345678})
		total += int64(len(b)) + 1
		count++
	}
	if count == 0 {
		return 64
	}
	return max(64, (total+count-1)/count)
}

// RetrieveRequest is the body of POST /retrieve.
type RetrieveRequest struct {
	Queries      []string `json:"queries"`
	TopK         *int     `json:"topk,omitempty"`
	ReturnScores bool     `json:"return_scores"`
}

// RetrievedDoc is a passage as the retrieval API returns it.
type RetrievedDoc struct {
	ID       string `json:"id"`
	Contents string `json:"contents"`
}

// ScoredDoc is one entry of a result list when return_scores is set.
type ScoredDoc struct {
	Document RetrievedDoc `json:"document"`
	Score    Score32      `json:"score"`
}

// Score32 is a float32 score that marshals in its shortest float32 form.
type Score32 float32

// MarshalJSON writes the score with float32 precision.
func (s Score32) MarshalJSON() ([]byte, error) {
	return strconv.AppendFloat(nil, float64(s), 'g', -1, 32), nil
}

// ServeHTTP routes /retrieve and /health.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/retrieve":
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			writeError(w, http.StatusMethodNotAllowed, "use POST for /retrieve")
			return
		}
		s.retrieve(w, r)
	case "/health":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, "use GET for /health")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "docs": s.ix.NumDocs()})
	default:
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.URL.Path+" (use POST /retrieve or GET /health)")
	}
}

// errStopping is what a request still uploading its body gets when the
// server shuts down.
var errStopping = errors.New("the server is shutting down")

// readBody reads the request body within MaxBodyBytes. While it reads, a
// shutdown may cut it short (stopReading), so that a slow upload cannot
// hold the shutdown up.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	rc := http.NewResponseController(w)
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		return nil, errStopping
	}
	s.reading[rc] = true
	s.mu.Unlock()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opt.MaxBodyBytes))
	s.mu.Lock()
	delete(s.reading, rc)
	stopping := s.stopping
	s.mu.Unlock()
	if err != nil && stopping {
		return nil, errStopping
	}
	return body, err
}

// stopReading ends every body upload in progress, now and from now on.
func (s *Server) stopReading() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopping = true
	for rc := range s.reading {
		rc.SetReadDeadline(time.Now())
	}
}

func (s *Server) retrieve(w http.ResponseWriter, r *http.Request) {
	body, err := s.readBody(w, r)
	if err != nil {
		var mbe *http.MaxBytesError
		var ne net.Error
		switch {
		case errors.As(err, &mbe):
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes (the server's --max-body)", s.opt.MaxBodyBytes))
		case errors.Is(err, errStopping):
			w.Header().Set("Connection", "close")
			writeError(w, http.StatusServiceUnavailable, errStopping.Error())
		case errors.As(err, &ne) && ne.Timeout():
			w.Header().Set("Connection", "close")
			writeError(w, http.StatusRequestTimeout, fmt.Sprintf("request body not received within %s (the server's --read-timeout)", s.opt.ReadTimeout))
		default:
			writeError(w, http.StatusBadRequest, "reading request: "+err.Error())
		}
		return
	}
	req, k, msg := s.parseRequest(body)
	if msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	if est := int64(len(req.Queries)) * int64(k) * s.entryBytes; est > s.opt.MaxResponseBytes {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf(
			"the answer would be about %d bytes (%d queries × topk %d × ~%d bytes a passage), over the server's limit of %d bytes (--max-response): send fewer queries per request or a smaller topk",
			est, len(req.Queries), k, s.entryBytes, s.opt.MaxResponseBytes))
		return
	}
	s.stream(w, r, req, k)
}

// parseRequest decodes and checks a /retrieve body; a non-empty message is
// the 400 error.
func (s *Server) parseRequest(body []byte) (RetrieveRequest, int, string) {
	var req RetrieveRequest
	var probe struct {
		Queries json.RawMessage `json:"queries"`
	}
	if err := strictDecode(body, &probe); err != nil {
		return req, 0, "bad JSON: " + err.Error()
	}
	if len(probe.Queries) == 0 || string(probe.Queries) == "null" {
		return req, 0, `"queries" must be a list of strings`
	}
	if err := strictDecode(body, &req); err != nil {
		return req, 0, "bad JSON: " + err.Error()
	}
	if len(req.Queries) > s.opt.MaxQueries {
		return req, 0, fmt.Sprintf("%d queries; at most %d per request (the server's --max-queries)", len(req.Queries), s.opt.MaxQueries)
	}
	k := s.opt.DefaultTopK
	if req.TopK != nil && *req.TopK != 0 {
		k = *req.TopK
	}
	if k < 0 || k > s.opt.MaxTopK {
		return req, 0, fmt.Sprintf(`"topk" must be between 1 and %d (the server's --max-topk), or 0 or null for the default %d; got %d`, s.opt.MaxTopK, s.opt.DefaultTopK, k)
	}
	return req, k, ""
}

// strictDecode decodes exactly one JSON value from b into v.
func strictDecode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the request object")
	}
	return nil
}

// streamPassages bounds the passages loaded and encoded at once.
const streamPassages = 4096

// stream answers req: the queries are searched a group at a time (in
// parallel within the group) and each group's lists are written out before
// the next is searched. An error in the first group is a clean 500; after
// the answer has begun, an error or the MaxResponseBytes cap (if the
// estimate was low) aborts the connection, so a client never takes a cut
// answer for a whole one.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, req RetrieveRequest, k int) {
	rc := http.NewResponseController(w)
	cw := &countingWriter{w: w}
	bw := bufio.NewWriterSize(cw, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	group := max(1, streamPassages/k)
	started := false
	for lo := 0; lo < len(req.Queries) || !started; lo += group {
		hi := min(lo+group, len(req.Queries))
		var res [][]Result
		if hi > lo {
			var err error
			if res, err = s.ix.SearchBatch(r.Context(), req.Queries[lo:hi], k); err != nil {
				if r.Context().Err() != nil {
					return // client gone
				}
				if !started {
					writeError(w, http.StatusInternalServerError, err.Error())
					return
				}
				panic(http.ErrAbortHandler)
			}
		}
		if !started {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			bw.WriteString(`{"result": [`)
			started = true
		}
		for i, list := range res {
			if lo+i > 0 {
				bw.WriteString(", ")
			}
			encodeList(enc, bw, list, req.ReturnScores)
		}
		if cw.n+int64(bw.Buffered()) > s.opt.MaxResponseBytes {
			panic(http.ErrAbortHandler)
		}
		rc.SetWriteDeadline(time.Now().Add(s.opt.WriteTimeout))
		if err := bw.Flush(); err != nil {
			return // client gone or stalled past WriteTimeout
		}
	}
	bw.WriteString("]}\n")
	bw.Flush()
}

// encodeList writes one query's result list.
func encodeList(enc *json.Encoder, bw *bufio.Writer, list []Result, scores bool) {
	bw.WriteByte('[')
	for j, x := range list {
		if j > 0 {
			bw.WriteString(", ")
		}
		doc := RetrievedDoc{ID: x.Doc.ID, Contents: x.Doc.Contents()}
		if scores {
			enc.Encode(ScoredDoc{Document: doc, Score: Score32(x.Score)})
		} else {
			enc.Encode(doc)
		}
	}
	bw.WriteByte(']')
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Serve answers on ln until ctx ends, then shuts down: it stops accepting,
// cuts short the request bodies still being uploaded (those clients get
// 503), lets the requests already being answered finish for up to
// ShutdownGrace, and then closes whatever is left. It returns nil after a
// shutdown, forced or not, and the error that stopped it otherwise. The
// connection timeouts are the ServerOptions'.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: s.opt.ReadHeaderTimeout,
		ReadTimeout:       s.opt.ReadTimeout,
		IdleTimeout:       s.opt.IdleTimeout,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	hs.RegisterOnShutdown(s.stopReading)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	start := time.Now()
	sctx, cancel := context.WithTimeout(context.Background(), s.opt.ShutdownGrace)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
		s.logf("requests still running after %s were cut off", s.opt.ShutdownGrace)
	} else {
		s.logf("shut down in %s", time.Since(start).Round(time.Millisecond))
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (s *Server) logf(format string, args ...any) {
	if s.opt.Log != nil {
		s.opt.Log.Printf(format, args...)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
