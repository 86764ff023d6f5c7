package igscore

import (
	"context"
	"errors"
	"fmt"

	"github.com/igsearch/igsearch/pipeline/ig"
	"github.com/igsearch/igsearch/pipeline/policy"
)

// ErrNoPrefixSharing is returned with Options.PrefixSharing when the
// policy's Batch cannot fork rows and score forced tokens (Fork and Force,
// see forkingBatch). Callers may fall back to scoring without sharing.
var ErrNoPrefixSharing = errors.New("prefix sharing needs policy.Batch.Fork and Batch.Force")

// forkingBatch is what prefix-shared scoring needs from a *policy.Batch:
//
//   - Fork(r, n) adds n rows that continue row r: each starts with r's
//     tokens and a copy of r's cached columns, r's pending tokens pending;
//   - Force(ctx, rows, tokens) appends tokens[i] to rows[i] one by one as if
//     they had been sampled, prefilling pending tokens first, and returns
//     their log-probs, out[i][k] = log p(tokens[i][k] | row before it); the
//     last forced token stays pending.
//
// A *policy.Batch satisfies it once the policy has these two methods.
type forkingBatch interface {
	Append(rows []int, tokens [][]int32) error
	Fork(r, n int) ([]int, error)
	Force(ctx context.Context, rows []int, tokens [][]int32) ([][]float32, error)
	Drop(rows ...int)
	Close() error
}

// newForkingBatch starts a batch of the policy that can fork rows.
func newForkingBatch(pol *policy.Policy, reqs []policy.Request) (forkingBatch, error) {
	b, err := pol.NewBatch(reqs)
	if err != nil {
		return nil, err
	}
	fb, ok := any(b).(forkingBatch)
	if !ok {
		b.Close()
		return nil, ErrNoPrefixSharing
	}
	return fb, nil
}

// maxSharedRows bounds the member rows of one batch of step groups.
const maxSharedRows = 64

// scoreShared scores each (item, step) group's sequences on their common
// context prefix, run once per group: a root row prefills the prefix but
// its last token, forks one row per sequence, each row appends its own
// context suffix, and the continuation is forced token by token. It returns
// the log-probs of every continuation and the tokens run.
func (s *Scorer) scoreShared(ctx context.Context, reqs []ig.Request, seqs []sequence) ([][]float32, int, error) {
	out := make([][]float32, len(seqs))
	gs := groups(reqs)
	order := sortedBySize(gs, seqs)
	tokens := 0
	for len(order) > 0 {
		n, rows := 0, 0
		for n < len(order) && (n == 0 || rows+len(gs[order[n]]) <= maxSharedRows) {
			rows += len(gs[order[n]])
			n++
		}
		chunk := make([][]int, n)
		for i, g := range order[:n] {
			chunk[i] = gs[g]
		}
		order = order[n:]
		t, err := s.scoreGroups(ctx, chunk, seqs, out)
		if err != nil {
			return nil, 0, err
		}
		tokens += t
	}
	return out, tokens, nil
}

// scoreGroups scores one batch of step groups into out.
func (s *Scorer) scoreGroups(ctx context.Context, gs [][]int, seqs []sequence, out [][]float32) (int, error) {
	tokens := 0
	// Root rows: one per group whose members share at least two tokens.
	var roots []policy.Request
	var rootOf []int // group → root row, or -1
	var lcp []int
	for _, members := range gs {
		n := commonPrefix(seqs, members)
		lcp = append(lcp, n)
		if n >= 2 {
			rootOf = append(rootOf, len(roots))
			roots = append(roots, policy.Request{Prompt: seqs[members[0]].ids[:n-1]})
			tokens += n - 1
		} else {
			rootOf = append(rootOf, -1)
		}
	}
	// Groups without a shared prefix start their members as rows of their own.
	var lone []policy.Request
	var loneSeq []int
	for g, members := range gs {
		if rootOf[g] >= 0 {
			continue
		}
		for _, m := range members {
			q := seqs[m]
			lone = append(lone, policy.Request{Prompt: q.ids[:q.start]})
			loneSeq = append(loneSeq, m)
		}
	}
	b, err := newForkingBatch(s.pol, append(roots, lone...))
	if err != nil {
		return 0, err
	}
	defer b.Close()
	var memberRows []int
	var memberSeq []int
	var force [][]int32
	if len(roots) > 0 {
		rows := make([]int, len(roots))
		last := make([][]int32, len(roots))
		for i := range roots {
			rows[i] = i
		}
		for g, members := range gs {
			if r := rootOf[g]; r >= 0 {
				last[r] = seqs[members[0]].ids[lcp[g]-1 : lcp[g]]
			}
		}
		// Prefill every prefix but its last token, which stays pending.
		if _, err := b.Force(ctx, rows, last); err != nil {
			return 0, fmt.Errorf("shared prefixes: %w", err)
		}
		var appendRows []int
		var suffixes [][]int32
		for g, members := range gs {
			r := rootOf[g]
			if r < 0 {
				continue
			}
			forks, err := b.Fork(r, len(members))
			if err != nil {
				return 0, err
			}
			b.Drop(r)
			for i, m := range members {
				q := seqs[m]
				if suf := q.ids[lcp[g]:q.start]; len(suf) > 0 {
					appendRows = append(appendRows, forks[i])
					suffixes = append(suffixes, suf)
				}
				tokens += q.start - lcp[g] + 1
				memberRows = append(memberRows, forks[i])
				memberSeq = append(memberSeq, m)
				force = append(force, q.ids[q.start:])
			}
		}
		if err := b.Append(appendRows, suffixes); err != nil {
			return 0, err
		}
	}
	for i, m := range loneSeq {
		q := seqs[m]
		tokens += len(q.ids)
		memberRows = append(memberRows, len(roots)+i)
		memberSeq = append(memberSeq, m)
		force = append(force, q.ids[q.start:])
	}
	lps, err := b.Force(ctx, memberRows, force)
	if err != nil {
		return 0, fmt.Errorf("continuations: %w", err)
	}
	for i, m := range memberSeq {
		tokens += len(force[i]) - 1
		out[m] = lps[i]
	}
	return tokens, nil
}
