package world

import (
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
)

// Fill-in pools for distractor sentences.
var (
	adjectives = []string{"quiet", "bright", "old", "narrow", "green", "busy", "gentle", "proud", "famous", "strange", "calm", "warm", "wide", "small", "grand"}
	topics     = []string{"music", "history", "fishing", "chess", "gardening", "the sea", "old maps", "horses", "poetry", "the stars", "clocks", "birds"}
	landform   = []string{"river", "lake", "forest", "coast", "valley", "harbour"}
	landforms  = []string{"rivers", "lakes", "forests", "hills", "valleys", "mountains", "plains"}
	plants     = []string{"roses", "herbs", "apple trees", "tulips", "beans"}
	features   = []string{"bridges", "towers", "gardens", "markets", "fountains", "walls"}
	seasons    = []string{"spring", "summer", "autumn", "winter"}
	events     = []string{"harvest festival", "spring fair", "river race", "lantern night", "winter market"}
	buildings  = []string{"cathedral", "library", "castle", "theatre", "town hall"}
	goods      = []string{"wool", "salt", "timber", "glass", "grain", "silk", "tools", "paper"}
	colours    = []string{"red", "blue", "green", "white", "black", "golden", "grey"}
	animals    = []string{"horse", "lion", "eagle", "fox", "bear", "swan"}
)

// wordRE matches a word for passage-length counting.
var wordRE = regexp.MustCompile(`[A-Za-z0-9_]+`)

// countWords counts the words (runs of letters and digits) of s.
func countWords(s string) int { return len(wordRE.FindAllStringIndex(s, -1)) }

// makeCorpus writes one passage per entity, in a shuffled order.
func (w *World) makeCorpus(rng *rand.Rand) {
	order := rng.Perm(len(w.Entities))
	w.Passages = make([]Passage, len(order))
	for doc, e := range order {
		w.Entities[e].Doc = doc
	}
	for doc, e := range order {
		intro, facts, distract := w.sentences(rng, e)
		w.Passages[doc] = Passage{ID: doc, Title: w.Entities[e].Name, Text: w.assemble(rng, intro, facts, distract), Entity: e}
	}
}

// assemble puts the intro first, then the facts mixed at random among
// distractors, stopping when the text has at least MinWords words; a
// distractor that would pass MaxWords is skipped.
func (w *World) assemble(rng *rand.Rand, intro string, facts []string, distract func() string) string {
	body := append([]string(nil), facts...)
	n := countWords(intro)
	for _, f := range facts {
		n += countWords(f)
	}
	for tries := 0; n < w.Config.MinWords && tries < 100; tries++ {
		d := distract()
		dn := countWords(d)
		if n+dn > w.Config.MaxWords || contains(body, d) {
			continue
		}
		body = append(body, d)
		n += dn
	}
	rng.Shuffle(len(body), func(i, j int) { body[i], body[j] = body[j], body[i] })
	return intro + " " + strings.Join(body, " ")
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// sentences returns an entity's intro, fact sentences and a distractor
// source.
func (w *World) sentences(rng *rand.Rand, e int) (intro string, facts []string, distract func() string) {
	ent := w.entity(e)
	x := ent.Name
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	other := func(t EntityType) string {
		for {
			o := &w.Entities[rng.IntN(len(w.Entities))]
			if o.Type == t && o.ID != e {
				return o.Name
			}
		}
	}
	choose := func(fs ...func() string) func() string {
		return func() string { return fs[rng.IntN(len(fs))]() }
	}
	year := strconv.Itoa(ent.Year)
	switch ent.Type {
	case Person:
		city, _ := w.mustLookup(e, BornIn)
		intro = x + " was " + article(ent.Kind) + "."
		facts = []string{x + " was born in " + city + " in " + year + "."}
		distract = choose(
			func() string {
				return x + " was known for " + article(pick(adjectives)) + " manner and a love of " + pick(topics) + "."
			},
			func() string { return "Friends of " + x + " remember long walks by the " + pick(landform) + "." },
			func() string { return x + " once visited " + other(City) + "." },
			func() string { return x + " kept a small garden full of " + pick(plants) + "." },
			func() string { return "In later life " + x + " wrote many letters to " + other(Person) + "." },
			func() string { return x + " often spoke about " + pick(topics) + "." },
			func() string { return "Many people admired the " + pick(adjectives) + " work of " + x + "." },
		)
	case City:
		country, _ := w.mustLookup(e, LocatedIn)
		intro = x + " is a city in the country of " + country + "."
		if cap, _ := w.mustLookup(w.entity(e).Links[LocatedIn], CapitalOf); cap == x {
			facts = []string{x + " is the capital of " + country + "."}
		}
		distract = choose(
			func() string { return x + " is known for its " + pick(adjectives) + " " + pick(features) + "." },
			func() string {
				return "The streets of " + x + " are " + pick(adjectives) + " in " + pick(seasons) + "."
			},
			func() string { return "Many visitors come to " + x + " for the " + pick(events) + "." },
			func() string { return x + " has a busy market near the " + pick(landform) + "." },
			func() string { return "Travellers from " + other(City) + " often stop in " + x + "." },
			func() string { return "The old " + pick(buildings) + " of " + x + " is " + pick(adjectives) + "." },
		)
	case Country:
		capital, _ := w.mustLookup(e, CapitalOf)
		intro = x + " is a country."
		facts = []string{"The capital of " + x + " is " + capital + "."}
		distract = choose(
			func() string { return x + " is known for its " + pick(adjectives) + " " + pick(landforms) + "." },
			func() string {
				return "The people of " + x + " celebrate the " + pick(events) + " every " + pick(seasons) + "."
			},
			func() string { return x + " trades " + pick(goods) + " with " + other(Country) + "." },
			func() string { return "The flag of " + x + " is " + pick(colours) + " and " + pick(colours) + "." },
			func() string {
				return "Much of " + x + " is covered by " + pick(adjectives) + " " + pick(landforms) + "."
			},
		)
	case Organisation:
		founder, _ := w.mustLookup(e, FoundedBy)
		hq, _ := w.mustLookup(e, HeadquarteredIn)
		intro = x + " is " + article(ent.Kind) + "."
		facts = []string{x + " was founded by " + founder + " in " + year + ".", "The headquarters of " + x + " are in " + hq + "."}
		distract = choose(
			func() string { return x + " is known for its " + pick(goods) + "." },
			func() string { return x + " employs many " + pick(adjectives) + " workers." },
			func() string { return x + " sells " + pick(goods) + " to buyers in " + other(City) + "." },
			func() string {
				return "The sign of " + x + " shows " + article(pick(colours)) + " " + pick(animals) + "."
			},
			func() string {
				return "Workers at " + x + " meet every " + pick(seasons) + " for the " + pick(events) + "."
			},
		)
	case Work:
		author, _ := w.mustLookup(e, AuthorOf)
		intro = x + " is " + article(ent.Kind) + " written by the author " + author + "."
		facts = []string{x + " was published in " + year + "."}
		distract = choose(
			func() string {
				return x + " tells the story of " + article(pick(occupations)) + " who loves " + pick(topics) + "."
			},
			func() string { return "Readers praise " + x + " for its " + pick(adjectives) + " style." },
			func() string { return x + " is set in " + other(City) + "." },
			func() string { return "The first edition of " + x + " had " + article(pick(colours)) + " cover." },
			func() string { return x + " was read aloud at the " + pick(events) + " in " + pick(seasons) + "." },
		)
	}
	return intro, facts, distract
}

// article puts "a" or "an" before word, by its first letter (the pools
// hold no words like "hour" or "unit" that break the rule).
func article(word string) string {
	if word != "" && strings.ContainsRune("aeiouAEIOU", rune(word[0])) {
		return "an " + word
	}
	return "a " + word
}
