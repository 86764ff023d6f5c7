package trainer

import (
	"fmt"

	"github.com/igsearch/igsearch/models/qwen2"
	"github.com/igsearch/igsearch/onnx"
	"github.com/igsearch/igsearch/onnx/ort"
)

// The trainer holds the model's float32 weights in one ort.HostWeights
// block (HostWeights), the memory that ONNX Runtime sessions take in place:
// a policy built with policy.Options.SharedWeights over the trainer's
// weights (rollouts, the LoRA base) then adds no second copy. The optimiser
// updates trainable weights in the block between such uses: on the CPU the
// gradient and optimiser runs bind the block's tensors in place (resident.go);
// on a device they train a device copy, and the block is brought up to date
// when read.

// newHostParams maps a block for the model weights of cfg and returns a
// float32 view of each weight's place in it.
func newHostParams(cfg qwen2.Config) (*ort.HostWeights, map[string][]float32, error) {
	block, err := ort.NewHostWeights(ort.HostWeightSize(qwen2.WeightSizes(cfg, onnx.Float)))
	if err != nil {
		return nil, nil, fmt.Errorf("trainer: %w", err)
	}
	views := map[string][]float32{}
	for _, p := range qwen2.Params(cfg) {
		raw, err := block.Alloc(int(4 * numElements(p.Shape)))
		if err != nil {
			block.Close()
			return nil, nil, fmt.Errorf("trainer: %w", err)
		}
		views[p.Name] = onnx.FloatView(raw)
	}
	return block, views, nil
}

// loadHostParams reads the Hugging Face checkpoint in dir into a new block
// with qwen2.LoadWeightsInto: tensor by tensor, BF16/F16 converted to
// float32 on the way, each source tensor's mapped pages released once
// copied, so that loading never holds the file and the block at once.
func loadHostParams(dir string) (qwen2.Config, *ort.HostWeights, map[string][]float32, error) {
	cfg, err := qwen2.LoadConfig(dir)
	if err != nil {
		return cfg, nil, nil, err
	}
	if err := cfg.Validate(); err != nil {
		return cfg, nil, nil, fmt.Errorf("trainer %s: config: %w", dir, err)
	}
	block, err := ort.NewHostWeights(ort.HostWeightSize(qwen2.WeightSizes(cfg, onnx.Float)))
	if err != nil {
		return cfg, nil, nil, fmt.Errorf("trainer: %w", err)
	}
	w, err := qwen2.LoadWeightsInto(dir, cfg, onnx.Float, block.Alloc)
	if err != nil {
		block.Close()
		return cfg, nil, nil, fmt.Errorf("trainer: %w", err)
	}
	views := make(map[string][]float32, len(w))
	for name, t := range w {
		views[name] = onnx.FloatView(t.Raw)
	}
	return cfg, block, views, nil
}

// HostWeights is the block that holds the model's weights (see
// policy.Options.SharedWeights); Weights' tensors lie in it. It belongs to
// the trainer and is unmapped by Close once no session uses it. Where the
// trained weights live on a device, the block is first brought up to date
// (the trainable weights, metered under PhaseWeights; a failed copy
// panics).
func (t *Trainer) HostWeights() *ort.HostWeights {
	if err := t.syncBlock(); err != nil {
		panic(err)
	}
	return t.host
}
