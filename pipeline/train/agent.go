package train

import (
	"context"
	"fmt"
	"strings"

	"github.com/igsearch/igsearch/pipeline/policy"
	"github.com/igsearch/igsearch/pipeline/protocol"
	"github.com/igsearch/igsearch/pipeline/qa"
	"github.com/igsearch/igsearch/pipeline/trajectory"
	"github.com/igsearch/igsearch/tokenize"
)

// agentState is one trajectory being rolled out.
type agentState struct {
	rec      trajectory.Record
	row      int
	response strings.Builder
	done     bool
}

// promptText is the question as the policy sees it: the protocol's prompt as
// a user turn in the Qwen2.5 chat format with the assistant's turn opened,
// or the bare prompt for base models.
func promptText(p protocol.Protocol, chat bool, question string) string {
	text := p.Prompt(question)
	if !chat {
		return text
	}
	return tokenize.ChatQwen.Format([]tokenize.Message{{Role: "user", Content: text}}, true)
}

// rollout runs the search agent: group_size samples per question, all
// active trajectories generated as one batch, one batched retrieval between
// turns, observation tokens appended to the KV cache. Turns 0..max_turns−1
// may search; the turn after the last search turn must answer.
func (e *environment) rollout(ctx context.Context, pol *policy.Policy, questions []qa.Example, seed uint64, temperature float64) ([]trajectory.Record, error) {
	rc := e.cfg.Rollout
	group := rc.GroupSize
	var states []*agentState
	var reqs []policy.Request
	for qi, q := range questions {
		prompt := promptText(e.proto, rc.Chat, q.Question)
		ids := e.tok.Encode(prompt)
		for g := 0; g < group; g++ {
			st := &agentState{row: len(states)}
			st.rec = trajectory.Record{
				ID: q.ID, Sample: g, GoldenAnswers: q.GoldenAnswers, DataSource: q.DataSource,
				Protocol: e.proto.Name, Prompt: prompt, PromptLen: len(ids),
				TokenIDs:    append([]int32(nil), ids...),
				Mask:        make([]trajectory.TokenKind, len(ids)),
				OldLogprobs: make([]float32, len(ids)),
			}
			states = append(states, st)
			reqs = append(reqs, policy.Request{Prompt: ids, Seed: seed*1_000_003 + uint64(qi*group+g)})
		}
	}
	b, err := pol.NewBatch(reqs)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	sp := policy.SamplingParams{MaxNewTokens: rc.MaxNewTokens, Temperature: temperature, TopP: rc.TopP, TopK: rc.TopK,
		Stop: e.proto.StopSequences()}
	active := make([]*agentState, len(states))
	copy(active, states)
	for turn := 0; len(active) > 0; turn++ {
		rows := make([]int, len(active))
		for i, st := range active {
			rows[i] = st.row
		}
		comps, err := b.Generate(ctx, rows, sp)
		if err != nil {
			return nil, fmt.Errorf("turn %d: %w", turn, err)
		}
		var next []*agentState
		var queries []string
		var searching []*agentState
		var searchTurns []trajectory.Span
		var queryspans []trajectory.Span
		for i, st := range active {
			c := comps[i]
			start := len(st.rec.TokenIDs)
			st.rec.TokenIDs = append(st.rec.TokenIDs, c.Tokens...)
			for _, lp := range c.LogProbs {
				st.rec.Mask = append(st.rec.Mask, trajectory.Generated)
				st.rec.OldLogprobs = append(st.rec.OldLogprobs, lp)
			}
			text := e.tok.Decode(c.Tokens, true)
			st.response.WriteString(text)
			act := protocol.ParseAction(protocol.CutAtStop(text))
			overBudget := len(st.rec.TokenIDs)-st.rec.PromptLen >= rc.MaxResponse
			switch {
			case act.Kind == protocol.ActionAnswer:
				st.rec.Answer, st.rec.FinishReason = act.Content, trajectory.FinishAnswer
				st.done = true
			case c.Finish == policy.FinishEOS || c.Finish == policy.FinishLength || overBudget:
				st.rec.FinishReason = trajectory.FinishLength
				st.done = true
			case act.Kind == protocol.ActionSearch && turn < rc.MaxTurns:
				queries = append(queries, act.Content)
				searching = append(searching, st)
				searchTurns = append(searchTurns, trajectory.Span{Start: start, End: len(st.rec.TokenIDs)})
				queryspans = append(queryspans, e.querySpan(c.Tokens, start))
				next = append(next, st)
			case act.Kind == protocol.ActionSearch:
				st.rec.FinishReason = trajectory.FinishMaxTurns
				st.done = true
			default: // an invalid action gets Search-R1's correction message
				if turn >= rc.MaxTurns {
					st.rec.FinishReason = trajectory.FinishMaxTurns
					st.done = true
					break
				}
				e.appendObservation(b, st, protocol.CorrectionMessage)
				next = append(next, st)
			}
		}
		if len(queries) > 0 {
			res, err := e.retr.SearchBatch(ctx, queries, e.cfg.Retriever.TopK)
			if err != nil {
				return nil, fmt.Errorf("turn %d: retrieval: %w", turn, err)
			}
			for i, st := range searching {
				docs := make([]protocol.Doc, len(res[i]))
				var ids []string
				for j, h := range res[i] {
					docs[j] = protocol.Doc{ID: h.Doc.ID, Contents: h.Doc.Contents()}
					ids = append(ids, h.Doc.ID)
				}
				obs := e.proto.TruncatedObservation(docs, rc.MaxObsTokens, func(s string) int { return len(e.tok.Encode(s)) })
				start := len(st.rec.TokenIDs)
				if err := e.appendObservation(b, st, obs); err != nil {
					return nil, err
				}
				st.rec.Steps = append(st.rec.Steps, trajectory.Step{
					Turn: searchTurns[i], Query: queryspans[i],
					Observation: trajectory.Span{Start: start, End: len(st.rec.TokenIDs)},
					DocIDs:      ids,
				})
			}
		}
		var drop []int
		for _, st := range active {
			if st.done {
				drop = append(drop, st.row)
			}
		}
		if len(drop) > 0 {
			b.Drop(drop...)
		}
		active = next
	}
	out := make([]trajectory.Record, len(states))
	for i, st := range states {
		st.rec.Response = st.response.String()
		out[i] = st.rec
	}
	return out, nil
}

// appendObservation appends environment text (masked out of the loss) to a
// trajectory and to its row's KV cache.
func (e *environment) appendObservation(b *policy.Batch, st *agentState, text string) error {
	ids := e.tok.Encode(text)
	st.rec.TokenIDs = append(st.rec.TokenIDs, ids...)
	for range ids {
		st.rec.Mask = append(st.rec.Mask, trajectory.Observation)
		st.rec.OldLogprobs = append(st.rec.OldLogprobs, 0)
	}
	st.response.WriteString(text)
	return b.Append([]int{st.row}, [][]int32{ids})
}

// querySpan finds the query's tokens in a generated turn (positions are
// absolute, from offset): the tokens whose decoded text overlaps the text
// between the last <search> and the </search> after it.
func (e *environment) querySpan(tokens []int32, offset int) trajectory.Span {
	full := e.tok.Decode(tokens, true)
	open := strings.LastIndex(full, protocol.SearchOpen)
	if open < 0 {
		return trajectory.Span{Start: offset, End: offset}
	}
	qs := open + len(protocol.SearchOpen)
	closing := strings.Index(full[qs:], protocol.SearchClose)
	if closing < 0 {
		return trajectory.Span{Start: offset, End: offset}
	}
	qe := qs + closing
	// ends[k] is the decoded length of tokens[:k+1].
	start, end := -1, -1
	prev := 0
	for k := range tokens {
		n := len(e.tok.Decode(tokens[:k+1], true))
		if n > qs && prev < qe && strings.TrimSpace(full[max(prev, qs):min(n, qe)]) != "" {
			if start < 0 {
				start = k
			}
			end = k + 1
		}
		prev = n
	}
	if start < 0 {
		return trajectory.Span{Start: offset, End: offset}
	}
	return trajectory.Span{Start: offset + start, End: offset + end}
}
