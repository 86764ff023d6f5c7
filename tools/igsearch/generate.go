package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/igsearch/igsearch/policy"
	"github.com/igsearch/igsearch/tokenize"
)

var generateStage = &stage{
	name:    "generate",
	summary: "sample continuations of prompts with a policy (batched, KV cache)",
	usage: `igsearch generate --model DIR (--prompt TEXT | --prompts FILE) [flags]

Generates a continuation of each prompt, in batches that share one KV cache,
and writes one JSONL row per prompt, in order:
  {"index": 0, "id": "q1", "prompt": "...", "text": "...", "ids": [...],
   "logprobs": [...], "finish_reason": "eos|stop|length", "stop": "</search>"}
ids are the generated token ids; logprobs are their log-probs under the
model's raw logits (log_softmax before temperature, top-k and top-p: PPO's
old log-probs); "id" and "stop" appear when known. Generation stops at an
end-of-sequence token (config.json's eos_token_id, <|im_end|>,
<|endoftext|>), when the decoded text contains a --stop string (the token
completing it is kept), or after --max-new-tokens.

Inputs:
  --model DIR          a Hugging Face Qwen2 checkpoint (its weights are read
                       once and the graphs built in memory over them) or an
                       exported ONNX folder (onnx/model.onnx + config.json)
  --tokenizer PATH     tokenizer.json (default DIR/tokenizer.json)
  --prompt TEXT        a prompt; repeatable
  --prompts FILE       one prompt per line: JSON {"prompt": "...", "id": ...}
                       or plain text; "-" reads stdin

Output:
  --out FILE           JSONL, written to a temporary file and renamed into
                       place (default stdout)

Flags:
  --chat               wrap each prompt as a user message in the Qwen2.5
                       chat format, with the assistant's turn opened
  --max-new-tokens N   most tokens generated per prompt (default 128)
  --temperature T      0 is greedy (default 0)
  --top-p P            nucleus sampling mass, 0 or 1 keeps all (default 1)
  --top-k K            keep the K most probable tokens, 0 keeps all (default 0)
  --seed S             prompt i samples with seed S+i (default 0)
  --stop STR           stop string; repeatable
  --batch-size N       prompts generated together (default 16)
  --device D           cpu, cuda or cuda:N (default cpu)
  --threads N          intra-op threads (default: ONNX Runtime's choice)
  --ort-lib PATH       the ONNX Runtime shared library (default: found by set-up)
  --dtype T            fp32 (default) or fp16: the graphs built from a
                       checkpoint (fp16 is CUDA's configuration)
  --report-transfers --strict-placement
                       device checks, as in logprobs

Example:
  igsearch generate --model models/Qwen2.5-0.5B-Instruct --chat \
    --prompt "Who wrote Hamlet?" --temperature 0.7 --top-p 0.9 --seed 1 \
    --stop "</answer>" --max-new-tokens 64
`,
	run: runGenerate,
}

// repeatedString is a repeatable string flag.
type repeatedString []string

func (s *repeatedString) String() string     { return fmt.Sprint(*s) }
func (s *repeatedString) Set(v string) error { *s = append(*s, v); return nil }
func (s *repeatedString) Type() string       { return "string" }

// promptRow is one prompt to generate from.
type promptRow struct {
	id   json.RawMessage // nil when the input has none
	text string
}

func runGenerate(args []string) error {
	f, err := parseGenerateFlags(args)
	if err != nil {
		return err
	}
	tok, err := tokenize.Load(f.tokPath)
	if err != nil {
		return fmt.Errorf("tokenizer: %w (pass --tokenizer PATH)", err)
	}
	p, err := f.pol.open(policy.Options{Tokenizer: tok})
	if err != nil {
		return err
	}
	defer p.Close()
	defer f.pol.check.report()
	w, err := createOutput(f.out)
	if err != nil {
		return err
	}
	defer w.abort()
	prog := newProgress("generate", "prompts", 0)
	defer prog.finish()
	g := &generator{f: f, tok: tok, pol: p, w: w, prog: prog}
	if err := f.eachBatch(g.run); err != nil {
		return err
	}
	return w.commit()
}

// generateFlags are generate's settings.
type generateFlags struct {
	pol            policyFlags
	tokPath        string
	prompts, stops repeatedString
	promptsFile    string
	chat           bool
	sp             policy.SamplingParams
	seed           uint64
	batch          int
	out            string
}

// parseGenerateFlags reads and checks the flags, before the model loads.
func parseGenerateFlags(args []string) (*generateFlags, error) {
	f := &generateFlags{}
	fs := newFlags("generate")
	f.pol.register(fs)
	fs.StringVar(&f.tokPath, "tokenizer", "", "tokenizer.json (default DIR/tokenizer.json)")
	fs.Var(&f.prompts, "prompt", "a prompt; repeatable")
	fs.StringVar(&f.promptsFile, "prompts", "", "file of prompts, one per line")
	fs.BoolVar(&f.chat, "chat", false, "wrap prompts in the Qwen2.5 chat format")
	fs.IntVar(&f.sp.MaxNewTokens, "max-new-tokens", 128, "most tokens generated per prompt")
	f.sp.Temperature, f.sp.TopP = 0, 1 // greedy unless told otherwise
	bindSamplingFlags(fs, &f.sp.Temperature, &f.sp.TopP, &f.sp.TopK)
	fs.Uint64Var(&f.seed, "seed", 0, "prompt i samples with seed S+i")
	fs.Var(&f.stops, "stop", "stop string; repeatable")
	fs.IntVar(&f.batch, "batch-size", 16, "prompts generated together")
	fs.StringVar(&f.out, "out", "-", "output JSONL")
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	var bad usageProblems
	bad.check(len(f.prompts) > 0 || f.promptsFile != "", "give --prompt TEXT or --prompts FILE")
	bad.check(len(f.prompts) == 0 || f.promptsFile == "", "give --prompt or --prompts, not both")
	bad.check(f.batch > 0, "--batch-size must be positive, is %d", f.batch)
	bad.check(fs.NArg() == 0, "unexpected arguments %v", fs.Args())
	f.sp.Stop = f.stops
	bad.checkErr(checkSampling(f.sp))
	bad.check(f.tokPath != "" || f.pol.model != "", "--model is required")
	if err := bad.err(); err != nil {
		return nil, err
	}
	if f.tokPath == "" {
		f.tokPath = filepath.Join(f.pol.model, "tokenizer.json")
	}
	return f, nil
}

// eachBatch hands the prompts, from the flags or the --prompts file, to run
// in batches of --batch-size, in order.
func (f *generateFlags) eachBatch(run func([]promptRow) error) error {
	if f.promptsFile == "" {
		var rows []promptRow
		for _, t := range f.prompts {
			rows = append(rows, promptRow{text: t})
		}
		for len(rows) > 0 {
			n := min(f.batch, len(rows))
			if err := run(rows[:n]); err != nil {
				return err
			}
			rows = rows[n:]
		}
		return nil
	}
	r, _, err := openInput(f.promptsFile)
	if err != nil {
		return err
	}
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<28)
	var pending []promptRow
	line := 0
	for sc.Scan() {
		line++
		text := sc.Bytes()
		if len(bytes.TrimSpace(text)) == 0 {
			continue
		}
		row, err := parsePromptLine(text)
		if err != nil {
			return fmt.Errorf("%s:%d: %w", f.promptsFile, line, err)
		}
		pending = append(pending, row)
		if len(pending) == f.batch {
			if err := run(pending); err != nil {
				return err
			}
			pending = pending[:0]
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: line %d: %w", f.promptsFile, line+1, err)
	}
	if len(pending) > 0 {
		return run(pending)
	}
	return nil
}

// parsePromptLine reads one line of a --prompts file: a JSON object with
// "prompt" (and optionally "id"), or plain text.
func parsePromptLine(text []byte) (promptRow, error) {
	if text[0] != '{' {
		return promptRow{text: string(text)}, nil
	}
	var obj struct {
		Prompt *string         `json:"prompt"`
		ID     json.RawMessage `json:"id"`
	}
	if err := json.Unmarshal(text, &obj); err != nil {
		return promptRow{}, fmt.Errorf("malformed JSON prompt: %v", err)
	}
	if obj.Prompt == nil {
		return promptRow{}, fmt.Errorf("JSON row has no \"prompt\"")
	}
	return promptRow{id: obj.ID, text: *obj.Prompt}, nil
}

// generator generates batches of prompts and writes their rows in order.
type generator struct {
	f     *generateFlags
	tok   *tokenize.Tokenizer
	pol   *policy.Policy
	w     *outputFile
	prog  *progress
	index int // of the batch's first prompt
}

// run generates one batch: prompt index+i samples with seed --seed+index+i.
func (g *generator) run(batch []promptRow) error {
	reqs := make([]policy.Request, len(batch))
	for i, r := range batch {
		text := r.text
		if g.f.chat {
			text = tokenize.ChatQwen.Format([]tokenize.Message{{Role: "user", Content: r.text}}, true)
		}
		ids := g.tok.Encode(text)
		if len(ids) == 0 {
			return fmt.Errorf("prompt %d is empty", g.index+i)
		}
		reqs[i] = policy.Request{Prompt: ids, Seed: g.f.seed + uint64(g.index+i)}
	}
	comps, err := g.pol.Generate(context.Background(), reqs, g.f.sp)
	if err != nil {
		return fmt.Errorf("prompts %d–%d: %w", g.index, g.index+len(batch)-1, err)
	}
	for i, c := range comps {
		for j, x := range c.LogProbs {
			if !finite(float64(x)) {
				return nonFiniteError(fmt.Sprintf("prompt %d: log-prob of generated token %d", g.index+i, j), float64(x), g.f.pol.model)
			}
		}
		b, err := json.Marshal(generateRow(g.index+i, batch[i], c))
		if err != nil {
			return err
		}
		if _, err := g.w.Write(append(b, '\n')); err != nil {
			return err
		}
	}
	g.index += len(batch)
	g.prog.update(0, int64(g.index))
	return nil
}

// checkSampling validates the sampling flags before the model loads.
func checkSampling(sp policy.SamplingParams) error {
	var bad usageProblems
	bad.check(sp.MaxNewTokens > 0, "--max-new-tokens must be positive, is %d", sp.MaxNewTokens)
	bad.check(finite(sp.Temperature) && sp.Temperature >= 0, "--temperature must be ≥ 0, is %g", sp.Temperature)
	bad.check(sp.TopP >= 0 && sp.TopP <= 1, "--top-p must be in [0, 1] (0 or 1 keeps all), is %g", sp.TopP)
	bad.check(sp.TopK >= 0, "--top-k must be ≥ 0, is %d", sp.TopK)
	for _, s := range sp.Stop {
		bad.check(s != "", "--stop must not be empty")
	}
	if len(bad) == 0 {
		return nil
	}
	return errors.New(strings.Join(bad, "\n  "))
}

// generateOut is one output row of igsearch generate.
type generateOut struct {
	Index    int             `json:"index"`
	ID       json.RawMessage `json:"id,omitempty"`
	Prompt   string          `json:"prompt"`
	Text     string          `json:"text"`
	IDs      []int32         `json:"ids"`
	Logprobs []jsonFloat32   `json:"logprobs"`
	Finish   string          `json:"finish_reason"`
	Stop     string          `json:"stop,omitempty"`
}

func generateRow(index int, r promptRow, c policy.Completion) generateOut {
	lp := make([]jsonFloat32, len(c.LogProbs))
	for i, x := range c.LogProbs {
		lp[i] = jsonFloat32(x)
	}
	ids := c.Tokens
	if ids == nil {
		ids = []int32{}
	}
	return generateOut{Index: index, ID: r.id, Prompt: r.text, Text: c.Text, IDs: ids, Logprobs: lp, Finish: string(c.Finish), Stop: c.Stop}
}

// jsonFloat32 marshals a float32 in its shortest form.
type jsonFloat32 float32

func (f jsonFloat32) MarshalJSON() ([]byte, error) {
	return strconv.AppendFloat(nil, float64(f), 'g', -1, 32), nil
}
