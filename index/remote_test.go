package index

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/igsearch/igsearch/internal/searchr1test"
)

// searchR1Corpus is the edge rows in Search-R1's corpus shape, {"id",
// "contents"} only.
func searchR1Corpus() string {
	var b strings.Builder
	for i, c := range contentsEdgeRows {
		row, _ := json.Marshal(map[string]any{"id": fmt.Sprintf("e%d", i), "contents": c})
		b.Write(row)
		b.WriteByte('\n')
	}
	return b.String()
}

// TestRemoteRetrieverSearchR1 runs RemoteRetriever against the stand-in of
// Search-R1's server, in its dense (whole corpus rows) and BM25
// ({"title", "text", "contents"}, no id) shapes.
func TestRemoteRetrieverSearchR1(t *testing.T) {
	corpus := filepath.Join(t.TempDir(), "c.jsonl")
	if err := os.WriteFile(corpus, []byte(searchR1Corpus()), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"dense", "bm25"} {
		url := searchr1test.StartStandIn(t, corpus, mode, "--topk", "3")
		rr := NewRemoteRetriever(url)
		qs := append(append([]string{}, edgeWords...), "nosuchwordanywhere")
		res, err := rr.SearchBatch(context.Background(), qs, 2)
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		// The raw answer, for the scores.
		body, _ := json.Marshal(map[string]any{"queries": qs, "topk": 2, "return_scores": true})
		resp, err := http.Post(url+"/retrieve", "application/json", strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		var raw struct {
			Result [][]struct{ Score float64 }
		}
		json.NewDecoder(resp.Body).Decode(&raw)
		resp.Body.Close()
		for i, want := range contentsEdgeRows {
			if len(res[i]) != 2 && !(mode == "bm25" && len(res[i]) == 1) {
				t.Fatalf("%s %s: %d passages", mode, qs[i], len(res[i]))
			}
			top := res[i][0]
			wantID := fmt.Sprintf("e%d", i)
			if mode == "bm25" {
				wantID = "" // its documents carry no id
			}
			if top.Doc.Contents() != want || top.Doc.ID != wantID || top.DocID != -1 {
				t.Errorf("%s %s: %+v %q, want %s %+q", mode, qs[i], top.Doc, top.Doc.Contents(), wantID, want)
			}
			if top.Score <= 0 || top.Score != float32(raw.Result[i][0].Score) {
				t.Errorf("%s %s: score %v, server sent %v", mode, qs[i], top.Score, raw.Result[i][0].Score)
			}
		}
		last := res[len(qs)-1]
		if mode == "bm25" && len(last) != 0 || mode == "dense" && len(last) != 2 {
			t.Errorf("%s, no match: %d passages", mode, len(last))
		}
		// An empty turn sends nothing and gets nothing.
		if r, err := rr.SearchBatch(context.Background(), nil, 3); err != nil || len(r) != 0 {
			t.Errorf("%s: empty batch: %v %v", mode, r, err)
		}
	}
}

// TestRemoteRetrieverErrors: a FastAPI-style 422 comes back with its
// detail, and a path ending in /retrieve is used as given.
func TestRemoteRetrieverErrors(t *testing.T) {
	corpus := filepath.Join(t.TempDir(), "c.jsonl")
	os.WriteFile(corpus, []byte(searchR1Corpus()), 0o644)
	url := searchr1test.StartStandIn(t, corpus, "dense", "--topk", "3")
	if _, err := NewRemoteRetriever(url+"/retrieve").SearchBatch(context.Background(), []string{"betaword"}, 1); err != nil {
		t.Errorf("URL ending in /retrieve: %v", err)
	}
	_, err := NewRemoteRetriever(url+"/nope").SearchBatch(context.Background(), []string{"x"}, 1)
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("wrong path: %v", err)
	}
}

// TestRemoteRetrieverRerankShape: Search-R1's retrieval_rerank_server.py
// answers {"document": "\"Title\"\ntext", "score": s}, the contents alone;
// the client takes that too (this handler writes that shape by hand).
func TestRemoteRetrieverRerankShape(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"result":[[{"document":"\"Paris\"\nParis is the capital of France.","score":7.25},{"document":"no title line","score":-1.5}]]}`)
	}))
	defer srv.Close()
	res, err := NewRemoteRetriever(srv.URL).SearchBatch(context.Background(), []string{"capital"}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(res[0]) != 2 || res[0][0].Doc.Title != "Paris" || res[0][0].Doc.Contents() != "\"Paris\"\nParis is the capital of France." ||
		res[0][0].Score != 7.25 || res[0][1].Doc.Contents() != "no title line" || res[0][1].Score != -1.5 {
		t.Errorf("rerank shape: %+v", res)
	}
}
