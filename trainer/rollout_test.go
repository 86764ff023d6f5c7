package trainer

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/igsearch/igsearch/onnx/ort"
	"github.com/igsearch/igsearch/policy"
)

// TestRolloutPolicyReadsResidentWeights: where the trained weights live
// outside the host block (a device; here the CPU under allocWeights), the
// rollout policy takes the resident tensors in place: building it moves
// nothing, and it scores as the policy over the synced block does.
func TestRolloutPolicyReadsResidentWeights(t *testing.T) {
	ck, f := loadFixture(t)
	loss, opt := f.Configs()
	lora := &LoRAConfig{Rank: 4, Alpha: 8, Targets: []string{"q_proj", "v_proj", "down_proj"}, Seed: 3}
	r := rand.New(rand.NewPCG(5, 5))
	seqs := make([][]int32, 3)
	for i := range seqs {
		seqs[i] = make([]int32, 9+4*i)
		for j := range seqs[i] {
			seqs[i][j] = int32(r.IntN(ck.Config.VocabSize))
		}
	}
	for _, c := range []struct {
		name string
		lora *LoRAConfig
	}{{"full", nil}, {"LoRA", lora}} {
		t.Run(c.name, func(t *testing.T) {
			opts := Options{Artifact: ArtifactOptions{Loss: loss, LoRA: c.lora}, Optim: opt, allocWeights: true}
			tr, err := New(ck.Config, ck.Weights, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			if _, err := tr.Step(f.Batch()); err != nil {
				t.Fatal(err)
			}
			score := func(w map[string]*ort.Tensor, build func() (*policy.Policy, error)) [][]float32 {
				t.Helper()
				p, err := build()
				if err != nil {
					t.Fatal(err)
				}
				defer p.Close()
				lp, err := p.Score(context.Background(), seqs)
				if err != nil {
					t.Fatal(err)
				}
				return lp
			}
			before := ort.MeteredTransfers()
			w, scale, resident := tr.ResidentPolicyWeights()
			if resident == nil {
				t.Fatal("no resident weights for a trainer whose weights are not on the block")
			}
			got := score(resident, func() (*policy.Policy, error) {
				return policy.FromWeights(tr.Config, w, nil, policy.Options{Threads: 1, ResidentWeights: resident, LoRAScale: scale})
			})
			if d := ort.MeteredTransfers().Sub(before)[PhaseWeights]; d.Bytes() != 0 {
				t.Errorf("building the policy over resident weights moved %d bytes under %q", d.Bytes(), PhaseWeights)
			}
			pw, pscale := tr.PolicyWeights() // brings the block up to date
			want := score(nil, func() (*policy.Policy, error) {
				return policy.FromWeights(tr.Config, pw, nil, policy.Options{Threads: 1, SharedWeights: tr.HostWeights(), LoRAScale: pscale})
			})
			worst := 0.0
			for i := range want {
				for j := range want[i] {
					worst = max(worst, math.Abs(float64(got[i][j]-want[i][j])))
				}
			}
			if worst > 1e-6 {
				t.Errorf("resident policy log-probs differ from the block policy's by %.2e", worst)
			}
		})
	}
}
