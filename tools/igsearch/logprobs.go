package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"

	flag "github.com/spf13/pflag"

	"github.com/igsearch/igsearch/atomicfile"
	"github.com/igsearch/igsearch/onnx"
	"github.com/igsearch/igsearch/onnx/ort"
	"github.com/igsearch/igsearch/policy"
)

var logprobsStage = &stage{
	name:    "logprobs",
	summary: "per-token log-probs of token sequences under a policy (batched, length-bucketed)",
	usage: `igsearch logprobs --model DIR --in FILE --out FILE [flags]

Scores token sequences with the model: for each input row
{"input_ids": [id0, id1, ..., id(n-1)]} (no padding), writes
{"logprobs": [lp1, ..., lp(n-1)]}, n-1 values where
lp(t+1) = log p(ids[t+1] | ids[0..t]). Rows keep their order; a row of one
token gets an empty list. Rows are scored in batches of similar lengths
through the model's scoring graph, so the logits over the vocabulary never
leave ONNX Runtime.

Inputs:
  --model DIR      a Hugging Face Qwen2 checkpoint (config.json +
                   *.safetensors; its weights are read once and the graphs
                   built in memory over them) or an exported ONNX folder
                   (onnx/model.onnx + config.json)
  --in FILE        JSONL rows {"input_ids": [...]}; "-" reads stdin

Output:
  --out FILE       JSONL rows {"logprobs": [...]}, written to a temporary
                   file and renamed into place; "-" writes stdout

Flags:
  --batch-size N   rows read and scored together (default 256)
  --device D       cpu, cuda or cuda:N (default cpu)
  --threads N      intra-op threads (default: ONNX Runtime's choice)
  --ort-lib PATH   the ONNX Runtime shared library (default: found by set-up)
  --dtype T        fp32 (default) or fp16: the graphs built from a
                   checkpoint (fp16 is CUDA's configuration)
  --report-transfers  print the bytes moved between Go memory and ONNX
                   Runtime, by phase, to stderr at the end
  --strict-placement  fail when a CUDA session leaves attention or MatMul
                   nodes on the CPU (default: a warning)

Example:
  echo '{"input_ids": [9707, 11, 1879, 0]}' > in.jsonl
  igsearch logprobs --model models/Qwen2.5-0.5B --in in.jsonl --out lp.jsonl
`,
	run: runLogprobs,
}

// policyFlags are the flags every stage that loads a policy shares.
type policyFlags struct {
	model, device, ortLib, dtype string
	threads                      int
	hostKV                       bool
	check                        checkFlags
}

// register binds the flags: the model and check groups (flaggroups.go),
// --dtype and --host-kv.
func (f *policyFlags) register(fs *flag.FlagSet) {
	f.device = "cpu"
	bindModelFlags(fs, &f.model, &f.device, &f.ortLib, &f.threads)
	bindCheckFlags(fs, &f.check)
	fs.StringVar(&f.dtype, "dtype", "fp32", "graphs built from a checkpoint: fp32, or fp16 (weights and KV cache in float16, as CUDA's GroupQueryAttention needs; norms and log-probs stay float32)")
	fs.BoolVar(&f.hostKV, "host-kv", false, "keep the KV cache in host memory and sample there, moving the cache across the device boundary every run (the path before device residency, for comparison)")
}

// open loads the policy the flags name.
func (f *policyFlags) open(opts policy.Options) (*policy.Policy, error) {
	if f.model == "" {
		return nil, usagef("--model is required")
	}
	dev, err := ort.ParseDevice(f.device)
	if err != nil {
		return nil, usagef("%v", err)
	}
	opts.Device, opts.Threads, opts.ORTLib, opts.HostKV = dev, f.threads, f.ortLib, f.hostKV
	f.check.begin()
	switch f.dtype {
	case "fp32", "float32", "":
	case "fp16", "float16":
		opts.DType = onnx.Float16
	default:
		return nil, usagef("--dtype %q: fp32 or fp16", f.dtype)
	}
	if hasAdapters(f.model) {
		return openAdapted(f.model, opts)
	}
	return policy.Open(f.model, opts)
}

func runLogprobs(args []string) error {
	fs := newFlags("logprobs")
	var pf policyFlags
	pf.register(fs)
	in := fs.String("in", "", "input JSONL of {\"input_ids\": [...]}")
	out := fs.String("out", "", "output JSONL of {\"logprobs\": [...]}")
	batch := fs.Int("batch-size", 256, "rows scored together")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *in == "":
		return usagef("--in is required")
	case *out == "":
		return usagef("--out is required")
	case *batch <= 0:
		return usagef("--batch-size must be positive")
	case fs.NArg() > 0:
		return usagef("unexpected arguments %v", fs.Args())
	}
	r, size, err := openInput(*in)
	if err != nil {
		return err
	}
	defer r.Close()
	p, err := pf.open(policy.Options{})
	if err != nil {
		return err
	}
	defer p.Close()
	defer pf.check.report()
	w, err := createOutput(*out)
	if err != nil {
		return err
	}
	defer w.abort()
	prog := newProgress("logprobs", "tokens", size)
	defer prog.finish()
	cr := &countingReader{r: r}
	sc := bufio.NewScanner(cr)
	sc.Buffer(make([]byte, 1<<20), 1<<30)
	var (
		seqs   [][]int32
		line   int
		tokens int64
		buf    []byte
	)
	flush := func() error {
		if len(seqs) == 0 {
			return nil
		}
		lps, err := p.Score(context.Background(), seqs)
		if err != nil {
			return fmt.Errorf("%s: rows ending at line %d: %w", *in, line, err)
		}
		for _, lp := range lps {
			buf = appendLogprobsRow(buf[:0], lp)
			if _, err := w.Write(buf); err != nil {
				return err
			}
			tokens += int64(len(lp) + 1)
		}
		seqs = seqs[:0]
		prog.update(cr.n, tokens)
		return nil
	}
	for sc.Scan() {
		line++
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		var row struct {
			InputIDs *[]int32 `json:"input_ids"`
		}
		if err := json.Unmarshal(text, &row); err != nil {
			return fmt.Errorf("%s:%d: malformed row: %v", *in, line, err)
		}
		if row.InputIDs == nil {
			return fmt.Errorf("%s:%d: row has no \"input_ids\"", *in, line)
		}
		for i, id := range *row.InputIDs {
			if id < 0 || int(id) >= p.Config().VocabSize {
				return fmt.Errorf("%s:%d: input_ids[%d] = %d is outside the vocabulary [0, %d)", *in, line, i, id, p.Config().VocabSize)
			}
		}
		seqs = append(seqs, *row.InputIDs)
		if len(seqs) == *batch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: line %d: %w", *in, line+1, err)
	}
	if err := flush(); err != nil {
		return err
	}
	return w.commit()
}

// appendLogprobsRow writes {"logprobs":[...]} and a newline, the floats in
// their shortest float32 form.
func appendLogprobsRow(b []byte, lp []float32) []byte {
	b = append(b, `{"logprobs":[`...)
	for i, x := range lp {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendFloat(b, float64(x), 'g', -1, 32)
	}
	return append(b, "]}\n"...)
}

// openInput opens a file, or stdin for "-", and returns its size (0 when
// unknown) for progress.
func openInput(path string) (io.ReadCloser, int64, error) {
	if path == "-" {
		return io.NopCloser(os.Stdin), 0, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	var size int64
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		size = st.Size()
	}
	return f, size, nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// outputFile is a buffered output that appears at its path only on commit:
// it is written to a temporary file in the same directory, synced and
// renamed (atomicfile). "-" is stdout, written as it goes.
type outputFile struct {
	*bufio.Writer
	f    *atomicfile.File // nil for stdout
	path string
}

func createOutput(path string) (*outputFile, error) {
	if path == "-" {
		return &outputFile{Writer: bufio.NewWriterSize(os.Stdout, 1<<16)}, nil
	}
	f, err := atomicfile.Create(path)
	if err != nil {
		return nil, fmt.Errorf("output: %w", err)
	}
	return &outputFile{Writer: bufio.NewWriterSize(f, 1<<16), f: f, path: path}, nil
}

// commit flushes and renames the file into place.
func (o *outputFile) commit() error {
	if err := o.Flush(); err != nil {
		o.abort()
		return fmt.Errorf("output %s: %w", o.path, err)
	}
	if o.f == nil {
		return nil
	}
	if err := o.f.Commit(); err != nil {
		return fmt.Errorf("output: %w", err)
	}
	return nil
}

// abort removes the temporary file unless commit succeeded.
func (o *outputFile) abort() {
	if o.f != nil {
		o.f.Abort()
	}
}
