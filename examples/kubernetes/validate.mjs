// Validates the manifests of this folder: each YAML document against the
// Kubernetes OpenAPI schema of its kind (the npm package kubernetes-models,
// whose models validate with ajv), then the conventions the examples rely
// on: Indexed Jobs whose completions, parallelism and --shard i/N agree, the
// shard index taken from JOB_COMPLETION_INDEX, every volume mount backed by
// a volume, every claim the one pvc.yaml declares.
//
//   node validate.mjs NODE_MODULES_DIR FILE.yaml...   (validate.sh does this)
import fs from "node:fs";
import path from "node:path";

const [modules, ...files] = process.argv.slice(2);
const { parseAllDocuments } = await import(path.join(modules, "yaml/dist/index.js"));
const models = {
  "batch/v1/Job": "kubernetes-models/batch/v1/Job.js",
  "apps/v1/Deployment": "kubernetes-models/apps/v1/Deployment.js",
  "v1/Service": "kubernetes-models/v1/Service.js",
  "v1/PersistentVolumeClaim": "kubernetes-models/v1/PersistentVolumeClaim.js",
};

let failures = 0;
const fail = (where, msg) => { failures++; console.error(`FAIL ${where}: ${msg}`); };
const claims = new Set();
const used = [];

for (const file of files) {
  const docs = parseAllDocuments(fs.readFileSync(file, "utf8"));
  for (const [n, doc] of docs.entries()) {
    const where = `${path.basename(file)} document ${n + 1}`;
    if (doc.errors.length) { fail(where, `YAML: ${doc.errors[0].message}`); continue; }
    const obj = doc.toJS();
    const key = `${obj.apiVersion}/${obj.kind}`;
    if (!models[key]) { fail(where, `no schema for ${key}`); continue; }
    const Model = Object.values(await import(path.join(modules, models[key])))[0];
    try {
      new Model(obj).validate();
    } catch (e) {
      fail(where, `schema: ${e.message}`);
      continue;
    }
    check(where, obj);
  }
}
for (const [where, claim] of used) if (!claims.has(claim)) fail(where, `claim ${claim} is not declared by any PersistentVolumeClaim`);
if (failures) {
  console.error(`${failures} problem(s)`);
  process.exit(1);
}
console.log(`ok: ${files.length} files valid (schema and shard conventions)`);

// check applies the examples' conventions to one valid object.
function check(where, obj) {
  if (obj.kind === "PersistentVolumeClaim") {
    claims.add(obj.metadata.name);
    if (!obj.spec.accessModes.includes("ReadWriteMany")) fail(where, "the shared volume must be ReadWriteMany");
  }
  const pod = obj.spec?.template?.spec;
  if (!pod) return;
  const vols = new Set((pod.volumes || []).map((v) => v.name));
  for (const v of pod.volumes || []) if (v.persistentVolumeClaim) used.push([where, v.persistentVolumeClaim.claimName]);
  for (const c of pod.containers) {
    for (const vm of c.volumeMounts || []) if (!vols.has(vm.name)) fail(where, `mount ${vm.name} has no volume`);
    const cmd = [...(c.command || []), ...(c.args || [])].join(" ");
    if (!/\bigsearch\b/.test(cmd)) fail(where, "the container does not run igsearch");
    const shard = cmd.match(/--shard\s+(\S+)\/(\d+)/);
    if (obj.kind === "Job" && shard) {
      const nShards = Number(shard[2]);
      if (obj.spec.completionMode !== "Indexed") fail(where, "a sharded Job must be completionMode: Indexed");
      if (obj.spec.completions !== nShards) fail(where, `completions ${obj.spec.completions}, but --shard …/${nShards}`);
      if (obj.spec.parallelism !== undefined && obj.spec.parallelism > nShards) fail(where, "parallelism above completions");
      if (shard[1] !== "$(JOB_COMPLETION_INDEX)") fail(where, `--shard ${shard[1]}/…: the index must be $(JOB_COMPLETION_INDEX)`);
      if (pod.restartPolicy !== "Never" && pod.restartPolicy !== "OnFailure") fail(where, "a Job's pods need restartPolicy Never or OnFailure");
    }
    if (/\bmerge\b.*--block/.test(cmd)) {
      const parts = (cmd.match(/part-\d+\.jsonl/g) || []).map((p) => Number(p.match(/\d+/)[0]));
      if (!parts.length || parts.some((p, i) => p !== i)) fail(where, "merge must list part-0 … part-(N-1) in order");
    }
    const serve = cmd.match(/index serve --index (\S+)/);
    if (serve && serve[1].split(",").some((d, i) => !d.endsWith(`shard-${i}`))) fail(where, "serve must list shard-0 … shard-(N-1)");
  }
}
