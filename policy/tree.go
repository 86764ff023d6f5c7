package policy

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"

	"github.com/igsearch/igsearch/models/qwen2"
	"github.com/igsearch/igsearch/onnx"
	"github.com/igsearch/igsearch/onnx/ort"
)

// PackedRow is one row of a packed tree of sequences for ScorePacked: every
// token of the tree once, in depth-first order (a node's tokens, then its
// subtrees one after the other), so that the tokens a token descends from
// come before it and those descending from it are the run right after it.
// All slices of a row are indexed by column except Score and Target.
type PackedRow struct {
	// IDs are the tokens.
	IDs []int32
	// Pos is each token's position in its sequence: its depth in the tree.
	Pos []int32
	// End is one past each token's last descendant: column j is seen by
	// the columns j … End[j]−1, each token by itself and its descendants.
	End []int32
	// Score lists the columns whose next-token distribution is scored,
	// Target the token scored at each.
	Score, Target []int32
}

// Check reports a row that is not a depth-first tree layout or holds
// tokens outside a vocabulary of vocab.
func (r PackedRow) Check(vocab int) error {
	n := len(r.IDs)
	if len(r.Pos) != n || len(r.End) != n {
		return fmt.Errorf("%d ids, %d positions, %d ends", n, len(r.Pos), len(r.End))
	}
	if len(r.Score) != len(r.Target) {
		return fmt.Errorf("%d scored columns, %d targets", len(r.Score), len(r.Target))
	}
	for j, id := range r.IDs {
		if id < 0 || int(id) >= vocab {
			return fmt.Errorf("token %d at column %d is outside the vocabulary [0, %d)", id, j, vocab)
		}
		if e := int(r.End[j]); e <= j || e > n {
			return fmt.Errorf("column %d: subtree end %d outside (%d, %d]", j, e, j, n)
		}
	}
	for k, c := range r.Score {
		if c < 0 || int(c) >= n {
			return fmt.Errorf("scored column %d outside [0, %d)", c, n)
		}
		if t := r.Target[k]; t < 0 || int(t) >= vocab {
			return fmt.Errorf("target %d is outside the vocabulary [0, %d)", t, vocab)
		}
	}
	return nil
}

// ErrNoTreeScoring is returned by ScorePacked for a policy opened from an
// ONNX folder: the tree-scoring graph is built from weights.
var ErrNoTreeScoring = errors.New("policy: packed-tree scoring needs a policy built from weights")

// CanScorePacked reports whether ScorePacked works for this policy: it was
// built from weights (a checkpoint or FromWeights).
func (p *Policy) CanScorePacked() bool { return p.w != nil }

// ScorePacked scores packed trees of sequences in one run of the
// tree-scoring graph (qwen2.BuildTreeScoring): out[r][k] = log p(
// rows[r].Target[k] | the tokens on the path to column rows[r].Score[k],
// that column included). Rows are right-padded to the longest. Every
// sequence below a shared prefix is scored with no KV cache to fork or
// copy; the result equals scoring each root-to-leaf path alone with Score,
// up to float rounding. The graph is built and its session opened at the
// first call, with half the CPUs as intra-op threads on the CPU (callers
// run two at once) and the process-wide CPU arena.
func (p *Policy) ScorePacked(ctx context.Context, rows []PackedRow) ([][]float32, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s, err := p.treeSession()
	if err != nil {
		return nil, err
	}
	n, T, K := len(rows), 0, 0
	for i, r := range rows {
		if err := r.Check(p.vocab); err != nil {
			return nil, fmt.Errorf("policy: packed row %d: %w", i, err)
		}
		T, K = max(T, len(r.IDs)), K+len(r.Score)
	}
	out := make([][]float32, n)
	if K == 0 {
		for i := range out {
			out[i] = []float32{}
		}
		return out, nil
	}
	ids, pos, end := make([]int64, n*T), make([]int64, n*T), make([]int64, n*T)
	index, target := make([]int64, 0, K), make([]int64, 0, K)
	for i, r := range rows {
		for t := range T {
			j := i*T + t
			if t >= len(r.IDs) { // padding sees only itself
				end[j] = int64(t + 1)
				continue
			}
			ids[j], pos[j], end[j] = int64(r.IDs[t]), int64(r.Pos[t]), int64(r.End[t])
		}
		for k, c := range r.Score {
			index, target = append(index, int64(i*T)+int64(c)), append(target, int64(r.Target[k]))
		}
	}
	run := &forwardRun{inputs: map[string]*ort.Tensor{}, outputs: ort.Outputs{}}
	defer run.destroy()
	shape := []int64{int64(n), int64(T)}
	run.add(run.inputs, qwen2.InputIDs)(ort.NewTensor(shape, ids))
	run.add(run.inputs, qwen2.PositionIDs)(ort.NewTensor(shape, pos))
	run.add(run.inputs, qwen2.SubtreeEnd)(ort.NewTensor(shape, end))
	run.add(run.inputs, qwen2.ScoreIndex)(ort.NewTensor([]int64{int64(K)}, index))
	run.add(run.inputs, qwen2.ScoreTarget)(ort.NewTensor([]int64{int64(K)}, target))
	lp := make([]float32, K)
	run.add(run.outputs, qwen2.TargetLogprobs)(ort.NewTensor([]int64{int64(K)}, lp))
	if run.err != nil {
		return nil, run.err
	}
	if err := s.RunContext(ort.WithPhase(ctx, "score"), run.inputs, run.outputs); err != nil {
		return nil, fmt.Errorf("policy: packed scoring: %w", err)
	}
	if err := checkPositive(lp); err != nil {
		return nil, fmt.Errorf("policy: packed scoring: %w", err)
	}
	for i, r := range rows {
		out[i], lp = lp[:len(r.Score):len(r.Score)], lp[len(r.Score):]
	}
	return out, nil
}

// treeScoring is the policy's tree-scoring session, opened at first use.
type treeScoring struct {
	once sync.Once
	s    *treeSession
	err  error
	// The same for ScoreTreeKV's graph.
	pastOnce sync.Once
	past     *treeSession
	pastErr  error
}

// treeSession owns the session; it is closed by the policy's closeTree or,
// failing that, when the policy is garbage collected.
type treeSession struct {
	mu sync.Mutex
	s  *ort.Session
}

func (t *treeSession) close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	err := t.s.Close()
	t.s = nil
	return err
}

// treeSession builds the tree-scoring graph over the policy's weights, with
// the attention variant and dtype of its other graphs, and opens it once.
func (p *Policy) treeSession() (*ort.Session, error) {
	p.tree.once.Do(func() {
		if !p.CanScorePacked() {
			p.tree.err = ErrNoTreeScoring
			return
		}
		// The policy's variant, except on the CPU: there a row of a few
		// hundred tokens with no past runs faster with standard attention
		// (tools/benchig's floor measures both, and the prefills it
		// measures fastest are standard's).
		a := qwen2.ContribAttention
		if p.batchAppend || !p.device.CUDA {
			a = qwen2.StandardAttention
		}
		g, err := qwen2.BuildTreeScoring(p.cfg, p.w, qwen2.Options{Attention: a, FusedLinear: true, LoRAScale: p.loraScale, DType: p.dtype})
		if err != nil {
			p.tree.err = fmt.Errorf("policy: tree-scoring graph: %w", err)
			return
		}
		s, err := ort.NewSessionFromGraph(g, p.treeSessionOptions())
		if err != nil {
			p.tree.err = fmt.Errorf("policy: tree-scoring session: %w", err)
			return
		}
		p.tree.s = &treeSession{s: s}
		addTreeCleanup(p, p.tree.s)
	})
	if p.tree.err != nil {
		return nil, p.tree.err
	}
	if p.tree.s.s == nil {
		return nil, errors.New("policy: packed scoring on a closed policy")
	}
	return p.tree.s.s, nil
}

// treeSessionOptions are the options of the tree-scoring sessions.
func (p *Policy) treeSessionOptions() ort.Options {
	so := p.sessionOptions(Options{Device: p.device, Threads: p.opsOpts.IntraOpThreads})
	// A tree's buffers hold [rows, heads, T, T] attention scores: a
	// policy made for each training iteration would page-fault them in
	// afresh at every run without an arena, and a session's own arena
	// would grow again for each policy. The process-wide arena keeps
	// them from one run, and one policy, to the next.
	so.SharedArena = !p.device.CUDA
	if !p.device.CUDA && so.IntraOpThreads == 0 {
		// Callers run two at once (pipeline/igscore's Workers): on the
		// 2-core machine, two single-threaded runs cost less CPU time
		// than one run on both cores, which spin-wait between the small
		// ops. A thread count the user set (Options.Threads) is kept.
		so.IntraOpThreads = max(1, runtime.NumCPU()/2)
	}
	if p.dtype == onnx.Float16 && !p.device.CUDA {
		so.Weights = nil // as in build
	}
	return so
}

// addTreeCleanup closes t when p is garbage collected, in case p's Close
// did not.
func addTreeCleanup(p *Policy, t *treeSession) {
	runtime.AddCleanup(p, func(t *treeSession) { t.close() }, t)
}

// closeTree closes the tree-scoring sessions that were opened; Close
// should call it before the weights are released.
func (p *Policy) closeTree() error {
	var err error
	for _, t := range []*treeSession{p.tree.s, p.tree.past} {
		if t != nil {
			err = errors.Join(err, t.close())
		}
	}
	return err
}

// Sequence is a sequence to score in a packed tree: the log-probs of
// IDs[Start:] after IDs[:Start], the context.
type Sequence struct {
	IDs   []int32
	Start int
}

// PackedAt locates a sequence's scores in PackSequences' rows: they are
// ScorePacked's out[Row][First : First+len(IDs)−Start]. Row is −1 for a
// sequence with nothing to score.
type PackedAt struct {
	Row, First int
}

// PackSequences packs seqs into rows for ScorePacked, each row a tree of
// their contexts (a radix tree, every shared context prefix once) with each
// sequence's continuation hanging below its context's last token. Contexts
// are taken in lexicographic order and cut into rows of at most capacity
// tokens where the fewest tokens run in all: a row runs again the prefix
// it shares with the row before it, so rows end where the next context
// shares little with the last (a sequence longer than capacity makes a row
// of its own). The last continuation token of a sequence is scored but
// never input, and a sequence with an empty context or continuation is not
// packed.
func PackSequences(seqs []Sequence, capacity int) ([]PackedRow, []PackedAt) {
	at := make([]PackedAt, len(seqs))
	var order []int
	for i, s := range seqs {
		at[i] = PackedAt{Row: -1}
		if s.Start > 0 && s.Start < len(s.IDs) {
			order = append(order, i)
		}
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return slices.Compare(seqs[a].IDs[:seqs[a].Start], seqs[b].IDs[:seqs[b].Start])
	})
	cut := packCuts(seqs, order, capacity)
	var rows []PackedRow
	var row *PackedRow
	var parent []int32 // of the current row's columns, −1 at the root
	var prev []int32   // the context packed last in the row
	var path []int32   // the columns of prev's tokens
	flush := func() {
		if row == nil {
			return
		}
		for j := len(row.IDs) - 1; j >= 0; j-- {
			if p := parent[j]; p >= 0 {
				row.End[p] = max(row.End[p], row.End[j])
			}
		}
		rows = append(rows, *row)
		row = nil
	}
	add := func(id int32, pos, par int) int32 {
		col := int32(len(row.IDs))
		row.IDs, row.Pos = append(row.IDs, id), append(row.Pos, int32(pos))
		row.End, parent = append(row.End, col+1), append(parent, int32(par))
		return col
	}
	for k, i := range order {
		ctx, cont := seqs[i].IDs[:seqs[i].Start], seqs[i].IDs[seqs[i].Start:]
		if cut[k] {
			flush()
		}
		l := 0
		if row != nil {
			l = lcp(ctx, prev)
		}
		if row == nil {
			row, parent, l = &PackedRow{}, parent[:0], 0
		}
		path = path[:l]
		for d := l; d < len(ctx); d++ {
			par := -1
			if d > 0 {
				par = int(path[d-1])
			}
			path = append(path, add(ctx[d], d, par))
		}
		at[i] = PackedAt{Row: len(rows), First: len(row.Score)}
		last := path[len(ctx)-1]
		for k, id := range cont {
			row.Score, row.Target = append(row.Score, last), append(row.Target, id)
			if k+1 < len(cont) {
				last = add(id, len(ctx)+k, int(last))
			}
		}
		prev = ctx
	}
	flush()
	return rows, at
}

// lcp is the length of the longest common prefix of a and b.
func lcp(a, b []int32) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// packCuts chooses where the rows of PackSequences start: cut[k] is true
// when order[k] starts a row. Sequence order[k] alone takes full[k] tokens
// (its context and its continuation but the last token), after order[k−1]
// in the same row inc[k] (less the prefix their contexts share); the cuts
// minimise the tokens of all rows, each at most capacity (or one
// sequence), by dynamic programming over the cut before each sequence.
func packCuts(seqs []Sequence, order []int, capacity int) []bool {
	n := len(order)
	full, inc := make([]int, n), make([]int, n+1) // inc[k+1] is order[k]'s
	for k, i := range order {
		s := seqs[i]
		full[k] = len(s.IDs) - 1
		inc[k+1] = full[k]
		if k > 0 {
			p := seqs[order[k-1]]
			inc[k+1] -= lcp(s.IDs[:s.Start], p.IDs[:p.Start])
		}
		inc[k+1] += inc[k] // prefix sums
	}
	best, from := make([]int, n+1), make([]int, n+1) // rows of order[:j]
	for j := 1; j <= n; j++ {
		best[j], from[j] = -1, j-1
		// The row order[i:j]: full[i] + inc[i+2] + … + inc[j].
		for i := j - 1; i >= 0; i-- {
			if inc[j]-inc[i+1] > capacity {
				break // and longer rows too
			}
			tokens := full[i] + inc[j] - inc[i+1]
			if tokens > capacity && i < j-1 {
				continue
			}
			if c := best[i] + tokens; best[j] < 0 || c <= best[j] { // ties: the longer row
				best[j], from[j] = c, i
			}
		}
	}
	cut := make([]bool, n)
	for j := n; j > 0; j = from[j] {
		cut[from[j]] = true
	}
	return cut
}
