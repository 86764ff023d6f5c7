package train

import (
	"fmt"
	"testing"

	"github.com/igsearch/igsearch/pipeline/qa"
	"github.com/igsearch/igsearch/pipeline/trajectory"
)

// TestPerSource: a merged test file lists its sets one after the other; two
// of each source are kept, in file order, and the limit caps the total.
func TestPerSource(t *testing.T) {
	var qs []qa.Example
	for _, src := range []string{"nq", "nq", "nq", "triviaqa", "popqa", "popqa", "popqa", ""} {
		qs = append(qs, qa.Example{ID: fmt.Sprint(len(qs)), DataSource: src})
	}
	ids := func(xs []qa.Example) string {
		var s string
		for _, x := range xs {
			s += x.ID + " "
		}
		return s
	}
	if got, want := ids(PerSource(qs, 2, 0)), "0 1 3 4 5 7 "; got != want {
		t.Errorf("PerSource(2, 0) = %s, want %s", got, want)
	}
	if got, want := ids(PerSource(qs, 2, 4)), "0 1 3 4 "; got != want {
		t.Errorf("PerSource(2, 4) = %s, want %s", got, want)
	}
}

// TestGroupIndicesDuplicateID: a question drawn twice into one iteration
// (the same id, G = 2) makes two groups, not one of four.
func TestGroupIndicesDuplicateID(t *testing.T) {
	var recs []trajectory.Record
	for _, id := range []string{"q", "q", "r", "r", "q", "q"} {
		recs = append(recs, trajectory.Record{ID: id, Sample: len(recs) % 2})
	}
	if got, want := fmt.Sprint(groupIndices(recs)), "[[0 1] [2 3] [4 5]]"; got != want {
		t.Errorf("groupIndices = %s, want %s", got, want)
	}
}
