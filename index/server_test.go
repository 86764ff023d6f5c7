package index

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// realIndex builds the shipped real-text corpus once per test.
func realIndex(t testing.TB) *Index {
	t.Helper()
	dir := t.TempDir() + "/ix"
	if _, err := BuildFile(context.Background(), realCorpus, dir, BuildOptions{}); err != nil {
		t.Fatal(err)
	}
	ix, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close() })
	return ix
}

func post(t *testing.T, url, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(url+"/retrieve", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("content type %q", ct)
	}
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("response is not JSON: %v", err)
	}
	return resp.StatusCode, out
}

func TestServerAPI(t *testing.T) {
	ix := realIndex(t)
	srv := httptest.NewServer(NewServer(ix, ServerOptions{MaxTopK: 20, MaxBodyBytes: 4096}))
	defer srv.Close()

	// With scores: the Search-R1 shape, matching the in-process search.
	code, out := post(t, srv.URL, `{"queries": ["large wild cat", "stringed musical instrument"], "topk": 3, "return_scores": true}`)
	if code != 200 {
		t.Fatalf("status %d: %v", code, out)
	}
	res := out["result"].([]any)
	if len(res) != 2 {
		t.Fatalf("%d result lists", len(res))
	}
	for qi, q := range []string{"large wild cat", "stringed musical instrument"} {
		hits := ix.Search(q, 3)
		list := res[qi].([]any)
		if len(list) != 3 {
			t.Fatalf("%d hits", len(list))
		}
		for i, h := range hits {
			d, _ := ix.Doc(h.DocID)
			e := list[i].(map[string]any)
			doc := e["document"].(map[string]any)
			if doc["id"] != d.ID || doc["contents"] != d.Contents() {
				t.Errorf("%q hit %d: %v, want %s", q, i, doc, d.ID)
			}
			if s := e["score"].(float64); float32(s) != h.Score {
				t.Errorf("%q hit %d: score %v, want %v", q, i, s, h.Score)
			}
		}
	}
	// Without scores: just the documents; topk defaults to 3.
	code, out = post(t, srv.URL, `{"queries": ["cat"]}`)
	list := out["result"].([]any)[0].([]any)
	if code != 200 || len(list) != 3 {
		t.Fatalf("default topk: %d %v", code, out)
	}
	if doc := list[0].(map[string]any); doc["id"] == nil || doc["contents"] == nil || doc["score"] != nil {
		t.Errorf("document-only entry %v", doc)
	}

	// Health.
	resp, err := http.Get(srv.URL + "/health")
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if resp.StatusCode != 200 || h["status"] != "ok" || h["docs"] != float64(8020) {
		t.Errorf("health %d %v", resp.StatusCode, h)
	}

	// As Search-R1's server: an empty list gets an empty result, and topk 0
	// or null means the default (3).
	code, out = post(t, srv.URL, `{"queries": [], "topk": 3, "return_scores": true}`)
	if code != 200 || fmt.Sprint(out) != "map[result:[]]" {
		t.Errorf("empty queries: %d %v", code, out)
	}
	for _, body := range []string{`{"queries": ["cat"], "topk": 0}`, `{"queries": ["cat"], "topk": null, "return_scores": true}`} {
		code, out = post(t, srv.URL, body)
		if res, _ := out["result"].([]any); code != 200 || len(res) != 1 || len(res[0].([]any)) != 3 {
			t.Errorf("%s: %d %v", body, code, out)
		}
	}

	// 4xx cases, each with a JSON error.
	for _, c := range []struct {
		body string
		code int
	}{
		{`{"queries": ["x"], "topk": 3`, 400},
		{`not json`, 400},
		{`{"topk": 3}`, 400},
		{`{"queries": null}`, 400},
		{`{"queries": [1, 2]}`, 400},
		{`{"queries": ["x"], "topk": "3"}`, 400},
		{`{"queries": ["x"], "topk": -2}`, 400},
		{`{"queries": ["x"], "topk": 21}`, 400},
		{`{"queries": "x"}`, 400},
		{`{"queries": ["x"]} {"more": 1}`, 400},
		{`{"queries": ["` + strings.Repeat("word ", 1000) + `"]}`, 413},
	} {
		code, out := post(t, srv.URL, c.body)
		if code != c.code || out["error"] == nil || out["error"] == "" {
			t.Errorf("%.40s: status %d %v, want %d with an error", c.body, code, out, c.code)
		}
	}
	resp, _ = http.Get(srv.URL + "/retrieve")
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Errorf("GET /retrieve: %d", resp.StatusCode)
	}
	resp, _ = http.Get(srv.URL + "/nope")
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("GET /nope: %d", resp.StatusCode)
	}
}

// TestServerConcurrentClients runs many clients at once and checks every
// answer against the in-process index, and that the server still answers.
func TestServerConcurrentClients(t *testing.T) {
	ix := realIndex(t)
	srv := httptest.NewServer(NewServer(ix, ServerOptions{}))
	defer srv.Close()
	queries := []string{"cat", "a small boat", "music", "the capital of a country", "disease of the skin", "to move quickly", "red", "tree with leaves"}
	want := map[string]string{}
	for _, q := range queries {
		want[q] = fmt.Sprint(ix.Search(q, 5))
	}
	rr := NewRemoteRetriever(srv.URL)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for c := 0; c < 16; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for r := 0; r < 10; r++ {
				batch := []string{queries[(c+r)%len(queries)], queries[(c*3+r)%len(queries)]}
				res, err := rr.SearchBatch(context.Background(), batch, 5)
				if err != nil {
					errs <- err
					return
				}
				for i, q := range batch {
					var got []Hit
					for _, x := range res[i] {
						// Map back to internal ids through the in-process index.
						got = append(got, Hit{DocID: findDoc(ix, q, x.Doc.ID), Score: x.Score})
					}
					if fmt.Sprint(got) != want[q] {
						errs <- fmt.Errorf("client %d: %q = %v, want %s", c, q, got, want[q])
						return
					}
				}
			}
		}(c)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func findDoc(ix *Index, q, id string) uint32 {
	for _, h := range ix.Search(q, 5) {
		if d, _ := ix.Doc(h.DocID); d.ID == id {
			return h.DocID
		}
	}
	return noMoreDocs
}

// TestRemoteMatchesLocal checks that the HTTP client and the in-process
// index give the same SearchBatch results.
func TestRemoteMatchesLocal(t *testing.T) {
	ix := realIndex(t)
	srv := httptest.NewServer(NewServer(ix, ServerOptions{}))
	defer srv.Close()
	qs := []string{"wild cat", "boat", "zzzz-no-such-word"}
	local, err := ix.SearchBatch(context.Background(), qs, 3)
	if err != nil {
		t.Fatal(err)
	}
	remote, err := NewRemoteRetriever(srv.URL).SearchBatch(context.Background(), qs, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i := range qs {
		if len(local[i]) != len(remote[i]) {
			t.Fatalf("%q: %d vs %d results", qs[i], len(local[i]), len(remote[i]))
		}
		for j := range local[i] {
			l, r := local[i][j], remote[i][j]
			if l.Doc != r.Doc || l.Score != r.Score || r.DocID != -1 {
				t.Errorf("%q #%d: local %+v remote %+v", qs[i], j, l, r)
			}
		}
	}
	// Errors from the server come back with its message.
	_, err = NewRemoteRetriever(srv.URL).SearchBatch(context.Background(), qs, -1)
	if err == nil || !strings.Contains(err.Error(), "topk") || !strings.Contains(err.Error(), "400") {
		t.Errorf("topk -1: %v", err)
	}
	var _ Retriever = ix
	var _ Retriever = &RemoteRetriever{}
}

func TestScore32JSON(t *testing.T) {
	b, _ := json.Marshal(Score32(0.1))
	if string(b) != "0.1" {
		t.Errorf("Score32(0.1) = %s", b)
	}
}
