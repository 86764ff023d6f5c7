package rollout

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/igsearch/igsearch/index"
	"github.com/igsearch/igsearch/onnx/ort"
	"github.com/igsearch/igsearch/pipeline/protocol"
	"github.com/igsearch/igsearch/pipeline/reward"
	"github.com/igsearch/igsearch/pipeline/trajectory"
	"github.com/igsearch/igsearch/pipeline/world"
	"github.com/igsearch/igsearch/pipeline/world/worldtest"
	"github.com/igsearch/igsearch/policy"
	"github.com/igsearch/igsearch/tokenize"
)

// tiny is the shared test setup: a small world, its index and a tiny
// Qwen2 that searches (worldtest.NewAgent).
type tiny struct {
	*worldtest.Agent
	world *world.World
	ix    *index.Index
	pol   *policy.Policy
}

var shared = worldtest.Shared{Questions: worldtest.Questions{Train: 16, Dev: 4, Test: 4}}

func setup(t *testing.T) *tiny {
	t.Helper()
	a := shared.Get(t)
	return &tiny{Agent: a, world: a.World, ix: a.Index, pol: a.Policy}
}

func TestMain(m *testing.M) {
	code := m.Run()
	shared.Close()
	os.Exit(code)
}

func testConfig(p protocol.Protocol) Config {
	cfg := DefaultConfig()
	cfg.Protocol = p
	cfg.Chat = false
	cfg.GroupSize = 3
	cfg.MaxTurns = 3
	cfg.MaxNewTokens = 12
	cfg.MaxObsTokens = 60
	cfg.MaxResponse = 400
	cfg.Seed = 7
	return cfg
}

// checkRecords checks the invariants of rollout records.
func checkRecords(t *testing.T, tok *tokenize.Tokenizer, p protocol.Protocol, recs []trajectory.Record) {
	t.Helper()
	for _, r := range recs {
		if err := r.Validate(); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(r.TokenIDs[:r.PromptLen], tok.Encode(r.Prompt)) {
			t.Errorf("%s/%d: prompt tokens differ from the prompt's encoding", r.ID, r.Sample)
		}
		for i, k := range r.Mask {
			switch {
			case i < r.PromptLen && k != trajectory.Prompt:
				t.Fatalf("%s/%d: prompt token %d has mask %d", r.ID, r.Sample, i, k)
			case i >= r.PromptLen && k == trajectory.Prompt:
				t.Fatalf("%s/%d: response token %d has the prompt mask", r.ID, r.Sample, i)
			case k != trajectory.Generated && r.OldLogprobs[i] != 0:
				t.Fatalf("%s/%d: token %d not generated but has old log-prob %v", r.ID, r.Sample, i, r.OldLogprobs[i])
			case k == trajectory.Generated && r.OldLogprobs[i] > 0:
				t.Fatalf("%s/%d: positive log-prob %v", r.ID, r.Sample, r.OldLogprobs[i])
			}
		}
		parsed := r.Parse(p)
		if len(parsed.Steps) != len(r.Steps) {
			t.Fatalf("%s/%d: %d recorded steps, Parse finds %d in %q", r.ID, r.Sample, len(r.Steps), len(parsed.Steps), r.Response)
		}
		for k, s := range r.Steps {
			ps := parsed.Steps[k]
			if s.DocIDs != nil {
				// An observation the environment inserted: every token of it is
				// masked, and its tokens are the observation text's encoding.
				for i := s.Observation.Start; i < s.Observation.End; i++ {
					if r.Mask[i] != trajectory.Observation {
						t.Fatalf("%s/%d step %d: observation token %d has mask %d", r.ID, r.Sample, k, i, r.Mask[i])
					}
				}
				obsText := "\n\n" + ps.ObsBlock + "\n\n"
				if !reflect.DeepEqual(r.TokenIDs[s.Observation.Start:s.Observation.End], tok.Encode(obsText)) {
					t.Errorf("%s/%d step %d: observation tokens are not the encoding of %q", r.ID, r.Sample, k, obsText)
				}
			}
			if ps.Search.Ok() {
				q := strings.Join(strings.Fields(tok.Decode(r.TokenIDs[s.Query.Start:s.Query.End], true)), " ")
				if want := strings.Join(strings.Fields(ps.Query), " "); q != want {
					t.Errorf("%s/%d step %d: query tokens decode to %q, Parse has %q", r.ID, r.Sample, k, q, want)
				}
				for i := s.Turn.Start; i < s.Turn.End; i++ {
					if r.Mask[i] != trajectory.Generated {
						t.Fatalf("%s/%d step %d: turn token %d is not generated", r.ID, r.Sample, k, i)
					}
				}
				if s.Query.Start < s.Turn.Start || s.Query.End > s.Turn.End {
					t.Errorf("%s/%d step %d: query %v outside turn %v", r.ID, r.Sample, k, s.Query, s.Turn)
				}
			}
			if s.Observation.Start < s.Query.End {
				t.Errorf("%s/%d step %d: observation %v before query %v", r.ID, r.Sample, k, s.Observation, s.Query)
			}
		}
		if r.FinishReason == "" {
			t.Errorf("%s/%d: no finish reason", r.ID, r.Sample)
		}
		if want, _ := reward.ExtractAnswer(r.Response); r.FinishReason == trajectory.FinishAnswer && r.Answer != want {
			t.Errorf("%s/%d: answer %q, the reward extracts %q", r.ID, r.Sample, r.Answer, want)
		}
	}
}

// checkOldLogprobs checks that the old log-probs, sampled on a KV cache
// extended turn by turn with observations, are those of one forward pass
// over each record's tokens.
func checkOldLogprobs(t *testing.T, pol *policy.Policy, recs []trajectory.Record) {
	t.Helper()
	seqs := make([][]int32, len(recs))
	for i := range recs {
		seqs[i] = recs[i].TokenIDs
	}
	lps, err := pol.Score(context.Background(), seqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		for k := r.PromptLen; k < len(r.TokenIDs); k++ {
			if r.Mask[k] == trajectory.Generated && math.Abs(float64(lps[i][k-1]-r.OldLogprobs[k])) > 2e-3 {
				t.Fatalf("%s/%d token %d: old log-prob %v, scored %v", r.ID, r.Sample, k, r.OldLogprobs[k], lps[i][k-1])
			}
		}
	}
}

// countingRetriever counts the batched calls of a retriever.
type countingRetriever struct {
	Retriever
	calls, queries int
}

func (c *countingRetriever) SearchBatch(ctx context.Context, qs []string, k int) ([][]index.Result, error) {
	c.calls++
	c.queries += len(qs)
	return c.Retriever.SearchBatch(ctx, qs, k)
}

func TestRunWorld(t *testing.T) {
	tn := setup(t)
	tok := tn.pol.Tokenizer()
	for _, p := range []protocol.Protocol{protocol.SearchR1(), protocol.AutoRefine()} {
		t.Run(p.Name, func(t *testing.T) {
			cfg := testConfig(p)
			qs := tn.TrainExamples(4)
			retr := &countingRetriever{Retriever: tn.ix}
			recs, st, err := Run(context.Background(), tn.pol, retr, qs, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != len(qs)*cfg.GroupSize {
				t.Fatalf("%d records, want %d", len(recs), len(qs)*cfg.GroupSize)
			}
			checkRecords(t, tok, p, recs)
			if retr.queries != st.Searches || retr.calls > cfg.MaxTurns {
				t.Errorf("%d retrieval calls with %d queries for %d searches in %d turns", retr.calls, retr.queries, st.Searches, cfg.MaxTurns)
			}
			if st.Turns > cfg.MaxTurns+1 {
				t.Errorf("%d turns, at most %d allowed", st.Turns, cfg.MaxTurns+1)
			}
			t.Logf("%s: %+v", p.Name, st)
			checkOldLogprobs(t, tn.pol, recs)
			// Same seed, a smaller batch: the same trajectories. Only the
			// old log-probs may move, by float rounding: the batch's
			// padding changes the shapes ONNX Runtime computes them in.
			part, _, err := Run(context.Background(), tn.pol, tn.ix, qs[:2], cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := sameRecords(part, recs[:len(part)], 1e-5); err != nil {
				t.Errorf("the records of a question depend on the other questions of the batch: %v", err)
			}
			same, _, err := Run(context.Background(), tn.pol, tn.ix, qs, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(same, recs) {
				t.Error("the same seed gave different records")
			}
			cfg.Seed++
			other, _, err := Run(context.Background(), tn.pol, tn.ix, qs, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if reflect.DeepEqual(other, recs) {
				t.Error("another seed gave the same records")
			}
		})
	}
}

// TestStepsFromText drives a scripted trajectory through the rollout's
// record building (generated turns, observations, a correction) with both
// tokenizers, and checks the step spans against protocol.Parse.
func TestStepsFromText(t *testing.T) {
	tn := setup(t)
	t.Run("wordlevel", func(t *testing.T) { stepsFromText(t, tn.pol.Tokenizer()) })
	t.Run("qwen2.5", func(t *testing.T) { stepsFromText(t, qwenTokenizer(t)) })
}

func stepsFromText(t *testing.T, tok *tokenize.Tokenizer) {
	p := protocol.SearchR1()
	a := &agent{docs: map[int][]string{}}
	prompt := PromptText(p, false, "where is Beijing")
	ids := tok.Encode(prompt)
	a.rec = trajectory.Record{Prompt: prompt, PromptLen: len(ids), TokenIDs: ids, Mask: make([]trajectory.TokenKind, len(ids)), OldLogprobs: make([]float32, len(ids)), GoldenAnswers: []string{"Beijing"}}
	gen := func(text string) {
		c := policy.Completion{Tokens: tok.Encode(text)}
		c.LogProbs = make([]float32, len(c.Tokens))
		a.addGenerated(tok, c)
	}
	env := func(text string, docs []string) {
		ids := tok.Encode(text)
		if docs != nil {
			a.docs[a.resp.Len()] = docs
		}
		a.addText(text, len(ids))
		a.rec.TokenIDs = append(a.rec.TokenIDs, ids...)
		for range ids {
			a.rec.Mask = append(a.rec.Mask, trajectory.Observation)
			a.rec.OldLogprobs = append(a.rec.OldLogprobs, 0)
		}
	}
	docs := []protocol.Doc{{ID: "d1", Contents: "Beijing\nyou can search as many times"}}
	gen("<think> you lack some knowledge </think> <search> search engine </search>")
	env(p.Observation(docs), []string{"d1"})
	gen("<think> first every time </think>")
	env(protocol.CorrectionMessage, nil)
	gen("<search> new information </search>")
	env(p.Observation(docs), []string{"d2"})
	gen("<answer> Beijing </answer>")
	a.rec.Response = a.resp.String()
	a.rec.Steps = a.steps(p)
	a.rec.FinishReason, a.rec.Answer = trajectory.FinishAnswer, "Beijing"
	checkRecords(t, tok, p, []trajectory.Record{a.rec})
	if len(a.rec.Steps) != 2 {
		t.Fatalf("%d steps, want 2", len(a.rec.Steps))
	}
	s1 := a.rec.Steps[1]
	if got := strings.TrimSpace(tok.Decode(a.rec.TokenIDs[s1.Query.Start:s1.Query.End], true)); got != "new information" {
		t.Errorf("step 1 query %q", got)
	}
	if got := strings.TrimSpace(tok.Decode(a.rec.TokenIDs[s1.Turn.Start:s1.Turn.End], true)); got != "<search> new information </search>" {
		t.Errorf("step 1 turn %q (the correction and the invalid turn are not part of it)", got)
	}
	if !reflect.DeepEqual(a.rec.Steps[0].DocIDs, []string{"d1"}) || !reflect.DeepEqual(s1.DocIDs, []string{"d2"}) {
		t.Errorf("doc ids %v %v", a.rec.Steps[0].DocIDs, s1.DocIDs)
	}
}

// qwenTokenizer loads the Qwen2.5 tokenizer, or skips.
func qwenTokenizer(t *testing.T) *tokenize.Tokenizer {
	t.Helper()
	for _, path := range []string{os.Getenv("IGSEARCH_QWEN_TOKENIZER"),
		filepath.Join(ort.CacheDir(), "tokenizers", "qwen2.5", "tokenizer.json"),
		"../../../shared/testdata/qwen2.5-tokenizer.json"} {
		if path == "" {
			continue
		}
		if tok, err := tokenize.Load(path); err == nil {
			return tok
		}
	}
	t.Skip("no Qwen2.5 tokenizer (run `make setup`)")
	return nil
}

// TestRunQwenTokenizer runs the agent with the byte-level BPE tokenizer on
// tiny-qwen2-tied-fullvocab (random weights: mechanics only), in the chat
// format.
func TestRunQwenTokenizer(t *testing.T) {
	tn := setup(t)
	tok := qwenTokenizer(t)
	pol, err := policy.Open("../../testdata/models/tiny-qwen2-tied-fullvocab", policy.Options{Threads: 2, Tokenizer: tok})
	if err != nil {
		t.Fatal(err)
	}
	defer pol.Close()
	cfg := testConfig(protocol.SearchR1())
	cfg.Chat = true
	cfg.GroupSize = 2
	cfg.MaxNewTokens = 8
	recs, st, err := Run(context.Background(), pol, tn.ix, tn.TrainExamples(2), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkRecords(t, tok, cfg.Protocol, recs)
	checkOldLogprobs(t, pol, recs)
	for _, r := range recs {
		if !strings.HasPrefix(r.Prompt, "<|im_start|>") {
			t.Fatalf("prompt not in the chat format: %q", r.Prompt)
		}
		// The response text is the decode of the response tokens, observations
		// included (byte-level BPE round-trips).
		if got := tok.Decode(r.TokenIDs[r.PromptLen:], true); got != r.Response {
			t.Errorf("%s/%d: tokens decode to %q, response is %q", r.ID, r.Sample, got, r.Response)
		}
	}
	t.Logf("%+v", st)
}

// sameRecords reports the first difference between two lists of records:
// any field but the old log-probs must be equal, and those within tol.
func sameRecords(a, b []trajectory.Record, tol float64) error {
	if len(a) != len(b) {
		return fmt.Errorf("%d and %d records", len(a), len(b))
	}
	for i := range a {
		x, y := a[i], b[i]
		if len(x.OldLogprobs) != len(y.OldLogprobs) {
			return fmt.Errorf("record %d: %d and %d old log-probs", i, len(x.OldLogprobs), len(y.OldLogprobs))
		}
		for k := range x.OldLogprobs {
			if d := math.Abs(float64(x.OldLogprobs[k] - y.OldLogprobs[k])); d > tol {
				return fmt.Errorf("record %d token %d: old log-probs %v and %v", i, k, x.OldLogprobs[k], y.OldLogprobs[k])
			}
		}
		x.OldLogprobs, y.OldLogprobs = nil, nil
		if !reflect.DeepEqual(x, y) {
			return fmt.Errorf("record %d differs: %q and %q", i, x.Response, y.Response)
		}
	}
	return nil
}

// TestMicroBatch: micro-batches of 1, 2 and 5 trajectories (splitting the
// groups of 3) give the records of one batch of all 12, old log-probs within
// float rounding.
func TestMicroBatch(t *testing.T) {
	tn := setup(t)
	cfg := testConfig(protocol.SearchR1())
	qs := tn.TrainExamples(4)
	all, _, err := Run(context.Background(), tn.pol, tn.ix, qs, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, mb := range []int{1, 2, 5} {
		cfg.MicroBatch = mb
		retr := &countingRetriever{Retriever: tn.ix}
		recs, st, err := Run(context.Background(), tn.pol, retr, qs, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := sameRecords(recs, all, 1e-5); err != nil {
			t.Errorf("micro-batch %d: %v", mb, err)
		}
		// Each micro-batch retrieves on its own: at most one call per turn
		// per micro-batch.
		if n := (len(all) + mb - 1) / mb; retr.calls > n*cfg.MaxTurns || retr.queries != st.Searches {
			t.Errorf("micro-batch %d: %d retrieval calls for %d micro-batches of %d turns", mb, retr.calls, n, cfg.MaxTurns)
		}
	}
	cfg.MicroBatch = -1
	if _, _, err := Run(context.Background(), tn.pol, tn.ix, qs, cfg); err == nil {
		t.Error("micro-batch -1 accepted")
	}
}

// TestMaxContext: with max_context_tokens, a trajectory is the unlimited
// run's trajectory (same seeds) cut at that many tokens, prompt included,
// and ends with "length" when it was cut; one that fits is unchanged. The
// cut lands inside generated turns and inside observations.
func TestMaxContext(t *testing.T) {
	tn := setup(t)
	tok := tn.pol.Tokenizer()
	cfg := testConfig(protocol.SearchR1())
	qs := tn.TrainExamples(4)
	full, _, err := Run(context.Background(), tn.pol, tn.ix, qs, cfg)
	if err != nil {
		t.Fatal(err)
	}
	lengths := make([]int, len(full))
	for i, r := range full {
		lengths[i] = len(r.TokenIDs)
	}
	slices.Sort(lengths)
	// The median length cuts half the trajectories, here inside
	// observations; the second limit lands inside a generated turn.
	limits := []int{lengths[len(lengths)/2]}
	for _, f := range full {
		for k := f.PromptLen + 1; k+1 < len(f.TokenIDs); k++ {
			if f.Mask[k] == trajectory.Generated && f.Mask[k+1] == trajectory.Generated && f.Mask[k-1] == trajectory.Generated {
				limits = append(limits, k+1)
				break
			}
		}
		if len(limits) == 2 {
			break
		}
	}
	cutObs, cutGen := 0, 0
	for _, limit := range limits {
		cfg.MaxContext = limit
		recs, _, err := Run(context.Background(), tn.pol, tn.ix, qs, cfg)
		if err != nil {
			t.Fatal(err)
		}
		checkRecords(t, tok, cfg.Protocol, recs)
		cut := 0
		for i, r := range recs {
			f := full[i]
			if len(f.TokenIDs) < limit {
				if err := sameRecords([]trajectory.Record{r}, []trajectory.Record{f}, 1e-5); err != nil {
					t.Errorf("limit %d: record %d fits but changed: %v", limit, i, err)
				}
				continue
			}
			// A record of exactly limit tokens is full, and ends "length"
			// unless it answered.
			if len(r.TokenIDs) != limit || len(f.TokenIDs) > limit && r.FinishReason != trajectory.FinishLength {
				t.Errorf("limit %d: record %d: %d tokens, finish %q; want %d tokens, length", limit, i, len(r.TokenIDs), r.FinishReason, limit)
				continue
			}
			if !slices.Equal(r.TokenIDs, f.TokenIDs[:limit]) || !slices.Equal(r.Mask, f.Mask[:limit]) {
				t.Errorf("limit %d: record %d is not the unlimited record cut there", limit, i)
			}
			if len(f.TokenIDs) == limit {
				continue
			}
			cut++
			switch r.Mask[limit-1] {
			case trajectory.Observation:
				cutObs++
			case trajectory.Generated:
				cutGen++
			}
		}
		t.Logf("max_context_tokens %d: %d of %d records cut", limit, cut, len(recs))
	}
	if cutObs == 0 || cutGen == 0 {
		t.Errorf("cuts inside observations: %d, inside generated turns: %d; want both", cutObs, cutGen)
	}

	// A prompt at or over the limit generates nothing.
	cfg.MaxContext = 5
	recs, st, err := Run(context.Background(), tn.pol, tn.ix, qs[:1], cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.FinishReason != trajectory.FinishLength || len(r.TokenIDs) != r.PromptLen {
			t.Errorf("a prompt of %d tokens over max_context_tokens 5: finish %q, %d tokens", r.PromptLen, r.FinishReason, len(r.TokenIDs))
		}
	}
	if st.Turns != 0 {
		t.Errorf("%d turns generated for prompts over the limit", st.Turns)
	}
}
