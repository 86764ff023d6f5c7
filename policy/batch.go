package policy

import (
	"context"
	"fmt"
	"github.com/igsearch/igsearch/onnx/ort"
	"math/rand/v2"
	"runtime"
	"sync"

	"golang.org/x/sync/errgroup"
)

// Request is one sequence to generate from.
type Request struct {
	// Prompt is the token ids to start from; at least one.
	Prompt []int32
	// Seed seeds the sequence's own random generator, which lives as long
	// as its row in a Batch: turns of a multi-turn rollout continue the same
	// stream.
	Seed uint64
}

// FinishReason says why a sequence stopped generating.
type FinishReason string

// The finish reasons.
const (
	// FinishEOS: the model produced an end-of-sequence token (kept).
	FinishEOS FinishReason = "eos"
	// FinishStop: the decoded continuation contains a stop string; the
	// token that completed it is kept.
	FinishStop FinishReason = "stop"
	// FinishLength: MaxNewTokens tokens were generated.
	FinishLength FinishReason = "length"
)

// Completion is what one Generate call produced for one sequence.
type Completion struct {
	// Tokens are the generated token ids, the finishing EOS or stop token
	// included.
	Tokens []int32
	// Text is the decode of Tokens. When a stop string ends the sequence in
	// the middle of a token, Text runs to the end of that token.
	Text string
	// LogProbs[i] is log p(Tokens[i]) under log_softmax of the raw logits
	// (before temperature, top-k and top-p): PPO's old log-probs.
	LogProbs []float32
	// Finish says why generation stopped.
	Finish FinishReason
	// Stop is the stop string that ended the sequence, for FinishStop.
	Stop string
}

// Batch holds the KV cache of several sequences (rows) so that they can be
// generated, extended and generated again without recomputing their
// prefixes: the multi-turn rollout of a search agent. Rows are numbered from
// 0 in the order of the requests and keep their numbers when other rows are
// dropped.
//
// Each row's tokens are either in the cache or pending: a fresh prompt is
// pending, Append adds pending tokens, and the last token Generate samples is
// pending until the next run. Generate first prefills every pending token of
// its rows in one run (split only when it would be very large), then decodes.
//
// A Batch is not safe for concurrent use. Close it to free its memory; after
// Generate returns an error (a cancelled context, say) its rows may hold
// tokens whose Completion was lost, so Close it then too.
type Batch struct {
	p    *Policy
	rows []*batchRow
}

type batchRow struct {
	seq     []int32 // every token: prompt, generated, appended
	cached  int     // tokens of seq in the cache
	rng     *rand.Rand
	cache   *kvCache // nil while nothing is cached
	slot    int      // the row's index in cache
	dropped bool
}

// NewBatch starts a batch with one row per request; nothing runs until
// Generate.
func (p *Policy) NewBatch(reqs []Request) (*Batch, error) {
	b := &Batch{p: p}
	for i, r := range reqs {
		if len(r.Prompt) == 0 {
			return nil, fmt.Errorf("policy: request %d: empty prompt", i)
		}
		if err := p.checkIDs(r.Prompt); err != nil {
			return nil, fmt.Errorf("policy: request %d: %w", i, err)
		}
		b.rows = append(b.rows, &batchRow{seq: append([]int32(nil), r.Prompt...), rng: newRowRNG(r.Seed)})
	}
	return b, nil
}

// Len is the number of rows, dropped ones included.
func (b *Batch) Len() int { return len(b.rows) }

// Tokens returns row r's whole sequence so far (prompt, generated and
// appended tokens). The slice is the caller's.
func (b *Batch) Tokens(r int) []int32 { return append([]int32(nil), b.rows[r].seq...) }

// Append queues tokens (retrieved documents, say) after the end of each
// given row; the next Generate prefills them together with the rest, in one
// run that reuses the cache. tokens[i] goes to rows[i].
func (b *Batch) Append(rows []int, tokens [][]int32) error {
	if len(rows) != len(tokens) {
		return fmt.Errorf("policy: append: %d rows, %d token lists", len(rows), len(tokens))
	}
	for i, r := range rows {
		if err := b.check(r); err != nil {
			return fmt.Errorf("policy: append: %w", err)
		}
		if err := b.p.checkIDs(tokens[i]); err != nil {
			return fmt.Errorf("policy: append to row %d: %w", r, err)
		}
	}
	for i, r := range rows {
		b.rows[r].seq = append(b.rows[r].seq, tokens[i]...)
	}
	return nil
}

// Continue is Append followed by Generate on the same rows.
func (b *Batch) Continue(ctx context.Context, rows []int, tokens [][]int32, sp SamplingParams) ([]Completion, error) {
	if err := b.Append(rows, tokens); err != nil {
		return nil, err
	}
	return b.Generate(ctx, rows, sp)
}

// Drop releases rows that will not be generated again; their numbers stay
// taken.
func (b *Batch) Drop(rows ...int) {
	for _, r := range rows {
		if r < 0 || r >= len(b.rows) || b.rows[r].dropped {
			continue
		}
		row := b.rows[r]
		row.dropped = true
		b.unref(row)
	}
}

// Close releases every row.
func (b *Batch) Close() error {
	for r := range b.rows {
		b.Drop(r)
	}
	return nil
}

func (b *Batch) check(r int) error {
	if r < 0 || r >= len(b.rows) {
		return fmt.Errorf("row %d out of range [0, %d)", r, len(b.rows))
	}
	if b.rows[r].dropped {
		return fmt.Errorf("row %d was dropped", r)
	}
	return nil
}

// unref detaches a row from its cache, freeing the cache when no row uses
// it any more.
func (b *Batch) unref(row *batchRow) {
	if row.cache == nil {
		return
	}
	row.cache.refs--
	if row.cache.refs == 0 {
		row.cache.release()
	}
	row.cache = nil
}

// place makes the given rows the rows 0..n-1 of one cache, gathering them
// when they are not already so, or when the cache has more than maxPadding
// removable padding. Rows that shared a cache with them but are not among
// them are gathered into a compact cache of their own, so that stale caches
// do not pile up.
func (b *Batch) place(ctx context.Context, rows []int) (*kvCache, error) {
	src := make([]slot, len(rows))
	for i, r := range rows {
		src[i] = slot{b.rows[r].cache, b.rows[r].slot}
	}
	if isIdentity(src) && !src[0].c.wasteful() {
		return src[0].c, nil
	}
	if len(rows) > 0 && b.rows[rows[0]].cached == 0 && allEmpty(src) {
		c, err := b.p.newCache(len(rows))
		if err != nil {
			return nil, err
		}
		b.adopt(rows, c)
		return c, nil
	}
	c, err := b.p.gather(ctx, src)
	if err != nil {
		return nil, err
	}
	old := map[*kvCache]bool{}
	for _, s := range src {
		if s.c != nil {
			old[s.c] = true
		}
	}
	b.adopt(rows, c)
	// Compact the rows left behind in the old caches.
	for oc := range old {
		if oc.refs == 0 {
			continue
		}
		var rest []int
		for i, row := range b.rows {
			if row.cache == oc {
				rest = append(rest, i)
			}
		}
		rs := make([]slot, len(rest))
		for i, r := range rest {
			rs[i] = slot{oc, b.rows[r].slot}
		}
		compact, err := b.p.gather(ctx, rs)
		if err != nil {
			return nil, err
		}
		b.adopt(rest, compact)
	}
	return c, nil
}

func allEmpty(src []slot) bool {
	for _, s := range src {
		if s.c != nil {
			return false
		}
	}
	return true
}

// adopt points rows at their slots 0..n-1 of c.
func (b *Batch) adopt(rows []int, c *kvCache) {
	for i, r := range rows {
		row := b.rows[r]
		b.unref(row)
		row.cache, row.slot = c, i
		c.refs++
	}
}

// wasteful reports whether gathering would remove more than a fifth of the
// cache's columns.
func (c *kvCache) wasteful() bool {
	longest := 0
	for r := range c.rows {
		longest = max(longest, c.tokens(r))
	}
	return c.cols-longest > c.cols/5
}

// genState is one row's progress through a Generate call.
type genState struct {
	out    Completion
	text   *textStream
	stops  *stopMatcher
	done   bool
	sample int32 // token sampled in the current step
	lp     float32
}

// Generate samples continuations for the given rows until each meets a stop
// condition, and returns one Completion per row, in the order of rows. All
// of a row's pending tokens are prefilled first. Rows that finish leave the
// running batch, so they cost nothing while the others go on. The last
// sampled token of each row stays pending, so a later Append or Generate
// continues after it.
func (b *Batch) Generate(ctx context.Context, rows []int, sp SamplingParams) ([]Completion, error) {
	p := b.p
	if err := sp.validate(); err != nil {
		return nil, err
	}
	if len(sp.Stop) > 0 && p.tok == nil {
		return nil, fmt.Errorf("policy: stop strings need a tokenizer")
	}
	seen := map[int]bool{}
	for _, r := range rows {
		if err := b.check(r); err != nil {
			return nil, fmt.Errorf("policy: generate: %w", err)
		}
		if seen[r] {
			return nil, fmt.Errorf("policy: generate: row %d given twice", r)
		}
		seen[r] = true
	}
	eos := map[int32]bool{}
	eosList := sp.EOS
	if eosList == nil {
		eosList = p.eos
	}
	for _, id := range eosList {
		eos[id] = true
	}
	st := make([]*genState, len(rows))
	for i := range rows {
		st[i] = &genState{stops: newStopMatcher(sp.Stop)}
		if p.tok != nil {
			st[i].text = p.newTextStream()
		}
	}
	active := make([]int, len(rows)) // indices into rows
	for i := range active {
		active[i] = i
	}
	for len(active) > 0 {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("policy: generate: %w", err)
		}
		run := make([]int, len(active))
		for i, a := range active {
			run[i] = rows[a]
		}
		err := b.prefill(ctx, run, func(ctx context.Context, res *forwardResult, idx []int) error {
			sub := make([]int, len(idx))
			for j, i := range idx {
				sub[j] = active[i]
			}
			return b.sampleAll(ctx, res, sub, rows, st, sp)
		})
		if err != nil {
			return nil, err
		}
		next := active[:0]
		for _, a := range active {
			s, row := st[a], b.rows[rows[a]]
			tok := s.sample
			row.seq = append(row.seq, tok)
			s.out.Tokens = append(s.out.Tokens, tok)
			s.out.LogProbs = append(s.out.LogProbs, s.lp)
			stop := ""
			if s.text != nil {
				piece := s.text.add(tok)
				s.out.Text += piece
				stop = s.stops.feed(piece)
			}
			switch {
			case eos[tok]:
				s.out.Finish = FinishEOS
			case stop != "":
				s.out.Finish, s.out.Stop = FinishStop, stop
			case len(s.out.Tokens) >= sp.MaxNewTokens:
				s.out.Finish = FinishLength
			default:
				next = append(next, a)
				continue
			}
			s.done = true
			if s.text != nil {
				s.out.Text += s.text.flush()
			}
		}
		active = next
	}
	out := make([]Completion, len(rows))
	for i, s := range st {
		out[i] = s.out
	}
	return out, nil
}

// sampleAll samples the next token of every active row (row i of res is
// active[i]), on the device for a resident policy, else here in parallel.
func (b *Batch) sampleAll(ctx context.Context, res *forwardResult, active, rows []int, st []*genState, sp SamplingParams) error {
	if res.devLogprobs != nil {
		rngs := make([]*rand.Rand, len(active))
		for i, a := range active {
			rngs[i] = b.rows[rows[a]].rng
		}
		toks, lps, err := b.p.sampleResident(ctx, res, rngs, sp)
		if err != nil {
			return err
		}
		for i, a := range active {
			st[a].sample, st[a].lp = toks[i], lps[i]
		}
		return nil
	}
	v := b.p.vocab
	var g errgroup.Group
	g.SetLimit(runtime.GOMAXPROCS(0))
	samplers := sync.Pool{New: func() any { return new(sampler) }}
	for i := range active {
		g.Go(func() error {
			s := samplers.Get().(*sampler)
			defer samplers.Put(s)
			gs := st[active[i]]
			var cdf []float32
			if res.cdf != nil {
				cdf = res.cdf[i*v : (i+1)*v]
			}
			tok, lp := s.sample(res.logits[i*v:(i+1)*v], res.normalized, cdf, sp, b.rows[rows[active[i]]].rng)
			gs.sample, gs.lp = int32(tok), lp
			return nil
		})
	}
	return g.Wait()
}

// pickFunc reads what its caller wants from one run's last position: res
// holds the run's rows, which are rows[idx[j]] of the prefill call.
type pickFunc func(ctx context.Context, res *forwardResult, idx []int) error

// prefill runs every pending token of the given rows through the model and
// hands each run's last-position outputs to pick. Every row must have a
// pending token. Rows run together, right-aligned so that each row's last
// pending token is in the last column, except where the graph cannot take
// several new tokens on top of a past for several rows at once
// (GroupQueryAttention): there, rows with a past and more than one pending
// token run one by one, and the others together.
func (b *Batch) prefill(ctx context.Context, rows []int, pick pickFunc) error {
	for _, r := range rows {
		if len(b.rows[r].seq) <= b.rows[r].cached {
			return fmt.Errorf("policy: row %d has no pending token", r)
		}
	}
	all := make([]int, len(rows))
	for i := range all {
		all[i] = i
	}
	if b.p.batchAppend || len(rows) == 1 {
		return b.prefillPick(ctx, rows, all, pick)
	}
	var alone, fresh, single []int // indices into rows
	freshT := 0
	for i, r := range rows {
		row := b.rows[r]
		switch {
		case len(row.seq)-row.cached == 1:
			single = append(single, i)
		case row.cached == 0:
			fresh = append(fresh, i)
			freshT = max(freshT, len(row.seq))
		default:
			alone = append(alone, i)
		}
	}
	if len(fresh) > 1 && freshT > b.p.chunkColumns(len(fresh)) {
		// Chunks after the first would have a past.
		alone, fresh = append(alone, fresh...), nil
	}
	if len(alone) == 0 && (len(fresh) == 0 || len(single) == 0) {
		return b.prefillPick(ctx, rows, all, pick)
	}
	// Give each lone row a cache of its own first, one copy per row.
	for _, i := range alone {
		if err := b.isolate(ctx, rows[i]); err != nil {
			return err
		}
	}
	groups := [][]int{single, fresh}
	for _, i := range alone {
		groups = append(groups, []int{i})
	}
	for _, g := range groups {
		if len(g) == 0 {
			continue
		}
		sub := make([]int, len(g))
		for j, i := range g {
			sub[j] = rows[i]
		}
		if err := b.prefillPick(ctx, sub, g, pick); err != nil {
			return err
		}
	}
	return nil
}

// prefillPick is prefillRun on rows, which are the prefill's rows idx,
// followed by pick on its last run.
func (b *Batch) prefillPick(ctx context.Context, rows, idx []int, pick pickFunc) error {
	phase := "decode"
	for _, r := range rows {
		if row := b.rows[r]; row.cached == 0 || len(row.seq)-row.cached > 1 {
			phase = "prefill"
		}
	}
	ctx = ort.WithPhase(ctx, phase)
	res, err := b.prefillRun(ctx, rows)
	if err != nil {
		return err
	}
	defer res.release()
	return pick(ctx, res, idx)
}

// isolate moves row r into a compact cache of its own, unless it has one.
func (b *Batch) isolate(ctx context.Context, r int) error {
	row := b.rows[r]
	if row.cache == nil || row.cache.rows == 1 {
		return nil
	}
	c, err := b.p.gather(ctx, []slot{{row.cache, row.slot}})
	if err != nil {
		return err
	}
	b.adopt([]int{r}, c)
	return nil
}

// prefillRun runs the pending tokens of rows in one batch (in chunks of
// columns when it would be very large).
func (b *Batch) prefillRun(ctx context.Context, rows []int) (*forwardResult, error) {
	p := b.p
	n := len(rows)
	T := 0
	for _, r := range rows {
		T = max(T, len(b.rows[r].seq)-b.rows[r].cached)
	}
	c, err := b.place(ctx, rows)
	if err != nil {
		return nil, err
	}
	chunk := p.chunkColumns(n)
	var last *forwardResult
	for off := 0; off < T; off += chunk {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("policy: prefill: %w", err)
		}
		w := min(chunk, T-off)
		ids := make([]int64, n*w)
		newMask := make([]int64, n*w)
		for i, r := range rows {
			row := b.rows[r]
			pend := row.seq[row.cached:]
			lead := T - len(pend) // padding columns before this row's tokens
			for j := range w {
				if k := off + j - lead; k >= 0 {
					ids[i*w+j] = int64(pend[k])
					newMask[i*w+j] = 1
				}
			}
		}
		want := logitsNone
		if off+w == T {
			want = logitsLast
		}
		res, err := p.forward(ctx, c, ids, newMask, w, want)
		if err != nil {
			return nil, err
		}
		// The new cache replaces the old one for these rows.
		b.adopt(rows, res.present)
		c = res.present
		last.release()
		last = res
	}
	for _, r := range rows {
		b.rows[r].cached = len(b.rows[r].seq)
	}
	return last, nil
}

// Generate samples a continuation of each request in one batch and returns
// them in order: NewBatch, Generate over every row, Close. Use a Batch to
// continue sequences afterwards.
func (p *Policy) Generate(ctx context.Context, reqs []Request, sp SamplingParams) ([]Completion, error) {
	if err := sp.validate(); err != nil {
		return nil, err
	}
	b, err := p.NewBatch(reqs)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	rows := make([]int, len(reqs))
	for i := range rows {
		rows[i] = i
	}
	return b.Generate(ctx, rows, sp)
}
