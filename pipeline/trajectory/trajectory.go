// Package trajectory is the rollout record: one JSON line per trajectory,
// written by the rollout and read by IG scoring, training and score-ig. It
// also reads the plain logged form {"id", "prompt", "response",
// "golden_answers"}, which is a Record without tokens.
//
// A record's text is Prompt + Response. When it carries tokens, TokenIDs
// cover the same text: the first PromptLen are the prompt, and Mask tells
// for each token who wrote it. All spans are token positions [Start, End)
// in TokenIDs.
package trajectory

import (
	"fmt"

	"github.com/igsearch/igsearch/pipeline/advantage"
	"github.com/igsearch/igsearch/pipeline/ig"
	"github.com/igsearch/igsearch/pipeline/protocol"
)

// TokenKind tells who wrote a token.
type TokenKind int8

// The token kinds of Record.Mask.
const (
	// Prompt tokens come from the data set and the chat template.
	Prompt TokenKind = 0
	// Generated tokens were sampled from the policy; they are trained.
	Generated TokenKind = 1
	// Observation tokens were inserted by the environment (retrieved
	// documents, correction messages); they are never trained.
	Observation TokenKind = 2
)

// Finish reasons of a trajectory.
const (
	// FinishAnswer: the model gave an <answer>.
	FinishAnswer = "answer"
	// FinishMaxTurns: the final answer turn ended without an answer.
	FinishMaxTurns = "max_turns"
	// FinishLength: the response hit its token limit.
	FinishLength = "length"
)

// Span is a half-open range [Start, End) of token positions; Start == End
// is empty.
type Span struct {
	Start int `json:"start"`
	End   int `json:"end"`
}

// Len is the number of tokens in the span.
func (s Span) Len() int { return s.End - s.Start }

// Step holds the token spans of one search step: a search that got an
// observation. A record's steps are in order and match, one to one, the
// steps protocol.Parse finds in its text.
type Step struct {
	// Turn is every token the model generated in the turn that issued the
	// search, from the end of the previous observation (or refine) to
	// "</search>" included.
	Turn Span `json:"turn"`
	// Query is the tokens of the query, between <search> and </search>.
	Query Span `json:"query"`
	// Observation is the tokens the environment inserted for the search.
	Observation Span `json:"observation"`
	// Refine is the model's <refine> block after the observation
	// (AutoRefine), or empty.
	Refine Span `json:"refine"`
	// DocIDs are the retrieved documents' ids, in rank order.
	DocIDs []string `json:"doc_ids,omitempty"`
}

// Record is one trajectory. Only ID, Prompt, Response and GoldenAnswers are
// required (the logged form); the rest is present in rollout records.
type Record struct {
	// ID is the question's id; Sample is the index within its group.
	ID     string `json:"id"`
	Sample int    `json:"sample,omitempty"`
	// GoldenAnswers are the question's gold answers.
	GoldenAnswers []string `json:"golden_answers"`
	DataSource    string   `json:"data_source,omitempty"`
	// Protocol is the --protocol of the rollout ("" in logged input: the
	// reader's protocol applies).
	Protocol string `json:"protocol,omitempty"`
	// Prompt and Response are the text; the IG contexts are built from it.
	Prompt   string `json:"prompt"`
	Response string `json:"response"`
	// TokenIDs are the full sequence: prompt then response.
	TokenIDs []int32 `json:"token_ids,omitempty"`
	// PromptLen is the number of prompt tokens at the start of TokenIDs.
	PromptLen int `json:"prompt_len,omitempty"`
	// Mask is the kind of every token of TokenIDs.
	Mask []TokenKind `json:"mask,omitempty"`
	// OldLogprobs are log π_old(token | before) for every token (0 where
	// Mask is not Generated).
	OldLogprobs []float32 `json:"old_logprobs,omitempty"`
	// Steps are the search steps.
	Steps []Step `json:"steps,omitempty"`
	// Answer is the final answer text ("" if none); FinishReason is one of
	// the Finish constants.
	Answer       string `json:"answer,omitempty"`
	FinishReason string `json:"finish_reason,omitempty"`
	// Reward is the outcome reward, once computed.
	Reward *float64 `json:"reward,omitempty"`
	// IGSteps and IGMean are the IG of the trajectory, once scored (the
	// output row shape of score-ig).
	IGSteps []ig.StepIG `json:"ig_steps,omitzero"`
	IGMean  *float64    `json:"ig_mean,omitempty"`
}

// HasTokens reports whether the record carries tokens (a rollout record)
// rather than text only (a logged trajectory).
func (r *Record) HasTokens() bool { return len(r.TokenIDs) > 0 }

// Validate checks that a record with tokens is consistent: Mask and
// OldLogprobs as long as TokenIDs, PromptLen within it, and every step span
// inside it and ordered. A record without tokens needs golden answers only.
func (r *Record) Validate() error {
	if len(r.GoldenAnswers) == 0 {
		return fmt.Errorf("record %q: no golden_answers", r.ID)
	}
	if !r.HasTokens() {
		return nil
	}
	n := len(r.TokenIDs)
	if len(r.Mask) != n {
		return fmt.Errorf("record %q sample %d: %d mask entries for %d tokens", r.ID, r.Sample, len(r.Mask), n)
	}
	if r.OldLogprobs != nil && len(r.OldLogprobs) != n {
		return fmt.Errorf("record %q sample %d: %d old_logprobs for %d tokens", r.ID, r.Sample, len(r.OldLogprobs), n)
	}
	if r.PromptLen < 0 || r.PromptLen > n {
		return fmt.Errorf("record %q sample %d: prompt_len %d outside %d tokens", r.ID, r.Sample, r.PromptLen, n)
	}
	for i, s := range r.Steps {
		for _, sp := range []Span{s.Turn, s.Query, s.Observation, s.Refine} {
			if sp.Start < 0 || sp.Start > sp.End || sp.End > n {
				return fmt.Errorf("record %q sample %d: step %d: span [%d,%d) outside %d tokens", r.ID, r.Sample, i, sp.Start, sp.End, n)
			}
		}
	}
	return nil
}

// LossMask is 1 on Generated tokens and 0 elsewhere.
func (r *Record) LossMask() []float32 {
	m := make([]float32, len(r.Mask))
	for i, k := range r.Mask {
		if k == Generated {
			m[i] = 1
		}
	}
	return m
}

// AdvantageSpans are the steps' spans for advantage.Tokens: the query, and
// for ig_scope step the turn and the refine block.
func (r *Record) AdvantageSpans() []advantage.StepSpans {
	out := make([]advantage.StepSpans, len(r.Steps))
	for i, s := range r.Steps {
		out[i] = advantage.StepSpans{
			Query:     advantage.Span{Start: s.Query.Start, End: s.Query.End},
			Generated: []advantage.Span{{Start: s.Turn.Start, End: s.Turn.End}, {Start: s.Refine.Start, End: s.Refine.End}},
		}
	}
	return out
}

// Parse parses the record's text into search steps with protocol p (the
// record's own Protocol should be looked up by the caller when set).
func (r *Record) Parse(p protocol.Protocol) protocol.Parsed {
	return protocol.Parse(p, r.Prompt, r.Response)
}

// Logged is the plain logged form of a trajectory.
type Logged struct {
	ID            string   `json:"id"`
	Prompt        string   `json:"prompt"`
	Response      string   `json:"response"`
	GoldenAnswers []string `json:"golden_answers"`
}

// Logged returns the record's plain logged form.
func (r *Record) Logged() Logged {
	return Logged{ID: r.ID, Prompt: r.Prompt, Response: r.Response, GoldenAnswers: r.GoldenAnswers}
}
