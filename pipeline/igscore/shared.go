package igscore

import (
	"context"
	"fmt"
	"slices"

	"github.com/igsearch/igsearch/policy"
)

// maxSharedRows bounds the sequences scored in one batch.
const maxSharedRows = 64

// scoreShared scores the sequences on a radix tree of their contexts, so
// that every shared context prefix runs once: the prompt template shared by
// the whole batch, a question's prompt shared by its G samples, a sample's
// steps shared by its later steps, and a step's context up to its
// observation shared by the real and counterfactual contexts. Sequences are
// taken in lexicographic order of their contexts, maxSharedRows to a tree,
// and Options.Workers trees are scored at once.
// It returns the log-probs of every continuation and the work done.
func (s *Scorer) scoreShared(ctx context.Context, seqs []sequence) ([][]float32, work, error) {
	out := make([][]float32, len(seqs))
	var order []int
	for i, q := range seqs {
		if q.start == 0 || q.start >= len(q.ids) {
			out[i] = []float32{} // nothing to score, as in scoreFlat
			continue
		}
		order = append(order, i)
	}
	slices.SortFunc(order, func(a, b int) int {
		return slices.Compare(seqs[a].ids[:seqs[a].start], seqs[b].ids[:seqs[b].start])
	})
	var chunks [][]int
	for lo := 0; lo < len(order); lo += maxSharedRows {
		chunks = append(chunks, order[lo:min(lo+maxSharedRows, len(order))])
	}
	// Trees write the log-probs of disjoint sequences.
	works := make([]work, len(chunks))
	err := parallel(ctx, len(chunks), s.opts.Workers, func(ctx context.Context, i int) error {
		return s.scoreTree(ctx, seqs, buildTree(seqs, chunks[i]), out, &works[i])
	})
	if err != nil {
		return nil, work{}, err
	}
	var w work
	for _, x := range works {
		w.tokens += x.tokens
		w.attended += x.attended
	}
	return out, w, nil
}

// node is a run of context tokens shared by every sequence below it: the
// tokens ids[from:to] of sequence seq, whose first from tokens are those of
// the nodes above.
type node struct {
	seq, from, to int
	kids          []*node
	// members are the sequences whose context ends here (start == to).
	members []int
	// row is the batch row holding the context up to to: to−1 tokens
	// cached, the last one pending.
	row int
}

// buildTree returns the root (no tokens) of the radix tree of the contexts
// ids[:start] of seqs[idx], all non-empty.
func buildTree(seqs []sequence, idx []int) *node {
	root := &node{seq: -1}
	for _, m := range idx {
		c := seqs[m].ids[:seqs[m].start]
		n, pos := root, 0
		for pos < len(c) {
			var next *node
			for _, k := range n.kids {
				if seqs[k.seq].ids[k.from] == c[pos] {
					next = k
					break
				}
			}
			if next == nil {
				next = &node{seq: m, from: pos, to: len(c)}
				n.kids = append(n.kids, next)
			}
			seg := seqs[next.seq].ids[next.from:next.to]
			l := 0
			for l < len(seg) && pos+l < len(c) && seg[l] == c[pos+l] {
				l++
			}
			if l < len(seg) { // split next after l tokens
				tail := &node{seq: next.seq, from: next.from + l, to: next.to, kids: next.kids, members: next.members}
				next.to, next.kids, next.members = next.from+l, []*node{tail}, nil
			}
			n, pos = next, pos+l
		}
		n.members = append(n.members, m)
	}
	return root
}

// scoreTree runs one tree level by level: each node's row is forked once per
// child and member, a child appends its own tokens, and each member forces
// its continuation. It writes the members' log-probs into out and adds the
// tokens it runs to w.
func (s *Scorer) scoreTree(ctx context.Context, seqs []sequence, root *node, out [][]float32, w *work) error {
	// The top nodes start rows of their own: all but the last token are
	// prefilled (a one-token node's token just stays pending).
	reqs := make([]policy.Request, len(root.kids))
	var rows []int
	var last [][]int32
	for i, n := range root.kids {
		ids := seqs[n.seq].ids
		n.row = i
		if n.to == 1 {
			reqs[i] = policy.Request{Prompt: ids[:1]}
			continue
		}
		reqs[i] = policy.Request{Prompt: ids[:n.to-1]}
		rows, last = append(rows, i), append(last, ids[n.to-1:n.to])
		w.run(0, n.to-1)
	}
	b, err := s.pol.NewBatch(reqs)
	if err != nil {
		return err
	}
	defer b.Close()
	if _, err := b.Force(ctx, rows, last); err != nil {
		return fmt.Errorf("shared prefixes: %w", err)
	}
	for level := root.kids; len(level) > 0; {
		var next []*node
		var appendRows, forceRows, memberOf []int
		var suffixes, force [][]int32
		for _, n := range level {
			forks := []int{n.row}
			if k := len(n.kids) + len(n.members); k > 1 {
				if forks, err = b.Fork(n.row, k); err != nil {
					return err
				}
				b.Drop(n.row)
			}
			for i, kid := range n.kids {
				ids := seqs[kid.seq].ids
				kid.row = forks[i]
				if kid.to-kid.from > 1 {
					appendRows = append(appendRows, kid.row)
					suffixes = append(suffixes, ids[kid.from:kid.to-1])
				}
				forceRows, force = append(forceRows, kid.row), append(force, ids[kid.to-1:kid.to])
				memberOf = append(memberOf, -1)
				// The parent's pending token runs with the kid's.
				w.run(kid.from-1, kid.to-kid.from)
				next = append(next, kid)
			}
			for i, m := range n.members {
				q := seqs[m]
				forceRows, force = append(forceRows, forks[len(n.kids)+i]), append(force, q.ids[q.start:])
				memberOf = append(memberOf, m)
				w.run(q.start-1, len(q.ids)-q.start)
			}
		}
		if err := b.Append(appendRows, suffixes); err != nil {
			return err
		}
		lps, err := b.Force(ctx, forceRows, force)
		if err != nil {
			return fmt.Errorf("continuations: %w", err)
		}
		var done []int
		for i, m := range memberOf {
			if m >= 0 {
				out[m] = lps[i]
				done = append(done, forceRows[i])
			}
		}
		b.Drop(done...)
		level = next
	}
	return nil
}
