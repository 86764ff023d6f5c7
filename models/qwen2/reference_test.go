package qwen2

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/igsearch/igsearch/onnx"
)

// The reference outputs in testdata/models were computed by an independent
// PyTorch implementation of HF modeling_qwen2.py (see testdata/README.md).
const testModels = "../../testdata/models"

type reference struct {
	InputIDs      [][]int64 `json:"input_ids"`
	AttentionMask [][]int64 `json:"attention_mask"`
	PositionIDs   [][]int64 `json:"position_ids"`
	DecodeTokens  [][]int64 `json:"decode_tokens"`
	// tiny-qwen2
	Logits       [][][]float64 `json:"logits"`
	DecodeLogits [][][]float64 `json:"decode_logits"`
	// tiny-qwen2-tied-fullvocab
	LastTop5          [][]int64     `json:"last_logits_top5"`
	LastTop5Values    [][]float64   `json:"last_logits_top5_values"`
	NextTokenLogprobs [][]float64   `json:"next_token_logprobs"`
	DecodeTop5        [][][]int64   `json:"decode_top5"`
	DecodeTop5Values  [][][]float64 `json:"decode_top5_values"`
}

func loadReference(t testing.TB, name string) (*Checkpoint, *reference) {
	t.Helper()
	dir := filepath.Join(testModels, name)
	ck, err := LoadCheckpoint(dir, onnx.Float)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	b, err := os.ReadFile(filepath.Join(dir, "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref reference
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	return ck, &ref
}

func flat64(rows [][]int64) []int64 {
	var out []int64
	for _, r := range rows {
		out = append(out, r...)
	}
	return out
}

// generation drives an inference graph the way the policy does: a prefill,
// then one token per step with the cache carried over.
type generation struct {
	s     *testSession
	cfg   Config
	mask  [][]int64
	cache map[string]tensor
}

func newGeneration(s *testSession, cfg Config, batch int) *generation {
	gen := &generation{s: s, cfg: cfg, mask: make([][]int64, batch), cache: map[string]tensor{}}
	for i := 0; i < cfg.NumHiddenLayers; i++ {
		shape := []int64{int64(batch), int64(cfg.NumKeyValueHeads), 0, int64(cfg.HeadDim())}
		gen.cache[PastKey(i)] = tensor{shape: shape, f: []float32{}}
		gen.cache[PastValue(i)] = tensor{shape: shape, f: []float32{}}
	}
	return gen
}

// step feeds ids [B,T] with their mask columns and positions, and returns
// the logits [B,T,V].
func (gen *generation) step(t testing.TB, ids, mask, pos [][]int64) tensor {
	t.Helper()
	for b := range gen.mask {
		gen.mask[b] = append(gen.mask[b], mask[b]...)
	}
	B, T := int64(len(ids)), int64(len(ids[0]))
	in := map[string]tensor{
		InputIDs:      {shape: []int64{B, T}, i: flat64(ids)},
		AttentionMask: {shape: []int64{B, int64(len(gen.mask[0]))}, i: flat64(gen.mask)},
		PositionIDs:   {shape: []int64{B, T}, i: flat64(pos)},
	}
	for k, v := range gen.cache {
		in[k] = v
	}
	out, err := gen.s.run(in)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < gen.cfg.NumHiddenLayers; i++ {
		gen.cache[PastKey(i)] = out[PresentKey(i)]
		gen.cache[PastValue(i)] = out[PresentValue(i)]
	}
	return out[Logits]
}

// decodeStep feeds one token per row: the mask grows by a column of ones and
// the position is the number of ones − 1.
func (gen *generation) decodeStep(t testing.TB, tokens []int64) tensor {
	ids := make([][]int64, len(tokens))
	mask := make([][]int64, len(tokens))
	pos := make([][]int64, len(tokens))
	for b, tok := range tokens {
		ones := int64(1)
		for _, m := range gen.mask[b] {
			ones += m
		}
		ids[b], mask[b], pos[b] = []int64{tok}, []int64{1}, []int64{ones - 1}
	}
	return gen.step(t, ids, mask, pos)
}

func TestTinyQwen2LogitsAndDecode(t *testing.T) {
	ck, ref := loadReference(t, "tiny-qwen2")
	cfg := ck.Config
	V := cfg.VocabSize
	for _, attn := range []Attention{StandardAttention, ContribAttention, FusedAttention} {
		t.Run(attn.String(), func(t *testing.T) {
			g, err := BuildInference(cfg, ck.Weights, Options{Attention: attn})
			if err != nil {
				t.Fatal(err)
			}
			gen := newGeneration(newTestSession(t, g, 1), cfg, len(ref.InputIDs))
			logits := gen.step(t, ref.InputIDs, ref.AttentionMask, ref.PositionIDs)
			T := len(ref.InputIDs[0])
			maxErr := 0.0
			for b := range ref.InputIDs {
				for p := 0; p < T; p++ {
					if ref.AttentionMask[b][p] == 0 {
						continue
					}
					for v := 0; v < V; v++ {
						maxErr = max(maxErr, math.Abs(float64(logits.f[(b*T+p)*V+v])-ref.Logits[b][p][v]))
					}
				}
			}
			t.Logf("%s prefill logits: max abs error %.3g", attn, maxErr)
			if maxErr > 1e-4 {
				t.Errorf("prefill logits: max abs error %g > 1e-4", maxErr)
			}
			for step := range ref.DecodeLogits {
				tokens := make([]int64, len(ref.DecodeTokens))
				for b := range tokens {
					tokens[b] = ref.DecodeTokens[b][step]
				}
				logits := gen.decodeStep(t, tokens)
				maxErr := 0.0
				for b := range tokens {
					for v := 0; v < V; v++ {
						maxErr = max(maxErr, math.Abs(float64(logits.f[b*V+v])-ref.DecodeLogits[step][b][v]))
					}
				}
				t.Logf("%s decode step %d: max abs error %.3g", attn, step, maxErr)
				if maxErr > 1e-4 {
					t.Errorf("decode step %d: max abs error %g > 1e-4", step, maxErr)
				}
			}
		})
	}
}

// TestTinyQwen2Continuation feeds the 4 decode tokens as one chunk after the
// prefill (the continuation a policy does after inserting retrieved text):
// the chunk's logits must equal the 4 single-step decode logits. ORT's
// GroupQueryAttention rejects a multi-token chunk with a past for batch > 1,
// so the contrib variant is checked one row at a time and must reject the
// batch with a clear error.
func TestTinyQwen2Continuation(t *testing.T) {
	ck, ref := loadReference(t, "tiny-qwen2")
	cfg := ck.Config
	V := cfg.VocabSize
	n := len(ref.DecodeLogits)
	// continuation runs rows of the reference batch; it returns the chunk's
	// max abs error, or the run's error.
	continuation := func(s *testSession, rows []int) (float64, error) {
		sub := func(x [][]int64) [][]int64 {
			var out [][]int64
			for _, r := range rows {
				out = append(out, x[r])
			}
			return out
		}
		gen := newGeneration(s, cfg, len(rows))
		gen.step(t, sub(ref.InputIDs), sub(ref.AttentionMask), sub(ref.PositionIDs))
		mask, pos := make([][]int64, len(rows)), make([][]int64, len(rows))
		for i, r := range rows {
			ones := int64(0)
			for _, m := range ref.AttentionMask[r] {
				ones += m
			}
			for j := 0; j < n; j++ {
				mask[i] = append(mask[i], 1)
				pos[i] = append(pos[i], ones+int64(j))
			}
		}
		in := map[string]tensor{
			InputIDs:      {shape: []int64{int64(len(rows)), int64(n)}, i: flat64(sub(ref.DecodeTokens))},
			AttentionMask: {shape: []int64{int64(len(rows)), int64(len(ref.InputIDs[0]) + n)}, i: flat64(concatRows(sub(ref.AttentionMask), mask))},
			PositionIDs:   {shape: []int64{int64(len(rows)), int64(n)}, i: flat64(pos)},
		}
		for k, v := range gen.cache {
			in[k] = v
		}
		out, err := s.run(in)
		if err != nil {
			return 0, err
		}
		logits, maxErr := out[Logits], 0.0
		for i, r := range rows {
			for j := 0; j < n; j++ {
				for v := 0; v < V; v++ {
					maxErr = max(maxErr, math.Abs(float64(logits.f[(i*n+j)*V+v])-ref.DecodeLogits[j][r][v]))
				}
			}
		}
		return maxErr, nil
	}
	for _, attn := range []Attention{StandardAttention, ContribAttention, FusedAttention} {
		t.Run(attn.String(), func(t *testing.T) {
			g, err := BuildInference(cfg, ck.Weights, Options{Attention: attn})
			if err != nil {
				t.Fatal(err)
			}
			s := newTestSession(t, g, 1)
			batches := [][]int{{0, 1, 2}}
			if attn == ContribAttention {
				if _, err := continuation(s, []int{0, 1, 2}); err == nil || !strings.Contains(err.Error(), "batch_size must be 1") {
					t.Errorf("contrib batched continuation: %v, want ORT's batch_size error", err)
				}
				batches = [][]int{{0}, {1}, {2}}
			}
			for _, rows := range batches {
				maxErr, err := continuation(s, rows)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("%s continuation chunk of %d, rows %v: max abs error %.3g", attn, n, rows, maxErr)
				if maxErr > 1e-4 {
					t.Errorf("rows %v: max abs error %g > 1e-4", rows, maxErr)
				}
			}
		})
	}
}

// concatRows joins a[i] and b[i] for each row.
func concatRows(a, b [][]int64) [][]int64 {
	out := make([][]int64, len(a))
	for i := range a {
		out[i] = append(append([]int64{}, a[i]...), b[i]...)
	}
	return out
}

// TestTinyQwen2Scoring checks the scoring graph against the log-softmax of the
// reference logits.
func TestTinyQwen2Scoring(t *testing.T) {
	ck, ref := loadReference(t, "tiny-qwen2")
	for _, attn := range []Attention{StandardAttention, ContribAttention, FusedAttention} {
		t.Run(attn.String(), func(t *testing.T) {
			g, err := BuildScoring(ck.Config, ck.Weights, Options{Attention: attn, Entropy: true})
			if err != nil {
				t.Fatal(err)
			}
			lp, ent := score(t, newTestSession(t, g, 1), ref)
			T := len(ref.InputIDs[0])
			maxLP, maxEnt := 0.0, 0.0
			for b := range ref.InputIDs {
				for p := 0; p+1 < T; p++ {
					if ref.AttentionMask[b][p] == 0 {
						continue
					}
					wantLP, wantEnt := logSoftmaxAt(ref.Logits[b][p], ref.InputIDs[b][p+1])
					maxLP = max(maxLP, math.Abs(float64(lp.f[b*(T-1)+p])-wantLP))
					maxEnt = max(maxEnt, math.Abs(float64(ent.f[b*(T-1)+p])-wantEnt))
				}
			}
			t.Logf("%s scoring: token_logprobs max abs error %.3g, entropy %.3g", attn, maxLP, maxEnt)
			if maxLP > 1e-4 || maxEnt > 1e-4 {
				t.Errorf("token_logprobs error %g, entropy error %g > 1e-4", maxLP, maxEnt)
			}
		})
	}
}

func score(t testing.TB, s *testSession, ref *reference) (lp, ent tensor) {
	t.Helper()
	B, T := int64(len(ref.InputIDs)), int64(len(ref.InputIDs[0]))
	out, err := s.run(map[string]tensor{
		InputIDs:      {shape: []int64{B, T}, i: flat64(ref.InputIDs)},
		AttentionMask: {shape: []int64{B, T}, i: flat64(ref.AttentionMask)},
	})
	if err != nil {
		t.Fatal(err)
	}
	lp = out[TokenLogprobs]
	if len(lp.shape) != 2 || lp.shape[0] != B || lp.shape[1] != T-1 {
		t.Fatalf("token_logprobs shape %v", lp.shape)
	}
	return lp, out[Entropy]
}

// logSoftmaxAt is log softmax(logits)[id] and the entropy, in float64.
func logSoftmaxAt(logits []float64, id int64) (lp, entropy float64) {
	m := math.Inf(-1)
	for _, x := range logits {
		m = max(m, x)
	}
	sum := 0.0
	for _, x := range logits {
		sum += math.Exp(x - m)
	}
	lse := m + math.Log(sum)
	for _, x := range logits {
		entropy -= math.Exp(x-lse) * (x - lse)
	}
	return logits[id] - lse, entropy
}

func top5(row []float32) ([]int64, []float32) {
	idx := make([]int, len(row))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return row[idx[a]] > row[idx[b]] })
	ids, vals := make([]int64, 5), make([]float32, 5)
	for i := range ids {
		ids[i], vals[i] = int64(idx[i]), row[idx[i]]
	}
	return ids, vals
}

func checkTop5(t *testing.T, what string, logits []float32, V int, wantIDs [][]int64, wantVals [][]float64, lastOf func(b int) int) float64 {
	t.Helper()
	maxErr := 0.0
	for b := range wantIDs {
		off := lastOf(b) * V
		ids, vals := top5(logits[off : off+V])
		for i := range ids {
			if ids[i] != wantIDs[b][i] {
				t.Errorf("%s row %d: top-5 %v, want %v", what, b, ids, wantIDs[b])
				break
			}
			maxErr = max(maxErr, math.Abs(float64(vals[i])-wantVals[b][i]))
		}
	}
	if maxErr > 1e-4 {
		t.Errorf("%s: top-5 values max abs error %g > 1e-4", what, maxErr)
	}
	return maxErr
}

func TestTiedFullVocab(t *testing.T) {
	ck, ref := loadReference(t, "tiny-qwen2-tied-fullvocab")
	cfg := ck.Config
	if _, ok := ck.Weights["lm_head.weight"]; ok {
		t.Error("tied model loaded an lm_head.weight")
	}
	B, T, V := len(ref.InputIDs), len(ref.InputIDs[0]), cfg.VocabSize
	for _, attn := range []Attention{StandardAttention, ContribAttention, FusedAttention} {
		t.Run(attn.String(), func(t *testing.T) {
			g, err := BuildInference(cfg, ck.Weights, Options{Attention: attn})
			if err != nil {
				t.Fatal(err)
			}
			gen := newGeneration(newTestSession(t, g, 2), cfg, B)
			logits := gen.step(t, ref.InputIDs, ref.AttentionMask, ref.PositionIDs)
			e := checkTop5(t, "prefill", logits.f, V, ref.LastTop5, ref.LastTop5Values, func(b int) int { return b*T + T - 1 })
			t.Logf("%s prefill top-5 values: max abs error %.3g", attn, e)

			// The same through a graph that computes the last position's logits only.
			lg, err := BuildInference(cfg, ck.Weights, Options{Attention: attn, LastLogits: true})
			if err != nil {
				t.Fatal(err)
			}
			last := newGeneration(newTestSession(t, lg, 2), cfg, B).step(t, ref.InputIDs, ref.AttentionMask, ref.PositionIDs)
			if len(last.shape) != 3 || last.shape[1] != 1 {
				t.Fatalf("LastLogits: logits shape %v", last.shape)
			}
			e = checkTop5(t, "prefill (last logits)", last.f, V, ref.LastTop5, ref.LastTop5Values, func(b int) int { return b })
			t.Logf("%s prefill top-5 values, last-logits graph: max abs error %.3g", attn, e)
			for step := range ref.DecodeTop5 {
				tokens := make([]int64, B)
				for b := range tokens {
					tokens[b] = ref.DecodeTokens[b][step]
				}
				logits := gen.decodeStep(t, tokens)
				e := checkTop5(t, "decode", logits.f, V, ref.DecodeTop5[step], ref.DecodeTop5Values[step], func(b int) int { return b })
				t.Logf("%s decode step %d top-5 values: max abs error %.3g", attn, step, e)
			}

			sg, err := BuildScoring(cfg, ck.Weights, Options{Attention: attn})
			if err != nil {
				t.Fatal(err)
			}
			lp, _ := score(t, newTestSession(t, sg, 2), ref)
			maxErr, n := 0.0, 0
			for b := 0; b < B; b++ {
				for p := 0; p+1 < T; p++ {
					if ref.AttentionMask[b][p] == 0 || ref.AttentionMask[b][p+1] == 0 {
						continue
					}
					n++
					maxErr = max(maxErr, math.Abs(float64(lp.f[b*(T-1)+p])-ref.NextTokenLogprobs[b][p]))
				}
			}
			t.Logf("%s next_token_logprobs (%d positions): max abs error %.3g", attn, n, maxErr)
			if n == 0 || maxErr > 1e-4 {
				t.Errorf("next_token_logprobs: max abs error %g over %d positions", maxErr, n)
			}
		})
	}
}
