package policy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

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
	// checkpoint: "standard" (MatMul/Softmax), "contrib" (ONNX Runtime's
	// GroupQueryAttention) or "fused" (ONNX opset 23's Attention and
	// RotaryEmbedding, measured on the CPU only). "" is contrib, which
	// measured 2–5× faster than standard on CPU
	// (scripts/bench.d/40-policy.sh).
	Attention string
	// Format forces how dir is read: "checkpoint" or "onnx". The default
	// reads a checkpoint when dir holds *.safetensors, else model.onnx.
	Format string
	// DType is the weight and KV-cache type of graphs built from weights:
	// onnx.Float (the zero value), or onnx.Float16, what CUDA's
	// GroupQueryAttention needs; norms, softmax and log-probs stay float32.
	// On CPU float16 runs, but 5–7× slower than float32 (measured,
	// models/qwen2's BenchmarkCPUWeightDType).
	DType onnx.DType
	// SharedWeights, for FromWeights, is host memory that already holds the
	// weights (the trainer's): the tensors of w that lie in it are taken in
	// place instead of copied, and the block stays the caller's, who must
	// keep it and its contents unchanged until the policy is closed.
	SharedWeights *ort.HostWeights
	// ResidentWeights, for FromWeights, are ORT-owned tensors that hold
	// the weights of the same names (a trainer's resident state, maybe in
	// device memory): the sessions take them in place (AddInitializer) and
	// w's copies of them serve only for their shapes. They must outlive
	// the policy and stay unchanged while it is open.
	ResidentWeights map[string]*ort.Tensor
	// LoRAScale, for FromWeights, is the scale of the low-rank adapters
	// that w holds beside the base weights (NAME.lora_A.weight and
	// NAME.lora_B.weight, see qwen2.Options.LoRAScale); 0 ignores them.
	LoRAScale float64
	// Prepack lets ONNX Runtime's CPU kernels keep a repacked copy of the
	// MatMul weights, which doubles the weights' memory (see
	// ort.Options.DisablePrepacking; docs/results.md has the figures).
	Prepack bool
	// HostKV keeps the KV caches in Go memory and samples there, as before
	// device residency (see resident.go): every run then moves the whole
	// cache across the boundary. For comparisons; exported ONNX folders
	// whose graphs return every position's logits always run this way.
	HostKV bool
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
	// lastOnly: the inference graph has a sampling head over the last
	// position only (qwen2.Options.SamplingHead).
	lastOnly bool
	hasPos   bool // the inference graph takes position_ids
	// kvDType is the graph's KV-cache type, float32 or float16; the host
	// cache is float32 either way, converted at the boundary.
	kvDType onnx.DType
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
	// weights holds a checkpoint's weights once for both sessions; nil for
	// an ONNX folder, whose sessions read their own.
	weights     *ort.HostWeights
	ownsWeights bool          // Close frees weights (not the caller's shared block)
	w           qwen2.Weights // the tensors in weights, by HF name
	loraScale   float64
	dtype       onnx.DType // of the built graphs' weights
	// tree is the tree-scoring session of ScorePacked (tree.go).
	tree treeScoring
	// resident: KV caches, masks and the sampling head's outputs stay in
	// ORT-owned memory (resident.go), with ops running the graphs that
	// gather, extend and read them there.
	resident bool
	hostKV   bool
	ops      *kvOps
	sampler  *graphSampler
	given    map[string]*ort.Tensor // Options.ResidentWeights
	opsOpts  ort.Options
}

// Open loads the policy in dir, which is either
//   - a Hugging Face checkpoint (config.json + model.safetensors, or shards
//     with model.safetensors.index.json): its weights are read once into
//     host memory (bf16/fp16 converted to fp32, see docs/results.md for the
//     choice) and the inference and scoring graphs are built by
//     models/qwen2 over them, taking them in place, whatever their size; or
//   - an exported ONNX folder: onnx-community's DIR/onnx/model.onnx, or a
//     flat DIR/model.onnx (onnx-community I/O, e.g. a torch export), with
//     config.json, and optionally a scoring graph (inputs input_ids,
//     attention_mask, output token_logprobs).
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
	p := newPolicy(dir, cfg, opts)
	format := opts.Format
	if format == "" {
		format = "onnx"
		if st, _ := filepath.Glob(filepath.Join(dir, "*.safetensors")); len(st) > 0 {
			format = "checkpoint"
		}
	}
	switch format {
	case "onnx":
		err = p.openONNXFolder(p.sessionOptions(opts))
	case "checkpoint":
		err = p.openCheckpoint(opts)
	default:
		err = fmt.Errorf("unknown format %q: checkpoint or onnx", format)
	}
	if err == nil {
		err = p.finish(opts.Tokenizer)
	}
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("policy %s: %w", dir, err)
	}
	return p, nil
}

// FromWeights builds a policy over in-memory weights, with nothing written to
// disk: the training loop's policy for the next rollout, made from the
// trainer's current state. The weights are copied once into host memory
// that both sessions take in place, so w may change after FromWeights
// returns; with opts.SharedWeights they are not copied at all. w may also
// hold LoRA adapters (opts.LoRAScale). tok may be nil (no text decoding,
// no stop strings).
func FromWeights(cfg qwen2.Config, w qwen2.Weights, tok *tokenize.Tokenizer, opts Options) (*Policy, error) {
	if _, err := ort.InitDefault(opts.ORTLib, opts.Device); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("policy: config: %w", err)
	}
	p := newPolicy(inMemory, cfg, opts)
	p.loraScale = opts.LoRAScale
	var err error
	if len(opts.ResidentWeights) > 0 {
		if p.dtype != onnx.Float {
			return nil, fmt.Errorf("policy: resident weights are float32; a %s policy needs its own copy", p.dtype)
		}
		p.given = opts.ResidentWeights
	}
	if opts.SharedWeights != nil || p.given != nil {
		p.weights, p.w = opts.SharedWeights, w
	} else {
		err = p.copyWeights(w)
	}
	if err == nil {
		err = p.build(opts, "built in memory")
	}
	if err == nil {
		err = p.finish(tok)
	}
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("policy: %w", err)
	}
	return p, nil
}

// inMemory is the dir of a policy made by FromWeights.
const inMemory = "<memory>"

func newPolicy(dir string, cfg qwen2.Config, opts Options) *Policy {
	dt := opts.DType
	if dt == onnx.Undefined {
		dt = onnx.Float
	}
	return &Policy{
		dtype:  dt,
		dir:    dir,
		device: opts.Device,
		cfg:    cfg,
		shape:  kvShape{layers: cfg.NumHiddenLayers, heads: cfg.NumKeyValueHeads, dim: cfg.HeadDim()},
		vocab:  cfg.VocabSize,
		hostKV: opts.HostKV,
		opsOpts: ort.Options{Device: opts.Device, IntraOpThreads: opts.Threads, InterOpThreads: 1,
			LowMemory: dir == inMemory && !opts.Device.CUDA},
	}
}

// sessionOptions are the policy's session options. A policy made by
// FromWeights (the training loop's rollout and reference policies) runs on
// the CPU without ONNX Runtime's memory arena (ort.Options.LowMemory): an
// arena keeps every size it was asked for, and a policy's runs ask for new
// sizes at every step (the context grows, prefill chunks and scoring
// batches vary), so a training process grew by gigabytes per iteration
// (0.5B full fine-tuning, 90 s into the first iteration: 9.3 GB with
// per-session arenas, 10.2 GB with one shared arena, 8.2 GB without).
// Stand-alone stages keep the arena, which reuses its buffers.
func (p *Policy) sessionOptions(opts Options) ort.Options {
	return ort.Options{Device: opts.Device, IntraOpThreads: opts.Threads, InterOpThreads: 1,
		Weights: p.weights, Initializers: p.given, DisablePrepacking: (p.weights != nil || p.given != nil) && !opts.Prepack,
		LowMemory: p.dir == inMemory && !opts.Device.CUDA}
}

// finish checks the inference graph's I/O and sets the tokenizer (tok, or
// DIR/tokenizer.json when there is one) and the EOS ids.
func (p *Policy) finish(tok *tokenize.Tokenizer) error {
	if err := p.checkInference(); err != nil {
		return fmt.Errorf("%s: %w", p.source, err)
	}
	if p.resident = p.lastOnly && !p.hostKV; p.resident {
		p.ops = newKVOps(p.opsOpts, p.shape, p.kvDType)
		var err error
		if p.sampler, err = newGraphSampler(p.vocab, p.ops.so); err != nil {
			return err
		}
	}
	p.tok = tok
	if p.tok == nil && p.dir != inMemory {
		path := filepath.Join(p.dir, "tokenizer.json")
		if _, err := os.Stat(path); err == nil {
			if p.tok, err = tokenize.Load(path); err != nil {
				return err
			}
		}
	}
	p.eos = p.defaultEOS()
	return nil
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
	errs = append(errs, p.closeTree())
	p.ops.close()
	p.ops = nil
	if p.sampler != nil {
		errs = append(errs, p.sampler.Close())
		p.sampler = nil
	}
	// The block is unmapped once both sessions are closed.
	if p.ownsWeights {
		errs = append(errs, p.weights.Close())
	}
	p.weights = nil
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

// openCheckpoint reads the checkpoint's weights once into host memory and
// builds the graphs over them.
func (p *Policy) openCheckpoint(opts Options) error {
	w, err := ort.NewHostWeights(ort.HostWeightSize(qwen2.WeightSizes(p.cfg, p.dtype)))
	if err != nil {
		return err
	}
	p.weights, p.ownsWeights = w, true
	if p.w, err = qwen2.LoadWeightsInto(p.dir, p.cfg, p.dtype, w.Alloc); err != nil {
		return err
	}
	return p.build(opts, "built in memory from "+p.dir)
}

// copyWeights copies w (float32) into a new host-weights block, as p.dtype.
func (p *Policy) copyWeights(w qwen2.Weights) error {
	block, err := ort.NewHostWeights(ort.HostWeightSize(qwen2.WeightSizes(p.cfg, p.dtype)))
	if err != nil {
		return err
	}
	p.weights, p.ownsWeights = block, true
	p.w = qwen2.Weights{}
	for name, t := range w {
		if qwen2.IsAdapter(name) {
			p.w[name] = t // small: inline in the graphs
		}
	}
	for _, par := range qwen2.Params(p.cfg) {
		t := w[par.Name]
		if t == nil {
			return fmt.Errorf("weights have no %q", par.Name)
		}
		if t.DType != onnx.Float {
			return fmt.Errorf("weight %q is %s, want float32", par.Name, t.DType)
		}
		if err := t.Validate(); err != nil {
			return fmt.Errorf("weight %q: %w", par.Name, err)
		}
		raw, err := block.Alloc(len(t.Raw) / 4 * p.dtype.Size())
		if err != nil {
			return err
		}
		if p.dtype == onnx.Float16 {
			for i, x := range t.Floats() {
				binary.LittleEndian.PutUint16(raw[2*i:], onnx.Float32ToFloat16(x))
			}
		} else {
			copy(raw, t.Raw)
		}
		p.w[par.Name] = &onnx.Tensor{DType: p.dtype, Dims: t.Dims, Raw: raw}
	}
	return nil
}

// build is the one build path of a policy over weights held in p.weights:
// the inference graph (KV cache, sampling head) and the scoring graph, with
// the attention variant of opts.Attention or, by default, the one
// qwen2.PreferredAttention picks for the device and head size.
func (p *Policy) build(opts Options, source string) error {
	if p.dtype != onnx.Float && p.dtype != onnx.Float16 {
		return fmt.Errorf("graph dtype %s: float32 or float16", p.dtype)
	}
	a := qwen2.PreferredAttention(opts.Device.CUDA, p.dtype, p.cfg.HeadDim())
	if opts.Attention != "" {
		var err error
		if a, err = qwen2.ParseAttention(opts.Attention); err != nil {
			return err
		}
	}
	gopts := qwen2.Options{Attention: a, FusedLinear: true, LoRAScale: p.loraScale, DType: p.dtype}
	p.batchAppend = a != qwen2.ContribAttention
	infer := gopts
	infer.SamplingHead = true
	infer.PositionsFromMask = true
	ig, err := qwen2.BuildInference(p.cfg, p.w, infer)
	if err != nil {
		return fmt.Errorf("inference graph: %w", err)
	}
	sg, err := qwen2.BuildScoring(p.cfg, p.w, gopts)
	if err != nil {
		return fmt.Errorf("scoring graph: %w", err)
	}
	so := p.sessionOptions(opts)
	if p.dtype == onnx.Float16 && !opts.Device.CUDA {
		// The CPU provider runs float16 graphs by casting to float32 around
		// the kernels it lacks and folds those casts over the weights, which
		// it must then read from the model: the weights go inline (graphs
		// under protobuf's 2 GiB; float16 on the CPU is for checking the
		// CUDA configuration, not for speed).
		so.Weights = nil
	}
	if p.infer, err = ort.NewSessionFromGraph(ig, so); err != nil {
		return err
	}
	if p.scoring, err = ort.NewSessionFromGraph(sg, so); err != nil {
		return err
	}
	p.source = source
	return p.checkScoring()
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// Output names of an inference graph with qwen2.Options.SamplingHead.
const (
	outLogprobs = qwen2.LastLogprobs
	outCDF      = qwen2.LastCDF
)

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
		if k.DType != onnx.Float && k.DType != onnx.Float16 {
			return fmt.Errorf("past keys are %s: float32 or float16 KV caches are supported", k.DType)
		}
		p.kvDType = k.DType
		if len(k.Shape) == 4 && (k.Shape[1].Known() && k.Shape[1].Size != int64(p.shape.heads) || k.Shape[3].Known() && k.Shape[3].Size != int64(p.shape.dim)) {
			return fmt.Errorf("past keys %v do not match config.json (%d KV heads, head dim %d)", k.Shape, p.shape.heads, p.shape.dim)
		}
	}
	_, hasLogits := outs[qwen2.Logits]
	_, hasLogprobs := outs[outLogprobs]
	_, hasCDF := outs[outCDF]
	switch {
	case hasLogprobs && hasCDF:
		p.lastOnly = true // qwen2.Options.SamplingHead
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
	// devLogprobs and devCDF are a resident policy's sampling-head outputs
	// [n, 1, V], left where the session made them.
	devLogprobs, devCDF *ort.Tensor
}

// release frees the resident outputs (not the present cache).
func (r *forwardResult) release() {
	if r == nil {
		return
	}
	r.devLogprobs.Destroy()
	r.devCDF.Destroy()
	r.devLogprobs, r.devCDF = nil, nil
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
	if p.resident {
		return p.forwardResident(ctx, past, ids, newMask, w, want)
	}
	n, S := past.rows, past.cols+w
	mask, pos := joinMask(past, newMask, w)
	present := &kvCache{kvShape: p.shape, rows: n, cols: S, kv: make([][]float32, 2*p.shape.layers), mask: mask}
	r := &forwardRun{inputs: map[string]*ort.Tensor{}, outputs: ort.Outputs{}}
	defer r.destroy()
	r.add(r.inputs, qwen2.InputIDs)(ort.NewTensor([]int64{int64(n), int64(w)}, ids))
	r.add(r.inputs, qwen2.AttentionMask)(ort.NewTensor([]int64{int64(n), int64(S)}, mask))
	if p.hasPos {
		r.add(r.inputs, qwen2.PositionIDs)(ort.NewTensor([]int64{int64(n), int64(w)}, pos))
	}
	p.bindKV(r, past, present)
	res := &forwardResult{present: present}
	v := p.vocab
	var logits []float32
	switch {
	case p.lastOnly && want == logitsAll:
		return nil, fmt.Errorf("policy: the inference graph returns last-position log-probs only")
	case p.lastOnly && want == logitsLast:
		// Both outputs are computed anyway; bind them when wanted.
		res.logits, res.cdf = make([]float32, n*v), make([]float32, n*v)
		res.normalized = true
		r.add(r.outputs, outLogprobs)(ort.NewTensor([]int64{int64(n), 1, int64(v)}, res.logits))
		r.add(r.outputs, outCDF)(ort.NewTensor([]int64{int64(n), 1, int64(v)}, res.cdf))
	case !p.lastOnly && want != logitsNone:
		logits = make([]float32, n*w*v)
		r.add(r.outputs, qwen2.Logits)(ort.NewTensor([]int64{int64(n), int64(w), int64(v)}, logits))
	}
	if r.err != nil {
		return nil, r.err
	}
	if err := p.infer.RunContext(ctx, r.inputs, r.outputs); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	if err := p.widenKV(r.outputs, present); err != nil {
		return nil, err
	}
	switch {
	case p.lastOnly:
	case want == logitsAll:
		res.logits = logits
	case want == logitsLast:
		res.logits = make([]float32, n*v)
		for row := range n {
			copy(res.logits[row*v:(row+1)*v], logits[(row*w+w-1)*v:(row*w+w)*v])
		}
	}
	return res, nil
}

// joinMask appends w new mask columns to past's for each row and derives
// the new columns' positions: cumsum(mask) − 1, clamped at 0.
func joinMask(past *kvCache, newMask []int64, w int) (mask, pos []int64) {
	n, P := past.rows, past.cols
	S := P + w
	mask = make([]int64, n*S)
	pos = make([]int64, n*w)
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
	return mask, pos
}

// forwardRun holds one run's bound tensors; the first binding error is
// kept in err.
type forwardRun struct {
	inputs  map[string]*ort.Tensor
	outputs ort.Outputs
	err     error
}

// add returns a function that binds a newly made tensor under name in m,
// or records the error that making it gave.
func (r *forwardRun) add(m map[string]*ort.Tensor, name string) func(*ort.Tensor, error) {
	return func(t *ort.Tensor, err error) {
		switch {
		case err != nil && r.err == nil:
			r.err = fmt.Errorf("policy: %s: %w", name, err)
		case err == nil:
			m[name] = t
		}
	}
}

func (r *forwardRun) destroy() {
	for _, t := range r.inputs {
		t.Destroy()
	}
	r.outputs.Destroy()
}

// bindKV binds past's keys and values as inputs and present's, freshly
// allocated, as outputs; a float16 graph gets narrowed copies of the past
// and float16 present buffers, which widenKV copies back after the run.
func (p *Policy) bindKV(r *forwardRun, past, present *kvCache) {
	s := p.shape
	n, P, S := past.rows, past.cols, present.cols
	pastShape := []int64{int64(n), int64(s.heads), int64(P), int64(s.dim)}
	presShape := []int64{int64(n), int64(s.heads), int64(S), int64(s.dim)}
	half := p.kvDType == onnx.Float16
	for i := range s.layers {
		for j, name := range []string{qwen2.PastKey(i), qwen2.PastValue(i)} {
			kv := past.kv[2*i+j][:n*s.heads*P*s.dim]
			if half {
				r.add(r.inputs, name)(ort.NewFloat16Tensor(pastShape, toFloat16(kv)))
			} else {
				r.add(r.inputs, name)(ort.NewTensor(pastShape, kv))
			}
		}
		for j, name := range []string{qwen2.PresentKey(i), qwen2.PresentValue(i)} {
			buf := getKV(n * s.heads * S * s.dim)
			present.kv[2*i+j] = buf
			if half {
				r.add(r.outputs, name)(ort.NewFloat16Tensor(presShape, make([]uint16, len(buf))))
			} else {
				r.add(r.outputs, name)(ort.NewTensor(presShape, buf))
			}
		}
	}
}

// widenKV copies a float16 graph's present keys and values into the float32
// host cache (a float32 graph wrote them there itself).
func (p *Policy) widenKV(outputs ort.Outputs, present *kvCache) error {
	if p.kvDType != onnx.Float16 {
		return nil
	}
	for i := range p.shape.layers {
		for j, name := range []string{qwen2.PresentKey(i), qwen2.PresentValue(i)} {
			bits, err := outputs[name].Float16s()
			if err != nil {
				return fmt.Errorf("policy: %s: %w", name, err)
			}
			buf := present.kv[2*i+j]
			if len(bits) != len(buf) {
				return fmt.Errorf("policy: %s has %d values, want %d", name, len(bits), len(buf))
			}
			for k, h := range bits {
				buf[k] = onnx.Float16ToFloat32(h)
			}
		}
	}
	return nil
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
	if err := p.scoring.RunContext(ort.WithPhase(ctx, "score"), in, out); err != nil {
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

// toFloat16 narrows a float32 KV slice for a float16 graph.
func toFloat16(f []float32) []uint16 {
	h := make([]uint16, len(f))
	for i, x := range f {
		h[i] = onnx.Float32ToFloat16(x)
	}
	return h
}
