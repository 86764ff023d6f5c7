package trainer

import (
	"encoding/json"
	"fmt"
	"os"
)

// StepFile is the one-step batch file of `igsearch trainer step`: the
// micro-batch tensors and the hyper-parameters, in the layout of the
// reference fixture grpo_step.json.
type StepFile struct {
	InputIDs      [][]int64   `json:"input_ids"`
	AttentionMask [][]int64   `json:"attention_mask"`
	LossMask      [][]float32 `json:"loss_mask"`
	Advantages    [][]float32 `json:"advantages"`
	OldLogprobs   [][]float32 `json:"old_logprobs"`
	RefLogprobs   [][]float32 `json:"ref_logprobs"`

	LossType    string    `json:"loss_type"` // grpo (default) or sft
	ClipEps     *float64  `json:"clip_eps"`
	ClipEpsHigh float64   `json:"clip_eps_high"`
	KLBeta      *float64  `json:"kl_beta"`
	LR          *float64  `json:"lr"`
	WeightDecay *float64  `json:"weight_decay"`
	AdamBetas   []float64 `json:"adam_betas"`
	AdamEps     *float64  `json:"adam_eps"`
	MaxGradNorm *float64  `json:"max_grad_norm"`
}

// ReadStepFile parses a batch file. Missing hyper-parameters take the
// defaults of DefaultLossConfig and DefaultAdamW.
func ReadStepFile(path string) (*StepFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f StepFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("batch %s: %w", path, err)
	}
	if len(f.InputIDs) == 0 {
		return nil, fmt.Errorf("batch %s: input_ids is missing or empty", path)
	}
	if len(f.AdamBetas) != 0 && len(f.AdamBetas) != 2 {
		return nil, fmt.Errorf("batch %s: adam_betas needs 2 values, has %d", path, len(f.AdamBetas))
	}
	return &f, nil
}

// Batch returns the file's tensors.
func (f *StepFile) Batch() *Batch {
	return &Batch{InputIDs: f.InputIDs, AttentionMask: f.AttentionMask, LossMask: f.LossMask,
		Advantages: f.Advantages, OldLogprobs: f.OldLogprobs, RefLogprobs: f.RefLogprobs}
}

// Configs returns the loss and optimiser settings the file asks for.
func (f *StepFile) Configs() (LossConfig, AdamWConfig) {
	loss, opt := DefaultLossConfig(), DefaultAdamW()
	if f.LossType != "" {
		loss.Kind = LossKind(f.LossType)
	}
	set := func(dst *float64, src *float64) {
		if src != nil {
			*dst = *src
		}
	}
	set(&loss.ClipEps, f.ClipEps)
	loss.ClipEpsHigh = f.ClipEpsHigh
	set(&loss.KLBeta, f.KLBeta)
	set(&opt.LR, f.LR)
	set(&opt.WeightDecay, f.WeightDecay)
	set(&opt.Eps, f.AdamEps)
	set(&opt.MaxGradNorm, f.MaxGradNorm)
	if len(f.AdamBetas) == 2 {
		opt.Beta1, opt.Beta2 = f.AdamBetas[0], f.AdamBetas[1]
	}
	return loss, opt
}
