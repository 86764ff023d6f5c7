package index

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
)

// Index shards. `index build --shard i/n` indexes the corpus lines whose
// 0-based non-blank ordinal is i modulo n, and writes shard.json beside the
// six index files. OpenSharded opens the n shards as one index: a shard's
// local doc id l becomes the global id l·n + i, which is the unsharded
// index's doc id whenever no line was skipped (every shard then holds
// ⌈(lines − i)/n⌉ passages: "dense"), and searches use the collection
// statistics of all shards together (docCount, sumTF, and each query term's
// df summed), so scores and rankings equal the unsharded index's.

// shardInfoFile is the sidecar a shard build writes; index/FORMAT.md
// describes it.
const shardInfoFile = "shard.json"

// shardInfo is the content of shard.json.
type shardInfo struct {
	Shard  int   `json:"shard"`
	Shards int   `json:"shards"`
	Lines  int64 `json:"lines"` // non-blank lines of the whole corpus
}

func writeShardInfo(dir string, si shardInfo) error {
	b, err := json.Marshal(si)
	if err != nil {
		return err
	}
	return writeFileSync(filepath.Join(dir, shardInfoFile), append(b, '\n'))
}

// readShardInfo reads dir/shard.json; ok is false when dir is not a shard.
func readShardInfo(dir string) (si shardInfo, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, shardInfoFile))
	if errors.Is(err, os.ErrNotExist) {
		return si, false, nil
	}
	if err != nil {
		return si, false, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&si); err != nil {
		return si, false, fmt.Errorf("%s: %w: %v", shardInfoFile, ErrCorrupt, err)
	}
	if si.Shards < 2 || si.Shard < 0 || si.Shard >= si.Shards || si.Lines < 0 {
		return si, false, fmt.Errorf("%s: %w: shard %d of %d, %d lines", shardInfoFile, ErrCorrupt, si.Shard, si.Shards, si.Lines)
	}
	return si, true, nil
}

// Sharded is a set of index shards searched as one index with global BM25
// statistics. Doc ids are global (local·n + shard). It has the read methods
// of *Index that the search, serve and rollout code use, and is safe for
// concurrent use except Close.
type Sharded struct {
	shards  []*Index // by shard number, as opened
	views   []*Index // the same shards scoring with the global statistics
	numDocs uint32
	idSpace uint32 // n × the largest shard: every global id is below it
	dense   bool
}

// OpenSharded opens the shards in dirs (in any order) as one index. It
// checks that they are the n shards of one build: each shard number once,
// the same corpus line count, analyzer, BM25 defaults and length norms.
func OpenSharded(dirs []string, opt Options) (*Sharded, error) {
	if len(dirs) < 2 {
		return nil, fmt.Errorf("a sharded index needs at least 2 shard directories, got %d", len(dirs))
	}
	n := len(dirs)
	s := &Sharded{shards: make([]*Index, n)}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	var first shardInfo
	for i, dir := range dirs {
		si, isShard, err := readShardInfo(dir)
		if err != nil {
			return nil, fmt.Errorf("index %s: %w", dir, err)
		}
		if !isShard {
			return nil, fmt.Errorf("index %s: not a shard (no %s; build it with --shard i/n)", dir, shardInfoFile)
		}
		if si.Shards != n {
			return nil, fmt.Errorf("index %s: shard %d of %d, but %d directories were given", dir, si.Shard, si.Shards, n)
		}
		if i == 0 {
			first = si
		} else if si.Lines != first.Lines {
			return nil, fmt.Errorf("index %s: built from a corpus of %d lines, %s from %d lines", dir, si.Lines, dirs[0], first.Lines)
		}
		if s.shards[si.Shard] != nil {
			return nil, fmt.Errorf("index %s: shard %d given twice (also %s)", dir, si.Shard, s.shards[si.Shard].Dir())
		}
		ix, err := OpenWithOptions(dir, opt)
		if err != nil {
			return nil, err
		}
		s.shards[si.Shard] = ix
	}
	m0 := s.shards[0].meta
	var docCount uint32
	var sumTF uint64
	var maxLocal uint32
	s.dense = true
	for i, ix := range s.shards {
		m := ix.meta
		if m.analyzer != m0.analyzer || m.k1 != m0.k1 || m.b != m0.b || m.flags != m0.flags {
			return nil, fmt.Errorf("index %s: built with analyzer %s, k1 %g, b %g, flags %d; %s with %s, %g, %g, %d",
				ix.Dir(), m.analyzer, m.k1, m.b, m.flags, s.shards[0].Dir(), m0.analyzer, m0.k1, m0.b, m0.flags)
		}
		if uint64(s.numDocs)+uint64(m.numDocs) >= 1<<32 || uint64(m.numDocs)*uint64(n) >= 1<<32 {
			return nil, fmt.Errorf("index %s: too many passages for 32-bit global doc ids", ix.Dir())
		}
		s.numDocs += m.numDocs
		docCount += m.docCount
		sumTF += m.sumTF
		maxLocal = max(maxLocal, m.numDocs)
		if int64(m.numDocs) != (first.Lines-int64(i)+int64(n)-1)/int64(n) {
			s.dense = false
		}
	}
	s.idSpace = maxLocal * uint32(n)
	k1, b := m0.k1, m0.b
	if opt.K1 > 0 {
		k1, b = opt.K1, opt.B
	}
	p := newBM25(k1, b, sumTF, docCount, m0.k1, m0.b)
	// A shard's stored best (tf, length) pairs are the best under its own
	// avgdl, not the global one, so bounds use (max tf, min length).
	p.exact = false
	for _, ix := range s.shards {
		v := *ix
		m := *ix.meta
		m.docCount = docCount
		v.meta, v.p = &m, p
		s.views = append(s.views, &v)
	}
	ok = true
	return s, nil
}

// Close closes every shard. The Sharded must not be used afterwards.
func (s *Sharded) Close() error {
	var first error
	for _, ix := range s.shards {
		if ix != nil {
			if err := ix.Close(); err != nil && first == nil {
				first = err
			}
		}
	}
	return first
}

// NumShards returns n.
func (s *Sharded) NumShards() int { return len(s.shards) }

// Shard returns shard i as opened, with its own statistics.
func (s *Sharded) Shard(i int) *Index { return s.shards[i] }

// NumDocs returns the number of passages over all shards.
func (s *Sharded) NumDocs() int { return int(s.numDocs) }

// Dense reports whether the global doc ids are exactly 0..NumDocs()-1 and
// equal the unsharded index's (no shard skipped a line).
func (s *Sharded) Dense() bool { return s.dense }

// Analyzer returns the analyzer the shards were built with.
func (s *Sharded) Analyzer() *Analyzer { return s.shards[0].an }

// locate maps a global doc id to its shard and local id.
func (s *Sharded) locate(doc uint32) (int, uint32, bool) {
	n := uint32(len(s.shards))
	i, l := int(doc%n), doc/n
	return i, l, l < s.shards[i].meta.numDocs
}

// Doc returns the stored passage with global id doc.
func (s *Sharded) Doc(doc uint32) (Doc, error) {
	i, l, ok := s.locate(doc)
	if !ok {
		return Doc{}, fmt.Errorf("sharded index: doc %d out of range (shard %d has %d passages)", doc, i, s.shards[i].meta.numDocs)
	}
	return s.shards[i].Doc(l)
}

// Search is Index.Search over all shards.
func (s *Sharded) Search(query string, k int) []Hit {
	hits, _, _ := s.SearchWithStats(query, k)
	return hits
}

// SearchWithStats returns the top k passages for query over all shards,
// best first, ties broken by the smaller global doc id, with every shard's
// pruning statistics added up. Each shard scores with the global docCount,
// avgdl and dfs, so a passage's score is bit-identical to the unsharded
// index's: the per-term parts are equal, and the terms a shard lacks add
// exact zeros to the unsharded sum.
func (s *Sharded) SearchWithStats(query string, k int) ([]Hit, SearchStats, error) {
	var st SearchStats
	if k <= 0 {
		return nil, st, nil
	}
	// Distinct terms in order of first appearance, with their counts.
	var terms []string
	qtf := map[string]int{}
	s.Analyzer().Analyze(query, func(t string) {
		if qtf[t] == 0 {
			terms = append(terms, t)
		}
		qtf[t]++
	})
	per := make([][]qterm, len(s.shards))
	which := make([][]int, len(s.shards)) // per shard: each qterm's index in terms
	df := make([]uint32, len(terms))
	for i, ix := range s.shards {
		for j, t := range terms {
			if ti, ok := ix.lookup(t); ok {
				e := ix.entry(ti)
				df[j] += e.df
				per[i] = append(per[i], qterm{e: e, qtf: qtf[t]})
				which[i] = append(which[i], j)
			}
		}
	}
	var all []Hit
	n := uint32(len(s.shards))
	for i, v := range s.views {
		qts := per[i]
		for q := range qts {
			qts[q].df = df[which[i][q]]
		}
		sr := searcherPool.Get().(*searcher)
		hits, hst, err := sr.maxScore(v, qts, k)
		searcherPool.Put(sr)
		st.Postings += hst.Postings
		st.Scored += hst.Scored
		if err != nil {
			return nil, st, fmt.Errorf("index %s: %w", v.dir, err)
		}
		for _, h := range hits {
			all = append(all, Hit{DocID: h.DocID*n + uint32(i), Score: h.Score})
		}
	}
	sort.Slice(all, func(a, b int) bool { return worse(all[b], all[a]) })
	if len(all) > k {
		all = all[:k]
	}
	return all, st, nil
}

// SearchBatch is Index.SearchBatch over all shards; Results carry global
// doc ids.
func (s *Sharded) SearchBatch(ctx context.Context, queries []string, k int) ([][]Result, error) {
	return searchBatch(ctx, queries, k, s.SearchWithStats, s.Doc)
}

// RandomDocs is Index.RandomDocs over the global doc ids. When the shards
// are dense it draws exactly what the unsharded index draws from the same
// rng state.
func (s *Sharded) RandomDocs(rng *rand.Rand, n int, exclude []uint32) []uint32 {
	if s.dense {
		return randomDocs(rng, s.numDocs, n, exclude)
	}
	// Sparse ids: draw from the id space and keep the ids that exist.
	var out []uint32
	ex := append([]uint32(nil), exclude...)
	for len(out) < n {
		got := randomDocs(rng, s.idSpace, n-len(out), ex)
		if len(got) == 0 {
			break
		}
		for _, d := range got {
			ex = append(ex, d)
			if _, _, ok := s.locate(d); ok {
				out = append(out, d)
			}
		}
	}
	return out
}
