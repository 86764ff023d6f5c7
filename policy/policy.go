package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/igsearch/igsearch/models/qwen2"
	"github.com/igsearch/igsearch/onnx"
	"github.com/igsearch/igsearch/onnx/ort"
	"github.com/igsearch/igsearch/tokenize"
)

// Options configure Open.
type Options struct {
	// Device is where the sessions run (ort.ParseDevice reads --device).
	Device ort.Device
	// Threads is the intra-op thread count; 0 is ONNX Runtime's default.
	Threads int
	// ORTLib is the ONNX Runtime shared library (--ort-lib); "" finds it
	// with ort.FindLibrary.
	ORTLib string
	// Tokenizer decodes generated text for Completion.Text and stop
	// strings, and adds its end-of-turn ids to the default EOS ids. Nil
	// loads DIR/tokenizer.json when there is one.
	Tokenizer *tokenize.Tokenizer
	// Attention picks the attention variant of graphs built from a
	// checkpoint: "standard" (MatMul/Softmax) or "contrib" (ONNX Runtime's
	// GroupQueryAttention). "" is contrib, which measured 2–5× faster on
	// CPU (scripts/bench.d/40-policy.sh).
	Attention string
	// Format forces how dir is read: "checkpoint" or "onnx". The default
	// reads a checkpoint when dir holds *.safetensors, else model.onnx.
	Format string
	// NoGraphCache builds the graphs of a checkpoint in memory instead of
	// caching them in DIR/.onnx.
	NoGraphCache bool
}

// Policy is a Qwen2 policy loaded for generation and scoring: an inference
// session (KV cache, onnx-community I/O) and, when the model has one, a
// scoring session. It is safe for concurrent use by several Batches and
// Score calls; Close it when done.
type Policy struct {
	dir     string
	device  ort.Device
	cfg     qwen2.Config
	shape   kvShape
	vocab   int
	infer   *ort.Session
	scoring *ort.Session // nil: score with the inference graph
	// lastOnly: the inference graph's logits hold the last position only,
	// [B,1,V] (see lastLogitsOnly).
	lastOnly bool
	hasPos   bool // the inference graph takes position_ids
	// runTokens bounds the new tokens of one run (0: 2048); tests lower it
	// to exercise chunked prefill.
	runTokens int
	// batchAppend: the inference graph takes several new tokens on top of
	// a past for several rows in one run. com.microsoft.GroupQueryAttention's
	// CPU kernel does that for one row only, so unless the graph is known
	// to have none, prefill runs such rows one by one.
	batchAppend bool
	tok         *tokenize.Tokenizer
	eos         []int32
	source      string // where the graphs came from, for messages
}

// Open loads the policy in dir, which is either
//   - a Hugging Face checkpoint (config.json + model.safetensors, or shards
//     with model.safetensors.index.json): the graphs are built with
//     models/qwen2 and cached in DIR/.onnx/KEY/, KEY a hash of config.json,
//     the weight files' names, sizes and mtimes and the build options; or
//   - an exported ONNX directory: model.onnx (onnx-community I/O, e.g. a
//     torch export) + config.json, and optionally scoring.onnx, a graph with
//     inputs input_ids, attention_mask and output token_logprobs.
//
// A directory with both is read as a checkpoint unless Options.Format says
// otherwise.
func Open(dir string, opts Options) (*Policy, error) {
	if _, err := ort.InitDefault(opts.ORTLib, opts.Device); err != nil {
		return nil, fmt.Errorf("policy %s: %w", dir, err)
	}
	cfg, err := qwen2.LoadConfig(dir)
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", dir, err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("policy %s: config: %w", dir, err)
	}
	p := &Policy{
		dir:    dir,
		device: opts.Device,
		cfg:    cfg,
		shape:  kvShape{layers: cfg.NumHiddenLayers, heads: cfg.NumKeyValueHeads, dim: cfg.HeadDim()},
		vocab:  cfg.VocabSize,
	}
	so := ort.Options{Device: opts.Device, IntraOpThreads: opts.Threads, InterOpThreads: 1}
	format := opts.Format
	if format == "" {
		format = "onnx"
		if st, _ := filepath.Glob(filepath.Join(dir, "*.safetensors")); len(st) > 0 {
			format = "checkpoint"
		}
	}
	switch format {
	case "onnx":
		err = p.openONNXFolder(so)
	case "checkpoint":
		err = p.openCheckpoint(so, opts)
	default:
		err = fmt.Errorf("unknown format %q: checkpoint or onnx", format)
	}
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("policy %s: %w", dir, err)
	}
	if err := p.checkInference(); err != nil {
		p.Close()
		return nil, fmt.Errorf("policy %s: %s: %w", dir, p.source, err)
	}
	p.tok = opts.Tokenizer
	if p.tok == nil {
		path := filepath.Join(dir, "tokenizer.json")
		if _, err := os.Stat(path); err == nil {
			if p.tok, err = tokenize.Load(path); err != nil {
				p.Close()
				return nil, fmt.Errorf("policy %s: %w", dir, err)
			}
		}
	}
	p.eos = p.defaultEOS()
	return p, nil
}

// Close releases the sessions.
func (p *Policy) Close() error {
	var errs []error
	if p.infer != nil {
		errs = append(errs, p.infer.Close())
	}
	if p.scoring != nil {
		errs = append(errs, p.scoring.Close())
	}
	p.infer, p.scoring = nil, nil
	return errors.Join(errs...)
}

// Config is the model's configuration.
func (p *Policy) Config() qwen2.Config { return p.cfg }

// Device is where the policy's sessions run.
func (p *Policy) Device() ort.Device { return p.device }

// Tokenizer is the tokenizer in use, nil if none.
func (p *Policy) Tokenizer() *tokenize.Tokenizer { return p.tok }

// EOS is the default end-of-sequence ids: config.json's eos_token_id and the
// tokenizer's end-of-turn tokens, those inside the vocabulary.
func (p *Policy) EOS() []int32 { return slices.Clone(p.eos) }

// Source says where the graphs came from (a file or the cache directory).
func (p *Policy) Source() string { return p.source }

func (p *Policy) defaultEOS() []int32 {
	var ids []int32
	add := func(id int64) {
		if id >= 0 && id < int64(p.vocab) && !slices.Contains(ids, int32(id)) {
			ids = append(ids, int32(id))
		}
	}
	for _, id := range p.cfg.EOSTokenIDs {
		add(id)
	}
	if p.tok != nil {
		for _, id := range p.tok.EOSIDs() {
			add(int64(id))
		}
	}
	return ids
}

// checkIDs reports token ids outside the vocabulary.
func (p *Policy) checkIDs(ids []int32) error {
	for i, id := range ids {
		if id < 0 || int(id) >= p.vocab {
			return fmt.Errorf("token %d at position %d is outside the vocabulary [0, %d)", id, i, p.vocab)
		}
	}
	return nil
}

// openExported opens DIR/model.onnx (and DIR/scoring.onnx if present).
func (p *Policy) openExported(so ort.Options) error {
	path := filepath.Join(p.dir, "model.onnx")
	s, err := ort.NewSession(path, so)
	if err != nil {
		return err
	}
	p.infer, p.source = s, path
	if m, err := onnx.LoadWith(path, onnx.LoadOptions{SkipData: true}); err == nil {
		p.batchAppend = !usesGQA(m.Graph)
	}
	sp := filepath.Join(p.dir, "scoring.onnx")
	if _, err := os.Stat(sp); err == nil {
		if p.scoring, err = ort.NewSession(sp, so); err != nil {
			return err
		}
		if err := p.checkScoring(); err != nil {
			return fmt.Errorf("%s: %w", sp, err)
		}
	}
	return nil
}

// usesGQA reports whether g has a GroupQueryAttention node.
func usesGQA(g *onnx.Graph) bool {
	for _, n := range g.Nodes {
		if n.Op == "GroupQueryAttention" {
			return true
		}
	}
	return false
}

// graphCacheVersion changes when the cached graphs' contract changes (the
// surgery lastLogitsOnly does, the file names), so that old caches are not
// reused.
const graphCacheVersion = "policy-graphs-2"

// openCheckpoint builds the inference and scoring graphs from an HF
// checkpoint, or reuses them from DIR/.onnx.
func (p *Policy) openCheckpoint(so ort.Options, opts Options) error {
	attn := opts.Attention
	if attn == "" {
		attn = "contrib"
	}
	a, err := qwen2.ParseAttention(attn)
	if err != nil {
		return err
	}
	gopts := qwen2.Options{Attention: a}
	p.batchAppend = a != qwen2.ContribAttention
	key, err := cacheKey(p.dir, gopts)
	if err != nil {
		return err
	}
	cacheDir := filepath.Join(p.dir, ".onnx", key)
	inferPath := filepath.Join(cacheDir, "inference.onnx")
	if !opts.NoGraphCache {
		if _, err := os.Stat(inferPath); err == nil {
			if err := p.openCached(so, cacheDir); err == nil {
				return nil
			}
			// A damaged cache: rebuild below.
			p.Close()
		}
	}
	ck, err := qwen2.LoadCheckpoint(p.dir, onnx.Float)
	if err != nil {
		return err
	}
	defer ck.Close()
	ig, err := qwen2.BuildInference(ck.Config, ck.Weights, gopts)
	if err != nil {
		return fmt.Errorf("inference graph: %w", err)
	}
	lastOnly := lastLogitsOnly(ig)
	sg, err := qwen2.BuildScoring(ck.Config, ck.Weights, gopts)
	if err != nil {
		return fmt.Errorf("scoring graph: %w", err)
	}
	if !opts.NoGraphCache {
		werr := writeGraphs(filepath.Join(p.dir, ".onnx"), key, map[string]*onnx.Graph{"inference.onnx": ig, "scoring.onnx": sg})
		if werr == nil {
			if err := p.openCached(so, cacheDir); err != nil {
				return err
			}
			return nil
		}
		// An unwritable checkpoint directory: fall back to memory.
	}
	if p.infer, err = ort.NewSessionFromGraph(ig, so); err != nil {
		return err
	}
	if p.scoring, err = ort.NewSessionFromGraph(sg, so); err != nil {
		return err
	}
	p.lastOnly = lastOnly
	p.source = "built in memory from " + p.dir
	return p.checkScoring()
}

func (p *Policy) openCached(so ort.Options, dir string) error {
	var err error
	if p.infer, err = ort.NewSession(filepath.Join(dir, "inference.onnx"), so); err != nil {
		return err
	}
	if p.scoring, err = ort.NewSession(filepath.Join(dir, "scoring.onnx"), so); err != nil {
		return err
	}
	p.source = dir
	return p.checkScoring()
}

// cacheKey hashes what the graphs depend on: config.json's bytes, the weight
// files' names, sizes and modification times, and the build options.
func cacheKey(dir string, gopts qwen2.Options) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%+v\n", graphCacheVersion, gopts)
	cfg, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return "", err
	}
	h.Write(cfg)
	files, err := filepath.Glob(filepath.Join(dir, "*.safetensors"))
	if err != nil {
		return "", err
	}
	if idx := filepath.Join(dir, "model.safetensors.index.json"); fileExists(idx) {
		files = append(files, idx)
	}
	if len(files) == 0 {
		return "", fmt.Errorf("no model.onnx and no *.safetensors: neither an exported ONNX model nor an HF checkpoint")
	}
	sort.Strings(files)
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d %d\n", filepath.Base(f), st.Size(), st.ModTime().UnixNano())
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// writeGraphs writes the graphs into root/key atomically: into a temporary
// directory that is renamed into place, so that a reader never sees half a
// cache. If another process wins the race, its copy is kept.
func writeGraphs(root, key string, graphs map[string]*onnx.Graph) error {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(root, "tmp-"+key+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for name, g := range graphs {
		if err := writeGraph(filepath.Join(tmp, name), g); err != nil {
			return fmt.Errorf("caching %s: %w", name, err)
		}
	}
	final := filepath.Join(root, key)
	if err := os.Rename(tmp, final); err != nil {
		if fileExists(filepath.Join(final, "inference.onnx")) {
			return nil
		}
		return err
	}
	return nil
}

func writeGraph(path string, g *onnx.Graph) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := g.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Output names of the inference graph after lastLogitsOnly.
const (
	// outLogprobs is log_softmax of the last position's logits [B,1,V].
	outLogprobs = "logprobs"
	// outCDF is the cumulative sum of exp(logprobs) over the vocabulary
	// [B,1,V]: sampling at temperature 1 is then a binary search.
	outCDF = "cdf"
)

// lastLogitsOnly changes an inference graph built by models/qwen2 for
// generation. Its logits output becomes two outputs over the last position
// only: "logprobs" (log_softmax, [B,1,V]) and "cdf" (their cumulative
// probabilities, [B,1,V]). Generation needs nothing else; the lm_head over
// every prefilled position would cost more than the rest of the model for a
// large vocabulary and hold B·T·V floats; and the log-softmax and cumulative
// sum run vectorised in ONNX Runtime instead of one exp at a time here. It
// slices the hidden states just before the lm_head MatMul. It reports false,
// leaving g alone, when the graph does not have that shape.
func lastLogitsOnly(g *onnx.Graph) bool {
	var out *onnx.Value
	at := -1
	for i, o := range g.Outputs {
		if o.Name == qwen2.Logits {
			out, at = o, i
		}
	}
	if out == nil {
		return false
	}
	// Walk back through shape-preserving nodes to the MatMul.
	chain := []*onnx.Value{out}
	v := out
	for v.Producer != nil && (v.Producer.Op == "Identity" || v.Producer.Op == "Cast") {
		v = v.Producer.Inputs[0]
		chain = append(chain, v)
	}
	mm := v.Producer
	if mm == nil || mm.Op != "MatMul" || mm.Inputs[0].Rank() != 3 || out.Rank() != 3 {
		return false
	}
	mmAt := slices.Index(g.Nodes, mm)
	if mmAt < 0 {
		return false
	}
	n := len(g.Nodes)
	h := g.Slice(mm.Inputs[0], []int64{1}, []int64{-1}, []int64{math.MaxInt64})
	mm.Inputs[0] = h
	// Keep the node list topologically sorted: move the new nodes before
	// the MatMul.
	added := slices.Clone(g.Nodes[n:])
	g.Nodes = slices.Insert(g.Nodes[:n], mmAt, added...)
	for _, c := range chain {
		c.Shape = slices.Clone(c.Shape)
		c.Shape[1] = onnx.D(1)
	}
	lp := g.LogSoftmax(out, -1)
	cdf := g.CumSum(g.Exp(lp), 2)
	g.Outputs = slices.Delete(g.Outputs, at, at+1)
	g.Output(outLogprobs, lp)
	g.Output(outCDF, cdf)
	return true
}

// checkInference checks the inference session's I/O against the
// onnx-community names and the config, and notes whether it takes
// position_ids and how many positions its logits have.
func (p *Policy) checkInference() error {
	ins := map[string]ort.IO{}
	for _, in := range p.infer.Inputs() {
		ins[in.Name] = in
	}
	outs := map[string]ort.IO{}
	for _, o := range p.infer.Outputs() {
		outs[o.Name] = o
	}
	need := []string{qwen2.InputIDs, qwen2.AttentionMask}
	for i := range p.cfg.NumHiddenLayers {
		need = append(need, qwen2.PastKey(i), qwen2.PastValue(i))
	}
	for _, n := range need {
		if _, ok := ins[n]; !ok {
			return fmt.Errorf("the inference graph has no input %q (onnx-community I/O expected)", n)
		}
	}
	for i := range p.cfg.NumHiddenLayers {
		for _, n := range []string{qwen2.PresentKey(i), qwen2.PresentValue(i)} {
			if _, ok := outs[n]; !ok {
				return fmt.Errorf("the inference graph has no output %q", n)
			}
		}
		k := ins[qwen2.PastKey(i)]
		if k.DType != onnx.Float {
			return fmt.Errorf("past keys are %s: only float32 KV caches are supported", k.DType)
		}
		if len(k.Shape) == 4 && (k.Shape[1].Known() && k.Shape[1].Size != int64(p.shape.heads) || k.Shape[3].Known() && k.Shape[3].Size != int64(p.shape.dim)) {
			return fmt.Errorf("past keys %v do not match config.json (%d KV heads, head dim %d)", k.Shape, p.shape.heads, p.shape.dim)
		}
	}
	_, hasLogits := outs[qwen2.Logits]
	_, hasLogprobs := outs[outLogprobs]
	_, hasCDF := outs[outCDF]
	switch {
	case hasLogprobs && hasCDF:
		p.lastOnly = true // lastLogitsOnly's outputs
	case hasLogits:
		p.lastOnly = false
	default:
		return fmt.Errorf("the inference graph has no output %q", qwen2.Logits)
	}
	_, p.hasPos = ins[qwen2.PositionIDs]
	return nil
}

func (p *Policy) checkScoring() error {
	if p.scoring == nil {
		return nil
	}
	ins := map[string]bool{}
	for _, in := range p.scoring.Inputs() {
		ins[in.Name] = true
	}
	if !ins[qwen2.InputIDs] || !ins[qwen2.AttentionMask] || len(ins) != 2 {
		return fmt.Errorf("the scoring graph must take exactly %s and %s", qwen2.InputIDs, qwen2.AttentionMask)
	}
	for _, o := range p.scoring.Outputs() {
		if o.Name == qwen2.TokenLogprobs {
			return nil
		}
	}
	return fmt.Errorf("the scoring graph has no output %q", qwen2.TokenLogprobs)
}

// logitsWant says which logits a forward run should return.
type logitsWant int

const (
	logitsNone logitsWant = iota // an intermediate prefill chunk
	logitsLast                   // [n, V] at the last column
	logitsAll                    // [n, w, V]
)

// forwardResult is one run of the inference graph.
type forwardResult struct {
	// logits are [n, V] at the last column, or [n, w, V] for logitsAll;
	// log-probabilities when normalized.
	logits     []float32
	normalized bool
	// cdf, when not nil, is the cumulative sum of exp(logits) per row
	// (normalized logits only).
	cdf     []float32
	present *kvCache
}

// chunkColumns is how many new columns one run may take for n rows: about
// runTokens new tokens per run, and no more than 64 Mi logits when the graph
// returns the logits of every position.
func (p *Policy) chunkColumns(n int) int {
	tokens := p.runTokens
	if tokens <= 0 {
		tokens = 2048
	}
	if !p.lastOnly {
		tokens = min(tokens, (64<<20)/p.vocab)
	}
	return max(1, tokens/max(n, 1))
}

// scoreTokens is the padded-token budget of one scoring run: the scoring
// graph holds [B,T,V] logits and their log-softmax inside the runtime.
func (p *Policy) scoreTokens() int {
	return max(64, min(16384, (64<<20)/p.vocab))
}

// forward runs the inference graph on w new columns for the rows of past:
// ids and newMask are [n, w]. Positions are cumsum(mask) − 1 over the past
// and new columns, clamped at 0. The present keys and values, and the
// logits, are written straight into Go memory (pre-bound outputs).
func (p *Policy) forward(ctx context.Context, past *kvCache, ids, newMask []int64, w int, want logitsWant) (*forwardResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	n, P := past.rows, past.cols
	S := P + w
	mask := make([]int64, n*S)
	pos := make([]int64, n*w)
	for r := range n {
		copy(mask[r*S:r*S+P], past.mask[r*P:(r+1)*P])
		copy(mask[r*S+P:(r+1)*S], newMask[r*w:(r+1)*w])
		var cum int64
		for c := range S {
			cum += mask[r*S+c]
			if c >= P {
				pos[r*w+c-P] = max(cum-1, 0)
			}
		}
	}
	present := &kvCache{kvShape: p.shape, rows: n, cols: S, kv: make([][]float32, 2*p.shape.layers), mask: mask}
	inputs := map[string]*ort.Tensor{}
	outputs := ort.Outputs{}
	defer func() {
		for _, t := range inputs {
			t.Destroy()
		}
		outputs.Destroy()
	}()
	add := func(m map[string]*ort.Tensor, name string, t *ort.Tensor, err error) error {
		if err != nil {
			return fmt.Errorf("policy: %s: %w", name, err)
		}
		m[name] = t
		return nil
	}
	t, err := ort.NewTensor([]int64{int64(n), int64(w)}, ids)
	if err := add(inputs, qwen2.InputIDs, t, err); err != nil {
		return nil, err
	}
	t, err = ort.NewTensor([]int64{int64(n), int64(S)}, mask)
	if err := add(inputs, qwen2.AttentionMask, t, err); err != nil {
		return nil, err
	}
	if p.hasPos {
		t, err = ort.NewTensor([]int64{int64(n), int64(w)}, pos)
		if err := add(inputs, qwen2.PositionIDs, t, err); err != nil {
			return nil, err
		}
	}
	s := p.shape
	pastShape := []int64{int64(n), int64(s.heads), int64(P), int64(s.dim)}
	presShape := []int64{int64(n), int64(s.heads), int64(S), int64(s.dim)}
	for i := range s.layers {
		for j, name := range []string{qwen2.PastKey(i), qwen2.PastValue(i)} {
			t, err := ort.NewTensor(pastShape, past.kv[2*i+j][:n*s.heads*P*s.dim])
			if err := add(inputs, name, t, err); err != nil {
				return nil, err
			}
		}
		for j, name := range []string{qwen2.PresentKey(i), qwen2.PresentValue(i)} {
			buf := getKV(n * s.heads * S * s.dim)
			present.kv[2*i+j] = buf
			t, err := ort.NewTensor(presShape, buf)
			if err := add(outputs, name, t, err); err != nil {
				return nil, err
			}
		}
	}
	res := &forwardResult{present: present}
	v := p.vocab
	if p.lastOnly {
		if want == logitsAll {
			return nil, fmt.Errorf("policy: the inference graph returns last-position log-probs only")
		}
		// Both outputs are computed anyway; bind them when wanted.
		if want == logitsLast {
			res.logits, res.cdf = make([]float32, n*v), make([]float32, n*v)
			res.normalized = true
			for name, buf := range map[string][]float32{outLogprobs: res.logits, outCDF: res.cdf} {
				t, err := ort.NewTensor([]int64{int64(n), 1, int64(v)}, buf)
				if err := add(outputs, name, t, err); err != nil {
					return nil, err
				}
			}
		}
		if err := p.infer.RunWith(inputs, outputs); err != nil {
			return nil, fmt.Errorf("policy: %w", err)
		}
		return res, nil
	}
	var logits []float32
	if want != logitsNone {
		logits = make([]float32, n*w*v)
		t, err := ort.NewTensor([]int64{int64(n), int64(w), int64(v)}, logits)
		if err := add(outputs, qwen2.Logits, t, err); err != nil {
			return nil, err
		}
	}
	if err := p.infer.RunWith(inputs, outputs); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	switch want {
	case logitsAll:
		res.logits = logits
	case logitsLast:
		res.logits = make([]float32, n*v)
		for r := range n {
			copy(res.logits[r*v:(r+1)*v], logits[(r*w+w-1)*v:(r*w+w)*v])
		}
	}
	return res, nil
}

// scoreGraph runs the scoring graph on right-padded sequences.
func (p *Policy) scoreGraph(ctx context.Context, seqs [][]int32) ([][]float32, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ids, mask, T := rightPad(seqs)
	n := len(seqs)
	in := map[string]*ort.Tensor{}
	out := ort.Outputs{}
	defer func() {
		for _, t := range in {
			t.Destroy()
		}
		out.Destroy()
	}()
	var err error
	if in[qwen2.InputIDs], err = ort.NewTensor([]int64{int64(n), int64(T)}, ids); err != nil {
		return nil, err
	}
	if in[qwen2.AttentionMask], err = ort.NewTensor([]int64{int64(n), int64(T)}, mask); err != nil {
		return nil, err
	}
	lp := make([]float32, n*(T-1))
	if out[qwen2.TokenLogprobs], err = ort.NewTensor([]int64{int64(n), int64(T - 1)}, lp); err != nil {
		return nil, err
	}
	if err := p.scoring.RunWith(in, out); err != nil {
		return nil, err
	}
	res := make([][]float32, n)
	for i, s := range seqs {
		res[i] = slices.Clone(lp[i*(T-1) : i*(T-1)+len(s)-1])
		if err := checkLogProbs(res[i]); err != nil {
			return nil, fmt.Errorf("scoring graph: sequence of %d tokens: %w", len(s), err)
		}
	}
	return res, nil
}

// textStream decodes one sequence's generated tokens as they come, skipping
// special tokens, and returns only complete UTF-8.
type textStream struct{ d *tokenize.Decoder }

func (p *Policy) newTextStream() *textStream { return &textStream{p.tok.NewDecoder(true)} }

func (s *textStream) add(id int32) string { return s.d.Step(id) }

func (s *textStream) flush() string { return s.d.Flush() }
