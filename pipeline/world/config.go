package world

import (
	"fmt"
	"math"
)

// Config sets the size and shape of a generated world. The zero value is not
// useful; start from DefaultConfig and override fields. The same Config
// (Seed included) always generates byte-identical files.
type Config struct {
	// Seed seeds the PCG generator that every random choice is drawn from.
	Seed uint64 `json:"seed"`

	// Countries, Cities, People, Organisations and Works are the number of
	// entities of each type. Every city lies in a country, and every country
	// has one of its cities as capital, so Cities must be at least Countries.
	Countries     int `json:"countries"`
	Cities        int `json:"cities"`
	People        int `json:"people"`
	Organisations int `json:"organisations"`
	Works         int `json:"works"`

	// Train, Dev and Test are the number of questions in each split.
	Train int `json:"train"`
	Dev   int `json:"dev"`
	Test  int `json:"test"`

	// SplitBy is how questions are split: SplitByEntity (the default; "" is
	// the same) or SplitByQuestion.
	SplitBy string `json:"split_by,omitempty"`

	// NoTwins leaves out twin questions: a single-hop question that asks
	// the first step of a multi-hop question about the same entity ("Where
	// was X born?" beside "In which country was X born?"), in any split.
	// A small model that learned both tends to answer one with the other's
	// number of hops; leaving the twins out did not raise its EM, though
	// (docs/results.md).
	NoTwins bool `json:"no_twins,omitempty"`

	// Hops is the share of each question type; it is normalised, so only
	// the ratios matter.
	Hops HopMix `json:"hops"`

	// VagueFrac and RedundantFrac are the target shares of vague and
	// redundant queries among all expert queries; the rest are precise.
	VagueFrac     float64 `json:"vague_frac"`
	RedundantFrac float64 `json:"redundant_frac"`

	// MaxSearches caps the number of search calls in one expert trajectory.
	// It must be at least 3, the number of precise searches a 3-hop question
	// needs; vague and redundant queries fill the room that is left.
	MaxSearches int `json:"max_searches"`

	// MinWords and MaxWords bound the length of a passage's text (title
	// excluded), counted in words: runs of letters and digits.
	MinWords int `json:"min_words"`
	MaxWords int `json:"max_words"`
}

// The question splits.
const (
	// SplitByEntity assigns every entity to one split and asks about it
	// only there: no dev or test question names an entity that a train
	// question asks about. It tests generalisation to unseen entities.
	SplitByEntity = "entity"
	// SplitByQuestion splits the questions themselves: no question appears
	// in two splits, but a test question may ask about an entity that train
	// asks another question about (another relation or hop count), as in
	// open-domain QA data sets. A model trained from scratch can copy into
	// its queries only the names it has learned to write.
	SplitByQuestion = "question"
)

// HopMix gives the relative share of each question type (data_source).
type HopMix struct {
	Single     float64 `json:"single_hop"`
	Two        float64 `json:"two_hop"`
	Three      float64 `json:"three_hop"`
	Comparison float64 `json:"comparison"`
}

// DefaultConfig returns the configuration of the demo world: about 1,600
// entities, a vocabulary of about 2,500 words, 3,000 train, 200 dev and 300
// test questions, and queries mixed 60/25/15 precise/vague/redundant.
func DefaultConfig() Config {
	return Config{
		Seed:          1,
		Countries:     24,
		Cities:        240,
		People:        800,
		Organisations: 150,
		Works:         400,
		Train:         3000,
		Dev:           200,
		Test:          300,
		Hops:          HopMix{Single: 0.3, Two: 0.3, Three: 0.2, Comparison: 0.2},
		VagueFrac:     0.25,
		RedundantFrac: 0.15,
		MaxSearches:   5,
		MinWords:      30,
		MaxWords:      60,
	}
}

// validate reports the first field that cannot produce a world.
func (c Config) validate() error {
	switch {
	case c.Countries < 2:
		return fmt.Errorf("world config: countries = %d, need at least 2", c.Countries)
	case c.Cities < c.Countries:
		return fmt.Errorf("world config: cities = %d, need at least one per country (%d)", c.Cities, c.Countries)
	case c.People < 2:
		return fmt.Errorf("world config: people = %d, need at least 2", c.People)
	case c.Organisations < 2:
		return fmt.Errorf("world config: organisations = %d, need at least 2", c.Organisations)
	case c.Works < 2:
		return fmt.Errorf("world config: works = %d, need at least 2", c.Works)
	case c.Train < 0 || c.Dev < 0 || c.Test < 0:
		return fmt.Errorf("world config: split sizes %d/%d/%d must not be negative", c.Train, c.Dev, c.Test)
	case c.Train+c.Dev+c.Test == 0:
		return fmt.Errorf("world config: all split sizes are zero")
	case c.Hops.Single < 0 || c.Hops.Two < 0 || c.Hops.Three < 0 || c.Hops.Comparison < 0:
		return fmt.Errorf("world config: hop mix %+v has a negative share", c.Hops)
	case c.Hops.Single+c.Hops.Two+c.Hops.Three+c.Hops.Comparison <= 0:
		return fmt.Errorf("world config: hop mix %+v sums to zero", c.Hops)
	case c.VagueFrac < 0 || c.RedundantFrac < 0 || c.VagueFrac+c.RedundantFrac >= 0.9 || math.IsNaN(c.VagueFrac+c.RedundantFrac):
		return fmt.Errorf("world config: vague %.2f + redundant %.2f must be in [0, 0.9)", c.VagueFrac, c.RedundantFrac)
	case c.MaxSearches < 3:
		return fmt.Errorf("world config: max searches = %d, need at least 3 for 3-hop questions", c.MaxSearches)
	case c.SplitBy != "" && c.SplitBy != SplitByEntity && c.SplitBy != SplitByQuestion:
		return fmt.Errorf("world config: split_by %q: want %q or %q", c.SplitBy, SplitByEntity, SplitByQuestion)
	case c.MinWords < 20 || c.MaxWords < c.MinWords+10:
		return fmt.Errorf("world config: passage words [%d, %d]: need min >= 20 and max >= min+10", c.MinWords, c.MaxWords)
	}
	return nil
}
