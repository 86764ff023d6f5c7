package demo

import (
	"testing"

	"github.com/igsearch/igsearch/pipeline/world"
)

// TestQueryKindsMatchExpertLabels classifies every query of the expert
// trajectories, whose kinds the world generator labelled when it wrote
// them, and checks that the classifier, which sees only the text, gives the
// generator's label.
func TestQueryKindsMatchExpertLabels(t *testing.T) {
	wc := Reduced().World
	w, err := world.Generate(wc)
	if err != nil {
		t.Fatal(err)
	}
	c := newQueryClassifier(w)
	counts := map[string]int{}
	for _, x := range w.Expert {
		var earlier []string
		for _, turn := range x.Turns {
			if turn.Query == "" {
				continue
			}
			got, err := c.kind(x.ID, turn.Query, earlier)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(turn.Kind) {
				t.Errorf("%s %q: classified %s, labelled %s", x.ID, turn.Query, got, turn.Kind)
			}
			counts[got]++
			earlier = append(earlier, turn.Query)
		}
	}
	for _, k := range []string{QueryPrecise, QueryVague, QueryRedundant} {
		if counts[k] == 0 {
			t.Errorf("no %s queries among the expert's: the check saw none of that kind", k)
		}
	}
	// A name outside the question's chain is off-chain.
	q := w.Train[0]
	chain := map[string]bool{}
	for _, s := range q.Metadata.Chain {
		chain[s.Entity] = true
	}
	for _, e := range w.Entities {
		if !chain[e.Name] {
			if got, _ := c.kind(q.ID, e.Name+" born", nil); got != QueryOffChain {
				t.Errorf("%q for %s: %s, want %s", e.Name+" born", q.ID, got, QueryOffChain)
			}
			break
		}
	}
	if _, err := c.kind("no-such-question", "x", nil); err == nil {
		t.Error("a question outside the world: no error")
	}
	t.Logf("expert queries by kind: %v", counts)
}
