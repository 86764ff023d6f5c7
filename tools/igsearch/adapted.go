package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/igsearch/igsearch/models/qwen2"
	"github.com/igsearch/igsearch/onnx"
	"github.com/igsearch/igsearch/policy"
	"github.com/igsearch/igsearch/tokenize"
	"github.com/igsearch/igsearch/trainer"
)

// hasAdapters reports whether dir is a LoRA checkpoint: the base model plus
// PEFT's adapter files, as `train --lora-rank` and `trainer step` write it.
func hasAdapters(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, trainer.LoRAConfigFile))
	return err == nil
}

// openAdapted opens a LoRA checkpoint as the policy it trained: the base
// weights with the adapters merged in (W + alpha/r · B·A), so that every
// stage that takes --model scores and samples what training produced, not
// the bare base.
func openAdapted(dir string, opts policy.Options) (*policy.Policy, error) {
	ck, err := qwen2.LoadCheckpoint(dir, onnx.Float)
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	merged, err := trainer.MergeLoRA(ck.Config, ck.Weights, dir)
	if err != nil {
		return nil, err
	}
	tok := opts.Tokenizer
	if path := filepath.Join(dir, "tokenizer.json"); tok == nil {
		if _, err := os.Stat(path); err == nil {
			if tok, err = tokenize.Load(path); err != nil {
				return nil, err
			}
		}
	}
	p, err := policy.FromWeights(ck.Config, merged, tok, opts)
	if err != nil {
		return nil, fmt.Errorf("%s (with its LoRA adapters): %w", dir, err)
	}
	return p, nil
}
