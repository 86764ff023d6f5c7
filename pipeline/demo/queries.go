package demo

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/igsearch/igsearch/pipeline/protocol"
	"github.com/igsearch/igsearch/pipeline/train"
	"github.com/igsearch/igsearch/pipeline/trajectory"
	"github.com/igsearch/igsearch/pipeline/world"
)

// The kinds of query a policy writes, as the world can tell them apart.
// Precise, vague and redundant are the expert's kinds (world.QueryKind);
// off-chain is the policy's own failure: a name, but not one the question
// is about.
const (
	QueryPrecise   = string(world.Precise)
	QueryVague     = string(world.Vague)
	QueryRedundant = string(world.Redundant)
	QueryOffChain  = "off-chain"
)

// QueryKinds lists the kinds in the order the summary prints them.
var QueryKinds = []string{QueryPrecise, QueryVague, QueryRedundant, QueryOffChain}

// queryClassifier tells the kind of a query from the world's entity names
// and each question's gold chain.
type queryClassifier struct {
	names  map[string]bool       // every entity name
	chains map[string]chainWords // question id → its chain
}

// chainWords are a question's chain: its entities' names, and its steps'
// precise queries, word for word.
type chainWords struct {
	entities map[string]bool
	precise  map[string]bool
}

func newQueryClassifier(w *world.World) *queryClassifier {
	c := &queryClassifier{names: map[string]bool{}, chains: map[string]chainWords{}}
	for _, e := range w.Entities {
		c.names[e.Name] = true
	}
	for _, split := range [][]world.Question{w.Train, w.Dev, w.Test} {
		for _, q := range split {
			ch := chainWords{entities: map[string]bool{}, precise: map[string]bool{}}
			for _, s := range q.Metadata.Chain {
				ch.entities[s.Entity] = true
				ch.precise[wordsOf(s.Query)] = true
			}
			c.chains[q.ID] = ch
		}
	}
	return c
}

// wordsOf is text as the world's tokenizer splits it, joined by spaces.
func wordsOf(text string) string { return strings.Join(world.PreTokenize(text), " ") }

// kind classifies query, written for question id after the queries in
// earlier (the same trajectory's), with the expert's definitions
// (world.QueryKind): vague if it names no entity; redundant if it repeats
// an earlier query word for word; precise if it is one of the chain's
// steps' queries; vague too if it names a chain entity in another way (the
// question's entity with a later step's relation); off-chain if it names
// only entities the question is not about.
func (c *queryClassifier) kind(id, query string, earlier []string) (string, error) {
	chain, ok := c.chains[id]
	if !ok {
		return "", fmt.Errorf("question %q is not in the world", id)
	}
	words := world.PreTokenize(query)
	named, onChain := false, false
	for _, w := range words {
		named = named || c.names[w]
		onChain = onChain || chain.entities[w]
	}
	norm := strings.Join(words, " ")
	switch {
	case !named:
		return QueryVague, nil
	case slices.ContainsFunc(earlier, func(e string) bool { return wordsOf(e) == norm }):
		return QueryRedundant, nil
	case chain.precise[norm]:
		return QueryPrecise, nil
	case onChain:
		return QueryVague, nil
	}
	return QueryOffChain, nil
}

// queryMix counts the kinds of the queries in every iteration's rollouts of
// the RL run under runDir, one map per iteration in order.
func (c *queryClassifier) queryMix(runDir string, proto protocol.Protocol) ([]map[string]int, error) {
	var out []map[string]int
	for iter := 0; ; iter++ {
		path := filepath.Join(runDir, train.RolloutsDir, fmt.Sprintf("iter-%05d.jsonl", iter))
		f, err := os.Open(path)
		if errors.Is(err, os.ErrNotExist) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		counts, err := c.countFile(f, path, proto)
		f.Close()
		if err != nil {
			return nil, err
		}
		out = append(out, counts)
	}
}

func (c *queryClassifier) countFile(f io.Reader, path string, proto protocol.Protocol) (map[string]int, error) {
	counts := map[string]int{}
	r := trajectory.NewReader(f, path)
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return counts, nil
		}
		if err != nil {
			return nil, err
		}
		var earlier []string
		for _, s := range rec.Parse(proto).Steps {
			k, err := c.kind(rec.ID, s.Query, earlier)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %w", path, r.Line(), err)
			}
			counts[k]++
			earlier = append(earlier, s.Query)
		}
	}
}

// QueryShares turns counts into fractions of all the queries counted.
func QueryShares(counts []map[string]int) map[string]float64 {
	total := 0
	sum := map[string]int{}
	for _, m := range counts {
		for k, n := range m {
			sum[k] += n
			total += n
		}
	}
	out := map[string]float64{}
	for _, k := range QueryKinds {
		if total > 0 {
			out[k] = float64(sum[k]) / float64(total)
		}
	}
	return out
}
