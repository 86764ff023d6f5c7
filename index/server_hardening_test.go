package index

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"sync"
	"testing"
	"time"
)

// contentsEdgeRows are corpus rows whose "contents" the old store rebuilt
// differently ("\"Title\"\ntext"); each has a unique word to find it by.
var contentsEdgeRows = []string{
	"\"Plain\"\nalphaword ordinary row",                   // round-trips already
	"Unquoted title\nbetaword text",                       // no quotes
	"gammaword no newline at all",                         // no newline
	"\"Crlf\"\r\ndeltaword windows line end",              // \r\n
	"\"\nepsilonword lone quote title",                    // a lone quote
	"\"Half quoted\nzetaword text",                        // opening quote only
	"Closing only\"\netaword text",                        // closing quote only
	"\"Two\"\nthetaword line one\nline two\n",             // trailing newline
	"\n\"iotaword\" starts with a newline",                // empty first line
	"\"\"\nkappaword empty title",                         // round-trips: "" title
	"  \"Spaced\"  \nlambdaword padded title",             // spaces around quotes
	"\"Tab\"\tmuword tab not newline",                     // no newline, a tab
	"\"Unicode é\"\nnuword \u00e9\u0301 \u2028 sep\u0085", // Unicode and separators
}

func edgeCorpus() string {
	var b strings.Builder
	for i, c := range contentsEdgeRows {
		row, _ := json.Marshal(map[string]any{"id": fmt.Sprintf("e%d", i), "contents": c})
		b.Write(row)
		b.WriteByte('\n')
	}
	b.WriteString(`{"id": "tt", "title": "Rome", "text": "xiword capital of Italy"}` + "\n")
	return b.String()
}

var edgeWords = []string{"alphaword", "betaword", "gammaword", "deltaword", "epsilonword", "zetaword", "etaword",
	"thetaword", "iotaword", "kappaword", "lambdaword", "muword", "nuword"}

// TestContentsVerbatim: every row's contents comes back from the store,
// the server and the HTTP client exactly as the corpus had it.
func TestContentsVerbatim(t *testing.T) {
	ix := buildString(t, edgeCorpus(), BuildOptions{})
	for i, want := range contentsEdgeRows {
		d, err := ix.Doc(uint32(i))
		if err != nil || d.Contents() != want {
			t.Errorf("stored row %d: %+q %v, want %+q", i, d.Contents(), err, want)
		}
	}
	if d, _ := ix.Doc(uint32(len(contentsEdgeRows))); d.Contents() != "\"Rome\"\nxiword capital of Italy" || d.Title != "Rome" {
		t.Errorf("title/text row: %+v", d)
	}
	// Title and Text still split as before: "Unquoted title", "betaword text".
	if d, _ := ix.Doc(1); d.Title != "Unquoted title" || d.Text != "betaword text" {
		t.Errorf("split of an unquoted row: %+v", d)
	}
	srv := httptest.NewServer(NewServer(ix, ServerOptions{}))
	defer srv.Close()
	body, _ := json.Marshal(RetrieveRequest{Queries: edgeWords, TopK: ptr(1), ReturnScores: true})
	resp, err := http.Post(srv.URL+"/retrieve", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	var out struct{ Result [][]ScoredDoc }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	remote, err := NewRemoteRetriever(srv.URL).SearchBatch(context.Background(), edgeWords, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range contentsEdgeRows {
		if got := out.Result[i][0].Document; got.ID != fmt.Sprintf("e%d", i) || got.Contents != want {
			t.Errorf("server, %s: %+v, want %+q", edgeWords[i], got, want)
		}
		if got := remote[i][0].Doc.Contents(); got != want {
			t.Errorf("client, %s: %+q, want %+q", edgeWords[i], got, want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// TestServerSearchR1TrainingTurn sends what Search-R1's train_grpo.sh sends
// in one turn, 512 prompts × 5 samples = 2,560 queries with topk 3, to a
// server with the default limits, and checks every list against the
// in-process search.
func TestServerSearchR1TrainingTurn(t *testing.T) {
	ix := realIndex(t)
	srv := httptest.NewServer(NewServer(ix, ServerOptions{}))
	defer srv.Close()
	words := []string{"cat", "boat", "music", "river", "capital", "disease", "tree", "red", "quickly", "bird", "stone", "law"}
	qs := make([]string, 2560)
	for i := range qs {
		qs[i] = words[i%len(words)] + " " + words[(i/len(words))%len(words)]
	}
	body, _ := json.Marshal(map[string]any{"queries": qs, "topk": 3, "return_scores": true})
	t.Logf("request body %d bytes", len(body))
	resp, err := http.Post(srv.URL+"/retrieve", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	var out struct{ Result [][]ScoredDoc }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	want, err := ix.SearchBatch(context.Background(), qs, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Result) != len(qs) {
		t.Fatalf("%d lists for %d queries", len(out.Result), len(qs))
	}
	for i := range qs {
		if len(out.Result[i]) != len(want[i]) {
			t.Fatalf("query %d: %d hits, want %d", i, len(out.Result[i]), len(want[i]))
		}
		for j, h := range out.Result[i] {
			w := want[i][j]
			if h.Document.ID != w.Doc.ID || h.Document.Contents != w.Doc.Contents() || float32(h.Score) != w.Score {
				t.Fatalf("query %d hit %d: %+v, want %s %v", i, j, h, w.Doc.ID, w.Score)
			}
		}
	}
}

// TestServerResponseCap: a request whose answer would pass the response cap
// gets a clear 413 before any search; under the cap a large answer is
// streamed (chunked, no Content-Length).
func TestServerResponseCap(t *testing.T) {
	ix := realIndex(t)
	s := NewServer(ix, ServerOptions{MaxResponseBytes: 4 << 20})
	srv := httptest.NewServer(s)
	defer srv.Close()
	qs := make([]string, 1024)
	for i := range qs {
		qs[i] = fmt.Sprintf("cat boat music water plant person animal %d", i)
	}
	body, _ := json.Marshal(map[string]any{"queries": qs, "topk": 100, "return_scores": true})
	code, out := post(t, srv.URL, string(body))
	msg, _ := out["error"].(string)
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(msg, "--max-response") || !strings.Contains(msg, "1024 queries × topk 100") {
		t.Errorf("1024 × 100: %d %q", code, msg)
	}
	// 40 queries × 100 passages (about 1 MB) fit: streamed.
	body, _ = json.Marshal(map[string]any{"queries": qs[:40], "topk": 100})
	resp, err := http.Post(srv.URL+"/retrieve", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var res struct{ Result [][]RetrievedDoc }
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.ContentLength != -1 || len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Errorf("large answer: status %d, length %d, encoding %v: not streamed", resp.StatusCode, resp.ContentLength, resp.TransferEncoding)
	}
	want, _ := ix.SearchBatch(context.Background(), qs[39:40], 100)
	if len(res.Result) != 40 || len(res.Result[39]) != len(want[0]) || res.Result[39][len(want[0])-1].Contents != want[0][len(want[0])-1].Doc.Contents() {
		t.Errorf("large answer: %d lists", len(res.Result))
	}
}

// serveForTest runs s.Serve on a loopback port until the returned cancel;
// done receives Serve's result.
func serveForTest(t *testing.T, s *Server) (addr string, cancel func(), done chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done = make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(cancel)
	return ln.Addr().String(), cancel, done
}

// slowUpload opens a connection that sends a request's headers and part
// of its body, then stalls.
func slowUpload(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "POST /retrieve HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"queries\": [")
	return c
}

// readStatus reads the status line the server sends on c, or "" if the
// connection ends without one; it gives up after limit (a hang is the
// failure these tests look for).
func readStatus(c net.Conn, limit time.Duration) string {
	c.SetReadDeadline(time.Now().Add(limit))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil && line == "" {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return "hang"
		}
		return ""
	}
	return strings.TrimSpace(line)
}

// TestServerSlowBody: a client that stalls in its body is answered 408 and
// dropped once the read timeout passes, instead of holding the connection
// forever (#17).
func TestServerSlowBody(t *testing.T) {
	ix := realIndex(t)
	addr, _, _ := serveForTest(t, NewServer(ix, ServerOptions{ReadTimeout: 300 * time.Millisecond, ReadHeaderTimeout: 300 * time.Millisecond}))
	c := slowUpload(t, addr)
	defer c.Close()
	if st := readStatus(c, 30*time.Second); st != "HTTP/1.1 408 Request Timeout" && st != "" {
		t.Errorf("stalled body: %q, want 408 or a closed connection", st)
	}
	// A client that stalls in its headers is dropped too.
	h, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	fmt.Fprintf(h, "POST /retrieve HTTP/1.1\r\nHost: x\r\n")
	if st := readStatus(h, 30*time.Second); st == "hang" {
		t.Error("stalled headers: connection still open")
	}
}

// gatedSearcher is the real index whose SearchBatch waits for a gate, so a
// test can hold a request in flight.
type gatedSearcher struct {
	*Index
	entered chan struct{}
	gate    chan struct{}
	once    sync.Once
}

func (g *gatedSearcher) SearchBatch(ctx context.Context, qs []string, k int) ([][]Result, error) {
	g.once.Do(func() { close(g.entered) })
	<-g.gate
	return g.Index.SearchBatch(ctx, qs, k)
}

// TestServeShutdown: when Serve's context ends with one request being
// answered and one client stalled in its body, the stalled upload gets 503
// at once, the request in flight is answered in full, and Serve returns
// nil (#17: SIGTERM with slow connections open exited 1 after 10 s).
func TestServeShutdown(t *testing.T) {
	g := &gatedSearcher{Index: realIndex(t), entered: make(chan struct{}), gate: make(chan struct{})}
	s := NewServer(g, ServerOptions{ShutdownGrace: time.Minute})
	addr, cancel, done := serveForTest(t, s)

	slow := slowUpload(t, addr)
	defer slow.Close()
	inflight := make(chan error, 1)
	go func() {
		resp, err := http.Post("http://"+addr+"/retrieve", "application/json", strings.NewReader(`{"queries": ["cat", "boat"], "topk": 2}`))
		if err != nil {
			inflight <- err
			return
		}
		defer resp.Body.Close()
		var out struct{ Result [][]RetrievedDoc }
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 || len(out.Result) != 2 || len(out.Result[1]) != 2 {
			inflight <- fmt.Errorf("in-flight request: status %d, %v, %v", resp.StatusCode, out, err)
			return
		}
		inflight <- nil
	}()
	<-g.entered
	for { // wait until the slow upload's handler is reading its body
		s.mu.Lock()
		n := len(s.reading)
		s.mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if st := readStatus(slow, 30*time.Second); st != "HTTP/1.1 503 Service Unavailable" {
		t.Errorf("stalled upload at shutdown: %q, want 503", st)
	}
	select {
	case err := <-done:
		t.Fatalf("Serve returned %v before the in-flight request finished", err)
	default:
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Error("still accepting connections after shutdown began")
	}
	close(g.gate)
	if err := <-inflight; err != nil {
		t.Error(err)
	}
	if err := <-done; err != nil {
		t.Errorf("Serve: %v, want nil", err)
	}
}

// TestServeShutdownGrace: a request still running when the grace period
// ends is cut off, and Serve still returns nil.
func TestServeShutdownGrace(t *testing.T) {
	g := &gatedSearcher{Index: realIndex(t), entered: make(chan struct{}), gate: make(chan struct{})}
	defer close(g.gate)
	s := NewServer(g, ServerOptions{ShutdownGrace: 200 * time.Millisecond})
	addr, cancel, done := serveForTest(t, s)
	errc := make(chan error, 1)
	go func() {
		resp, err := http.Post("http://"+addr+"/retrieve", "application/json", strings.NewReader(`{"queries": ["cat"]}`))
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	<-g.entered
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve after the grace period: %v, want nil", err)
	}
	if err := <-errc; err == nil {
		t.Error("the request cut off at shutdown got an answer")
	}
}

// TestServerKeepAliveAfterWriteTimeout: the per-part write deadline of one
// answer does not outlive it (net/http clears it after each request); a
// keep-alive connection's next request, sent after that deadline has
// passed, is answered.
func TestServerKeepAliveAfterWriteTimeout(t *testing.T) {
	ix := realIndex(t)
	addr, _, _ := serveForTest(t, NewServer(ix, ServerOptions{WriteTimeout: 100 * time.Millisecond}))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	var conns []string
	for i := 0; i < 2; i++ {
		req, _ := http.NewRequest("POST", "http://"+addr+"/retrieve", strings.NewReader(`{"queries": ["cat"]}`))
		req = req.WithContext(httptraceConn(req.Context(), &conns))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: status %d", i+1, resp.StatusCode)
		}
		time.Sleep(300 * time.Millisecond) // past the first answer's write deadline
	}
	if len(conns) != 2 || conns[0] != conns[1] {
		t.Errorf("connections %v: the second request did not reuse the first's", conns)
	}
}

// httptraceConn records the local address of the connection each request
// uses.
func httptraceConn(ctx context.Context, conns *[]string) context.Context {
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
		*conns = append(*conns, i.Conn.LocalAddr().String())
	}})
}
