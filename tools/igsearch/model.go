package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/igsearch/igsearch/atomicfile"
	"github.com/igsearch/igsearch/models/qwen2"
	"github.com/igsearch/igsearch/onnx"
)

var modelStage = &stage{
	name:    "model",
	summary: "Qwen2 → ONNX without Python: export graphs, init random checkpoints",
	usage: `igsearch model: Hugging Face Qwen2 (Qwen2.5) checkpoints as ONNX graphs.

Usage: igsearch model export|init [flags]

model export --model HFDIR --out DIR [--graph inference|scoring] [--dtype fp32|fp16]
             [--attention standard|contrib|fused] [--entropy] [--external-data]
  Input:  an HF checkpoint directory: config.json (model_type "qwen2") and
          model.safetensors or shards with model.safetensors.index.json
          (F32, BF16 or F16).
  Output: an onnx-community folder, as on the Hugging Face Hub, that
          transformers.js loads as it is and every --model flag opens:
            DIR/onnx/model.onnx (model_fp16.onnx with --dtype fp16), its
              weights in DIR/onnx/model.onnx_data above 1 GiB or with
              --external-data;
            DIR/config.json: the checkpoint's, plus "transformers.js_config"
              (use_external_data_format; kv_cache_dtype for fp16);
            generation_config.json, tokenizer.json, tokenizer_config.json
              copied from the checkpoint when it has them.
          Every file is written atomically; exporting another graph or dtype
          into DIR adds to it.
          inference: the onnx-community I/O — input_ids, attention_mask,
            position_ids, past_key_values.{i}.key/value [B,kv_heads,P,head_dim]
            → logits [B,T,V], present.{i}.key/value.
          scoring: DIR/onnx/scoring.onnx (scoring_fp16.onnx): input_ids,
            attention_mask → token_logprobs [B,T-1] (log p(ids[t+1] | ids[..t])),
            and entropy [B,T-1] with --entropy. igsearch uses it beside
            model.onnx for log-probs; transformers.js ignores it.
          --dtype fp16 stores weights and the KV cache in fp16 (for CUDA);
          norms, softmax and logits stay fp32. --attention standard (the
          default) is portable; contrib uses ONNX Runtime's
          GroupQueryAttention and SimplifiedLayerNormalization (faster on long
          contexts; ONNX Runtime only, and not the ORT 1.21 of
          transformers.js 3.x); fused uses ONNX opset 23's Attention and
          RotaryEmbedding (ONNX Runtime 1.23 or later).
  Example: igsearch model export --model ckpt/Qwen2.5-0.5B-Instruct --out out/qwen-onnx

model init (--config FILE.json | --preset NAME) --out DIR [--seed 1] [--dtype float32|bfloat16] [--max-shard-mb N]
  Input:  a Qwen2 config.json, or --preset: a published Qwen2.5 shape
          (qwen2.5-0.5b, qwen2.5-1.5b, qwen2.5-3b, qwen2.5-7b), for dry runs
          and benchmarks at real size.
  Output: DIR/config.json and DIR/model.safetensors (HF names; F32, or BF16
          as on the Hub with --dtype bfloat16), or shards of at most N MB
          with model.safetensors.index.json, with HF's initialisation:
          weights normal(0, initializer_range), biases 0, norms 1. The same
          seed gives the same weights (bf16: the same draws, rounded).
          An --out holding a checkpoint is replaced only with --force; one
          holding any other file is refused; a config whose weights do not
          fit in the available memory is refused before allocating.
  Example: igsearch model init --config testdata/models/tiny-qwen2/config.json --out out/tiny --seed 7
           igsearch model init --preset qwen2.5-3b --dtype bfloat16 --max-shard-mb 4000 --out out/qwen3b
`,
	run: runModel,
}

func runModel(args []string) error {
	verb, rest, err := subVerb(args, "export", "init")
	if err != nil {
		return err
	}
	if verb == "export" {
		return modelExport(rest)
	}
	return modelInit(rest)
}

func modelExport(args []string) error {
	fs := newFlags("model export")
	model := fs.String("model", "", "HF checkpoint directory (config.json + safetensors)")
	out := fs.String("out", "", "output directory")
	graph := fs.String("graph", "inference", "graph to export: inference or scoring")
	dtype := fs.String("dtype", "fp32", "weights dtype: fp32 or fp16")
	attention := fs.String("attention", "standard", "attention variant: standard, contrib, or fused (ONNX opset 23)")
	entropy := fs.Bool("entropy", false, "scoring graph: also output entropy")
	external := fs.Bool("external-data", false, "always write weights to onnx/model.onnx_data")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *model == "" || *out == "" {
		return usagef("--model and --out are required")
	}
	kind := qwen2.GraphKind(*graph)
	if kind != qwen2.InferenceGraph && kind != qwen2.ScoringGraph {
		return usagef("--graph %q: inference or scoring", *graph)
	}
	var dt onnx.DType
	switch *dtype {
	case "fp32", "float32":
		dt = onnx.Float
	case "fp16", "float16":
		dt = onnx.Float16
	default:
		return usagef("--dtype %q: fp32 or fp16", *dtype)
	}
	attn, err := qwen2.ParseAttention(*attention)
	if err != nil {
		return usagef("--attention: %v", err)
	}
	// An export adds graphs to its own folder; it never writes into one
	// that holds anything else (a checkpoint's weights, a user's files).
	if err := atomicfile.Guard(*out, exportKind, true, ""); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	ck, err := qwen2.LoadCheckpoint(*model, dt)
	if err != nil {
		return err
	}
	defer ck.Close()
	opts := qwen2.ExportOptions{
		Kind:         kind,
		Graph:        qwen2.Options{Attention: attn, DType: dt, Entropy: *entropy},
		ExternalData: *external,
		Source:       *model,
	}
	if err := qwen2.Export(*out, ck.Config, ck.Weights, opts); err != nil {
		return err
	}
	path := filepath.Join(*out, qwen2.OnnxDir, qwen2.GraphFile(kind, dt))
	size := int64(0)
	for _, f := range []string{path, path + qwen2.DataSuffix} {
		if st, err := os.Stat(f); err == nil {
			size += st.Size()
		}
	}
	fmt.Fprintf(os.Stderr, "wrote %s (%s graph, %s, %s attention, %.1f MB)\n", path, kind, *dtype, attn, float64(size)/1e6)
	return nil
}

func modelInit(args []string) error {
	fs := newFlags("model init")
	config := fs.String("config", "", "Qwen2 config.json")
	preset := fs.String("preset", "", "a published Qwen2.5 shape instead of --config: qwen2.5-0.5b, qwen2.5-1.5b, qwen2.5-3b or qwen2.5-7b")
	out := fs.String("out", "", "output checkpoint directory")
	seed := fs.Uint64("seed", 1, "random seed")
	force := fs.Bool("force", false, "replace a checkpoint that --out already holds")
	dtype := fs.String("dtype", "float32", "stored weight type: float32 or bfloat16 (as the Hub's Qwen2.5 checkpoints)")
	maxShard := fs.Int64("max-shard-mb", 0, "split the weights into shards of at most this many MB with model.safetensors.index.json (0: one file)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if (*config == "") == (*preset == "") || *out == "" {
		return usagef("--out and one of --config or --preset are required")
	}
	dt := onnx.Float
	switch *dtype {
	case "float32", "fp32":
	case "bfloat16", "bf16":
		dt = onnx.BFloat16
	default:
		return usagef("--dtype %q: float32 or bfloat16", *dtype)
	}
	var cfg qwen2.Config
	var err error
	if *preset != "" {
		cfg, err = qwen2.Preset(*preset)
	} else {
		cfg, err = qwen2.LoadConfig(*config)
	}
	if err != nil {
		return err
	}
	if err := checkModelInit(*out, cfg, dt, *force); err != nil {
		return err
	}
	if err := qwen2.Save(*out, cfg, qwen2.InitAs(cfg, *seed, dt), *maxShard<<20); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s: %d parameters (%s), seed %d\n", *out, qwen2.NumParams(cfg), *dtype, *seed)
	return nil
}
