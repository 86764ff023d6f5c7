// Package world generates a synthetic knowledge world for the IG-Search demo:
// entities with syllable names and typed relations, a wiki-style corpus in the
// wiki-18 JSONL format, FlashRAG question splits by hop type with their gold
// chains, expert search trajectories of mixed query quality for a warm start,
// and a word-level Hugging Face tokenizer.json covering all of it.
//
// Everything is drawn from one PCG generator seeded by Config.Seed, so a seed
// always gives byte-identical files. The language is small and templated, so
// that a tiny policy can learn on a CPU in minutes to search, read and answer.
// The file formats are described on World.Write.
package world

import (
	"fmt"
	"math/rand/v2"
	"strconv"
)

// EntityType is the kind of an entity.
type EntityType string

// The entity types of a world.
const (
	Country      EntityType = "country"
	City         EntityType = "city"
	Person       EntityType = "person"
	Organisation EntityType = "organisation"
	Work         EntityType = "work"
)

// Relation names a functional relation from an entity: each subject has at
// most one value. Entity-valued relations link two entities; the *_year
// relations are attributes whose value is a year.
type Relation string

// The relations of a world, with their subject → value types.
const (
	BornIn          Relation = "born_in"          // person → city
	LocatedIn       Relation = "located_in"       // city → country
	CapitalOf       Relation = "capital"          // country → city (its capital)
	FoundedBy       Relation = "founded_by"       // organisation → person
	HeadquarteredIn Relation = "headquartered_in" // organisation → city
	AuthorOf        Relation = "author"           // work → person (who wrote it)
	BirthYear       Relation = "birth_year"       // person → year
	FoundingYear    Relation = "founding_year"    // organisation → year
	PublicationYear Relation = "publication_year" // work → year
)

// Entity is one thing of the world. Its passage in the corpus is Doc.
type Entity struct {
	ID   int        `json:"id"`
	Type EntityType `json:"type"`
	Name string     `json:"name"`
	// Kind is the occupation of a person, the kind of an organisation or the
	// genre of a work; empty for places.
	Kind string `json:"kind,omitempty"`
	// Year is the birth, founding or publication year; 0 for places.
	Year int `json:"year,omitempty"`
	// Links holds the entity-valued relations: relation → entity id.
	Links map[Relation]int `json:"links,omitempty"`
	// Doc is the id of the entity's passage.
	Doc int `json:"doc"`
	// Split is the question split ("train", "dev", "test") of the questions
	// that name this entity; empty when questions are split by question.
	Split string `json:"split"`
}

// Passage is one document of the corpus: one per entity.
type Passage struct {
	ID     int
	Title  string
	Text   string
	Entity int
}

// Contents is the passage in the wiki-18 "contents" form: the quoted title on
// the first line, then the text.
func (p Passage) Contents() string { return strconv.Quote(p.Title) + "\n" + p.Text }

// World is a generated world: entities, corpus, questions, expert
// trajectories and vocabulary. It is immutable once generated.
type World struct {
	Config   Config
	Entities []Entity
	Passages []Passage // index = doc id
	Train    []Question
	Dev      []Question
	Test     []Question
	// Expert holds one expert trajectory per train question, in order.
	Expert []Expert
	// Vocab is the word-level vocabulary in id order: special and protocol
	// tokens first, then the words sorted bytewise.
	Vocab []string
}

// Lookup returns the value of relation r for entity e: the value's text, and
// for an entity-valued relation the value entity's id (-1 for a year).
func (w *World) Lookup(e int, r Relation) (value string, object int, ok bool) {
	if e < 0 || e >= len(w.Entities) {
		return "", -1, false
	}
	ent := &w.Entities[e]
	switch r {
	case BirthYear, FoundingYear, PublicationYear:
		if ent.Type != relations[r].subject {
			return "", -1, false
		}
		return strconv.Itoa(ent.Year), -1, true
	}
	o, ok := ent.Links[r]
	if !ok {
		return "", -1, false
	}
	return w.Entities[o].Name, o, true
}

var (
	occupations = []string{"painter", "farmer", "merchant", "poet", "sailor", "teacher", "doctor", "builder", "singer", "scholar", "soldier", "weaver", "potter", "baker", "lawyer", "priest", "engineer", "explorer", "miner", "judge"}
	orgKinds    = []string{"company", "guild", "bank", "academy", "society", "workshop", "brewery", "shipyard"}
	genres      = []string{"novel", "poem", "play", "song", "chronicle", "story", "treatise", "ballad"}
)

// Generate builds the world that cfg describes.
func Generate(cfg Config) (*World, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x1c5ea4c4))
	w := &World{Config: cfg}
	w.makeEntities(rng)
	w.makeCorpus(rng)
	if err := w.makeQuestions(rng); err != nil {
		return nil, err
	}
	w.makeExpert(rng)
	w.Vocab = buildVocab(w)
	return w, nil
}

// makeEntities draws names, types, years and relations.
func (w *World) makeEntities(rng *rand.Rand) {
	cfg := w.Config
	names := newNameMaker(rng, reservedWords())
	add := func(t EntityType) *Entity {
		w.Entities = append(w.Entities, Entity{ID: len(w.Entities), Type: t, Name: names.next(), Links: map[Relation]int{}})
		return &w.Entities[len(w.Entities)-1]
	}
	var countries, cities, people []int
	for range cfg.Countries {
		countries = append(countries, add(Country).ID)
	}
	for i := range cfg.Cities {
		c := add(City)
		k := countries[i%len(countries)]
		if i >= len(countries) {
			k = countries[rng.IntN(len(countries))]
		} else {
			w.Entities[k].Links[CapitalOf] = c.ID
		}
		c.Links[LocatedIn] = k
		cities = append(cities, c.ID)
	}
	for range cfg.People {
		p := add(Person)
		p.Kind = occupations[rng.IntN(len(occupations))]
		p.Year = 1700 + rng.IntN(261)
		p.Links[BornIn] = cities[rng.IntN(len(cities))]
		people = append(people, p.ID)
	}
	for range cfg.Organisations {
		o := add(Organisation)
		o.Kind = orgKinds[rng.IntN(len(orgKinds))]
		f := people[rng.IntN(len(people))]
		o.Links[FoundedBy] = f
		o.Year = w.Entities[f].Year + 20 + rng.IntN(41)
		o.Links[HeadquarteredIn] = cities[rng.IntN(len(cities))]
	}
	for range cfg.Works {
		wk := add(Work)
		wk.Kind = genres[rng.IntN(len(genres))]
		a := people[rng.IntN(len(people))]
		wk.Links[AuthorOf] = a
		wk.Year = w.Entities[a].Year + 18 + rng.IntN(53)
	}
	if cfg.SplitBy == SplitByQuestion {
		return
	}
	// Split the entities that questions are about, leaning dev and test a
	// little above their share so each has enough candidates of every type.
	total := float64(cfg.Train + cfg.Dev + cfg.Test)
	pDev := min(0.3, 1.5*float64(cfg.Dev)/total)
	pTest := min(0.3, 1.5*float64(cfg.Test)/total)
	if cfg.Dev > 0 {
		pDev = max(pDev, 0.05)
	}
	if cfg.Test > 0 {
		pTest = max(pTest, 0.05)
	}
	if cfg.Train == 0 {
		pDev, pTest = float64(cfg.Dev)/total, float64(cfg.Test)/total
	}
	for i := range w.Entities {
		u := rng.Float64()
		switch {
		case u < pDev:
			w.Entities[i].Split = "dev"
		case u < pDev+pTest:
			w.Entities[i].Split = "test"
		default:
			w.Entities[i].Split = "train"
		}
	}
}

// entity returns the entity with id i.
func (w *World) entity(i int) *Entity { return &w.Entities[i] }

// mustLookup is Lookup for relations the generator itself created.
func (w *World) mustLookup(e int, r Relation) (string, int) {
	v, o, ok := w.Lookup(e, r)
	if !ok {
		panic(fmt.Sprintf("world: entity %d (%s) has no %s", e, w.Entities[e].Type, r))
	}
	return v, o
}
