package index

import (
	"cmp"
	"context"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"sync"

	"golang.org/x/sync/errgroup"
)

// Hit is one search result: an internal doc id and its BM25 score.
type Hit struct {
	DocID uint32
	Score float32
}

// SearchStats counts the work of one search, to measure dynamic pruning.
type SearchStats struct {
	// Postings is the total length of the query terms' posting lists.
	Postings int64
	// Scored is how many of those postings were decoded and scored; the
	// rest were skipped by MaxScore and block-max pruning.
	Scored int64
}

// Search returns the top k passages for query, best first, scored with
// BM25 over the query's analysed terms (a repeated term counts once per
// occurrence, as Anserini's bag-of-words query does). Ties are broken by
// the smaller doc id. The result is exactly the exhaustive top k; dynamic
// pruning (MaxScore with block-max bounds) only skips work. It is safe for
// concurrent use. A corrupt posting list ends the search early with the hits
// found so far; SearchWithStats reports that error.
func (ix *Index) Search(query string, k int) []Hit {
	hits, _, _ := ix.SearchWithStats(query, k)
	return hits
}

// SearchWithStats is Search that also reports the pruning statistics and
// any corruption met in the postings.
func (ix *Index) SearchWithStats(query string, k int) ([]Hit, SearchStats, error) {
	if k <= 0 {
		return nil, SearchStats{}, nil
	}
	s := searcherPool.Get().(*searcher)
	defer searcherPool.Put(s)
	qts := ix.prepare(query)
	hits, st, err := s.maxScore(ix, qts, k)
	if err != nil {
		err = fmt.Errorf("index %s: %w", ix.dir, err)
	}
	return hits, st, err
}

// qterm is one distinct query term found in the dictionary.
type qterm struct {
	e   termEntry
	qtf int
	df  uint32 // the df of idf: e.df, or the sum over shards (Sharded)
}

// prepare analyses the query into distinct known terms, in order of first
// appearance (the order in which contributions are summed).
func (ix *Index) prepare(query string) []qterm {
	var qts []qterm
	seen := map[string]int{}
	ix.an.Analyze(query, func(t string) {
		if i, ok := seen[t]; ok {
			if i >= 0 {
				qts[i].qtf++
			}
			return
		}
		ti, ok := ix.lookup(t)
		if !ok {
			seen[t] = -1
			return
		}
		seen[t] = len(qts)
		e := ix.entry(ti)
		qts = append(qts, qterm{e: e, qtf: 1, df: e.df})
	})
	return qts
}

// weight is qtf · idf · (k1+1) in float32.
func (ix *Index) weight(q qterm) float32 {
	return float32(float64(q.qtf) * idf(ix.meta.docCount, q.df) * (ix.p.k1 + 1))
}

// termBound is an upper bound of the term's contribution to any passage.
func (ix *Index) termBound(q qterm, w float32) float64 {
	if ix.p.exact {
		return ix.p.bound(w, q.e.bestTF, q.e.bestDL)
	}
	return ix.p.bound(w, q.e.maxTF, q.e.minDL)
}

// searcher holds reusable per-search buffers.
type searcher struct {
	curs    []cursor
	cs      [][]rbContainer
	ord     []*cursor
	prefix  []float64
	contrib []float32
	heap    []Hit
}

var searcherPool = sync.Pool{New: func() any { return &searcher{} }}

func (s *searcher) setup(ix *Index, qts []qterm) error {
	n := len(qts)
	for len(s.curs) < n {
		s.curs = append(s.curs, cursor{})
		s.cs = append(s.cs, nil)
	}
	s.ord = s.ord[:0]
	for i, q := range qts {
		c := &s.curs[i]
		if err := c.init(ix, q.e, s.cs[i]); err != nil {
			return fmt.Errorf("postings.bin: %w: %v", ErrCorrupt, err)
		}
		s.cs[i] = c.it.cs
		c.w = ix.weight(q)
		c.ub = ix.termBound(q, c.w)
		c.qi = i
		s.ord = append(s.ord, c)
	}
	s.contrib = slices.Grow(s.contrib[:0], n)[:n]
	return nil
}

// worse orders hits from worst to best: lower score, then larger doc id.
func worse(a, b Hit) bool {
	return a.Score < b.Score || (a.Score == b.Score && a.DocID > b.DocID)
}

// push adds h to the min-heap of the k best hits.
func (s *searcher) push(h Hit, k int) {
	if len(s.heap) < k {
		s.heap = append(s.heap, h)
		i := len(s.heap) - 1
		for i > 0 {
			p := (i - 1) / 2
			if !worse(s.heap[i], s.heap[p]) {
				break
			}
			s.heap[i], s.heap[p] = s.heap[p], s.heap[i]
			i = p
		}
		return
	}
	s.heap[0] = h
	i, n := 0, len(s.heap)
	for {
		l, m := 2*i+1, i
		if l < n && worse(s.heap[l], s.heap[m]) {
			m = l
		}
		if r := l + 1; r < n && worse(s.heap[r], s.heap[m]) {
			m = r
		}
		if m == i {
			return
		}
		s.heap[i], s.heap[m] = s.heap[m], s.heap[i]
		i = m
	}
}

// ranked returns the heap's hits best first.
func (s *searcher) ranked() []Hit {
	out := slices.Clone(s.heap)
	sort.Slice(out, func(i, j int) bool { return worse(out[j], out[i]) })
	return out
}

// sumContrib adds the per-term contributions in canonical term order, so
// that a passage's score does not depend on the order terms were visited.
func (s *searcher) sumContrib() float32 {
	var t float32
	for _, c := range s.contrib {
		t = float32(t + c)
	}
	return t
}

// slack covers float32 rounding of a partial sum against float64 bounds.
const slack = 1 + 1e-5

// maxScore is document-at-a-time MaxScore: the terms sorted by upper bound
// are split into non-essential ones (whose bounds together cannot beat the
// current k-th score) and essential ones; only passages in an essential list
// are candidates, and non-essential lists are probed, with block-max bounds,
// only while the candidate can still enter the top k.
func (s *searcher) maxScore(ix *Index, qts []qterm, k int) ([]Hit, SearchStats, error) {
	var st SearchStats
	s.heap = s.heap[:0]
	if len(qts) == 0 {
		return nil, st, nil
	}
	if err := s.setup(ix, qts); err != nil {
		return nil, st, err
	}
	n := len(qts)
	ord, prefix := s.orderByBound(&st)
	full := false
	theta := 0.0
	ne := 0 // lists [0, ne) are non-essential
	for ne < n {
		d := noMoreDocs
		for i := ne; i < n; i++ {
			if x := ord[i].doc(); x < d {
				d = x
			}
		}
		if d == noMoreDocs {
			break
		}
		if full {
			// Block-max window: up to the first block end among the
			// essential lists, no passage can beat the sum of their block
			// bounds and the non-essential bounds; skip the window if that
			// sum cannot beat theta.
			end, bound := noMoreDocs, 0.0
			if ne > 0 {
				bound = prefix[ne-1]
			}
			for i := ne; i < n; i++ {
				c := ord[i]
				if c.doc() == noMoreDocs {
					continue
				}
				end = min(end, c.blockLast(c.cb))
				bound += c.blockBound()
			}
			if bound*slack <= theta {
				if end == noMoreDocs {
					break
				}
				for i := ne; i < n; i++ {
					ord[i].advance(end + 1)
				}
				continue
			}
		}
		clear(s.contrib)
		partial := 0.0
		for i := ne; i < n; i++ {
			c := ord[i]
			if c.doc() == d {
				v := c.score()
				s.contrib[c.qi] = v
				partial += float64(v)
				c.next()
			}
		}
		skip := false
		for i := ne - 1; i >= 0; i-- {
			if full && partial*slack+prefix[i] <= theta {
				skip = true
				break
			}
			c := ord[i]
			if !c.shallow(d) {
				continue
			}
			if full {
				rest := 0.0
				if i > 0 {
					rest = prefix[i-1]
				}
				if partial*slack+c.blockBound()+rest <= theta {
					skip = true
					break
				}
			}
			if c.advance(d) == d {
				v := c.score()
				s.contrib[c.qi] = v
				partial += float64(v)
			}
		}
		if skip {
			continue
		}
		h := Hit{DocID: d, Score: s.sumContrib()}
		if full && !worse(s.heap[0], h) {
			continue
		}
		s.push(h, k)
		if len(s.heap) == k {
			full = true
			theta = float64(s.heap[0].Score)
			for ne < n && prefix[ne] <= theta {
				ne++
			}
		}
	}
	err := s.finishStats(&st)
	return s.ranked(), st, err
}

// orderByBound sorts the query's cursors by their score upper bound,
// ascending, and returns them with the prefix sums of the bounds (prefix[i]
// bounds what lists 0..i can add to any passage); it counts the postings
// in st.
func (s *searcher) orderByBound(st *SearchStats) ([]*cursor, []float64) {
	slices.SortFunc(s.ord, func(a, b *cursor) int { return cmp.Compare(a.ub, b.ub) })
	s.prefix = s.prefix[:0]
	sum := 0.0
	for _, c := range s.ord {
		sum += c.ub
		s.prefix = append(s.prefix, sum)
		st.Postings += int64(c.df)
	}
	return s.ord, s.prefix
}

// finishStats adds the postings the cursors scored to st and returns the
// first error a cursor met.
func (s *searcher) finishStats(st *SearchStats) error {
	var err error
	for _, c := range s.ord {
		st.Scored += int64(c.scored)
		if c.err != nil && err == nil {
			err = c.err
		}
	}
	return err
}

// exhaustive scores every posting of every query term; it is the reference
// that maxScore must match.
func (ix *Index) exhaustive(query string, k int) ([]Hit, error) {
	qts := ix.prepare(query)
	s := &searcher{}
	if len(qts) == 0 || k <= 0 {
		return nil, nil
	}
	if err := s.setup(ix, qts); err != nil {
		return nil, err
	}
	acc := map[uint32][]float32{}
	for _, c := range s.ord {
		for d := c.doc(); d != noMoreDocs; d = c.doc() {
			v := acc[d]
			if v == nil {
				v = make([]float32, len(qts))
				acc[d] = v
			}
			v[c.qi] = c.score()
			c.next()
		}
		if c.err != nil {
			return nil, c.err
		}
	}
	var all []Hit
	for d, v := range acc {
		copy(s.contrib, v)
		all = append(all, Hit{DocID: d, Score: s.sumContrib()})
	}
	sort.Slice(all, func(i, j int) bool { return worse(all[j], all[i]) })
	if len(all) > k {
		all = all[:k]
	}
	return all, nil
}

// Result is a retrieved passage with its score, as SearchBatch returns it.
type Result struct {
	// DocID is the internal doc id, or -1 when the retriever is remote.
	DocID int64
	Doc   Doc
	Score float32
}

// Retriever is what the rollout code needs from a retriever: the in-process
// *Index and the HTTP *RemoteRetriever both provide it.
type Retriever interface {
	SearchBatch(ctx context.Context, queries []string, k int) ([][]Result, error)
}

// SearchBatch searches each query for its top k passages, in parallel, and
// loads the passages. The i-th result list answers the i-th query.
func (ix *Index) SearchBatch(ctx context.Context, queries []string, k int) ([][]Result, error) {
	return searchBatch(ctx, queries, k, ix.SearchWithStats, ix.Doc)
}

// searchBatch runs search on each query in parallel and loads the passages
// with doc; it is SearchBatch for *Index and *Sharded.
func searchBatch(ctx context.Context, queries []string, k int,
	search func(string, int) ([]Hit, SearchStats, error), doc func(uint32) (Doc, error)) ([][]Result, error) {
	out := make([][]Result, len(queries))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i, q := range queries {
		if err := gctx.Err(); err != nil {
			break
		}
		g.Go(func() error {
			hits, _, err := search(q, k)
			if err != nil {
				return err
			}
			res := make([]Result, len(hits))
			for j, h := range hits {
				d, err := doc(h.DocID)
				if err != nil {
					return err
				}
				res[j] = Result{DocID: int64(h.DocID), Doc: d, Score: h.Score}
			}
			out[i] = res
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}
