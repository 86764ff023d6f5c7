package trainer

import (
	"fmt"

	"github.com/igsearch/igsearch/models/qwen2"
	"github.com/igsearch/igsearch/onnx"
	"github.com/igsearch/igsearch/onnx/grad"
)

// inRows names the gradient graph's input of trained positions: flat
// indices b·(T−1)+t of the next-token positions with a non-zero loss mask.
const inRows = "rows"

// Names of the gradient graph's outputs besides grad.<param>.
const (
	outLoss       = "loss"
	outClippedSum = "clipped_sum"
	outKLSum      = "kl_sum"
	outEntropySum = "entropy_sum"
	outMaskSum    = "mask_sum"
	outLogprobSum = "logprob_sum"
)

// ArtifactOptions choose what the gradient graph trains.
type ArtifactOptions struct {
	Loss LossConfig
	// FreezeEmbeddings keeps model.embed_tokens.weight (and a tied lm_head)
	// fixed.
	FreezeEmbeddings bool
	// Entropy adds the policy's mean entropy on masked tokens to the metrics.
	Entropy bool
	// LoRA, when set, trains low-rank adapters (lora.go) instead of the
	// model: every model weight is then frozen.
	LoRA *LoRAConfig
	// Recompute recomputes each decoder layer's activations in the backward
	// pass instead of keeping them from the forward (gradient
	// checkpointing): activation memory of one layer instead of all, for
	// about one more forward pass of compute. The gradients are the same.
	Recompute bool
}

// GradArtifact is the gradient graph and what it computes.
type GradArtifact struct {
	Graph *onnx.Graph
	// Trainable lists the parameters that get a grad.<name> output, in
	// qwen2.Params order; the others are inputs only.
	Trainable []Param
	// Frozen lists the weights that are inputs but not trained.
	Frozen []Param
	// Init holds starting values for trainable tensors that are not model
	// weights (adapters); model weights start from the checkpoint.
	Init map[string][]float32
}

// gradIn names the gradient graph's output for parameter p, and accumIn
// its accumulator input: grad.<p> = accum.<p> + this run's gradient.
func gradIn(p string) string  { return "grad." + p }
func accumIn(p string) string { return "accum." + p }

// Inputs lists every weight-like input of the graph: frozen, then trainable.
func (a *GradArtifact) Inputs() []Param {
	return append(append([]Param(nil), a.Frozen...), a.Trainable...)
}

// BuildGradGraph makes grad.onnx for a Qwen2 model: inputs are every weight
// (HF names), input_ids and attention_mask int64 [B,T], rows int64 [N] (the
// flat next-token positions that are trained), the loss inputs of
// declareBatchInputs at those rows ([N] each), loss_scale and accum.<name>
// for each trainable weight; outputs are the scaled loss, the metric sums
// (clipped_sum, kl_sum, entropy_sum, mask_sum, logprob_sum) and
// grad.<name> = accum.<name> + this run's gradient. Micro-batch gradients
// add up to the gradient of the token-mean loss when loss_scale is
// 1/(masked tokens in the whole batch). The last node of every grad.<name>
// is that element-wise Add, so the trainer binds grad.<name> to the
// accum.<name> buffer and accumulates in place, with no second gradient
// buffer and no add in Go.
func BuildGradGraph(cfg qwen2.Config, opts ArtifactOptions) (*GradArtifact, error) {
	if err := opts.Loss.validate(); err != nil {
		return nil, err
	}
	g := onnx.NewGraph("igsearch_grad")
	g.Doc = fmt.Sprintf("igsearch %s gradient graph for a Qwen2 model", opts.Loss.Kind)
	batch, seq, nrows := onnx.Sym("batch_size"), onnx.Sym("sequence_length"), onnx.Sym("rows")
	weights := qwen2.WeightInputs(g, cfg, onnx.Float)
	ids := g.Input(qwen2.InputIDs, onnx.Int64, batch, seq)
	mask := g.Input(qwen2.AttentionMask, onnx.Int64, batch, seq)
	// The loss runs only on the trained tokens: rows are their flat
	// next-token positions, and the per-token inputs are given at those rows.
	rows := g.Input(inRows, onnx.Int64, nrows)
	in := declareBatchInputs(g, opts.Loss, nrows)
	fwdWeights := weights
	fopts := qwen2.Options{Entropy: opts.Entropy || opts.Loss.EntropyCoeff > 0}
	var lora *loraGraph
	if opts.LoRA != nil {
		var err error
		if lora, err = addLoRA(g, cfg, *opts.LoRA, weights); err != nil {
			return nil, err
		}
		fwdWeights = lora.weights
		fopts.LoRAScale = opts.LoRA.Scale()
	}

	fwd, err := qwen2.BuildForwardAt(g, cfg, fwdWeights, ids, mask, rows, fopts)
	if err != nil {
		return nil, err
	}
	terms, err := BuildLoss(g, opts.Loss, fwd.TokenLogprobs, fwd.Entropy, in)
	if err != nil {
		return nil, err
	}

	art := &GradArtifact{Graph: g}
	var params []*onnx.Value
	for _, p := range qwen2.Params(cfg) {
		if lora != nil || opts.FreezeEmbeddings && p.Name == "model.embed_tokens.weight" {
			art.Frozen = append(art.Frozen, Param(p))
			continue
		}
		art.Trainable = append(art.Trainable, Param(p))
		params = append(params, weights[p.Name])
	}
	if lora != nil {
		art.Trainable, params, art.Init = lora.trainable, lora.inputs, lora.init
	}
	gopts := grad.Options{}
	if opts.Recompute {
		for l := 0; l+1 < len(fwd.Layers); l++ {
			gopts.Recompute = append(gopts.Recompute, grad.Segment{Input: fwd.Layers[l], Output: fwd.Layers[l+1]})
		}
	}
	grads, err := grad.Backward(g, terms.Loss, params, gopts)
	if err != nil {
		return nil, fmt.Errorf("grad graph: %w", err)
	}
	g.Output(outLoss, terms.Loss)
	g.Output(outClippedSum, terms.ClippedSum)
	g.Output(outKLSum, terms.KLSum)
	if terms.EntropySum != nil {
		g.Output(outEntropySum, terms.EntropySum)
	}
	g.Output(outMaskSum, terms.MaskSum)
	g.Output(outLogprobSum, terms.LogprobSum)
	for i, p := range art.Trainable {
		acc := g.Input(accumIn(p.Name), onnx.Float, onnx.Dims(p.Shape...)...)
		g.Output(gradIn(p.Name), g.Add(acc, grads[i]))
	}
	return art, nil
}
