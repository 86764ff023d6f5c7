package policy

import (
	"context"
	"fmt"
	"slices"

	"github.com/igsearch/igsearch/models/qwen2"
	"github.com/igsearch/igsearch/onnx/ort"
	"golang.org/x/sync/errgroup"
)

// TreeWork counts the tokens a tree scoring ran and the context they
// attended to: Attended sums, over the tokens, the tokens before each in
// its sequence.
type TreeWork struct {
	Tokens   int
	Attended int64
}

// The rows of one run of ScoreTreeKV: at most kvRunRows rows and
// kvRunTokens new tokens (padded).
const (
	kvRunRows   = 16
	kvRunTokens = 1024
)

// ScoreTreeKV scores seqs (as PackSequences takes them: the log-probs of
// IDs[Start:] after IDs[:Start]) over the radix tree of their contexts, a
// level of the tree at a time: each node's tokens run once, as one row on
// the keys and values of the nodes above it (the past, copied together
// from theirs), and each continuation runs below its context's node. A
// leaf context with one continuation runs with it in one row. Every token
// so attends to exactly the tokens it follows, with no row to fill and no
// prefix run twice. Rows of similar sizes run together, workers runs at
// once. It returns out[i] with the len(IDs)−Start log-probs of seqs[i]
// (empty for a sequence with an empty context or continuation) and the
// work done. It needs a policy built from weights; its graph uses standard
// attention.
//
// It runs fewer tokens than ScorePacked, each over exactly its ancestors,
// yet measured slower on the demo (tools/benchig): its nodes are short
// (about 20 tokens a row), so that copying each row's past (about 150
// columns of keys and values) and padding the rows of a run cost more than
// the attention it saves.
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
	slices.SortStableFunc(order, func(a, b int) int {
		return slices.Compare(seqs[a].IDs[:seqs[a].Start], seqs[b].IDs[:seqs[b].Start])
	})
	root := kvTree(seqs, order)
	var ready []*kvJob
	for _, n := range root.kids {
		ready = append(ready, kvJobsFor(seqs, n)...)
	}
	for len(ready) > 0 {
		slices.SortStableFunc(ready, func(a, b *kvJob) int {
			if d := a.pastLen() - b.pastLen(); d != 0 {
				return d
			}
			return len(a.ids) - len(b.ids)
		})
		var runs [][]*kvJob
		for lo := 0; lo < len(ready); {
			hi, longest := lo+1, len(ready[lo].ids)
			for hi < len(ready) && hi-lo < kvRunRows && (hi-lo+1)*max(longest, len(ready[hi].ids)) <= kvRunTokens {
				longest = max(longest, len(ready[hi].ids))
				hi++
			}
			runs = append(runs, ready[lo:hi])
			lo = hi
		}
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(max(workers, 1))
		for _, run := range runs {
			g.Go(func() error { return p.runKV(gctx, sess, run, out) })
		}
		if err := g.Wait(); err != nil {
			return nil, w, fmt.Errorf("policy: tree scoring: %w", err)
		}
		var next []*kvJob
		for _, j := range ready {
			w.Tokens += len(j.ids)
			for k := range j.ids {
				w.Attended += int64(j.pos0 + k)
			}
			if n := j.save; n != nil {
				for _, m := range n.members {
					if s := seqs[m]; len(s.IDs)-s.Start > 1 {
						cont := s.IDs[s.Start:]
						c := &kvJob{past: n, ids: cont[:len(cont)-1], pos0: s.Start}
						for k := 1; k < len(cont); k++ {
							c.score = append(c.score, kvScore{col: k - 1, target: cont[k], seq: m, at: k})
						}
						next = append(next, c)
					}
				}
				for _, kid := range n.kids {
					next = append(next, kvJobsFor(seqs, kid)...)
				}
			}
		}
		ready = next
	}
	return out, w, nil
}

// kvNode is a run of context tokens shared by every sequence below it:
// seqs[seq].IDs[from:to], below parent. kv holds, once its row has run,
// its keys and values per layer (keys, values, …), each [kv_heads,
// to−from, head_dim].
type kvNode struct {
	seq, from, to int
	parent        *kvNode
	kids          []*kvNode
	members       []int // sequences whose context ends here
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

// kvJob is one row: ids at positions pos0, pos0+1, … on the keys and
// values of past and the nodes above it (none when past is nil or the
// root), its scored columns, and the node whose keys and values its first
// columns are (save), if any.
type kvJob struct {
	past  *kvNode
	ids   []int32
	pos0  int
	score []kvScore
	save  *kvNode
}

func (j *kvJob) pastLen() int {
	if j.past == nil || j.past.seq < 0 {
		return 0
	}
	return j.past.to
}

// kvJobsFor is the row of node n, whose parent's keys and values are
// ready: a leaf with one continuation runs with it; any other node runs
// alone, scoring its members' first continuation tokens, and saves its
// keys and values for the rows below it.
func kvJobsFor(seqs []Sequence, n *kvNode) []*kvJob {
	ids := seqs[n.seq].IDs[n.from:n.to]
	last := len(ids) - 1
	if len(n.kids) == 0 && len(n.members) == 1 {
		m := n.members[0]
		cont := seqs[m].IDs[seqs[m].Start:]
		j := &kvJob{past: n.parent, ids: slices.Concat(ids, cont[:len(cont)-1]), pos0: n.from}
		for k := range cont {
			j.score = append(j.score, kvScore{col: last + k, target: cont[k], seq: m, at: k})
		}
		return []*kvJob{j}
	}
	j := &kvJob{past: n.parent, ids: ids, pos0: n.from, save: n}
	for _, m := range n.members {
		j.score = append(j.score, kvScore{col: last, target: seqs[m].IDs[seqs[m].Start], seq: m, at: 0})
	}
	return []*kvJob{j}
}

// runKV runs one group of rows: their pasts copied together from their
// nodes' keys and values (right-padded and masked to the longest), their
// new tokens right-padded. It writes the scored log-probs into out and the
// saved nodes' keys and values.
func (p *Policy) runKV(ctx context.Context, s *ort.Session, jobs []*kvJob, out [][]float32) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	sh := p.shape
	n, T, P, K := len(jobs), 0, 0, 0
	for _, j := range jobs {
		T, P, K = max(T, len(j.ids)), max(P, j.pastLen()), K+len(j.score)
	}
	ids, pos, end := make([]int64, n*T), make([]int64, n*T), make([]int64, n*T)
	mask := make([]int64, n*P)
	index, target := make([]int64, 0, max(K, 1)), make([]int64, 0, max(K, 1))
	for r, j := range jobs {
		for t := range T {
			c := r*T + t
			if t >= len(j.ids) {
				end[c] = int64(t + 1)
				continue
			}
			ids[c], pos[c], end[c] = int64(j.ids[t]), int64(j.pos0+t), int64(len(j.ids))
		}
		for c := range j.pastLen() {
			mask[r*P+c] = 1
		}
		for _, sc := range j.score {
			index, target = append(index, int64(r*T+sc.col)), append(target, int64(sc.target))
		}
	}
	if K == 0 { // a scored column the graph needs, discarded
		index, target = append(index, 0), append(target, 0)
	}
	// past[l] is [n, heads, P, dim]: each row's nodes' columns in order.
	run := &forwardRun{inputs: map[string]*ort.Tensor{}, outputs: ort.Outputs{}}
	defer run.destroy()
	present := make([][]float32, 2*sh.layers)
	for l := range 2 * sh.layers {
		past := make([]float32, n*sh.heads*P*sh.dim)
		for r, j := range jobs {
			for node := j.past; node != nil && node.seq >= 0; node = node.parent {
				cols := node.to - node.from
				for h := range sh.heads {
					src := node.kv[l][h*cols*sh.dim : (h+1)*cols*sh.dim]
					copy(past[((r*sh.heads+h)*P+node.from)*sh.dim:], src)
				}
			}
		}
		name := qwen2.PastKey(l / 2)
		if l%2 == 1 {
			name = qwen2.PastValue(l / 2)
		}
		run.add(run.inputs, name)(ort.NewTensor([]int64{int64(n), int64(sh.heads), int64(P), int64(sh.dim)}, past))
		present[l] = make([]float32, n*sh.heads*T*sh.dim)
		pname := qwen2.PresentKey(l / 2)
		if l%2 == 1 {
			pname = qwen2.PresentValue(l / 2)
		}
		run.add(run.outputs, pname)(ort.NewTensor([]int64{int64(n), int64(sh.heads), int64(T), int64(sh.dim)}, present[l]))
	}
	shape := []int64{int64(n), int64(T)}
	run.add(run.inputs, qwen2.InputIDs)(ort.NewTensor(shape, ids))
	run.add(run.inputs, qwen2.PositionIDs)(ort.NewTensor(shape, pos))
	run.add(run.inputs, qwen2.SubtreeEnd)(ort.NewTensor(shape, end))
	run.add(run.inputs, qwen2.PastMask)(ort.NewTensor([]int64{int64(n), int64(P)}, mask))
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
	for r, j := range jobs {
		for _, sc := range j.score {
			out[sc.seq][sc.at] = lp[k]
			k++
		}
		if node := j.save; node != nil {
			cols := node.to - node.from
			node.kv = make([][]float32, 2*sh.layers)
			for l := range node.kv {
				node.kv[l] = make([]float32, sh.heads*cols*sh.dim)
				for h := range sh.heads {
					src := present[l][(r*sh.heads+h)*T*sh.dim:]
					copy(node.kv[l][h*cols*sh.dim:(h+1)*cols*sh.dim], src[:cols*sh.dim])
				}
			}
		}
	}
	return nil
}

// treePastSession opens the graph of ScoreTreeKV once, as treeSession
// opens ScorePacked's.
func (p *Policy) treePastSession() (*ort.Session, error) {
	p.tree.pastOnce.Do(func() {
		if !p.CanScorePacked() {
			p.tree.pastErr = ErrNoTreeScoring
			return
		}
		g, err := qwen2.BuildTreeScoringPast(p.cfg, p.w, qwen2.Options{Attention: qwen2.StandardAttention, FusedLinear: true, LoRAScale: p.loraScale, DType: p.dtype})
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
