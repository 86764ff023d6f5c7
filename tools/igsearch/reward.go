package main

import (
	"bufio"
	"fmt"
	"io"
	"os"

	"github.com/igsearch/igsearch/atomicfile"
	"github.com/igsearch/igsearch/pipeline/protocol"
	"github.com/igsearch/igsearch/pipeline/reward"
)

var rewardStage = &stage{
	name:    "reward",
	summary: "outcome rewards (EM, F1, substring EM) of logged responses, no model needed",
	usage: `igsearch reward --in ROWS.jsonl --out SCORED.jsonl [--metric em|f1|subem]
                [--format-reward] [--protocol search-r1|autorefine] [--shard i/n]

Scores logged responses against their gold answers, with the code that
training and eval use. No model, no index.

Input (--in, "-" for stdin): JSONL rows
  {"id": .., "response": TEXT, "golden_answers": [..], ...}
  golden_answers may be a list, a string or a number; rows without it may
  carry Search-R1's "reward_model": {"ground_truth": {"target": [..]}}.
  A row without "response" or gold answers is an error naming its line.
Output (--out, "-" for stdout): each row with two fields added (replacing
  any of the same name), the others kept as they were, in order:
  "answer": the content of the response's LAST closed <answer>…</answer>,
            stripped (Python's str.strip()), or null when there is none
  "reward": the metric of that answer against the gold answers, a float;
            0 when there is no closed answer tag (without --format-reward)
  The file is written under a temporary name and renamed when complete.
  A summary (rows, mean reward, rows without an answer) goes to stderr.

--format-reward adds Search-R1's structure-format reward
  (qa_em_format.py: 0.2 for a well-formed trajectory with a wrong or no
  answer, 0.1 for a wrong answer in a malformed one, the answer's score
  minus 0.2 for a right answer in a malformed one), exactly as
  train --format-reward; --protocol (search-r1, autorefine) names the tags
  it checks.

--metric em (default) is Search-R1's verl/utils/reward_score/qa_em.py
  (em_check): lowercase (Python's str.lower(), Unicode special casing
  included), drop string.punctuation, drop the words a/an/the, collapse
  white space (Python's str.split()); subem is subem_check; f1 is
  FlashRAG's token F1.

Search-R1 scores prompt + response, and its extract_solution returns the
last match only when there are two or more. Its prompt already holds two
("<answer> and </answer>", "<answer> Beijing </answer>"), so for a response
without a closed answer tag Search-R1 grades the prompt's example
"Beijing". Here the response is scored alone and gets 0.

--shard i/n scores only the rows r (0-based, blank lines not counted)
with r mod n = i; igsearch merge --block 1 of the n parts, in shard order,
is byte-identical to the unsharded output.

Example:
  igsearch reward --in rollouts.jsonl --out scored.jsonl --metric em
`,
	run: runReward,
}

func runReward(args []string) error {
	fs := newFlags("reward")
	in := fs.String("in", "", `JSONL rows with "response" and "golden_answers" ("-": stdin)`)
	out := fs.String("out", "", `output JSONL ("-": stdout)`)
	metric := fs.String("metric", "em", "em, subem or f1")
	formatReward := fs.Bool("format-reward", false, "Search-R1's structure-format reward (qa_em_format.py), as train --format-reward")
	protoName := fs.String("protocol", "search-r1", "search-r1 or autorefine: the tags --format-reward checks")
	var shard shardFlag
	fs.Var(&shard, "shard", "score only rows r with r mod n = i (merge the parts with igsearch merge --block 1)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *in == "" || *out == "" {
		return usagef("reward needs --in and --out")
	}
	m, err := reward.ParseMetric(*metric)
	if err != nil {
		return usagef("%v", err)
	}
	var r io.Reader = os.Stdin
	if *in != "-" {
		f, err := os.Open(*in)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	r = newShardReader(r, shard, 1)
	proto, err := protocol.Lookup(*protoName)
	if err != nil {
		return usagef("%v", err)
	}
	cfg := reward.DefaultConfig() // as training: the format scores apply only with --format-reward
	cfg.Metric, cfg.FormatReward = m, *formatReward
	var st reward.RowStats
	var scoreErr error
	score := func(w io.Writer) error {
		st, scoreErr = reward.ScoreRows(r, w, *in, cfg, proto)
		return scoreErr
	}
	if *out == "-" {
		bw := bufio.NewWriterSize(os.Stdout, 1<<16)
		if err = score(bw); err == nil {
			err = bw.Flush()
		}
	} else {
		err = atomicfile.Write(*out, score)
	}
	if scoreErr != nil {
		return scoreErr // it names the input file and line; nothing was written
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "igsearch reward: %d rows, mean %s %.4f, %d without an answer\n", st.Rows, m, st.MeanReward, st.NoAnswer)
	return nil
}
