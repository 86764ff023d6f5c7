package policy

import (
	"fmt"

	"github.com/igsearch/igsearch/models/qwen2"
	"github.com/igsearch/igsearch/onnx/ort"
	"github.com/igsearch/igsearch/tokenize"
)

// FromWeights builds a policy over in-memory weights, with its graphs built
// in memory and nothing written to disk: the training loop's policy for the
// next rollout, made from the trainer's current state. ONNX Runtime copies
// the weights, so w may change after FromWeights returns. tok may be nil
// (no text decoding, no stop strings).
func FromWeights(cfg qwen2.Config, w qwen2.Weights, tok *tokenize.Tokenizer, opts Options) (*Policy, error) {
	if _, err := ort.InitDefault(opts.ORTLib, opts.Device); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("policy: config: %w", err)
	}
	p := &Policy{
		dir:    "<memory>",
		device: opts.Device,
		cfg:    cfg,
		shape:  kvShape{layers: cfg.NumHiddenLayers, heads: cfg.NumKeyValueHeads, dim: cfg.HeadDim()},
		vocab:  cfg.VocabSize,
		tok:    tok,
	}
	so := ort.Options{Device: opts.Device, IntraOpThreads: opts.Threads, InterOpThreads: 1}
	attn := opts.Attention
	if attn == "" {
		attn = "contrib"
	}
	a, err := qwen2.ParseAttention(attn)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	gopts := qwen2.Options{Attention: a}
	ig, err := qwen2.BuildInference(cfg, w, gopts)
	if err != nil {
		return nil, fmt.Errorf("policy: inference graph: %w", err)
	}
	p.lastOnly = lastLogitsOnly(ig)
	sg, err := qwen2.BuildScoring(cfg, w, gopts)
	if err != nil {
		return nil, fmt.Errorf("policy: scoring graph: %w", err)
	}
	if p.infer, err = ort.NewSessionFromGraph(ig, so); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	if p.scoring, err = ort.NewSessionFromGraph(sg, so); err != nil {
		p.Close()
		return nil, fmt.Errorf("policy: %w", err)
	}
	p.source = "built in memory"
	if err := p.checkScoring(); err != nil {
		p.Close()
		return nil, fmt.Errorf("policy: %w", err)
	}
	if err := p.checkInference(); err != nil {
		p.Close()
		return nil, fmt.Errorf("policy: %w", err)
	}
	p.eos = p.defaultEOS()
	return p, nil
}
