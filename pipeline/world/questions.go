package world

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
)

// The question types, written as the FlashRAG "data_source" field.
const (
	SingleHop  = "single-hop"
	TwoHop     = "2-hop"
	ThreeHop   = "3-hop"
	Comparison = "comparison"
)

// Sources lists the question types in report order.
var Sources = []string{SingleHop, TwoHop, ThreeHop, Comparison}

// Question is one FlashRAG question. Metadata.Chain is its gold chain.
type Question struct {
	ID            string       `json:"id"`
	Question      string       `json:"question"`
	GoldenAnswers []string     `json:"golden_answers"`
	DataSource    string       `json:"data_source"`
	Metadata      QuestionMeta `json:"metadata"`
}

// QuestionMeta carries what tests and the demo need to check retrieval.
type QuestionMeta struct {
	// Chain lists the lookups the question needs, in order. For a chain
	// question step i+1's Entity is step i's Value and the last Value is the
	// answer; for a comparison the two steps are independent lookups of the
	// two entities' years.
	Chain []Step `json:"chain"`
	// GoldDocs is the doc id of every step, in chain order.
	GoldDocs []string `json:"gold_docs"`
}

// Step is one lookup: the relation of an entity, the passage that states it
// and the precise query that retrieves that passage.
type Step struct {
	Entity   string     `json:"entity"`
	EntityID int        `json:"entity_id"`
	Type     EntityType `json:"type"`
	Relation Relation   `json:"relation"`
	Value    string     `json:"value"`
	DocID    string     `json:"doc_id"`
	Query    string     `json:"query"`
}

// relInfo is how the templates speak about a relation. Each format takes the
// subject's name; fact also takes the value.
type relInfo struct {
	subject EntityType
	query   string // precise query: entity name + relation word
	need    string // think: what to look up next
	fact    string // think: the fact once read
	vague   string // a query with no entity name
}

var relations = map[Relation]relInfo{
	BornIn:          {Person, "%s born", "I need to find where %s was born.", "%s was born in %s.", "where was the person born"},
	BirthYear:       {Person, "%s born", "I need to find when %s was born.", "%s was born in %s.", "when was the person born"},
	LocatedIn:       {City, "%s country", "I need to find which country %s is in.", "%s is a city in %s.", "which country is the city in"},
	CapitalOf:       {Country, "%s capital", "I need to find the capital of %s.", "The capital of %s is %s.", "what is the capital of the country"},
	FoundedBy:       {Organisation, "%s founded", "I need to find who founded %s.", "%s was founded by %s.", "who founded the company"},
	FoundingYear:    {Organisation, "%s founded", "I need to find when %s was founded.", "%s was founded in %s.", "when was the company founded"},
	HeadquarteredIn: {Organisation, "%s headquarters", "I need to find where the headquarters of %s are.", "The headquarters of %s are in %s.", "where are the headquarters"},
	AuthorOf:        {Work, "%s author", "I need to find who wrote %s.", "%s was written by %s.", "who wrote the book"},
	PublicationYear: {Work, "%s published", "I need to find when %s was published.", "%s was published in %s.", "when was the book published"},
}

// chainTemplate is a question that walks path from a head entity.
type chainTemplate struct {
	source string
	head   EntityType
	path   []Relation
	text   string // takes the head's name
}

var chainTemplates = []chainTemplate{
	{SingleHop, Person, []Relation{BornIn}, "Where was %s born?"},
	{SingleHop, Person, []Relation{BirthYear}, "When was %s born?"},
	{SingleHop, Work, []Relation{AuthorOf}, "Who wrote %s?"},
	{SingleHop, Work, []Relation{PublicationYear}, "When was %s published?"},
	{SingleHop, Organisation, []Relation{FoundedBy}, "Who founded %s?"},
	{SingleHop, Organisation, []Relation{FoundingYear}, "When was %s founded?"},
	{SingleHop, Organisation, []Relation{HeadquarteredIn}, "Where are the headquarters of %s?"},
	{SingleHop, City, []Relation{LocatedIn}, "In which country is %s?"},
	{SingleHop, Country, []Relation{CapitalOf}, "What is the capital of %s?"},

	{TwoHop, Person, []Relation{BornIn, LocatedIn}, "In which country was %s born?"},
	{TwoHop, Work, []Relation{AuthorOf, BornIn}, "Where was the author of %s born?"},
	{TwoHop, Work, []Relation{AuthorOf, BirthYear}, "When was the author of %s born?"},
	{TwoHop, Organisation, []Relation{FoundedBy, BornIn}, "Where was the founder of %s born?"},
	{TwoHop, Organisation, []Relation{HeadquarteredIn, LocatedIn}, "In which country are the headquarters of %s?"},
	{TwoHop, City, []Relation{LocatedIn, CapitalOf}, "What is the capital of the country that %s is in?"},

	{ThreeHop, Person, []Relation{BornIn, LocatedIn, CapitalOf}, "What is the capital of the country where %s was born?"},
	{ThreeHop, Work, []Relation{AuthorOf, BornIn, LocatedIn}, "In which country was the author of %s born?"},
	{ThreeHop, Organisation, []Relation{FoundedBy, BornIn, LocatedIn}, "In which country was the founder of %s born?"},
	{ThreeHop, Organisation, []Relation{HeadquarteredIn, LocatedIn, CapitalOf}, "What is the capital of the country where the headquarters of %s are?"},
}

// comparisonTemplate asks which of two entities has the earlier year.
type comparisonTemplate struct {
	head     EntityType
	relation Relation
	text     string // takes the two names
	need     string // think: takes the two names
	conclude string // think: takes the answer
}

var comparisonTemplates = []comparisonTemplate{
	{Person, BirthYear, "Who was born first, %s or %s?", "I need to find when %s and %s were born.", "So %s was born first."},
	{Organisation, FoundingYear, "Which was founded first, %s or %s?", "I need to find when %s and %s were founded.", "So %s was founded first."},
	{Work, PublicationYear, "Which was published first, %s or %s?", "I need to find when %s and %s were published.", "So %s was published first."},
}

// step builds the lookup of relation r on entity e.
func (w *World) step(e int, r Relation) (Step, int) {
	v, o := w.mustLookup(e, r)
	ent := w.entity(e)
	return Step{
		Entity: ent.Name, EntityID: e, Type: ent.Type, Relation: r, Value: v,
		DocID: strconv.Itoa(ent.Doc), Query: fmt.Sprintf(relations[r].query, ent.Name),
	}, o
}

// chainQuestion walks t from head; ok is false for a degenerate question
// whose answer is its own head.
func (w *World) chainQuestion(t chainTemplate, head int) (Question, bool) {
	var q Question
	e := head
	for _, r := range t.path {
		s, o := w.step(e, r)
		q.Metadata.Chain = append(q.Metadata.Chain, s)
		q.Metadata.GoldDocs = append(q.Metadata.GoldDocs, s.DocID)
		e = o
	}
	ans := q.Metadata.Chain[len(q.Metadata.Chain)-1].Value
	if ans == w.entity(head).Name {
		return q, false
	}
	q.Question = fmt.Sprintf(t.text, w.entity(head).Name)
	q.GoldenAnswers = []string{ans}
	q.DataSource = t.source
	return q, true
}

// makeQuestions fills the three splits. By entity, questions are assigned
// to the split of the entity they name (both entities, for a comparison), so
// no entity a test question asks about is asked about in train. By question,
// each split draws from what the splits before it left.
func (w *World) makeQuestions(rng *rand.Rand) error {
	cfg := w.Config
	byQuestion := cfg.SplitBy == SplitByQuestion
	// Candidate chain questions by split ("" for all, by question) and
	// source, in entity order.
	pool := map[string]map[string][]Question{}
	for _, split := range []string{"", "train", "dev", "test"} {
		pool[split] = map[string][]Question{}
	}
	for _, t := range chainTemplates {
		for i := range w.Entities {
			if w.Entities[i].Type != t.head {
				continue
			}
			if q, ok := w.chainQuestion(t, i); ok {
				s := w.Entities[i].Split
				pool[s][t.source] = append(pool[s][t.source], q)
			}
		}
	}
	if byQuestion {
		for _, src := range Sources {
			cand := pool[""][src]
			rng.Shuffle(len(cand), func(i, j int) { cand[i], cand[j] = cand[j], cand[i] })
		}
	}
	seenPairs := map[[2]int]bool{}
	var twins *twinSet
	if cfg.NoTwins {
		twins = &twinSet{}
	}
	shares := []float64{cfg.Hops.Single, cfg.Hops.Two, cfg.Hops.Three, cfg.Hops.Comparison}
	for _, sp := range []struct {
		name string
		n    int
		out  *[]Question
	}{{"train", cfg.Train, &w.Train}, {"dev", cfg.Dev, &w.Dev}, {"test", cfg.Test, &w.Test}} {
		counts := apportion(sp.n, shares)
		entitySplit := sp.name
		if byQuestion {
			entitySplit = ""
		}
		var qs []Question
		for i, src := range Sources {
			if src == Comparison {
				cq, err := w.comparisons(rng, sp.name, entitySplit, counts[i], seenPairs)
				if err != nil {
					return err
				}
				qs = append(qs, cq...)
				continue
			}
			cand := pool[entitySplit][src]
			if !byQuestion {
				perm := rng.Perm(len(cand))
				shuffled := make([]Question, len(cand))
				for k, j := range perm {
					shuffled[k] = cand[j]
				}
				cand = shuffled
			}
			// Already shuffled: take the first, leave the rest.
			took, rest := twins.take(cand, counts[i])
			if len(took) < counts[i] {
				more := ""
				if twins != nil {
					more = " that are not twins of questions already drawn"
				}
				return fmt.Errorf("world: %s split needs %d %s questions but the world has only %d left%s; add entities or lower the split size", sp.name, counts[i], src, len(took), more)
			}
			qs = append(qs, took...)
			if byQuestion {
				pool[""][src] = rest
			}
		}
		rng.Shuffle(len(qs), func(i, j int) { qs[i], qs[j] = qs[j], qs[i] })
		for i := range qs {
			qs[i].ID = sp.name + "_" + strconv.Itoa(i)
		}
		*sp.out = qs
	}
	return nil
}

// twinSet holds the first steps, entity and relation, of the chain
// questions drawn so far, by whether they were single-hop (Config.NoTwins);
// a nil set lets every question through.
type twinSet struct {
	single, multi map[twinKey]bool
}

type twinKey struct {
	entity   int
	relation Relation
}

// take returns the first n questions of cand that are not twins of any
// drawn before (cand itself when the set is nil), and the candidates after
// the last one it looked at. Twins it skips are dropped: they stay twins.
func (t *twinSet) take(cand []Question, n int) (took, rest []Question) {
	if t == nil {
		n = min(n, len(cand))
		return cand[:n], cand[n:]
	}
	if t.single == nil {
		t.single, t.multi = map[twinKey]bool{}, map[twinKey]bool{}
	}
	k := 0
	for ; k < len(cand) && len(took) < n; k++ {
		first := cand[k].Metadata.Chain[0]
		key := twinKey{first.EntityID, first.Relation}
		mine, other := t.multi, t.single
		if len(cand[k].Metadata.Chain) == 1 {
			mine, other = t.single, t.multi
		}
		if other[key] {
			continue
		}
		mine[key] = true
		took = append(took, cand[k])
	}
	return took, cand[k:]
}

// comparisons draws n comparison questions for split over entity pairs whose
// entity split is entitySplit, skipping the pairs in seen and adding its own.
func (w *World) comparisons(rng *rand.Rand, split, entitySplit string, n int, seen map[[2]int]bool) ([]Question, error) {
	if n == 0 {
		return nil, nil
	}
	byType := map[EntityType][]int{}
	for i := range w.Entities {
		if w.Entities[i].Split == entitySplit {
			byType[w.Entities[i].Type] = append(byType[w.Entities[i].Type], i)
		}
	}
	var qs []Question
	for tries := 0; len(qs) < n; tries++ {
		if tries > 100*n+1000 {
			return nil, fmt.Errorf("world: %s split needs %d comparison questions but found only %d distinct pairs; add entities or lower the split size", split, n, len(qs))
		}
		t := comparisonTemplates[rng.IntN(len(comparisonTemplates))]
		ids := byType[t.head]
		if len(ids) < 2 {
			continue
		}
		a, b := ids[rng.IntN(len(ids))], ids[rng.IntN(len(ids))]
		key := [2]int{min(a, b), max(a, b)}
		if a == b || seen[key] || w.Entities[a].Year == w.Entities[b].Year {
			continue
		}
		seen[key] = true
		sa, _ := w.step(a, t.relation)
		sb, _ := w.step(b, t.relation)
		ans := w.Entities[a].Name
		if w.Entities[b].Year < w.Entities[a].Year {
			ans = w.Entities[b].Name
		}
		qs = append(qs, Question{
			Question:      fmt.Sprintf(t.text, w.Entities[a].Name, w.Entities[b].Name),
			GoldenAnswers: []string{ans},
			DataSource:    Comparison,
			Metadata:      QuestionMeta{Chain: []Step{sa, sb}, GoldDocs: []string{sa.DocID, sb.DocID}},
		})
	}
	return qs, nil
}

// apportion splits n into integer parts proportional to shares, by largest
// remainder (ties to the earlier share).
func apportion(n int, shares []float64) []int {
	var sum float64
	for _, s := range shares {
		sum += s
	}
	out := make([]int, len(shares))
	rem := make([]float64, len(shares))
	left := n
	for i, s := range shares {
		x := float64(n) * s / sum
		out[i] = int(math.Floor(x))
		rem[i] = x - float64(out[i])
		left -= out[i]
	}
	for ; left > 0; left-- {
		best := 0
		for i := range rem {
			if rem[i] > rem[best] {
				best = i
			}
		}
		out[best]++
		rem[best] = -1
	}
	return out
}

// comparisonTemplateFor returns the template of a comparison by its relation.
func comparisonTemplateFor(r Relation) comparisonTemplate {
	for _, t := range comparisonTemplates {
		if t.relation == r {
			return t
		}
	}
	panic("world: no comparison template for " + string(r))
}
