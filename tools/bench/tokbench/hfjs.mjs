// Times @huggingface/tokenizers (the Hugging Face JavaScript port) encoding
// the benchmark text on one core, for scripts/bench.d/20-tokenize.sh.
//
//   node hfjs.mjs NODE_DIR TOKENIZER_JSON TEXT_JSONL [PASSES]
//
// NODE_DIR is where the bench script installed the package with npm.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import path from "node:path";

const [nodeDir, tokPath, textPath, passesArg] = process.argv.slice(2);
const require = createRequire(path.join(path.resolve(nodeDir), "package.json"));
const { Tokenizer } = require("@huggingface/tokenizers");

const docs = readFileSync(textPath, "utf8").split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l).text);
const bytes = docs.reduce((n, d) => n + Buffer.byteLength(d, "utf8"), 0);

let t0 = performance.now();
const tok = new Tokenizer(JSON.parse(readFileSync(tokPath, "utf8")), {});
const load = performance.now() - t0;

const passes = Number(passesArg || 3);
let best = 0, first = 0, ntok = 0;
for (let p = 0; p < passes; p++) {
  ntok = 0;
  t0 = performance.now();
  for (const d of docs) ntok += tok.encode(d, { add_special_tokens: false }).ids.length;
  const mbps = bytes / 1e6 / ((performance.now() - t0) / 1000);
  if (p === 0) first = mbps;
  best = Math.max(best, mbps);
}
console.log(`@huggingface/tokenizers@0.2.0 (node ${process.version}): ${best.toFixed(2).padStart(7)} MB/s  (${ntok} tokens; best of ${passes} passes, first pass ${first.toFixed(2)} MB/s; load ${load.toFixed(0)}ms)`);
console.log(`RESULT hfjs ${best.toFixed(4)}`);
