// transformersjs-greedy.cjs loads an onnx-community folder with
// transformers.js (npm @huggingface/transformers), offline, and prints the
// greedy continuation of each prompt as JSON: {"tokens": [[...], ...],
// "version": "..."}.
//
// Usage: TJS_DIR=DIR node transformersjs-greedy.cjs MODELDIR NEW '[[ids...], ...]' [dtype]
//   TJS_DIR is where `npm install @huggingface/transformers` ran (its
//   node_modules is searched); dtype is fp32 (model.onnx) or fp16
//   (model_fp16.onnx). Each prompt runs alone (batch 1, no padding).
const path = require('path');

async function main() {
  const [dir, newTokens, promptsJSON, dtype = 'fp32'] = process.argv.slice(2);
  const from = process.env.TJS_DIR || process.cwd();
  const tjsPath = require.resolve('@huggingface/transformers', { paths: [from] });
  const tjs = require(tjsPath);
  const { AutoModelForCausalLM, Tensor, env } = tjs;
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = path.dirname(path.resolve(dir));
  const model = await AutoModelForCausalLM.from_pretrained(path.basename(path.resolve(dir)), {
    local_files_only: true, dtype, device: 'cpu',
  });
  const prompts = JSON.parse(promptsJSON);
  const out = [];
  for (const p of prompts) {
    const ids = new Tensor('int64', BigInt64Array.from(p.map(BigInt)), [1, p.length]);
    const mask = new Tensor('int64', BigInt64Array.from(p.map(() => 1n)), [1, p.length]);
    const seq = await model.generate({
      input_ids: ids, attention_mask: mask, max_new_tokens: Number(newTokens),
      min_new_tokens: Number(newTokens), do_sample: false,
    });
    out.push(seq.tolist()[0].slice(p.length).map(Number));
  }
  const pkg = require(path.join(path.dirname(tjsPath), '..', 'package.json'));
  process.stdout.write(JSON.stringify({ tokens: out, version: pkg.version }) + '\n');
  await model.dispose();
}

main().catch((e) => { console.error(e && e.stack || String(e)); process.exit(1); });
