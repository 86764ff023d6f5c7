package policy

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/igsearch/igsearch/onnx/ort"
	"github.com/igsearch/igsearch/tokenize"
)

const (
	tinyDir      = "../testdata/models/tiny-qwen2"
	fullVocabDir = "../testdata/models/tiny-qwen2-tied-fullvocab"
)

// needORT skips the test when ONNX Runtime is not installed (`make setup`).
func needORT(t testing.TB) {
	t.Helper()
	if _, err := ort.FindLibrary("", false); errors.Is(err, ort.ErrNoLibrary) {
		t.Skip(err)
	}
}

// copyModel copies the named files of a test model into a temporary
// directory, so that the graph cache is written there and not into testdata.
func copyModel(t testing.TB, from string, files ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range files {
		in, err := os.Open(filepath.Join(from, f))
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.Create(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, in); err != nil {
			t.Fatal(err)
		}
		in.Close()
		if err := out.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

var (
	tokOnce sync.Once
	tok     *tokenize.Tokenizer
	tokErr  error
)

// qwenTokenizer loads the Qwen2.5 tokenizer that `make setup` derives, or
// skips.
func qwenTokenizer(t testing.TB) *tokenize.Tokenizer {
	t.Helper()
	tokOnce.Do(func() {
		path := os.Getenv("IGSEARCH_QWEN_TOKENIZER")
		if path == "" {
			path = filepath.Join(ort.CacheDir(), "tokenizers", "qwen2.5", "tokenizer.json")
		}
		tok, tokErr = tokenize.Load(path)
	})
	if tokErr != nil {
		t.Skipf("Qwen2.5 tokenizer: %v (run `make setup`)", tokErr)
	}
	return tok
}

// models caches the opened test policies across tests (one per kind).
var models = struct {
	sync.Mutex
	m map[string]*Policy
}{m: map[string]*Policy{}}

// openModel opens tiny-qwen2 as a checkpoint ("checkpoint": contrib
// attention; "standard": standard attention, no tokenizer) or as its torch
// export ("onnx"), with the Qwen2.5 tokenizer; or tiny-qwen2-tied-fullvocab
// ("fullvocab"). Policies are shared between tests.
func openModel(t testing.TB, kind string) *Policy {
	t.Helper()
	needORT(t)
	models.Lock()
	defer models.Unlock()
	if p := models.m[kind]; p != nil {
		return p
	}
	var dir string
	opts := Options{Threads: 2}
	switch kind {
	case "checkpoint":
		dir = copyModel(t, tinyDir, "config.json", "model.safetensors")
	case "standard":
		dir = copyModel(t, tinyDir, "config.json", "model.safetensors")
		opts.Attention = "standard"
	case "onnx":
		dir = copyModel(t, tinyDir, "config.json", "model.onnx")
	case "fullvocab":
		dir = copyModel(t, fullVocabDir, "config.json", "model.safetensors")
	}
	if kind != "fullvocab" && kind != "standard" {
		opts.Tokenizer = qwenTokenizer(t)
	}
	p, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	models.m[kind] = p
	return p
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, p := range models.m {
		p.Close()
	}
	os.Exit(code)
}

// reference is the part of reference.json the tests use.
type reference struct {
	InputIDs          [][]int32     `json:"input_ids"`
	AttentionMask     [][]int64     `json:"attention_mask"`
	DecodeTokens      [][]int32     `json:"decode_tokens"`
	Logits            [][][]float64 `json:"logits"`
	DecodeLogits      [][][]float64 `json:"decode_logits"`
	NextTokenLogprobs [][]float64   `json:"next_token_logprobs"`
}

func loadReference(t testing.TB, dir string) *reference {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r reference
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

// unpadded returns the reference rows without their left padding.
func (r *reference) unpadded() [][]int32 {
	out := make([][]int32, len(r.InputIDs))
	for i, ids := range r.InputIDs {
		for j, id := range ids {
			if r.AttentionMask[i][j] == 1 {
				out[i] = append(out[i], id)
			}
		}
	}
	return out
}

func logSoftmax64(x []float64) []float64 {
	m := math.Inf(-1)
	for _, v := range x {
		m = max(m, v)
	}
	s := 0.0
	for _, v := range x {
		s += math.Exp(v - m)
	}
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = v - m - math.Log(s)
	}
	return out
}

func maxDiff(got []float32, want []float64) float64 {
	d := 0.0
	for i := range got {
		d = max(d, math.Abs(float64(got[i])-want[i]))
	}
	return d
}

// TestReferenceForcedDecode prefills the reference batch through Batch
// (left padding, one run) and forces the reference decode tokens, comparing
// the last-position logits with reference.json at every step; for our built
// graph (both attention variants) and for the torch export alike.
func TestReferenceForcedDecode(t *testing.T) {
	ref := loadReference(t, tinyDir)
	for _, kind := range []string{"checkpoint", "standard", "onnx"} {
		t.Run(kind, func(t *testing.T) {
			p := openModel(t, kind)
			var reqs []Request
			for _, ids := range ref.unpadded() {
				reqs = append(reqs, Request{Prompt: ids})
			}
			b, err := p.NewBatch(reqs)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			rows := []int{0, 1, 2}
			ctx := context.Background()
			res, err := prefillLogits(ctx, b, rows)
			if err != nil {
				t.Fatal(err)
			}
			V := p.vocab
			worst, cdfWorst := 0.0, 0.0
			check := func(res *forwardResult, r int, want []float64) {
				got := res.logits[r*V : (r+1)*V]
				if res.normalized {
					// Our graphs return log_softmax and its cumulative sum.
					want = logSoftmax64(want)
					acc := 0.0
					for j, x := range want {
						acc += math.Exp(x)
						cdfWorst = max(cdfWorst, math.Abs(float64(res.cdf[r*V+j])-acc))
					}
				}
				worst = max(worst, maxDiff(got, want))
			}
			for r := range rows {
				check(res, r, ref.Logits[r][len(ref.Logits[r])-1])
			}
			for k := range ref.DecodeLogits {
				var toks [][]int32
				for r := range rows {
					toks = append(toks, []int32{ref.DecodeTokens[r][k]})
				}
				if err := b.Append(rows, toks); err != nil {
					t.Fatal(err)
				}
				if res, err = prefillLogits(ctx, b, rows); err != nil {
					t.Fatal(err)
				}
				for r := range rows {
					check(res, r, ref.DecodeLogits[k][r])
				}
			}
			if res.normalized != (kind != "onnx") {
				t.Errorf("%s: normalized output %v", kind, res.normalized)
			}
			if cdfWorst > 1e-5 {
				t.Errorf("%s: cdf off by %.2e", kind, cdfWorst)
			}
			t.Logf("%s: max |logits (or log-probs) − reference| over prefill and 4 decode steps: %.2e; cdf %.2e", kind, worst, cdfWorst)
			if worst > 1e-4 {
				t.Errorf("max abs diff %.2e > 1e-4", worst)
			}
		})
	}
}

// prompts of different lengths for the tiny model.
var tinyPrompts = [][]int32{
	{921, 316, 614, 905, 865, 660, 302, 239, 5, 231, 647, 285},
	{582, 433, 103},
	{402},
	{17, 18, 19, 20, 21, 22, 23},
}

func requests(prompts [][]int32, seed uint64) []Request {
	var out []Request
	for i, pr := range prompts {
		out = append(out, Request{Prompt: pr, Seed: seed + uint64(i)})
	}
	return out
}

func generate(t testing.TB, p *Policy, reqs []Request, sp SamplingParams) []Completion {
	t.Helper()
	out, err := p.Generate(context.Background(), reqs, sp)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func compareCompletions(t *testing.T, what string, got, want Completion, tol float64) float64 {
	t.Helper()
	if !slices.Equal(got.Tokens, want.Tokens) || got.Finish != want.Finish || got.Text != want.Text {
		t.Errorf("%s: tokens %v (%s, %q), want %v (%s, %q)", what, got.Tokens, got.Finish, got.Text, want.Tokens, want.Finish, want.Text)
		return math.Inf(1)
	}
	d := 0.0
	for i := range got.LogProbs {
		d = max(d, math.Abs(float64(got.LogProbs[i]-want.LogProbs[i])))
	}
	if d > tol {
		t.Errorf("%s: log-probs differ by %.2e > %.0e", what, d, tol)
	}
	return d
}

// TestGreedyCacheEqualsRecompute: greedy generation with the KV cache
// equals greedy generation that recomputes the whole sequence every step.
func TestGreedyCacheEqualsRecompute(t *testing.T) {
	p := openModel(t, "checkpoint")
	const n = 10
	sp := SamplingParams{MaxNewTokens: n, EOS: []int32{}}
	cached := generate(t, p, requests(tinyPrompts, 0), sp)
	worst := 0.0
	for i, pr := range tinyPrompts {
		seq := slices.Clone(pr)
		var re Completion
		for range n {
			c := generate(t, p, []Request{{Prompt: seq}}, SamplingParams{MaxNewTokens: 1, EOS: []int32{}})[0]
			seq = append(seq, c.Tokens[0])
			re.Tokens = append(re.Tokens, c.Tokens[0])
			re.LogProbs = append(re.LogProbs, c.LogProbs[0])
		}
		re.Finish = FinishLength
		re.Text = p.tok.Decode(re.Tokens, true)
		worst = max(worst, compareCompletions(t, "prompt "+string(rune('0'+i)), cached[i], re, 1e-4))
	}
	t.Logf("cache vs recompute: tokens equal, max |Δ log-prob| %.2e", worst)
}

// TestBatchEqualsSingle: each sequence of a left-padded batch gets what it
// gets alone, greedy and sampled (each sequence has its own generator).
func TestBatchEqualsSingle(t *testing.T) {
	p := openModel(t, "checkpoint")
	for _, sp := range []SamplingParams{
		{MaxNewTokens: 12, EOS: []int32{}},
		{MaxNewTokens: 12, Temperature: 1.3, TopP: 0.95, TopK: 200, EOS: []int32{}},
	} {
		reqs := requests(tinyPrompts, 100)
		batch := generate(t, p, reqs, sp)
		worst := 0.0
		for i, r := range reqs {
			single := generate(t, p, []Request{r}, sp)[0]
			worst = max(worst, compareCompletions(t, "row "+string(rune('0'+i)), batch[i], single, 1e-4))
		}
		t.Logf("T=%v: batch of %d vs single: tokens equal, max |Δ log-prob| %.2e", sp.Temperature, len(reqs), worst)
	}
}

// TestSeededSampling: the same seeds give the same samples; other seeds
// give others.
func TestSeededSampling(t *testing.T) {
	p := openModel(t, "checkpoint")
	sp := SamplingParams{MaxNewTokens: 16, Temperature: 1.5, EOS: []int32{}}
	a := generate(t, p, requests(tinyPrompts, 7), sp)
	b := generate(t, p, requests(tinyPrompts, 7), sp)
	c := generate(t, p, requests(tinyPrompts, 8), sp)
	same := true
	for i := range a {
		if !slices.Equal(a[i].Tokens, b[i].Tokens) || !slices.Equal(a[i].LogProbs, b[i].LogProbs) {
			t.Errorf("row %d: seed 7 twice: %v then %v", i, a[i].Tokens, b[i].Tokens)
		}
		same = same && slices.Equal(a[i].Tokens, c[i].Tokens)
	}
	if same {
		t.Error("seeds 7.. and 8.. sampled the same sequences")
	}
	// The log-probs are under the raw logits: greedy log-probs of the same
	// tokens agree with them (checked through scoring below).
	seqs := make([][]int32, len(a))
	for i, pr := range tinyPrompts {
		seqs[i] = append(slices.Clone(pr), a[i].Tokens...)
	}
	lps, err := p.Score(context.Background(), seqs)
	if err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	for i, pr := range tinyPrompts {
		got := lps[i][len(pr)-1:]
		for j := range got {
			worst = max(worst, math.Abs(float64(got[j]-a[i].LogProbs[j])))
		}
	}
	t.Logf("sampled log-probs vs scoring graph: max diff %.2e", worst)
	if worst > 1e-4 {
		t.Errorf("sampled log-probs differ from scored ones by %.2e", worst)
	}
}

// TestStopAndContinue: a stop string split across tokens stops generation
// at the token that completes it; appending tokens and continuing equals
// generating from the whole sequence at once.
func TestStopAndContinue(t *testing.T) {
	p := openModel(t, "checkpoint")
	ctx := context.Background()
	free := generate(t, p, requests(tinyPrompts, 0), SamplingParams{MaxNewTokens: 12, EOS: []int32{}})
	// For each row, a stop string made of the end of token 4's text and
	// the start of token 5's, so that it spans a token boundary.
	var stops []string
	wantAt := make([]int, len(free))
	for i, c := range free {
		a := p.tok.Decode(c.Tokens[:5], true)
		b := p.tok.Decode(c.Tokens[:6], true)
		if len(b) <= len(a) || len(a) == 0 || !strings.HasPrefix(b, a) {
			t.Fatalf("row %d: tokens %v do not decode to growing text", i, c.Tokens)
		}
		stops = append(stops, a[len(a)-1:]+b[len(a):len(a)+1])
		wantAt[i] = 6
	}
	b, err := p.NewBatch(requests(tinyPrompts, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rows := []int{0, 1, 2, 3}
	first, err := b.Generate(ctx, rows, SamplingParams{MaxNewTokens: 12, Stop: stops, EOS: []int32{}})
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range first {
		// An earlier stop may match first; it must be a listed stop
		// completed by the last token, and the tokens a prefix of the
		// unstopped run.
		if c.Finish != FinishStop || !slices.Contains(stops, c.Stop) || len(c.Tokens) > wantAt[i] ||
			!slices.Equal(c.Tokens, free[i].Tokens[:len(c.Tokens)]) || !strings.Contains(c.Text, c.Stop) ||
			strings.Contains(p.tok.Decode(c.Tokens[:len(c.Tokens)-1], true), c.Stop) {
			t.Errorf("row %d: %v %s %q text %q; unstopped %v", i, c.Tokens, c.Finish, c.Stop, c.Text, free[i].Tokens)
		}
	}
	// Continue rows 0, 1 and 3 with observations of different lengths
	// (row 2 waits), then everything.
	obs := [][]int32{{5, 6, 7, 8, 9, 10, 11}, {12}, {13, 14, 15}}
	cont, err := b.Continue(ctx, []int{3, 0, 1}, obs, SamplingParams{MaxNewTokens: 6, EOS: []int32{}})
	if err != nil {
		t.Fatal(err)
	}
	last, err := b.Continue(ctx, rows, [][]int32{{40}, {41, 42}, {43}, {44, 45, 46, 47}}, SamplingParams{MaxNewTokens: 5, EOS: []int32{}})
	if err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	for i, r := range []int{3, 0, 1} {
		seq := append(append(slices.Clone(tinyPrompts[r]), first[r].Tokens...), obs[i]...)
		want := generate(t, p, []Request{{Prompt: seq}}, SamplingParams{MaxNewTokens: 6, EOS: []int32{}})[0]
		worst = max(worst, compareCompletions(t, "continued row", cont[i], want, 1e-4))
	}
	for r := range rows {
		full := b.Tokens(r)
		n := len(last[r].Tokens)
		prompt := full[:len(full)-n]
		want := generate(t, p, []Request{{Prompt: prompt}}, SamplingParams{MaxNewTokens: 5, EOS: []int32{}})[0]
		worst = max(worst, compareCompletions(t, "second continuation", last[r], want, 1e-4))
	}
	t.Logf("continuation vs from scratch: tokens equal, max |Δ log-prob| %.2e", worst)
}

// TestChunkedPrefill: prompts and continuations prefilled in chunks of a
// few columns give what one run gives, with both attention variants.
func TestChunkedPrefill(t *testing.T) {
	for _, kind := range []string{"checkpoint", "standard", "onnx"} {
		p := openModel(t, kind)
		sp := SamplingParams{MaxNewTokens: 6, EOS: []int32{}}
		want := generate(t, p, requests(tinyPrompts, 0), sp)
		ctx := context.Background()
		p.runTokens = 5
		b, err := p.NewBatch(requests(tinyPrompts, 0))
		if err != nil {
			t.Fatal(err)
		}
		got, err := b.Generate(ctx, []int{0, 1, 2, 3}, sp)
		if err != nil {
			p.runTokens = 0
			t.Fatal(err)
		}
		obs := [][]int32{{5, 6, 7, 8, 9, 10, 11, 12, 13}, {12}, {13, 14, 15, 16, 17, 18}, {1, 2}}
		cont, err := b.Continue(ctx, []int{0, 1, 2, 3}, obs, sp)
		p.runTokens = 0
		if err != nil {
			t.Fatal(err)
		}
		worst := 0.0
		for i := range want {
			worst = max(worst, compareCompletions(t, kind+" chunked prompt", got[i], want[i], 1e-4))
			full := b.Tokens(i)
			ref := generate(t, p, []Request{{Prompt: full[:len(full)-len(cont[i].Tokens)]}}, sp)[0]
			worst = max(worst, compareCompletions(t, kind+" chunked continuation", cont[i], ref, 1e-4))
		}
		b.Close()
		t.Logf("%s: chunks of ≤5 tokens vs one run: tokens equal, max |Δ log-prob| %.2e", kind, worst)
	}
}

// TestExportMatchesBuiltGraph: the torch export, run through the same
// generation code, generates what our graph generates.
func TestExportMatchesBuiltGraph(t *testing.T) {
	ours := openModel(t, "checkpoint")
	torch := openModel(t, "onnx")
	// Temperature 0.8 with top-k draws in Go on both; temperature 1 draws
	// from our graph's cdf output and walks exp(logits) for the export.
	var a []Completion
	for _, sp := range []SamplingParams{
		{MaxNewTokens: 12, Temperature: 0.8, TopK: 50, EOS: []int32{}},
		{MaxNewTokens: 12, Temperature: 1, EOS: []int32{}},
	} {
		a = generate(t, ours, requests(tinyPrompts, 3), sp)
		b := generate(t, torch, requests(tinyPrompts, 3), sp)
		worst := 0.0
		for i := range a {
			worst = max(worst, compareCompletions(t, "row", a[i], b[i], 1e-4))
		}
		t.Logf("T=%v: torch export vs built graph: tokens equal, max |Δ log-prob| %.2e", sp.Temperature, worst)
	}
	worst := 0.0
	// Scoring through the inference graph (the export has no scoring
	// graph) matches our scoring graph.
	seqs := [][]int32{tinyPrompts[0], tinyPrompts[3], tinyPrompts[2], append(slices.Clone(tinyPrompts[1]), a[1].Tokens...)}
	ga, err := ours.Score(context.Background(), seqs)
	if err != nil {
		t.Fatal(err)
	}
	gb, err := torch.Score(context.Background(), seqs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range seqs {
		if len(ga[i]) != len(seqs[i])-1 || len(gb[i]) != len(seqs[i])-1 {
			t.Fatalf("sequence %d of %d tokens: %d and %d log-probs", i, len(seqs[i]), len(ga[i]), len(gb[i]))
		}
		for j := range ga[i] {
			worst = max(worst, math.Abs(float64(ga[i][j]-gb[i][j])))
		}
	}
	t.Logf("scoring graph vs inference-graph scoring of the export: max diff %.2e", worst)
	if worst > 1e-4 {
		t.Errorf("scores differ by %.2e", worst)
	}
}

// TestScoreFullVocab: per-token log-probs of the tied full-vocabulary model
// match the reference's next_token_logprobs at unpadded positions.
func TestScoreFullVocab(t *testing.T) {
	p := openModel(t, "fullvocab")
	ref := loadReference(t, fullVocabDir)
	seqs := ref.unpadded()
	got, err := p.Score(context.Background(), seqs)
	if err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	for i, s := range seqs {
		if len(got[i]) != max(len(s)-1, 0) {
			t.Fatalf("row %d: %d log-probs for %d tokens", i, len(got[i]), len(s))
		}
		pad := len(ref.InputIDs[i]) - len(s)
		worst = max(worst, maxDiff(got[i], ref.NextTokenLogprobs[i][pad:]))
	}
	t.Logf("full vocab: max |log-prob − reference| %.2e", worst)
	if worst > 1e-4 {
		t.Errorf("max abs diff %.2e > 1e-4", worst)
	}
}

func TestBucketsAndBadInput(t *testing.T) {
	got := buckets([]int{5, 1, 9, 3, 3, 0, 8, 2}, 16, 3)
	want := [][]int{{7, 3, 4}, {0, 6}, {2}}
	if len(got) != len(want) {
		t.Fatalf("buckets %v, want %v", got, want)
	}
	for i := range got {
		if !slices.Equal(got[i], want[i]) {
			t.Fatalf("buckets %v, want %v", got, want)
		}
	}
	p := openModel(t, "checkpoint")
	if _, err := p.NewBatch([]Request{{Prompt: nil}}); err == nil {
		t.Error("empty prompt: no error")
	}
	if _, err := p.NewBatch([]Request{{Prompt: []int32{1, 5000}}}); err == nil || !strings.Contains(err.Error(), "outside the vocabulary") {
		t.Errorf("token out of range: %v", err)
	}
	if _, err := p.Generate(context.Background(), requests(tinyPrompts, 0), SamplingParams{}); err == nil {
		t.Error("max new tokens 0: no error")
	}
	if _, err := Open(t.TempDir(), Options{}); err == nil {
		t.Error("empty directory: no error")
	}
}

// prefillLogits prefills rows and returns the last-position logits (or
// log-probs and CDF) of each, [len(rows), V], read into Go memory.
func prefillLogits(ctx context.Context, b *Batch, rows []int) (*forwardResult, error) {
	V := b.p.vocab
	out := &forwardResult{logits: make([]float32, len(rows)*V)}
	err := b.prefill(ctx, rows, func(ctx context.Context, res *forwardResult, idx []int) error {
		logits, cdf, err := res.hostLogits(V)
		if err != nil {
			return err
		}
		out.normalized = res.normalized
		if cdf != nil && out.cdf == nil {
			out.cdf = make([]float32, len(rows)*V)
		}
		for j, i := range idx {
			copy(out.logits[i*V:(i+1)*V], logits[j*V:(j+1)*V])
			if cdf != nil {
				copy(out.cdf[i*V:(i+1)*V], cdf[j*V:(j+1)*V])
			}
		}
		return nil
	})
	return out, err
}
