package train

import (
	"fmt"
	"math"

	"github.com/igsearch/igsearch/pipeline/trajectory"
	"github.com/igsearch/igsearch/trainer"
)

// LearningRate is the schedule: linear warmup over warmup steps, then
// constant or cosine decay to lr·minRatio at total steps. step is 1-based.
func LearningRate(o OptimConfig, step, total int) float64 {
	if o.Warmup > 0 && step <= o.Warmup {
		return o.LR * float64(step) / float64(o.Warmup)
	}
	if o.Schedule != "cosine" || total <= o.Warmup {
		return o.LR
	}
	progress := math.Min(1, float64(step-o.Warmup)/float64(total-o.Warmup))
	lo := o.LR * o.MinLRRatio
	return lo + (o.LR-lo)*0.5*(1+math.Cos(math.Pi*progress))
}

// trainRow is one trajectory ready for the trainer: per-token arrays of the
// record's full token sequence.
type trainRow struct {
	ids        []int32
	lossMask   []float32 // 1 on generated tokens
	advantages []float32
	oldLogp    []float32
	refLogp    []float32 // refLogp[i] = log p_ref(ids[i] | ids[:i]); nil without KL
}

// assemble left-pads rows into a trainer batch. Column t of the per-token
// arrays scores token t+1, so token i of a row padded by p lands in column
// i+p−1.
func assemble(rows []trainRow) (*trainer.Batch, error) {
	width := 0
	for _, r := range rows {
		width = max(width, len(r.ids))
	}
	if width < 2 {
		return nil, fmt.Errorf("train: trajectories need at least 2 tokens")
	}
	b := &trainer.Batch{}
	for _, r := range rows {
		n := len(r.ids)
		if len(r.lossMask) != n || len(r.advantages) != n || len(r.oldLogp) != n || (r.refLogp != nil && len(r.refLogp) != n) {
			return nil, fmt.Errorf("train: per-token arrays do not match %d tokens", n)
		}
		pad := width - n
		ids := make([]int64, width)
		mask := make([]int64, width)
		for i, id := range r.ids {
			ids[pad+i] = int64(id)
			mask[pad+i] = 1
		}
		col := func(src []float32) []float32 {
			out := make([]float32, width-1)
			for i := 1; i < n; i++ {
				out[pad+i-1] = src[i]
			}
			return out
		}
		b.InputIDs = append(b.InputIDs, ids)
		b.AttentionMask = append(b.AttentionMask, mask)
		b.LossMask = append(b.LossMask, col(r.lossMask))
		b.Advantages = append(b.Advantages, col(r.advantages))
		b.OldLogprobs = append(b.OldLogprobs, col(r.oldLogp))
		if r.refLogp != nil {
			b.RefLogprobs = append(b.RefLogprobs, col(r.refLogp))
		}
	}
	return b, nil
}

// rowFromRecord joins a record with its token advantages and reference
// log-probs.
func rowFromRecord(rec *trajectory.Record, adv []float32, ref []float32) (trainRow, error) {
	if !rec.HasTokens() || len(rec.OldLogprobs) != len(rec.TokenIDs) {
		return trainRow{}, fmt.Errorf("train: record %q sample %d has no tokens or old log-probs", rec.ID, rec.Sample)
	}
	return trainRow{ids: rec.TokenIDs, lossMask: rec.LossMask(), advantages: adv, oldLogp: rec.OldLogprobs, refLogp: ref}, nil
}
