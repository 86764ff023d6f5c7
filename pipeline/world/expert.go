package world

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
)

// QueryKind labels the quality of an expert search query.
type QueryKind string

// The query kinds of expert trajectories.
const (
	// Precise queries name the step's entity and relation word ("Korvan
	// born"); BM25 ranks the step's gold passage first.
	Precise QueryKind = "precise"
	// Vague queries lack the step's entity: either no name at all ("where
	// was the person born") or, from the second step of a chain on, the
	// question's own entity instead of the bridge entity ("Korvan country").
	Vague QueryKind = "vague"
	// Redundant queries repeat the previous precise query word for word.
	Redundant QueryKind = "redundant"
)

// Expert is one expert trajectory for a train question, in the search-r1
// protocol. Every turn but the last carries a search query; the last carries
// the answer. The observations are not stored: the demo fills them in by
// running each query against the index (see Render).
type Expert struct {
	ID            string   `json:"id"`
	Question      string   `json:"question"`
	GoldenAnswers []string `json:"golden_answers"`
	DataSource    string   `json:"data_source"`
	Turns         []Turn   `json:"turns"`
}

// Turn is one assistant turn: think text, then a query or the answer.
type Turn struct {
	Think string `json:"think"`
	// Query is the search query; empty in the final turn.
	Query string `json:"query,omitempty"`
	// Kind labels Query; empty in the final turn.
	Kind QueryKind `json:"kind,omitempty"`
	// Step is the index of the chain step this query serves (the question's
	// Metadata.Chain); the final turn has Step = len(chain).
	Step int `json:"step"`
	// DocID is the gold passage of Step; empty in the final turn.
	DocID string `json:"doc_id,omitempty"`
	// Answer is the final answer; set in the final turn only.
	Answer string `json:"answer,omitempty"`
}

// Render writes the trajectory as the response text of the search-r1
// protocol:
//
//	<think> T </think>\n<search> Q </search>OBS<think> T </think>\n<answer> A </answer>
//
// where OBS is observe(Q): the environment's observation for the query,
// conventionally "\n\n<information>Doc 1(Title: ...) ...\n</information>\n\n".
func (x Expert) Render(observe func(query string) (string, error)) (string, error) {
	var b strings.Builder
	for _, t := range x.Turns {
		b.WriteString("<think> " + t.Think + " </think>\n")
		if t.Query == "" {
			b.WriteString("<answer> " + t.Answer + " </answer>")
			break
		}
		b.WriteString("<search> " + t.Query + " </search>")
		obs, err := observe(t.Query)
		if err != nil {
			return "", fmt.Errorf("expert %s: query %q: %w", x.ID, t.Query, err)
		}
		b.WriteString(obs)
	}
	return b.String(), nil
}

// makeExpert writes one trajectory per train question. Every chain step gets
// a precise query; vague queries (before a precise one) and redundant repeats
// (after it) are then spread at random over all steps of the split, in the
// numbers that make their shares VagueFrac and RedundantFrac of all queries,
// as far as MaxSearches leaves room.
func (w *World) makeExpert(rng *rand.Rand) {
	cfg := w.Config
	type slot struct{ q, s int }
	var slots []slot
	room := make([]int, len(w.Train))
	for qi, q := range w.Train {
		room[qi] = cfg.MaxSearches - len(q.Metadata.Chain)
		for s := range q.Metadata.Chain {
			slots = append(slots, slot{qi, s})
		}
	}
	precise := 1 - cfg.VagueFrac - cfg.RedundantFrac
	nVague := int(math.Round(float64(len(slots)) * cfg.VagueFrac / precise))
	nRedundant := int(math.Round(float64(len(slots)) * cfg.RedundantFrac / precise))
	vague := map[slot]bool{}
	redundant := map[slot]bool{}
	spread := func(n int, mark map[slot]bool) {
		for _, i := range rng.Perm(len(slots)) {
			if n == 0 {
				return
			}
			if s := slots[i]; room[s.q] > 0 && !mark[s] {
				mark[s] = true
				room[s.q]--
				n--
			}
		}
	}
	spread(nVague, vague)
	spread(nRedundant, redundant)

	w.Expert = make([]Expert, len(w.Train))
	for qi, q := range w.Train {
		chain := q.Metadata.Chain
		answer := q.GoldenAnswers[0]
		x := Expert{ID: q.ID, Question: q.Question, GoldenAnswers: q.GoldenAnswers, DataSource: q.DataSource}
		need := func(i int) string { return fmt.Sprintf(relations[chain[i].Relation].need, chain[i].Entity) }
		think := need(0)
		conclusion := "So the answer is " + answer + "."
		if q.DataSource == Comparison {
			t := comparisonTemplateFor(chain[0].Relation)
			think = fmt.Sprintf(t.need, chain[0].Entity, chain[1].Entity)
			conclusion = fmt.Sprintf(t.conclude, answer)
		}
		for i, st := range chain {
			if vague[slot{qi, i}] {
				vq := relations[st.Relation].vague
				if q.DataSource != Comparison && i > 0 && rng.IntN(2) == 0 {
					vq = fmt.Sprintf(relations[st.Relation].query, chain[0].Entity)
				}
				x.Turns = append(x.Turns, Turn{Think: think, Query: vq, Kind: Vague, Step: i, DocID: st.DocID})
				think = "The results do not answer this. I need a more precise search."
			}
			x.Turns = append(x.Turns, Turn{Think: think, Query: st.Query, Kind: Precise, Step: i, DocID: st.DocID})
			fact := fmt.Sprintf(relations[st.Relation].fact, st.Entity, st.Value)
			think = fact
			if redundant[slot{qi, i}] {
				x.Turns = append(x.Turns, Turn{Think: fact + " Let me search again to make sure.", Query: st.Query, Kind: Redundant, Step: i, DocID: st.DocID})
				think = "The results are the same."
			}
			if i+1 < len(chain) {
				think += " Now " + need(i+1)
			} else {
				think += " " + conclusion
			}
		}
		x.Turns = append(x.Turns, Turn{Think: think, Step: len(chain), Answer: answer})
		w.Expert[qi] = x
	}
}
