package trainer

import (
	"context"

	"github.com/igsearch/igsearch/onnx/ort"
)

// runGradInto runs the gradient graph on micro-batch mb as runGrad does,
// with the resident gradients starting from g and copied back into g after
// the run (so g gets the run's gradients added, as the gradient graph adds
// them), for tests that read gradients.
func (t *Trainer) runGradInto(b *Batch, mb microBatch, scale float32, g map[string][]float32) (ort.Outputs, error) {
	ctx := context.Background()
	for _, p := range t.art.Trainable {
		if err := copyIn(ctx, t.res.grads[p.Name], g[p.Name]); err != nil {
			return nil, err
		}
	}
	out, err := t.runGrad(ctx, b, mb, scale)
	if err != nil {
		return nil, err
	}
	for _, p := range t.art.Trainable {
		v, err := readFloats(ctx, t.res.grads[p.Name])
		if err != nil {
			out.Destroy()
			return nil, err
		}
		copy(g[p.Name], v)
	}
	return out, nil
}
