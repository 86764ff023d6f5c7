package qwen2

import (
	"fmt"

	"github.com/igsearch/igsearch/onnx"
)

// The tree-scoring graph's inputs and output (BuildTreeScoring).
const (
	// SubtreeEnd [B,T] int64: token j of a row is seen by the queries
	// j, j+1, …, SubtreeEnd[j]−1 of that row.
	SubtreeEnd = "subtree_end"
	// ScoreIndex [K] int64 holds flat indices b·T+t of the positions whose
	// next-token distribution is scored.
	ScoreIndex = "score_index"
	// ScoreTarget [K] int64 is the token scored at each ScoreIndex.
	ScoreTarget = "score_target"
	// TargetLogprobs [K] float32 is log p(ScoreTarget[k] | the tokens
	// ScoreIndex[k] sees, itself included).
	TargetLogprobs = "target_logprobs"
)

// BuildTreeScoring builds the tree-scoring graph, weights as initializers:
// each row packs a tree of sequences that share prefixes, every token once,
// laid out in depth-first order (a node's tokens, then its subtrees one after
// the other), so that the tokens a token descends from come before it and
// its descendants are the contiguous run after it:
//
//	input_ids int64 [B,T], position_ids int64 [B,T], subtree_end int64 [B,T],
//	score_index int64 [K], score_target int64 [K]
//	→ target_logprobs float32 [K]
//
// Query t attends to key j ≤ t when t < subtree_end[b,j]: to the tokens on
// its path from the root, and to nothing of a sibling branch. position_ids
// are each token's depth in the tree, its position in the sequence it
// belongs to. A padding column at t with subtree_end = t+1 sees only itself
// and is seen by nothing else. Only the K scored positions run the lm_head.
//
// Several sequences sharing a prefix then run in one row with no KV cache
// to copy: for IG, a step's real and counterfactual contexts below their
// shared prefix, each followed by the gold answer. Both attention variants
// work: GroupQueryAttention's own causal mask is implied by the tree mask,
// which comes in as its attention_bias.
func BuildTreeScoring(cfg Config, w Weights, opts Options) (*onnx.Graph, error) {
	g, m, err := newInitializerModel("qwen2_tree_scoring", cfg, w, opts)
	if err != nil {
		return nil, err
	}
	dimScored := onnx.Sym("scored")
	ids := g.Input(InputIDs, onnx.Int64, dimBatch, dimSeq)
	pos := g.Input(PositionIDs, onnx.Int64, dimBatch, dimSeq)
	end := g.Input(SubtreeEnd, onnx.Int64, dimBatch, dimSeq)
	index := g.Input(ScoreIndex, onnx.Int64, dimScored)
	target := g.Input(ScoreTarget, onnx.Int64, dimScored)
	h, _ := m.decoder(ids, m.treeAttnContext(ids, pos, end), nil)
	flat := g.Reshape(h, -1, int64(cfg.HiddenSize)) // [B·T,hidden]
	logp := g.LogSoftmax(m.lmHead(g.Gather(flat, index, 0)), -1)
	lp := g.Squeeze(g.GatherElements(logp, g.Unsqueeze(target, -1), -1), -1)
	g.Output(TargetLogprobs, lp)
	return g, nil
}

// treeAttnContext is newAttnContext for a packed tree: the rotary tables
// from positions [B,T] and the additive mask [B,1,T,T] from subtree_end.
func (m *model) treeAttnContext(ids, positions, end *onnx.Value) *attnContext {
	g := m.g
	ctx := &attnContext{}
	ctx.cos, ctx.sin = m.rotaryTables(positions)

	one := g.Const(onnx.Int64Tensor(nil, []int64{1}))
	zero := g.Const(onnx.Int64Tensor(nil, []int64{0}))
	seqLen := g.Gather(g.Shape(ids), one, 0)               // T
	col := g.Range(zero, seqLen, one)                      // [T]
	key, query := g.Unsqueeze(col, 0), g.Unsqueeze(col, 1) // [1,T], [T,1]
	causal := g.LessOrEqual(key, query)                    // [T,T]
	inSubtree := g.Less(query, g.Unsqueeze(end, 1, 2))     // [B,1,T,T]
	keep := g.And(causal, inSubtree)                       // [B,1,T,T]
	// No past: every row is T long, its keys are its own T tokens.
	m.maskAttention(ctx, ids, keep, seqLen)
	return ctx
}

// AttentionBias [B,1,T,P+T] float32 is the additive attention mask of the
// tree-scoring graph with a past: 0 where a query (a new token) sees a key
// (a past column, then a new column), the most negative float32 where not.
const AttentionBias = "attention_bias"

// BuildTreeScoringPast is BuildTreeScoring on top of one KV cache that
// every row shares, with the tree mask as an input: each new token sees
// the past and new columns that attention_bias leaves open, and the new
// tokens' keys and values come out, so that rows below them can take them
// as their past. The rows of a run are so the branches that hang off one
// path of the tree, at any point along it, with the path's keys and values
// passed once:
//
//	input_ids, position_ids int64 [B,T], attention_bias float32 [B,1,T,P+T],
//	past_key_values.{i}.key/value [1,P,kv_heads·head_dim],
//	score_index, score_target int64 [K]
//	→ target_logprobs float32 [K], present.{i}.key/value [B,T,kv_heads·head_dim]
//
// Keys and values are laid out token-major, as the attention node takes
// them, and present holds the new columns only. The mask comes from the
// caller, who knows the rows' layout, rather than from the graph: built in
// the graph it took a dozen small nodes a run. The graph is always
// FusedAttention's, whatever opts.Attention says.
func BuildTreeScoringPast(cfg Config, w Weights, opts Options) (*onnx.Graph, error) {
	if opts.dtype() != onnx.Float {
		return nil, fmt.Errorf("qwen2: tree scoring on a past is float32 only, not %s", opts.dtype())
	}
	opts.Attention = FusedAttention
	g, m, err := newInitializerModel("qwen2_tree_scoring_past", cfg, w, opts)
	if err != nil {
		return nil, err
	}
	m.sharedPast = true
	width := int64(cfg.NumKeyValueHeads * cfg.HeadDim())
	dimScored := onnx.Sym("scored")
	ids := g.Input(InputIDs, onnx.Int64, dimBatch, dimSeq)
	pos := g.Input(PositionIDs, onnx.Int64, dimBatch, dimSeq)
	bias := g.Input(AttentionBias, onnx.Float, dimBatch, onnx.D(1), dimSeq, dimTotal)
	past := make([]kvCache, cfg.NumHiddenLayers)
	for i := range past {
		past[i].key = g.Input(PastKey(i), m.dt, onnx.D(1), dimPast, onnx.D(width))
		past[i].value = g.Input(PastValue(i), m.dt, onnx.D(1), dimPast, onnx.D(width))
	}
	index := g.Input(ScoreIndex, onnx.Int64, dimScored)
	target := g.Input(ScoreTarget, onnx.Int64, dimScored)

	ctx := &attnContext{bias: bias}
	ctx.cos, ctx.sin = m.rotaryTables(pos)
	h, present := m.decoder(ids, ctx, past)
	flat := g.Reshape(h, -1, int64(cfg.HiddenSize))
	logp := g.LogSoftmax(m.lmHead(g.Gather(flat, index, 0)), -1)
	g.Output(TargetLogprobs, g.Squeeze(g.GatherElements(logp, g.Unsqueeze(target, -1), -1), -1))
	for i, kv := range present {
		g.Output(PresentKey(i), kv.key)
		g.Output(PresentValue(i), kv.value)
	}
	return g, nil
}
