package policy

import (
	"context"
	"fmt"
	"testing"

	"github.com/igsearch/igsearch/onnx/ort"
)

// openPair opens the tiny checkpoint twice, with the resident (default) and
// the host KV cache, with attention as given ("" is the default).
func openPair(t *testing.T, attention string) (resident, host *Policy) {
	t.Helper()
	needORT(t)
	open := func(hostKV bool) *Policy {
		dir := copyModel(t, tinyDir, "config.json", "model.safetensors")
		p, err := Open(dir, Options{Threads: 1, Attention: attention, Tokenizer: qwenTokenizer(t), HostKV: hostKV})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		return p
	}
	resident, host = open(false), open(true)
	if !resident.resident || host.resident {
		t.Fatalf("resident %v / %v, want true / false", resident.resident, host.resident)
	}
	return resident, host
}

// agentSteps runs what a search rollout and IG scoring do to a batch —
// generate, append an observation, fork, force a continuation, generate
// again with sampling — and returns every token and log-prob produced.
func agentSteps(t *testing.T, p *Policy) (tokens [][]int32, lps [][]float32) {
	t.Helper()
	ctx := context.Background()
	b, err := p.NewBatch(requests(tinyPrompts, 7))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	record := func(cs []Completion) {
		for _, c := range cs {
			tokens = append(tokens, c.Tokens)
			lps = append(lps, c.LogProbs)
		}
	}
	rows := []int{0, 1, 2, 3}
	cs, err := b.Generate(ctx, rows, SamplingParams{MaxNewTokens: 6, EOS: []int32{}})
	if err != nil {
		t.Fatal(err)
	}
	record(cs)
	if err := b.Append([]int{1, 3}, [][]int32{{40, 41, 42, 43, 44}, {50}}); err != nil {
		t.Fatal(err)
	}
	forks, err := b.Fork(1, 2)
	if err != nil {
		t.Fatal(err)
	}
	forced, err := b.Force(ctx, []int{forks[0], forks[1], 3}, [][]int32{{7, 8, 9}, {10}, {11, 12}})
	if err != nil {
		t.Fatal(err)
	}
	lps = append(lps, forced...)
	b.Drop(0)
	for _, sp := range []SamplingParams{
		{MaxNewTokens: 5, Temperature: 1, EOS: []int32{}},
		{MaxNewTokens: 5, Temperature: 0.7, TopK: 20, TopP: 0.9, EOS: []int32{}},
	} {
		cs, err := b.Generate(ctx, []int{1, 2, 3, forks[0], forks[1]}, sp)
		if err != nil {
			t.Fatal(err)
		}
		record(cs)
	}
	return tokens, lps
}

// TestResidentMatchesHostKV: the resident path (device KV cache, device
// gathers and forks, device sampling) gives the host path's tokens, and its
// log-probs within 1e-5, for both attention variants.
func TestResidentMatchesHostKV(t *testing.T) {
	for _, attention := range []string{"contrib", "standard"} {
		t.Run(attention, func(t *testing.T) {
			res, host := openPair(t, attention)
			gotT, gotL := agentSteps(t, res)
			wantT, wantL := agentSteps(t, host)
			if fmt.Sprint(gotT) != fmt.Sprint(wantT) {
				t.Fatalf("tokens\n%v\nwant\n%v", gotT, wantT)
			}
			worst := 0.0
			for i := range wantL {
				for j := range wantL[i] {
					worst = max(worst, float64(abs32(gotL[i][j]-wantL[i][j])))
				}
			}
			t.Logf("max |Δ log-prob| %.2e", worst)
			if worst > 1e-5 {
				t.Errorf("log-probs differ by %.2e > 1e-5", worst)
			}
		})
	}
}

func abs32(x float32) float32 {
	if x < 0 {
		return -x
	}
	return x
}

// TestDecodeStepTransfers: with the resident path a greedy decode step moves
// only the new token ids and mask column in, and the sampled ids and
// log-probs out (plus, when sampling, one uniform number per row); the host
// path moves the whole KV cache, which the meter also shows.
func TestDecodeStepTransfers(t *testing.T) {
	res, host := openPair(t, "")
	const n, steps = 4, 6
	for _, c := range []struct {
		p  *Policy
		sp SamplingParams
	}{
		{res, SamplingParams{MaxNewTokens: steps, EOS: []int32{}}},
		{res, SamplingParams{MaxNewTokens: steps, Temperature: 1, EOS: []int32{}}},
		{host, SamplingParams{MaxNewTokens: steps, EOS: []int32{}}},
	} {
		before := ort.MeteredTransfers()
		if _, err := c.p.Generate(context.Background(), requests(tinyPrompts, 1), c.sp); err != nil {
			t.Fatal(err)
		}
		d := ort.MeteredTransfers().Sub(before)["decode"]
		runs := int64(steps - 1) // the first token comes from the prefill
		// ids and the mask column (int64), the sampled token (int64) and its
		// log-prob (float32), and a float64 uniform when sampling.
		perStep := int64(n * (8 + 8 + 8 + 4))
		if c.sp.Temperature != 0 {
			perStep += n * 8
		}
		t.Logf("resident %v, T=%v: %d runs, %d bytes to ORT, %d from ORT (%.0f bytes/step)", c.p.resident, c.sp.Temperature, d.Runs, d.ToORT, d.FromORT, float64(d.Bytes())/float64(runs))
		if !c.p.resident {
			if d.Bytes() <= runs*perStep*10 {
				t.Errorf("host path moved only %d bytes in %d steps: is the meter counting the KV cache?", d.Bytes(), runs)
			}
			continue
		}
		if d.Bytes() > runs*perStep {
			t.Errorf("decode moved %d bytes in %d steps, want at most %d a step", d.Bytes(), runs, perStep)
		}
	}
}
