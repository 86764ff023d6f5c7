// Command igsearch trains and evaluates search-augmented language-model agents
// with IG-Search, and serves as a BM25 retrieval index, a batch IG scorer and a
// Qwen2.5 → ONNX converter. One sub-command per stage; `igsearch help STAGE`
// explains each.
package main

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	flag "github.com/spf13/pflag"
)

// stage is one sub-command. Stages with sub-verbs (index build, model export)
// dispatch on their own first argument.
type stage struct {
	name    string
	summary string // one line for `igsearch help`
	usage   string // full text for `igsearch help NAME`: inputs, outputs, an example
	run     func(args []string) error
}

// stages lists every sub-command; each lives in a file named after it.
var stages = []*stage{
	versionStage,
	trainerStage,
	demoStage,
	trainStage,
	evalStage,
	scoreIGStage,
	rewardStage,
	plotStage,
	indexStage,
	mergeStage,
	worldStage,
	generateStage,
	logprobsStage,
	tokenizeStage,
	modelStage,
}

// errUsage marks an error whose message is a usage problem: main prints the
// stage's help after it and exits 2.
var errUsage = errors.New("usage")

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 {
		printOverview()
		return 2
	}
	name := args[0]
	if name == "help" || name == "-h" || name == "--help" {
		if len(args) > 1 {
			if s := findStage(args[1]); s != nil {
				fmt.Print(s.usage)
				return 0
			}
			fmt.Fprintf(os.Stderr, "igsearch: unknown stage %q\n", args[1])
			return 2
		}
		printOverview()
		return 0
	}
	s := findStage(name)
	if s == nil {
		fmt.Fprintf(os.Stderr, "igsearch: unknown stage %q; run `igsearch help`\n", name)
		return 2
	}
	err := s.run(args[1:])
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		fmt.Print(s.usage)
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(os.Stderr, "igsearch %s: %v\n\n%s", s.name, err, s.usage)
		return 2
	default:
		fmt.Fprintf(os.Stderr, "igsearch %s: %v\n", s.name, err)
		return 1
	}
}

func findStage(name string) *stage {
	for _, s := range stages {
		if s.name == name {
			return s
		}
	}
	return nil
}

func printOverview() {
	fmt.Println("igsearch: IG-Search training, BM25 retrieval, IG scoring and Qwen2.5 → ONNX on ONNX Runtime.")
	fmt.Println()
	fmt.Println("Usage: igsearch STAGE [flags]")
	fmt.Println()
	sorted := append([]*stage(nil), stages...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].name < sorted[j].name })
	w := 0
	for _, s := range sorted {
		w = max(w, len(s.name))
	}
	for _, s := range sorted {
		fmt.Printf("  %-*s  %s\n", w, s.name, s.summary)
	}
	fmt.Println()
	fmt.Println("Run `igsearch help STAGE` for a stage's inputs, outputs and an example.")
}

// newFlags returns a flag set for a stage that reports errors instead of
// exiting, so that run can print usage consistently.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("igsearch "+name, flag.ContinueOnError)
	fs.SortFlags = false
	fs.Usage = func() {}
	return fs
}

// parseFlags parses args and turns a flag error into errUsage.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}

// usagef formats a usage error.
func usagef(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
}

// subVerb splits "build --corpus x" into the verb and its flags, checking the
// verb against the allowed set.
func subVerb(args []string, verbs ...string) (string, []string, error) {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return "", nil, usagef("missing sub-command: one of %s", strings.Join(verbs, ", "))
	}
	for _, v := range verbs {
		if args[0] == v {
			return v, args[1:], nil
		}
	}
	return "", nil, usagef("unknown sub-command %q: one of %s", args[0], strings.Join(verbs, ", "))
}
