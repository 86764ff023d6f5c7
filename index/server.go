package index

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ServerOptions bounds what one request to the retrieval server may ask.
// Zero fields take the defaults shown.
type ServerOptions struct {
	MaxTopK      int   // largest accepted topk (100)
	DefaultTopK  int   // topk when the request gives none (3)
	MaxQueries   int   // most queries in one request (1024)
	MaxBodyBytes int64 // largest request body (1 MiB)
}

// Server serves Search-R1's retrieval API over an *Index:
//
//	POST /retrieve {"queries": [..], "topk": 3, "return_scores": true}
//	  → {"result": [[{"document": {"id", "contents"}, "score": s}, ..], ..]}
//	  (without return_scores each inner list holds just the documents)
//	GET /health → {"status": "ok", "docs": N}
//
// Bad requests get a 4xx status and {"error": "..."}. A Server is an
// http.Handler and is safe for concurrent use.
type Server struct {
	ix  *Index
	opt ServerOptions
}

// NewServer returns the retrieval API over ix.
func NewServer(ix *Index, opt ServerOptions) *Server {
	if opt.MaxTopK <= 0 {
		opt.MaxTopK = 100
	}
	if opt.DefaultTopK <= 0 {
		opt.DefaultTopK = 3
	}
	if opt.MaxQueries <= 0 {
		opt.MaxQueries = 1024
	}
	if opt.MaxBodyBytes <= 0 {
		opt.MaxBodyBytes = 1 << 20
	}
	return &Server{ix: ix, opt: opt}
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

func (s *Server) retrieve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opt.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", s.opt.MaxBodyBytes))
			return
		}
		writeError(w, http.StatusBadRequest, "reading request: "+err.Error())
		return
	}
	var req RetrieveRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "bad JSON: "+err.Error())
		return
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "bad JSON: trailing data after the request object")
		return
	}
	switch {
	case len(req.Queries) == 0:
		writeError(w, http.StatusBadRequest, `"queries" must be a non-empty list of strings`)
		return
	case len(req.Queries) > s.opt.MaxQueries:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%d queries; at most %d per request", len(req.Queries), s.opt.MaxQueries))
		return
	}
	k := s.opt.DefaultTopK
	if req.TopK != nil {
		k = *req.TopK
	}
	if k <= 0 || k > s.opt.MaxTopK {
		writeError(w, http.StatusBadRequest, fmt.Sprintf(`"topk" must be between 1 and %d, got %d`, s.opt.MaxTopK, k))
		return
	}
	res, err := s.ix.SearchBatch(r.Context(), req.Queries, k)
	if err != nil {
		if r.Context().Err() != nil {
			return // client gone
		}
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := make([]any, len(res))
	for i, list := range res {
		if req.ReturnScores {
			l := make([]ScoredDoc, len(list))
			for j, x := range list {
				l[j] = ScoredDoc{Document: RetrievedDoc{ID: x.Doc.ID, Contents: x.Doc.Contents()}, Score: Score32(x.Score)}
			}
			out[i] = l
		} else {
			l := make([]RetrievedDoc, len(list))
			for j, x := range list {
				l[j] = RetrievedDoc{ID: x.Doc.ID, Contents: x.Doc.Contents()}
			}
			out[i] = l
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"result": out})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// RemoteRetriever searches a Search-R1-compatible /retrieve server over
// HTTP. It has the same SearchBatch as *Index, so either can serve rollouts.
// It is safe for concurrent use.
type RemoteRetriever struct {
	// URL is the server's base URL, e.g. "http://127.0.0.1:8000".
	URL string
	// Client is the HTTP client; nil means one with a 60 s timeout.
	Client *http.Client
}

// NewRemoteRetriever returns a client for the server at baseURL.
func NewRemoteRetriever(baseURL string) *RemoteRetriever {
	return &RemoteRetriever{URL: strings.TrimRight(baseURL, "/"), Client: &http.Client{Timeout: 60 * time.Second}}
}

// SearchBatch posts the queries to /retrieve with return_scores and returns
// the passages (DocID -1: the server's internal ids are not exposed).
func (rr *RemoteRetriever) SearchBatch(ctx context.Context, queries []string, k int) ([][]Result, error) {
	body, err := json.Marshal(RetrieveRequest{Queries: queries, TopK: &k, ReturnScores: true})
	if err != nil {
		return nil, err
	}
	url := strings.TrimRight(rr.URL, "/") + "/retrieve"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("retriever %s: %w", url, err)
	}
	req.Header.Set("Content-Type", "application/json")
	cl := rr.Client
	if cl == nil {
		cl = http.DefaultClient
	}
	resp, err := cl.Do(req)
	if err != nil {
		return nil, fmt.Errorf("retriever %s: %w", url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("retriever %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		json.Unmarshal(data, &e)
		if e.Error == "" {
			e.Error = strings.TrimSpace(string(data))
		}
		return nil, fmt.Errorf("retriever %s: %s: %s", url, resp.Status, e.Error)
	}
	var out struct {
		Result [][]struct {
			Document RetrievedDoc `json:"document"`
			Score    float32      `json:"score"`
		} `json:"result"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("retriever %s: bad response: %w", url, err)
	}
	if len(out.Result) != len(queries) {
		return nil, fmt.Errorf("retriever %s: %d result lists for %d queries", url, len(out.Result), len(queries))
	}
	res := make([][]Result, len(out.Result))
	for i, list := range out.Result {
		res[i] = make([]Result, len(list))
		for j, x := range list {
			title, text := splitContents(x.Document.Contents)
			res[i][j] = Result{DocID: -1, Doc: Doc{ID: x.Document.ID, Title: title, Text: text}, Score: x.Score}
		}
	}
	return res, nil
}

// splitContents splits "\"Title\"\ntext" into the title (quotes removed)
// and the text, as ParseDoc does for wiki-18 rows.
func splitContents(c string) (string, string) {
	title, text, _ := strings.Cut(c, "\n")
	if len(title) >= 2 && title[0] == '"' && title[len(title)-1] == '"' {
		title = title[1 : len(title)-1]
	}
	return title, text
}
