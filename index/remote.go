package index

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// RemoteRetriever searches a Search-R1-compatible /retrieve server over
// HTTP: `igsearch index serve`, or Search-R1's own retrieval_server.py (e5 +
// FAISS, or its BM25 variant) and FlashRAG servers that answer in its
// format. It has the same SearchBatch as *Index, so either can serve
// rollouts. It is safe for concurrent use.
type RemoteRetriever struct {
	// URL is the server's base URL, e.g. "http://127.0.0.1:8000"; a URL
	// that already ends in /retrieve is used as it is.
	URL string
	// Client is the HTTP client; nil means http.DefaultClient.
	Client *http.Client
}

// NewRemoteRetriever returns a client for the server at baseURL, with a
// 10-minute timeout per request (a dense retriever may take minutes for a
// training turn's thousands of queries).
func NewRemoteRetriever(baseURL string) *RemoteRetriever {
	return &RemoteRetriever{URL: strings.TrimRight(baseURL, "/"), Client: &http.Client{Timeout: 10 * time.Minute}}
}

// endpoint is the /retrieve URL.
func (rr *RemoteRetriever) endpoint() string {
	u := strings.TrimRight(rr.URL, "/")
	if strings.HasSuffix(u, "/retrieve") {
		return u
	}
	return u + "/retrieve"
}

// remoteEntry is one entry of a result list: {"document": ROW, "score": S},
// as return_scores asks. ROW is a corpus row object, or (Search-R1's
// retrieval_rerank_server.py) the contents string alone.
type remoteEntry struct {
	Document json.RawMessage `json:"document"`
	Score    *float64        `json:"score"`
}

// remoteRow is a corpus row as a server returns it. Search-R1's dense
// server returns the whole corpus row ({"id", "contents", ...}); its BM25
// variant {"title", "text", "contents"} without an id.
type remoteRow struct {
	ID       json.RawMessage `json:"id"`
	Contents *string         `json:"contents"`
	Title    *string         `json:"title"`
	Text     *string         `json:"text"`
}

// SearchBatch posts the queries to /retrieve as Search-R1's generation.py
// does ({"queries", "topk", "return_scores": true}) and returns the
// passages (DocID -1: a server's internal ids are not exposed). A
// passage's contents are kept exactly as the server sent them. No queries
// means no request.
func (rr *RemoteRetriever) SearchBatch(ctx context.Context, queries []string, k int) ([][]Result, error) {
	if len(queries) == 0 {
		return [][]Result{}, nil
	}
	url := rr.endpoint()
	body, err := json.Marshal(RetrieveRequest{Queries: queries, TopK: &k, ReturnScores: true})
	if err != nil {
		return nil, fmt.Errorf("retriever %s: %w", url, err)
	}
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
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var e struct {
			Error  string          `json:"error"`
			Detail json.RawMessage `json:"detail"` // FastAPI's validation errors
		}
		json.Unmarshal(data, &e)
		msg := e.Error
		if msg == "" && len(e.Detail) > 0 {
			msg = string(e.Detail)
		}
		if msg == "" {
			msg = strings.TrimSpace(string(data))
		}
		return nil, fmt.Errorf("retriever %s: %s: %s", url, resp.Status, msg)
	}
	var out struct {
		Result *[][]remoteEntry `json:"result"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("retriever %s: bad response: %w", url, err)
	}
	if out.Result == nil {
		return nil, fmt.Errorf(`retriever %s: bad response: no "result"`, url)
	}
	if len(*out.Result) != len(queries) {
		return nil, fmt.Errorf("retriever %s: %d result lists for %d queries", url, len(*out.Result), len(queries))
	}
	res := make([][]Result, len(queries))
	for i, list := range *out.Result {
		res[i] = make([]Result, len(list))
		for j, e := range list {
			d, err := e.doc()
			if err != nil {
				return nil, fmt.Errorf("retriever %s: query %d (%.60q) passage %d: %w", url, i, queries[i], j, err)
			}
			res[i][j] = Result{DocID: -1, Doc: d}
			if e.Score != nil {
				res[i][j].Score = float32(*e.Score)
			}
		}
	}
	return res, nil
}

// doc reads the entry's passage.
func (e remoteEntry) doc() (Doc, error) {
	raw := e.Document
	if raw == nil {
		return Doc{}, fmt.Errorf(`entry has no "document"`)
	}
	if len(raw) > 0 && raw[0] == '"' {
		// Search-R1's retrieval_rerank_server.py sends the contents alone.
		var contents string
		if err := json.Unmarshal(raw, &contents); err != nil {
			return Doc{}, fmt.Errorf("bad document: %w", err)
		}
		return ContentsDoc("", contents), nil
	}
	var row remoteRow
	if err := json.Unmarshal(raw, &row); err != nil {
		return Doc{}, fmt.Errorf("bad document: %w", err)
	}
	var id string
	if len(row.ID) > 0 && string(row.ID) != "null" {
		if json.Unmarshal(row.ID, &id) != nil {
			id = string(row.ID) // a number, as written
		}
	}
	switch {
	case row.Contents != nil:
		return ContentsDoc(id, *row.Contents), nil
	case row.Text != nil:
		d := Doc{ID: id, Text: *row.Text}
		if row.Title != nil {
			d.Title = *row.Title
		}
		return d, nil
	}
	return Doc{}, fmt.Errorf(`document has neither "contents" nor "text": %.200s`, raw)
}
