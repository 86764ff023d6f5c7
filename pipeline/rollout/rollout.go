// Package rollout is the search agent of IG-Search: it samples G
// trajectories per question from a policy, all active trajectories in one
// batch, and runs one batched retrieval between turns, appending the
// observations to the policy's KV cache. Each trajectory becomes a
// trajectory.Record whose step spans match protocol.Parse of its text one
// to one.
//
// A turn is one Generate call that stops at "</search>" or "</answer>".
// Turns 0..MaxTurns−1 may search; an invalid turn (neither a complete search
// nor a complete answer, also when it ended at EOS or at MaxNewTokens, as in
// Search-R1) gets Search-R1's correction message and uses up a turn. After
// the last search turn comes one final answer turn, whose search is not
// answered.
//
// Lengths, as Search-R1 (search_r1/llm_agent/generation.py) defines them:
// MaxNewTokens caps each turn's generation (its max_response_length, 500),
// MaxObsTokens each observation (max_obs_length), and MaxContext the prompt
// and response together (max_prompt_length, 4096, the rolling context). Where
// Search-R1 drops the oldest tokens of a longer context and goes on, a
// trajectory here ends at MaxContext tokens (trajectory.FinishLength), cut
// there: the KV cache cannot drop its head, and a record must be what the
// policy saw. MaxResponse caps the response alone.
//
// Rows run in micro-batches of MicroBatch trajectories (the G samples of a
// question may be split), one after the other, each with its own KV caches;
// since every trajectory samples from its own seeded generator, the records
// do not depend on MicroBatch.
package rollout

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/igsearch/igsearch/index"
	"github.com/igsearch/igsearch/pipeline/protocol"
	"github.com/igsearch/igsearch/pipeline/qa"
	"github.com/igsearch/igsearch/pipeline/reward"
	"github.com/igsearch/igsearch/pipeline/trajectory"
	"github.com/igsearch/igsearch/policy"
	"github.com/igsearch/igsearch/tokenize"
)

// Retriever answers a batch of queries with their top k passages. The
// in-process *index.Index and the HTTP client *index.RemoteRetriever
// (--retriever URL) both implement it.
type Retriever = index.Retriever

// Config holds the rollout settings, named as their flags.
type Config struct {
	// Protocol is the agent protocol (--protocol search-r1|autorefine).
	Protocol protocol.Protocol
	// Chat wraps the prompt as a user turn in the Qwen2.5 chat format with
	// the assistant's turn opened (--chat; false is --no-chat).
	Chat bool
	// GroupSize is G, the trajectories per question (--group-size).
	GroupSize int
	// MaxTurns is the number of turns that may search (--max-turns); one
	// final answer turn follows.
	MaxTurns int
	// TopK is the passages retrieved per search (--topk).
	TopK int
	// MaxObsTokens truncates each observation's documents to this many
	// tokens, tags kept (--max-obs-tokens; 0: no limit).
	MaxObsTokens int
	// MaxNewTokens bounds the tokens generated per turn (--max-turn-tokens;
	// Search-R1's max_response_length).
	MaxNewTokens int
	// MaxContext bounds the prompt and response tokens together
	// (--max-context-tokens; Search-R1's max_prompt_length; 0: no limit). A
	// trajectory that reaches it is cut there and ends with
	// trajectory.FinishLength.
	MaxContext int
	// MicroBatch is the number of trajectories generated together
	// (--rollout-micro-batch; 0: all). It bounds the KV caches held at once:
	// about MicroBatch × (prompt + response) tokens × layers × 2 × KV heads
	// × head dim floats.
	MicroBatch int
	// MaxResponse bounds a trajectory's response tokens, generated and
	// observation (--max-response; 0: no limit). A trajectory that reaches
	// it ends with trajectory.FinishLength.
	MaxResponse int
	// Temperature, TopP and SampleTopK are the sampling parameters;
	// Temperature 0 is greedy.
	Temperature float64
	TopP        float64
	SampleTopK  int
	// Seed seeds every trajectory's sampling: trajectory (question q, sample
	// g) uses its own generator seeded from (Seed, q, g), so a rollout is
	// reproducible and does not depend on the batch it runs in.
	Seed uint64
}

// DefaultConfig returns the defaults of the flags: search-r1 in the chat
// format, G = 5, 4 search turns, top-3, 512 new tokens per turn, 512
// observation tokens, temperature 1.
func DefaultConfig() Config {
	return Config{
		Protocol: protocol.SearchR1(), Chat: true, GroupSize: 5, MaxTurns: 4, TopK: 3,
		MaxObsTokens: 512, MaxNewTokens: 512, MaxResponse: 4096, Temperature: 1,
	}
}

// Stats describes one rollout.
type Stats struct {
	// Trajectories is the number of records; Turns the Generate calls.
	Trajectories int `json:"trajectories"`
	Turns        int `json:"turns"`
	// Searches counts answered searches; Invalid counts corrected turns.
	Searches int `json:"searches"`
	Invalid  int `json:"invalid"`
	// GeneratedTokens and ObservationTokens sum over trajectories.
	GeneratedTokens   int `json:"generated_tokens"`
	ObservationTokens int `json:"observation_tokens"`
	// Finish counts the records per finish reason.
	Finish map[string]int `json:"finish"`
	// GenerateTime and RetrieveTime are wall-clock totals.
	GenerateTime time.Duration `json:"generate_ns"`
	RetrieveTime time.Duration `json:"retrieve_ns"`
}

// PromptText is the question as the policy sees it: the protocol's prompt,
// as a user turn in the Qwen2.5 chat format with the assistant's turn
// opened when chat, else bare.
func PromptText(p protocol.Protocol, chat bool, question string) string {
	text := p.Prompt(question)
	if !chat {
		return text
	}
	return tokenize.ChatQwen.Format([]tokenize.Message{{Role: "user", Content: text}}, true)
}

// SampleSeed is the sampling seed of sample g of question q in a rollout
// seeded with seed.
func SampleSeed(seed uint64, q, g int) uint64 {
	return seed*1_000_003 + uint64(q)*1_009 + uint64(g) + 1
}

// agent is one trajectory being rolled out.
type agent struct {
	rec  trajectory.Record
	row  int
	resp strings.Builder
	// lo and hi are, per token of rec.TokenIDs after the prompt, the byte
	// range of the response that the token accounts for, white space
	// trimmed (lo == hi for a token that decodes to white space or
	// nothing). Tokens of environment text all get the whole text's range.
	lo, hi []int
	// docs maps the byte offset in the response of an observation's text to
	// the ids of its documents.
	docs map[int][]string
	done bool
}

// Run rolls out cfg.GroupSize trajectories per question with pol, answering
// searches with retr, and returns the records in question order (the G
// samples of question 0 first). pol must have a tokenizer. Observation
// tokens carry old log-prob 0 and mask trajectory.Observation.
func Run(ctx context.Context, pol *policy.Policy, retr Retriever, questions []qa.Example, cfg Config) ([]trajectory.Record, Stats, error) {
	st := Stats{Finish: map[string]int{}}
	tok := pol.Tokenizer()
	switch {
	case tok == nil:
		return nil, st, fmt.Errorf("rollout: the policy has no tokenizer")
	case cfg.GroupSize <= 0:
		return nil, st, fmt.Errorf("rollout: group size %d must be positive", cfg.GroupSize)
	case cfg.MaxNewTokens <= 0:
		return nil, st, fmt.Errorf("rollout: max new tokens %d must be positive", cfg.MaxNewTokens)
	case cfg.MaxTurns < 0:
		return nil, st, fmt.Errorf("rollout: max turns %d must be ≥ 0", cfg.MaxTurns)
	case cfg.MaxContext < 0 || cfg.MicroBatch < 0:
		return nil, st, fmt.Errorf("rollout: max context %d and micro-batch %d must be ≥ 0 (0: no limit)", cfg.MaxContext, cfg.MicroBatch)
	case cfg.Protocol.Name == "":
		return nil, st, fmt.Errorf("rollout: no protocol")
	case retr == nil && cfg.MaxTurns > 0:
		return nil, st, fmt.Errorf("rollout: no retriever for %d search turns", cfg.MaxTurns)
	}
	if len(questions) == 0 {
		return nil, st, nil
	}
	var agents []*agent
	var reqs []policy.Request
	for qi, q := range questions {
		prompt := PromptText(cfg.Protocol, cfg.Chat, q.Question)
		ids := tok.Encode(prompt)
		for g := range cfg.GroupSize {
			a := &agent{row: len(agents), docs: map[int][]string{}}
			a.rec = trajectory.Record{
				ID: q.ID, Sample: g, GoldenAnswers: q.GoldenAnswers, DataSource: q.DataSource,
				Protocol: cfg.Protocol.Name, Prompt: prompt, PromptLen: len(ids),
				TokenIDs:    append([]int32(nil), ids...),
				Mask:        make([]trajectory.TokenKind, len(ids)),
				OldLogprobs: make([]float32, len(ids)),
			}
			agents = append(agents, a)
			reqs = append(reqs, policy.Request{Prompt: ids, Seed: SampleSeed(cfg.Seed, qi, g)})
		}
	}
	step := cfg.MicroBatch
	if step <= 0 {
		step = len(agents)
	}
	for lo := 0; lo < len(agents); lo += step {
		hi := min(lo+step, len(agents))
		if err := runRows(ctx, pol, retr, agents[lo:hi], reqs[lo:hi], cfg, &st); err != nil {
			return nil, st, err
		}
	}
	out := make([]trajectory.Record, len(agents))
	st.ObservationTokens = 0
	for i, a := range agents {
		a.rec.Response = a.resp.String()
		if a.rec.FinishReason == trajectory.FinishAnswer {
			// The answer the outcome reward sees: the last <answer>…</answer>
			// of the response (qa_em.py), which may differ from the turn's
			// leftmost one when earlier turns left an <answer> open.
			a.rec.Answer, _ = reward.ExtractAnswer(a.rec.Response)
		}
		a.rec.Steps = a.steps(cfg.Protocol)
		for _, k := range a.rec.Mask {
			if k == trajectory.Observation {
				st.ObservationTokens++
			}
		}
		st.Finish[a.rec.FinishReason]++
		out[i] = a.rec
	}
	st.Trajectories = len(out)
	return out, st, nil
}

// runRows rolls out one micro-batch of agents (reqs are their requests) in
// one policy.Batch, turn by turn, until every agent has finished.
func runRows(ctx context.Context, pol *policy.Policy, retr Retriever, agents []*agent, reqs []policy.Request, cfg Config, st *Stats) error {
	tok := pol.Tokenizer()
	for i, a := range agents {
		a.row = i
	}
	b, err := pol.NewBatch(reqs)
	if err != nil {
		return fmt.Errorf("rollout: %w", err)
	}
	defer b.Close()
	sp := policy.SamplingParams{MaxNewTokens: cfg.MaxNewTokens, Temperature: cfg.Temperature,
		TopP: cfg.TopP, TopK: cfg.SampleTopK, Stop: cfg.Protocol.StopSequences()}
	count := func(s string) int { return len(tok.Encode(s)) }

	var active []*agent
	for _, a := range agents {
		if a.full(cfg) {
			// The prompt alone fills the context: nothing to generate.
			a.finish(trajectory.FinishLength)
			continue
		}
		active = append(active, a)
	}
	for turn := 0; len(active) > 0; turn++ {
		rows := make([]int, len(active))
		for i, a := range active {
			rows[i] = a.row
		}
		t0 := time.Now()
		comps, err := b.Generate(ctx, rows, sp)
		st.GenerateTime += time.Since(t0)
		if err != nil {
			return fmt.Errorf("rollout: turn %d: %w", turn, err)
		}
		st.Turns++
		var next, searching []*agent
		var queries []string
		for i, a := range active {
			c := a.fit(tok, comps[i], cfg)
			a.addGenerated(tok, c)
			st.GeneratedTokens += len(c.Tokens)
			act := protocol.ParseAction(protocol.CutAtStop(c.Text))
			over := a.full(cfg)
			switch {
			case act.Kind == protocol.ActionAnswer:
				a.finish(trajectory.FinishAnswer)
			case over:
				a.finish(trajectory.FinishLength)
			case turn >= cfg.MaxTurns:
				a.finish(trajectory.FinishMaxTurns)
			case act.Kind == protocol.ActionSearch:
				queries = append(queries, act.Content)
				searching = append(searching, a)
				next = append(next, a)
			default:
				st.Invalid++
				if err := a.addObservation(tok, b, protocol.CorrectionMessage, nil, cfg); err != nil {
					return err
				}
				next = append(next, a)
			}
		}
		if len(queries) > 0 {
			t0 := time.Now()
			res, err := retr.SearchBatch(ctx, queries, cfg.TopK)
			st.RetrieveTime += time.Since(t0)
			if err != nil {
				return fmt.Errorf("rollout: turn %d: retrieval of %d queries: %w", turn, len(queries), err)
			}
			if len(res) != len(queries) {
				return fmt.Errorf("rollout: turn %d: retriever answered %d of %d queries", turn, len(res), len(queries))
			}
			for i, a := range searching {
				docs := make([]protocol.Doc, len(res[i]))
				ids := make([]string, len(res[i]))
				for j, h := range res[i] {
					docs[j] = protocol.Doc{ID: h.Doc.ID, Contents: h.Doc.Contents()}
					ids[j] = h.Doc.ID
				}
				obs := cfg.Protocol.TruncatedObservation(docs, cfg.MaxObsTokens, count)
				if err := a.addObservation(tok, b, obs, ids, cfg); err != nil {
					return err
				}
				st.Searches++
			}
		}
		var drop []int
		var still []*agent
		for _, a := range next {
			if a.full(cfg) {
				a.finish(trajectory.FinishLength)
				continue
			}
			still = append(still, a)
		}
		for _, a := range active {
			if a.done {
				drop = append(drop, a.row)
			}
		}
		b.Drop(drop...)
		active = still
	}
	return nil
}

// full reports whether a's record has reached MaxResponse response tokens or
// MaxContext tokens in all.
func (a *agent) full(cfg Config) bool {
	n := len(a.rec.TokenIDs)
	return cfg.MaxResponse > 0 && n-a.rec.PromptLen >= cfg.MaxResponse || cfg.MaxContext > 0 && n >= cfg.MaxContext
}

// fit cuts a turn's completion to the room MaxContext leaves in a's record:
// the tokens a per-row cap would have produced, as each row samples from its
// own generator. The text is decoded anew from the kept tokens.
func (a *agent) fit(tok *tokenize.Tokenizer, c policy.Completion, cfg Config) policy.Completion {
	room := cfg.MaxContext - len(a.rec.TokenIDs)
	if cfg.MaxContext <= 0 || len(c.Tokens) <= room {
		return c
	}
	room = max(room, 0)
	c.Tokens, c.LogProbs = c.Tokens[:room], c.LogProbs[:room]
	c.Text = tok.Decode(c.Tokens, true)
	c.Finish, c.Stop = policy.FinishLength, ""
	return c
}

func (a *agent) finish(reason string) {
	a.rec.FinishReason = reason
	a.done = true
}

// addGenerated appends a turn's tokens, their old log-probs and their text.
// The text is the streaming decode of the tokens, special tokens skipped,
// so that each token's bytes are known.
func (a *agent) addGenerated(tok *tokenize.Tokenizer, c policy.Completion) {
	d := tok.NewDecoder(true)
	for i, id := range c.Tokens {
		piece := d.Step(id)
		if i == len(c.Tokens)-1 {
			piece += d.Flush()
		}
		a.addText(piece, 1)
		a.rec.TokenIDs = append(a.rec.TokenIDs, id)
		a.rec.Mask = append(a.rec.Mask, trajectory.Generated)
		a.rec.OldLogprobs = append(a.rec.OldLogprobs, c.LogProbs[i])
	}
}

// addText appends text to the response as the bytes of n tokens; the
// first gets the text's trimmed range, the others share it.
func (a *agent) addText(text string, n int) {
	start := a.resp.Len()
	a.resp.WriteString(text)
	lo := start + len(text) - len(strings.TrimLeftFunc(text, unicode.IsSpace))
	hi := start + len(strings.TrimRightFunc(text, unicode.IsSpace))
	if hi < lo {
		lo, hi = start, start
	}
	for range n {
		a.lo = append(a.lo, lo)
		a.hi = append(a.hi, hi)
	}
}

// addObservation appends environment text (an observation or the
// correction message) to the record and queues its tokens on the row.
func (a *agent) addObservation(tok *tokenize.Tokenizer, b *policy.Batch, text string, docIDs []string, cfg Config) error {
	ids := tok.Encode(text)
	if room := cfg.MaxContext - len(a.rec.TokenIDs); cfg.MaxContext > 0 && len(ids) > room {
		// The context ends inside the observation: keep what fits (the
		// trajectory then ends, full), with the text those tokens decode to.
		ids = ids[:max(room, 0)]
		text = tok.Decode(ids, false)
	}
	if docIDs != nil {
		a.docs[a.resp.Len()] = docIDs
	}
	a.addText(text, len(ids))
	a.rec.TokenIDs = append(a.rec.TokenIDs, ids...)
	for range ids {
		a.rec.Mask = append(a.rec.Mask, trajectory.Observation)
		a.rec.OldLogprobs = append(a.rec.OldLogprobs, 0)
	}
	if err := b.Append([]int{a.row}, [][]int32{ids}); err != nil {
		return fmt.Errorf("rollout: record %q sample %d: %w", a.rec.ID, a.rec.Sample, err)
	}
	return nil
}

// tokens returns the token span (absolute positions) of the response tokens
// whose trimmed bytes overlap [start, end), or an empty span at the first
// token starting at or after start when none does.
func (a *agent) tokens(start, end int) trajectory.Span {
	first, last := -1, -1
	for k := range a.lo {
		if a.lo[k] < a.hi[k] && a.lo[k] < end && a.hi[k] > start {
			if first < 0 {
				first = k
			}
			last = k
		}
	}
	off := a.rec.PromptLen
	if first < 0 {
		k := 0
		for k < len(a.lo) && a.lo[k] < start {
			k++
		}
		return trajectory.Span{Start: off + k, End: off + k}
	}
	return trajectory.Span{Start: off + first, End: off + last + 1}
}

// steps derives the record's step spans from protocol.Parse of its text,
// so that the two match one to one whatever tags the model wrote.
func (a *agent) steps(p protocol.Protocol) []trajectory.Step {
	parsed := protocol.Parse(p, a.rec.Prompt, a.resp.String())
	out := make([]trajectory.Step, 0, len(parsed.Steps))
	prevEnd := a.rec.PromptLen
	for _, s := range parsed.Steps {
		var st trajectory.Step
		st.Observation = a.tokens(s.Obs.Start, s.Obs.End)
		// An observation the environment wrote is its whole token run.
		for st.Observation.Start > prevEnd && a.rec.Mask[st.Observation.Start-1] == trajectory.Observation &&
			a.rec.Mask[st.Observation.Start] == trajectory.Observation {
			st.Observation.Start--
		}
		for st.Observation.End < len(a.rec.Mask) && st.Observation.End > st.Observation.Start &&
			a.rec.Mask[st.Observation.End] == trajectory.Observation && a.rec.Mask[st.Observation.End-1] == trajectory.Observation {
			st.Observation.End++
		}
		if s.Search.Ok() {
			q0 := s.Search.Start + len(protocol.SearchOpen)
			q1 := s.Search.End - len(protocol.SearchClose)
			st.Query = a.tokens(q0, q1)
			if st.Query.Len() == 0 {
				st.Query = a.tokens(q0, q0)
			}
			end := a.tokens(s.Search.Start, s.Search.End).End
			start := end
			for start > prevEnd && a.rec.Mask[start-1] == trajectory.Generated {
				start--
			}
			st.Turn = trajectory.Span{Start: start, End: end}
		} else {
			st.Query = trajectory.Span{Start: st.Observation.Start, End: st.Observation.Start}
			st.Turn = st.Query
		}
		st.Refine = trajectory.Span{Start: st.Observation.End, End: st.Observation.End}
		if s.Refine.Ok() {
			st.Refine = a.tokens(s.Refine.Start, s.Refine.End)
		}
		if ids, ok := a.docs[obsTextStart(a.resp.String(), s.Obs.Start)]; ok {
			st.DocIDs = ids
		}
		prevEnd = max(st.Observation.End, st.Refine.End)
		out = append(out, st)
	}
	return out
}

// obsTextStart is where the environment's observation text that holds the
// block at blockStart begins: the "\n\n" before the tag.
func obsTextStart(resp string, blockStart int) int {
	if blockStart >= 2 && resp[blockStart-2:blockStart] == "\n\n" {
		return blockStart - 2
	}
	return blockStart
}
