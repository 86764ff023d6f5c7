package main

import (
	"fmt"
	"os"

	"github.com/igsearch/igsearch/atomicfile"
	"github.com/igsearch/igsearch/pipeline/world"
)

var worldStage = &stage{
	name:    "world",
	summary: "generate the synthetic knowledge world of the demo (corpus, questions, expert trajectories, tokenizer)",
	usage: `igsearch world generate --seed S --out DIR [size flags]

Generates a synthetic knowledge world: entities with syllable names (people,
cities, countries, organisations, works) and typed relations (born_in,
located_in, capital, founded_by, headquartered_in, author, and birth, founding
and publication years), all drawn from the seed. The same seed and flags give
byte-identical files.

Outputs, in DIR (each written to a temporary name, then renamed):
  corpus.jsonl    one wiki-style passage per entity, wiki-18 JSONL
                  {"id": "0", "contents": "\"Title\"\ntext"}; index it with
                  igsearch index build
  train.jsonl     FlashRAG questions {"id", "question", "golden_answers",
  dev.jsonl       "data_source", "metadata": {"chain", "gold_docs"}};
  test.jsonl      data_source is single-hop, 2-hop, 3-hop or comparison, and
                  the chain gives every hop's entity, relation, value, gold
                  passage and precise query
  expert.jsonl    one expert trajectory per train question for an SFT warm
                  start: turns of think text and a search query labelled
                  precise, vague or redundant, then the answer
  tokenizer.json  a Hugging Face WordLevel tokenizer over the world's words,
                  the chat special tokens and the protocol tags
  world.json      the config and the counts

Flags:
  --seed N            random seed (default 1)
  --out DIR           output directory (required); a world already there is
                      replaced only with --force, and a DIR holding any other
                      file is refused
  --countries N       countries (default 24)
  --cities N          cities, at least one per country (default 240)
  --people N          people (default 800)
  --organisations N   organisations (default 150)
  --works N           works (default 400)
  --train N           train questions (default 3000)
  --dev N             dev questions (default 200)
  --test N            test questions (default 300)
  --split-by S        entity: no dev/test question asks about an entity
                      that train asks about (default); question: questions
                      are split at random, so test may ask new questions
                      about entities train asks about (the demo's split)
  --no-twins          no single-hop question asks the first step of a
                      multi-hop question about the same entity ("Where was X
                      born?" beside "In which country was X born?")
  --vague F           share of vague expert queries (default 0.25)
  --redundant F       share of redundant expert queries (default 0.15)
  --max-searches N    most searches in one expert trajectory (default 5)

Example:
  igsearch world generate --seed 7 --out runs/world
  igsearch index build --corpus runs/world/corpus.jsonl --out runs/index
`,
	run: runWorld,
}

func runWorld(args []string) error {
	_, rest, err := subVerb(args, "generate")
	if err != nil {
		return err
	}
	cfg := world.DefaultConfig()
	fs := newFlags("world generate")
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "random seed")
	out := fs.String("out", "", "output directory")
	fs.IntVar(&cfg.Countries, "countries", cfg.Countries, "countries")
	fs.IntVar(&cfg.Cities, "cities", cfg.Cities, "cities")
	fs.IntVar(&cfg.People, "people", cfg.People, "people")
	fs.IntVar(&cfg.Organisations, "organisations", cfg.Organisations, "organisations")
	fs.IntVar(&cfg.Works, "works", cfg.Works, "works")
	fs.IntVar(&cfg.Train, "train", cfg.Train, "train questions")
	fs.IntVar(&cfg.Dev, "dev", cfg.Dev, "dev questions")
	fs.IntVar(&cfg.Test, "test", cfg.Test, "test questions")
	fs.StringVar(&cfg.SplitBy, "split-by", world.SplitByEntity, "entity or question")
	fs.BoolVar(&cfg.NoTwins, "no-twins", cfg.NoTwins, "no single-hop question asks a multi-hop question's first step about the same entity")
	fs.Float64Var(&cfg.VagueFrac, "vague", cfg.VagueFrac, "share of vague expert queries")
	fs.Float64Var(&cfg.RedundantFrac, "redundant", cfg.RedundantFrac, "share of redundant expert queries")
	fs.IntVar(&cfg.MaxSearches, "max-searches", cfg.MaxSearches, "most searches in one expert trajectory")
	force := fs.Bool("force", false, "replace a world that --out already holds")
	if err := parseFlags(fs, rest); err != nil {
		return err
	}
	if *out == "" {
		return usagef("--out is required")
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments %v", fs.Args())
	}
	if err := atomicfile.Guard(*out, world.DirKind, *force, "--force"); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	w, err := world.Generate(cfg)
	if err != nil {
		return err
	}
	if err := w.Write(*out); err != nil {
		return err
	}
	s := w.Summary()
	fmt.Fprintf(os.Stderr, "world: seed %d: %d entities, %d passages, %d/%d/%d questions, %d expert queries (%d precise, %d vague, %d redundant), vocab %d → %s\n",
		cfg.Seed, len(w.Entities), len(w.Passages), len(w.Train), len(w.Dev), len(w.Test),
		s.Queries[world.Precise]+s.Queries[world.Vague]+s.Queries[world.Redundant],
		s.Queries[world.Precise], s.Queries[world.Vague], s.Queries[world.Redundant], len(w.Vocab), *out)
	return nil
}
