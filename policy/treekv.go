package policy

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/igsearch/igsearch/models/qwen2"
	"github.com/igsearch/igsearch/onnx"
	"github.com/igsearch/igsearch/onnx/ort"
)

// TreeWork counts the tokens a tree scoring ran and the context they
// attended to: Attended sums, over the tokens, the tokens before each in
// its sequence.
type TreeWork struct {
	Tokens   int
	Attended int64
}

// kvRunTokens bounds the new tokens of one run of ScoreTreeKV, padding
// included (or one row).
const kvRunTokens = 2048

// ScoreTreeKV scores seqs (as PackSequences takes them: the log-probs of
// IDs[Start:] after IDs[:Start]) over the radix tree of their contexts,
// cut into paths: from a node, the kid with the most tokens below it, down
// to a leaf, and the continuation of a leaf's one sequence. Each path runs
// once, as one row on the keys and values of the path it hangs off, and
// every token so attends to exactly the tokens it follows, with no prefix
// run twice. All the rows hanging off one path run together on its keys
// and values, passed once and shared by the rows (qwen2's tree-scoring
// graph with a past), each row seeing the path up to where it branches
// off. For IG that is a sample's trajectory in one row, then its
// counterfactual observations and answers as rows on it. Runs go workers
// at once. It returns out[i] with the len(IDs)−Start log-probs of seqs[i]
// (empty for a sequence with an empty context or continuation) and the
// work done. It needs a float32 policy built from weights (CanScoreTreeKV);
// its graph uses fused attention (qwen2.BuildTreeScoringPast).
func (p *Policy) ScoreTreeKV(ctx context.Context, seqs []Sequence, workers int) ([][]float32, TreeWork, error) {
	var w TreeWork
	out := make([][]float32, len(seqs))
	var order []int
	for i, s := range seqs {
		if err := p.checkIDs(s.IDs); err != nil {
			return nil, w, fmt.Errorf("policy: tree scoring: sequence %d: %w", i, err)
		}
		out[i] = []float32{}
		if s.Start > 0 && s.Start < len(s.IDs) {
			out[i] = make([]float32, len(s.IDs)-s.Start)
			order = append(order, i)
		}
	}
	if len(order) == 0 {
		return out, w, nil
	}
	sess, err := p.treePastSession()
	if err != nil {
		return nil, w, err
	}
	root, top := kvPaths(seqs, order)
	err = runBatches(ctx, top.batches(), max(workers, 1), func(ctx context.Context, b *kvBatch) ([]*kvBatch, error) {
		if err := p.runKV(ctx, sess, b, out); err != nil {
			return nil, err
		}
		var next []*kvBatch
		for _, line := range b.lines {
			for _, row := range line {
				if h := row.hangers(seqs); len(h.rows) > 0 {
					next = append(next, h.batches()...)
				}
			}
		}
		return next, nil
	})
	if err != nil {
		return nil, w, fmt.Errorf("policy: tree scoring: %w", err)
	}
	for _, seg := range root.kids {
		countWork(seqs, seg, &w)
	}
	return out, w, nil
}

// kvPaths sorts order (the sequences to score) by context and returns the
// radix tree of their contexts and the run of the paths from its root.
func kvPaths(seqs []Sequence, order []int) (*kvNode, *kvRun) {
	slices.SortStableFunc(order, func(a, b int) int {
		return slices.Compare(seqs[a].IDs[:seqs[a].Start], seqs[b].IDs[:seqs[b].Start])
	})
	root := kvTree(seqs, order)
	sizeTree(root)
	top := &kvRun{}
	for _, n := range root.kids {
		top.rows = append(top.rows, kvPath(seqs, n))
	}
	return root, top
}

// OpenTreeKV opens ScoreTreeKV's session if it is not open yet. A caller
// may run it while it builds the sequences, as the opening (about 10 ms at
// the demo's size) would otherwise wait for them; its error is the one
// ScoreTreeKV returns.
func (p *Policy) OpenTreeKV() error {
	_, err := p.treePastSession()
	return err
}

// CanScoreTreeKV reports whether ScoreTreeKV works for this policy: built
// from weights, in float32, as qwen2.BuildTreeScoringPast requires.
func (p *Policy) CanScoreTreeKV() bool { return p.CanScorePacked() && p.dtype == onnx.Float }

// runBatches runs batches on workers goroutines, and each batch that run
// returns once it is ready: a batch as soon as the one it hangs off has
// run. Batches whose rows others hang off go first. It stops at the first
// error.
func runBatches(ctx context.Context, ready []*kvBatch, workers int, run func(context.Context, *kvBatch) ([]*kvBatch, error)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	wake := sync.NewCond(&mu)
	running := 0
	var first error
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mu.Lock()
			defer mu.Unlock()
			for {
				for len(ready) == 0 && running > 0 && first == nil {
					wake.Wait()
				}
				if first != nil || len(ready) == 0 {
					wake.Broadcast()
					return
				}
				i := slices.IndexFunc(ready, (*kvBatch).opens)
				if i < 0 {
					i = len(ready) - 1
				}
				b := ready[i]
				ready = slices.Delete(ready, i, i+1)
				running++
				mu.Unlock()
				next, err := run(ctx, b)
				mu.Lock()
				running--
				if err != nil && first == nil {
					first = err
					cancel()
				}
				ready = append(ready, next...)
				wake.Broadcast()
			}
		}()
	}
	wg.Wait()
	return first
}

// opens reports whether other rows hang off the batch's rows.
func (b *kvBatch) opens() bool {
	for _, line := range b.lines {
		for _, row := range line {
			for _, sv := range row.save {
				if !sv.inline {
					return true
				}
			}
		}
	}
	return false
}

// countWork adds the tokens of n's subtree, as ScoreTreeKV runs them, to w:
// every context token once and every continuation token but the last.
func countWork(seqs []Sequence, n *kvNode, w *TreeWork) {
	for k := n.from; k < n.to; k++ {
		w.Tokens++
		w.Attended += int64(k)
	}
	for _, m := range n.members {
		s := seqs[m]
		for k := s.Start; k < len(s.IDs)-1; k++ {
			w.Tokens++
			w.Attended += int64(k)
		}
	}
	for _, kid := range n.kids {
		countWork(seqs, kid, w)
	}
}

// kvNode is a run of context tokens shared by every sequence below it:
// seqs[seq].IDs[from:to], below parent. kv holds, once its row has run,
// its keys and values per layer (keys, values, …), each [to−from,
// kv_heads·head_dim].
type kvNode struct {
	seq, from, to int
	parent        *kvNode
	kids          []*kvNode
	members       []int // sequences whose context ends here
	size          int   // tokens of this node and every node below it
	kv            [][]float32
}

// kvTree is the radix tree of the contexts of seqs[order], sorted.
func kvTree(seqs []Sequence, order []int) *kvNode {
	root := &kvNode{seq: -1}
	for _, m := range order {
		c := seqs[m].IDs[:seqs[m].Start]
		n, pos := root, 0
		for pos < len(c) {
			var next *kvNode
			if k := len(n.kids); k > 0 && seqs[n.kids[k-1].seq].IDs[n.kids[k-1].from] == c[pos] {
				next = n.kids[k-1] // sorted: only the last kid can share
			}
			if next == nil {
				next = &kvNode{seq: m, from: pos, to: len(c), parent: n}
				n.kids = append(n.kids, next)
			}
			seg := seqs[next.seq].IDs[next.from:next.to]
			l := 0
			for l < len(seg) && pos+l < len(c) && seg[l] == c[pos+l] {
				l++
			}
			if l < len(seg) { // split next after l tokens
				tail := &kvNode{seq: next.seq, from: next.from + l, to: next.to, parent: next, kids: next.kids, members: next.members}
				for _, k := range tail.kids {
					k.parent = tail
				}
				next.to, next.kids, next.members = next.from+l, []*kvNode{tail}, nil
			}
			n, pos = next, pos+l
		}
		n.members = append(n.members, m)
	}
	return root
}

// kvScore is one scored column of a row: the log-prob of target there is
// out[seq][at].
type kvScore struct {
	col     int
	target  int32
	seq, at int
}

// kvRow is one row of a run: ids at positions pos0, pos0+1, … on the
// first pastEnd columns of the run's past, its scored columns, and the
// nodes whose keys and values its columns are, in row order (save).
type kvRow struct {
	pastEnd int
	ids     []int32
	pos0    int
	score   []kvScore
	save    []kvSaved
}

// kvSaved is a node that a row runs, from column col of the row. An
// inline node is a leaf whose one sequence's continuation runs in the row
// too: nothing runs below it, so its keys and values are not kept.
type kvSaved struct {
	node   *kvNode
	col    int
	inline bool
}

// kvRun is rows that run together on one past: the keys and values of the
// nodes from past up to the root (none when past is nil).
type kvRun struct {
	past *kvNode
	rows []*kvRow
}

// kvPath is the row of the path from node n, whose parent's keys and
// values are ready: n, then at each node the kid with the most tokens
// below it, down to a node with no kids. When the path ends in the context
// of one sequence, the row runs that sequence's continuation too; every
// context ending on the path has its first continuation token scored there.
func kvPath(seqs []Sequence, n *kvNode) *kvRow {
	r := &kvRow{pastEnd: n.from, pos0: n.from}
	for node := n; node != nil; node = heavyKid(node) {
		col := len(r.ids)
		r.ids = append(r.ids, seqs[node.seq].IDs[node.from:node.to]...)
		last := len(r.ids) - 1
		if len(node.kids) == 0 && len(node.members) == 1 {
			m := node.members[0]
			cont := seqs[m].IDs[seqs[m].Start:]
			r.ids = append(r.ids, cont[:len(cont)-1]...)
			for k := range cont {
				r.score = append(r.score, kvScore{col: last + k, target: cont[k], seq: m, at: k})
			}
			r.save = append(r.save, kvSaved{node: node, col: col, inline: true})
			break
		}
		for _, m := range node.members {
			r.score = append(r.score, kvScore{col: last, target: seqs[m].IDs[seqs[m].Start], seq: m, at: 0})
		}
		r.save = append(r.save, kvSaved{node: node, col: col})
	}
	return r
}

// hangers is the run of everything below the row's path that did not run
// in it, on the path's keys and values: the paths from the other kids of
// its nodes, and the rest of the continuations of contexts ending on it.
func (r *kvRow) hangers(seqs []Sequence) *kvRun {
	h := &kvRun{}
	for i, sv := range r.save {
		n := sv.node
		if sv.inline {
			break
		}
		h.past = n
		for _, m := range n.members {
			if s := seqs[m]; len(s.IDs)-s.Start > 1 {
				cont := s.IDs[s.Start:]
				c := &kvRow{pastEnd: n.to, ids: cont[:len(cont)-1], pos0: s.Start}
				for k := 1; k < len(cont); k++ {
					c.score = append(c.score, kvScore{col: k - 1, target: cont[k], seq: m, at: k})
				}
				h.rows = append(h.rows, c)
			}
		}
		for _, kid := range n.kids {
			if i+1 < len(r.save) && kid == r.save[i+1].node {
				continue // on this path
			}
			h.rows = append(h.rows, kvPath(seqs, kid))
		}
	}
	return h
}

// kvBatch is one run of the graph: lines of rows on a past (the nodes from
// past up to the root, their first pastLen columns). A line is a graph row
// holding rows side by side, each seeing only itself and its past.
type kvBatch struct {
	past    *kvNode
	pastLen int
	width   int
	lines   [][]*kvRow
}

// The cost model batches chooses by, in µs of one single-threaded run on
// the CPU (fitted to runs of the demo's policy): a run costs kvRunCost,
// and every token of a line, padding included, kvTokenCost plus
// kvColumnCost for each past and line column it attends over.
const (
	kvRunCost    = 250
	kvTokenCost  = 5.5
	kvColumnCost = 0.017
)

// batches cuts the run into batches on the same past. Rows of similar
// lengths go together: the longest first, a new class of narrower lines
// starting when the rows left are at most half as long as the class's
// widest and would fill a line of their own. Within a class, rows in the
// order of the past they see are cut into the batches the cost model
// prices lowest: each batch runs only the past columns its rows see, and
// the width of its longest row. Each batch holds at most kvRunTokens
// tokens, padding included (or one row).
func (r *kvRun) batches() []*kvBatch {
	rows := slices.Clone(r.rows)
	slices.SortStableFunc(rows, func(a, b *kvRow) int { return len(b.ids) - len(a.ids) })
	left := 0
	for _, row := range rows {
		left += len(row.ids)
	}
	var out []*kvBatch
	for lo := 0; lo < len(rows); {
		width, hi := len(rows[lo].ids), lo
		for ; hi < len(rows); hi++ {
			if n := len(rows[hi].ids); 2*n <= width && left > width {
				break
			}
			left -= len(rows[hi].ids)
		}
		out = append(out, r.cheapest(rows[lo:hi])...)
		lo = hi
	}
	return out
}

// cheapest cuts rows, in the order of the past they see, into the batches
// of least cost, by dynamic programming over the cut before each row. A
// batch's lines are estimated: one for each row longer than half the
// width, and at least the rows' tokens over the width.
func (r *kvRun) cheapest(rows []*kvRow) []*kvBatch {
	slices.SortStableFunc(rows, func(a, b *kvRow) int { return a.pastEnd - b.pastEnd })
	n := len(rows)
	best, from := make([]float64, n+1), make([]int, n+1)
	for j := 1; j <= n; j++ {
		best[j] = math.Inf(1)
		width, tokens := 0, 0
		for i := j - 1; i >= 0; i-- {
			width, tokens = max(width, len(rows[i].ids)), tokens+len(rows[i].ids)
			long := 0
			for _, row := range rows[i:j] {
				if 2*len(row.ids) > width {
					long++
				}
			}
			lines := max(long, (tokens+width-1)/width)
			if lines*width > kvRunTokens && j-i > 1 {
				break // and larger batches too
			}
			cost := kvRunCost + float64(lines*width)*(kvTokenCost+kvColumnCost*float64(rows[j-1].pastEnd+width))
			if c := best[i] + cost; c < best[j] {
				best[j], from[j] = c, i
			}
		}
	}
	var out []*kvBatch
	for j := n; j > 0; j = from[j] {
		out = append(out, r.pack(rows[from[j]:j]))
	}
	return out
}

// pack lays rows out as one batch: lines as wide as the longest row, each
// row in the first line with room for it, the longest first.
func (r *kvRun) pack(rows []*kvRow) *kvBatch {
	rows = slices.Clone(rows)
	slices.SortStableFunc(rows, func(a, b *kvRow) int { return len(b.ids) - len(a.ids) })
	b := &kvBatch{past: r.past, width: len(rows[0].ids)}
	var room []int // free columns of each line
	for _, row := range rows {
		n := len(row.ids)
		i := slices.IndexFunc(room, func(free int) bool { return free >= n })
		if i < 0 {
			b.lines, room = append(b.lines, nil), append(room, b.width)
			i = len(room) - 1
		}
		b.lines[i], room[i] = append(b.lines[i], row), room[i]-n
		b.pastLen = max(b.pastLen, row.pastEnd)
	}
	return b
}

// runKV runs one batch: its past copied together from its nodes' keys and
// values, its lines right-padded. It writes the scored log-probs into out
// and the keys and values of the nodes the rows run.
func (p *Policy) runKV(ctx context.Context, s *ort.Session, r *kvBatch, out [][]float32) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	sh := p.shape
	n, T, P, K := len(r.lines), r.width, r.pastLen, 0
	ids, pos := make([]int64, n*T), make([]int64, n*T)
	// bias [n,1,T,P+T]: a row's token sees the past before the row's
	// pastEnd and the row's tokens up to itself; padding sees only itself.
	S := P + T
	bias := getKV(n * T * S)
	defer putKV(bias)
	for i := range bias {
		bias[i] = -math.MaxFloat32
	}
	for b := range n {
		for t := range T {
			bias[(b*T+t)*S+P+t] = 0
		}
	}
	var index, target []int64
	for b, line := range r.lines {
		off := 0
		for _, row := range line {
			for t, id := range row.ids {
				c := b*T + off + t
				ids[c], pos[c] = int64(id), int64(row.pos0+t)
				q := bias[c*S:]
				clear(q[:row.pastEnd])
				clear(q[P+off : P+off+t])
			}
			for _, sc := range row.score {
				index, target = append(index, int64(b*T+off+sc.col)), append(target, int64(sc.target))
			}
			off += len(row.ids)
		}
	}
	K = len(index)
	if K == 0 { // a scored column the graph needs, discarded
		index, target = append(index, 0), append(target, 0)
	}
	run := &forwardRun{inputs: map[string]*ort.Tensor{}, outputs: ort.Outputs{}}
	defer run.destroy()
	present := make([][]float32, 2*sh.layers)
	width := sh.heads * sh.dim
	for l := range 2 * sh.layers {
		// past[l] is [1, P, heads·dim]: the nodes' columns before P.
		past := getKV(P * width)
		defer putKV(past)
		for node := r.past; node != nil && node.seq >= 0; node = node.parent {
			if keep := min(node.to, P) - node.from; keep > 0 {
				copy(past[node.from*width:], node.kv[l][:keep*width])
			}
		}
		name, pname := qwen2.PastKey(l/2), qwen2.PresentKey(l/2)
		if l%2 == 1 {
			name, pname = qwen2.PastValue(l/2), qwen2.PresentValue(l/2)
		}
		run.add(run.inputs, name)(ort.NewTensor([]int64{1, int64(P), int64(width)}, past))
		present[l] = getKV(n * T * width)
		defer putKV(present[l])
		run.add(run.outputs, pname)(ort.NewTensor([]int64{int64(n), int64(T), int64(width)}, present[l]))
	}
	shape := []int64{int64(n), int64(T)}
	run.add(run.inputs, qwen2.InputIDs)(ort.NewTensor(shape, ids))
	run.add(run.inputs, qwen2.PositionIDs)(ort.NewTensor(shape, pos))
	run.add(run.inputs, qwen2.AttentionBias)(ort.NewTensor([]int64{int64(n), 1, int64(T), int64(S)}, bias))
	run.add(run.inputs, qwen2.ScoreIndex)(ort.NewTensor([]int64{int64(len(index))}, index))
	run.add(run.inputs, qwen2.ScoreTarget)(ort.NewTensor([]int64{int64(len(index))}, target))
	lp := make([]float32, len(index))
	run.add(run.outputs, qwen2.TargetLogprobs)(ort.NewTensor([]int64{int64(len(index))}, lp))
	if run.err != nil {
		return run.err
	}
	if err := s.RunContext(ort.WithPhase(ctx, "score"), run.inputs, run.outputs); err != nil {
		return err
	}
	lp = lp[:K]
	if err := checkPositive(lp); err != nil {
		return err
	}
	k := 0
	for b, line := range r.lines {
		off := 0
		for _, row := range line {
			for _, sc := range row.score {
				out[sc.seq][sc.at] = lp[k]
				k++
			}
			for _, sv := range row.save {
				if !sv.inline {
					p.saveKV(sv.node, present, b*T+off+sv.col)
				}
			}
			off += len(row.ids)
		}
	}
	return nil
}

// saveKV keeps node's keys and values: its columns of present ([lines·T,
// heads·dim] per layer) from column first on.
func (p *Policy) saveKV(node *kvNode, present [][]float32, first int) {
	width := p.shape.heads * p.shape.dim
	n := (node.to - node.from) * width
	node.kv = make([][]float32, len(present))
	slab := make([]float32, len(present)*n)
	for l := range node.kv {
		node.kv[l], slab = slab[:n:n], slab[n:]
		copy(node.kv[l], present[l][first*width:])
	}
}

// treePastSession opens the graph of ScoreTreeKV once, as treeSession
// opens ScorePacked's.
func (p *Policy) treePastSession() (*ort.Session, error) {
	p.tree.pastOnce.Do(func() {
		if !p.CanScorePacked() {
			p.tree.pastErr = ErrNoTreeScoring
			return
		}
		g, err := qwen2.BuildTreeScoringPast(p.cfg, p.w, qwen2.Options{Attention: qwen2.FusedAttention, FusedLinear: true, LoRAScale: p.loraScale, DType: p.dtype})
		if err != nil {
			p.tree.pastErr = fmt.Errorf("policy: tree-scoring graph: %w", err)
			return
		}
		s, err := ort.NewSessionFromGraph(g, p.treeSessionOptions())
		if err != nil {
			p.tree.pastErr = fmt.Errorf("policy: tree-scoring session: %w", err)
			return
		}
		p.tree.past = &treeSession{s: s}
		addTreeCleanup(p, p.tree.past)
	})
	if p.tree.pastErr != nil {
		return nil, p.tree.pastErr
	}
	p.tree.past.mu.Lock()
	defer p.tree.past.mu.Unlock()
	if p.tree.past.s == nil {
		return nil, fmt.Errorf("policy: tree scoring on a closed policy")
	}
	return p.tree.past.s, nil
}

// heavyKid is n's kid with the most tokens below it (nil for a leaf).
func heavyKid(n *kvNode) *kvNode {
	var best *kvNode
	for _, k := range n.kids {
		if best == nil || k.size > best.size {
			best = k
		}
	}
	return best
}

// sizeTree sets each node's size: its tokens and those of every node
// below it.
func sizeTree(n *kvNode) int {
	n.size = n.to - n.from
	for _, k := range n.kids {
		n.size += sizeTree(k)
	}
	return n.size
}
