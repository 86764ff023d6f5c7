#!/usr/bin/env bash
# The prepared device check of issue 13 (docs/cuda-check.md): at the
# Qwen2.5-0.5B shape (seeded random bf16 weights, made at run time) it runs
# generation, scoring (logprobs), IG (score-ig) and one train step
# (trainer step) on the CPU and on CUDA, and compares them: greedy tokens
# equal (or first differing at a near-tie), log-probs, IG and the step's
# loss within tolerance. It reports node placement (strict: attention or
# MatMul on the CPU fails the leg), boundary bytes (--report-transfers) and
# tokens/s.
#
#   bash scripts/cuda-check.sh pack
#       here, without a GPU: builds bin/igsearch, fetches the ONNX Runtime
#       CUDA build (make setup-cuda) and packs what the device machine
#       lacks into .cuda-check/ (git-ignored), split into parts that fit
#       the device tool's 64 MiB per call; prints the calls to make.
#   bash scripts/cuda-check.sh
#       on the device machine, in every one of those calls: takes the parts
#       carried so far; once all are there, runs the check. Summary on
#       stdout (and in $OUT/cuda-check.txt when $OUT is set).
#   CUDA_CHECK_CPU_ONLY=1 bash scripts/cuda-check.sh
#       the same check with every leg on the CPU (the plumbing, here).
#
# Settings (environment): DEVICE (cuda), CUDA_CHECK_PRESET (qwen2.5-0.5b) or
# CUDA_CHECK_CONFIG (a config.json), CUDA_CHECK_LEGS ("cpu fp32 fp16"),
# TOL_FP32 (5e-2), TOL_FP16 (1.5e-1), TIE (2× the leg's tolerance: the CPU
# log-prob gap under which two greedy tokens are a tie), TOL_STEP (1e-2,
# relative, for the train step's loss and grad norm), PROMPTS_N (4),
# MAX_NEW (32), STRICT (1; 0 drops --strict-placement), CUDA_CHECK_WORK
# (/tmp/cuda-check), PART_MB (what a call can carry beside the tree).
set -euo pipefail

cd "$(dirname "$0")/.."
root="$PWD"
pack_dir=".cuda-check"
cache="${IGSEARCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/igsearch}"
say() { echo "cuda-check: $*" >&2; }
# unxz: xz -dc, or Python's lzma where xz is missing.
unxz() {
	if command -v xz >/dev/null; then xz -dc; else python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.stdin.buffer), sys.stdout.buffer)'; fi
}

# ---------------------------------------------------------------- pack ----
if [[ "${1:-}" == pack ]]; then
	# A call carries the working tree (tracked and untracked files that git
	# does not ignore) plus the carried paths, 64 MiB in all; keep 6 MiB spare.
	tree=$({ git ls-files -z; git ls-files -z --others --exclude-standard; } | xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {printf "%d", (s + 1048575) / 1048576}')
	part_mb="${PART_MB:-$((64 - 6 - tree))}"
	(( part_mb >= 8 )) || { say "the working tree is $tree MiB: too little room left to carry parts"; exit 1; }
	exclude="$(git rev-parse --git-path info/exclude)"
	grep -qx "/$pack_dir/" "$exclude" 2>/dev/null || echo "/$pack_dir/" >>"$exclude"
	rm -rf "$pack_dir" && mkdir -p "$pack_dir"
	say "building bin/igsearch"
	go build -o bin/igsearch ./tools/igsearch
	xz -T0 -6 -c bin/igsearch >"$pack_dir/igsearch.xz"
	tok="${IGSEARCH_QWEN_TOKENIZER:-$cache/tokenizers/qwen2.5/tokenizer.json}"
	[[ -f "$tok" ]] || { say "no Qwen2.5 tokenizer.json at $tok (make setup)"; exit 1; }
	xz -T0 -9 -c "$tok" >"$pack_dir/tokenizer.json.xz"
	make setup-cuda >&2
	say "packing the ONNX Runtime CUDA build (xz, a few minutes)"
	tar -C "$cache/ort-1.29.0/cuda" -cf - libonnxruntime.so libonnxruntime_providers_shared.so libonnxruntime_providers_cuda.so |
		xz -T0 -6 | split -b "${part_mb}M" -d -a 2 - "$pack_dir/ort-cuda.tar.xz."
	(cd "$pack_dir" && sha256sum igsearch.xz tokenizer.json.xz ort-cuda.tar.xz.* >MANIFEST)
	# Group the files into calls of at most part_mb MiB each (the rest of
	# the 64 MiB goes to the working tree, which travels with every call).
	say "the working tree is about $tree MiB; each call carries at most $part_mb MiB more"
	calls=() cur="" size=0
	for f in igsearch.xz tokenizer.json.xz $(cd "$pack_dir" && ls ort-cuda.tar.xz.*); do
		s=$(( ( $(stat -c %s "$pack_dir/$f") + (1<<20) - 1 ) >> 20 ))
		if [[ -n "$cur" && $((size + s)) -gt $part_mb ]]; then calls+=("$cur"); cur="" size=0; fi
		cur+="${cur:+ }$pack_dir/$f" size=$((size + s))
	done
	calls+=("$cur")
	n=${#calls[@]}
	echo "Make these $n device calls back to back (a warm machine keeps what earlier calls carried;"
	echo "it is given back after about 30 s idle). Each carries the manifest and some parts:"
	i=0
	for c in "${calls[@]}"; do
		i=$((i + 1))
		carry="\"$pack_dir/MANIFEST\""
		for f in $c; do carry+=", \"$f\""; done
		echo "  call $i/$n: run(command=\"bash scripts/cuda-check.sh\", carry=[$carry], timeout_s=$([[ $i == "$n" ]] && echo 560 || echo 120))"
	done
	exit 0
fi

# ------------------------------------------------------------- receive ----
cpu_only="${CUDA_CHECK_CPU_ONLY:-0}"
W="${CUDA_CHECK_WORK:-/tmp/cuda-check}"
mkdir -p "$W/recv"
bin="" ortlib="" tok=""
if [[ "$cpu_only" == 1 ]]; then
	say "CUDA_CHECK_CPU_ONLY=1: every leg runs on the CPU (a dry run of the plumbing)"
	DEVICE=cpu
	go build -o "$W/igsearch" ./tools/igsearch
	bin="$W/igsearch"
	ortlib="${IGSEARCH_ORT_LIB:-$cache/ort-1.29.0/cpu/libonnxruntime.so.1}"
	tok="${IGSEARCH_QWEN_TOKENIZER:-$cache/tokenizers/qwen2.5/tokenizer.json}"
else
	DEVICE="${DEVICE:-cuda}"
	[[ -f "$pack_dir/MANIFEST" ]] || { say "no $pack_dir/MANIFEST: run 'bash scripts/cuda-check.sh pack' here and carry its files"; exit 2; }
	# Keep what this call carried outside the tree: a later call may not carry it again.
	for f in "$pack_dir"/*; do [[ "$f" == "$pack_dir/MANIFEST" ]] || mv -f "$f" "$W/recv/"; done
	cp -f "$pack_dir/MANIFEST" "$W/recv/"
	missing=$(cd "$W/recv" && awk '{print $2}' MANIFEST | while read -r f; do [[ -f "$f" ]] || echo "$f"; done)
	if [[ -n "$missing" ]]; then
		say "received $(cd "$W/recv" && ls | grep -vc MANIFEST) of $(wc -l <"$W/recv/MANIFEST") files; still missing: $(echo $missing): make the next call"
		exit 0
	fi
	(cd "$W/recv" && sha256sum --quiet -c MANIFEST) || { say "a carried part is corrupt; pack again"; exit 2; }
	if [[ ! -x "$W/igsearch" ]]; then
		unxz <"$W/recv/igsearch.xz" >"$W/igsearch" && chmod +x "$W/igsearch"
		unxz <"$W/recv/tokenizer.json.xz" >"$W/tokenizer.json"
		mkdir -p "$W/ort" && cat "$W/recv"/ort-cuda.tar.xz.* | unxz | tar -C "$W/ort" -xf -
	fi
	bin="$W/igsearch" ortlib="$W/ort/libonnxruntime.so" tok="$W/tokenizer.json"
	# The CUDA provider needs CUDA 13's cudart, cuBLAS(Lt), cuRAND and cuDNN
	# 9: from the toolkit, or the nvidia-* wheels beside PyTorch.
	if ! ldconfig -p 2>/dev/null | grep -q 'libcublasLt\.so\.13'; then
		roots=(/usr/local/cuda /usr/local/cuda-13* /usr/lib/x86_64-linux-gnu)
		while IFS= read -r d; do roots+=("$d/nvidia"); done < <(python3 -c 'import site; print("\n".join(site.getsitepackages()))' 2>/dev/null || true)
		extra=""
		for r in "${roots[@]}"; do
			[[ -d "$r" ]] || continue
			while IFS= read -r lib; do
				d="$(dirname "$lib")"
				[[ ":$extra:" == *":$d:"* ]] || extra="$extra:$d"
			done < <(find "$r" -maxdepth 5 \( -name 'libcudart.so.13*' -o -name 'libcublas.so.13*' -o -name 'libcublasLt.so.13*' -o -name 'libcurand.so.10*' -o -name 'libcudnn.so.9*' \) 2>/dev/null)
		done
		export LD_LIBRARY_PATH="${extra#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
	fi
fi
export IGSEARCH_ORT_LIB="$ortlib"

# --------------------------------------------------------------- check ----
legs="${CUDA_CHECK_LEGS:-cpu fp32 fp16}"
TOL_FP32="${TOL_FP32:-5e-2}" TOL_FP16="${TOL_FP16:-1.5e-1}" TOL_STEP="${TOL_STEP:-1e-2}"
PROMPTS_N="${PROMPTS_N:-4}" MAX_NEW="${MAX_NEW:-32}"
strict=(--strict-placement)
[[ "${STRICT:-1}" == 1 ]] || strict=()
summary="$W/summary.txt"
: >"$summary"
fails=0
out() { echo "$*" >>"$summary"; }
fail() { out "$*"; fails=$((fails + 1)); }

if [[ "$cpu_only" != 1 ]]; then
	gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1 || true)
	out "cuda-check device $DEVICE: ${gpu:-nvidia-smi gave nothing}"
else
	out "cuda-check device cpu only (CUDA_CHECK_CPU_ONLY=1: the fp32 and fp16 legs run on the CPU too)"
fi
model="$W/model"
if [[ ! -f "$model/config.json" ]]; then
	src=(--preset "${CUDA_CHECK_PRESET:-qwen2.5-0.5b}")
	[[ -n "${CUDA_CHECK_CONFIG:-}" ]] && src=(--config "$CUDA_CHECK_CONFIG")
	"$bin" model init "${src[@]}" --dtype bfloat16 --seed 1 --out "$model" --force 2>"$W/init.log" || { cat "$W/init.log" >&2; exit 1; }
	cp "$tok" "$model/tokenizer.json"
fi
out "cuda-check model ${CUDA_CHECK_CONFIG:-${CUDA_CHECK_PRESET:-qwen2.5-0.5b}}: $(tail -1 "$W/init.log" | sed 's/^wrote [^:]*: //')"

# The inputs: prompts, token-id rows to score, IG trajectories, a GRPO batch.
python3 - "$W" "$PROMPTS_N" <<'EOF'
import json, random, sys
w, n = sys.argv[1], int(sys.argv[2])
topics = ["the history of the printing press", "how glaciers shape valleys", "the rules of chess",
          "why the sky is blue", "the life cycle of stars", "how vaccines work",
          "the origins of jazz", "photosynthesis in plants"]
with open(f"{w}/prompts.jsonl", "w") as f, open(f"{w}/prompt_text.jsonl", "w") as g:
    for i in range(n):
        p = f"Question: explain {topics[i % len(topics)]}.\nAnswer:"
        f.write(json.dumps({"id": f"p{i}", "prompt": p}) + "\n")
        g.write(json.dumps({"text": p}) + "\n")
r = random.Random(1)
with open(f"{w}/score_in.jsonl", "w") as f:
    for L in (16, 40, 64, 64, 100, 128):
        f.write(json.dumps({"input_ids": [r.randrange(151643) for _ in range(L)]}) + "\n")
traj = [
    ("Who wrote Hamlet?", ["Hamlet author"], ["Doc 1(Title: Hamlet) Hamlet is a tragedy written by William Shakespeare.\nDoc 2(Title: Globe) The Globe Theatre was in London."], "William Shakespeare"),
    ("What is the capital of Australia?", ["capital of Australia"], ["Doc 1(Title: Canberra) Canberra is the capital city of Australia.\nDoc 2(Title: Sydney) Sydney is the largest city in Australia."], "Canberra"),
    ("Which element has the symbol Fe?", ["symbol Fe element", "iron chemistry"], ["Doc 1(Title: Iron) Iron is a chemical element with symbol Fe.", "Doc 1(Title: Steel) Steel is an alloy of iron and carbon."], "Iron"),
    ("Who painted the Mona Lisa?", ["Mona Lisa painter"], ["Doc 1(Title: Mona Lisa) The Mona Lisa was painted by Leonardo da Vinci.\nDoc 2(Title: Louvre) The Louvre is a museum in Paris."], "Leonardo da Vinci"),
]
with open(f"{w}/traj.jsonl", "w") as f:
    for i, (q, searches, infos, a) in enumerate(traj):
        resp = ""
        for s, d in zip(searches, infos):
            resp += f"<think>I need to search.</think>\n<search> {s} </search>\n\n<information>{d}</information>\n\n"
        resp += f"<think>I know it.</think>\n<answer> {a} </answer>"
        f.write(json.dumps({"id": f"t{i}", "prompt": f"Answer the question. Question: {q}\n", "response": resp, "golden_answers": [a]}) + "\n")
EOF
cp testdata/models/tiny-qwen2/grpo-step/grpo_step.json "$W/step.json"

# run LEG STAGE ARGS...: one igsearch stage of a leg, timed; its stderr in
# $W/LEG/STAGE.log, its transfers and placement lines in the summary.
run() {
	local leg="$1" stage="$2"; shift 2
	local log="$W/$leg/$stage.log" t0 t1 rc=0
	t0=$(date +%s.%N)
	"$bin" "$@" --report-transfers "${strict[@]}" >"$W/$leg/$stage.stdout" 2>"$log" || rc=$?
	t1=$(date +%s.%N)
	awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f\n", b - a}' >"$W/$leg/$stage.seconds"
	grep '^placement ' "$log" | sed "s/^placement /placement $leg $stage: /" >>"$summary" || true
	# (generate1 only times the loading for the decode rate: its transfers are generate's prefill.)
	[[ "$stage" == generate1 ]] || grep '^transfers ' "$log" | grep -v ' phase ' | sed "s/^transfers /transfers $leg $stage /" >>"$summary" || true
	if [[ $rc != 0 ]]; then
		fail "FAIL $leg $stage: exit $rc: $(grep -v '^transfers \|^placement ' "$log" | tail -3 | tr '\n' ' ' | cut -c1-600)"
		say "$leg $stage failed (exit $rc): see $log"
	fi
	return $rc
}

for leg in $legs; do
	mkdir -p "$W/$leg"
	case "$leg" in
	cpu) flags=(--device cpu) ;;
	fp32) flags=(--device "$DEVICE") ;;
	fp16) flags=(--device "$DEVICE" --dtype fp16) ;;
	*) say "unknown leg $leg"; exit 2 ;;
	esac
	say "leg $leg: ${flags[*]}"
	gen=(generate --model "$model" --prompts "$W/prompts.jsonl" --temperature 0 --batch-size "$PROMPTS_N" "${flags[@]}")
	run "$leg" generate1 "${gen[@]}" --max-new-tokens 1 --out "$W/$leg/gen1.jsonl" || true
	run "$leg" generate "${gen[@]}" --max-new-tokens "$MAX_NEW" --out "$W/$leg/gen.jsonl" || true
	run "$leg" logprobs logprobs --model "$model" --in "$W/score_in.jsonl" --out "$W/$leg/lp.jsonl" "${flags[@]}" || true
	run "$leg" score-ig score-ig --model "$model" --in "$W/traj.jsonl" --out "$W/$leg/ig.jsonl" --ig-random 2 --batch-size 4 "${flags[@]}" || true
	if [[ "$leg" != fp16 ]]; then
		# The trainer builds float32 graphs only; its sessions go where --device says.
		run "$leg" trainer-step trainer step --model "$model" --batch "$W/step.json" --out "$W/$leg/step" --force "${flags[@]}" || true
		rm -rf "$W/$leg/step"
	fi
	if [[ -s "$W/$leg/gen.jsonl" && -s "$W/$leg/gen1.jsonl" ]]; then
		python3 - "$W/$leg" "$leg" >>"$summary" <<'EOF'
import json, sys
d, leg = sys.argv[1], sys.argv[2]
n = lambda f: sum(len(json.loads(l)["ids"]) for l in open(f"{d}/{f}") if l.strip())
t = lambda s: float(open(f"{d}/{s}.seconds").read())
tok, tok1, sec, sec1 = n("gen.jsonl"), n("gen1.jsonl"), t("generate"), t("generate1")
rate = f"{(tok - tok1) / (sec - sec1):.1f}" if sec > sec1 + 0.05 and tok > tok1 else "n/a (the one-token run took as long)"
print(f"speed {leg} generate: {tok} tokens in {sec:.1f} s ({tok / sec:.1f} tokens/s with loading); decode {rate} tokens/s ({tok - tok1} tokens beyond the first, {sec - sec1:.1f} s)")
EOF
	fi
	for s in generate logprobs score-ig trainer-step; do
		[[ -f "$W/$leg/$s.seconds" ]] && echo "time $leg $s $(printf '%.1f' "$(cat "$W/$leg/$s.seconds")") s" >>"$summary"
	done
done

# Compare each device leg with the cpu leg.
if [[ " $legs " == *" cpu "* ]]; then
	cat >"$W/compare.py" <<'EOF'
import json, math, os, sys
w, leg, tol, tie, tol_step, step_phase = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
rows = lambda p: [json.loads(l) for l in open(p) if l.strip()] if os.path.exists(p) else None
bad = 0
def verdict(ok):
    global bad
    bad += 0 if ok else 1
    return "OK" if ok else "FAIL"
def diff(a, b):
    return max([abs(x - y) for x, y in zip(a, b)] + [0.0])
if step_phase == "gen":
    a, b = rows(f"{w}/cpu/gen.jsonl"), rows(f"{w}/{leg}/gen.jsonl")
    if a is None or b is None or len(a) != len(b):
        print(f"compare {leg} generate: missing output FAIL"); sys.exit(1)
    # A greedy pair that differs must differ at a near-tie: the CPU's own
    # log-prob of the device's token there (rescore.jsonl, scored on the CPU)
    # within `tie` of the CPU's token's.
    resc = rows(f"{w}/{leg}/rescore_lp.jsonl")
    prompts = rows(f"{w}/prompt_ids.jsonl")
    req, equal, worst, notes, ok = [], 0, 0.0, [], True
    for i, (x, y) in enumerate(zip(a, b)):
        k = next((j for j, (p, q) in enumerate(zip(x["ids"], y["ids"])) if p != q), None)
        if k is None and len(x["ids"]) == len(y["ids"]):
            equal += 1
            worst = max(worst, diff(x["logprobs"], y["logprobs"]))
            continue
        if k is None:
            k = min(len(x["ids"]), len(y["ids"]))
            notes.append(f"row {i} ends at {k} on one side"); ok = False; continue
        worst = max(worst, diff(x["logprobs"][:k], y["logprobs"][:k]))
        req.append({"input_ids": prompts[i]["ids"] + y["ids"][:k + 1]})
        if resc is not None:
            gap = x["logprobs"][k] - resc[len(req) - 1]["logprobs"][-1]
            tied = gap <= tie
            ok &= tied
            notes.append(f"row {i} differs at token {k}: CPU log-prob gap {gap:.2e} ({'a near-tie' if tied else 'NOT a tie'}, tie {tie:g})")
        else:
            ok = False
    if req and resc is None:
        with open(f"{w}/{leg}/rescore.jsonl", "w") as f:
            for r in req:
                f.write(json.dumps(r) + "\n")
        sys.exit(3)  # rescore on the CPU, then compare again
    ok &= worst <= tol
    toks = sum(len(x["ids"]) for x in a)
    print(f"compare {leg} generate: {equal}/{len(a)} greedy sequences equal ({toks} CPU tokens), max |Δlogprob| on the common prefix {worst:.2e} (tol {tol:g}){'; ' if notes else ''}{'; '.join(notes)} {verdict(ok)}")
    sys.exit(bad)
a, b = rows(f"{w}/cpu/lp.jsonl"), rows(f"{w}/{leg}/lp.jsonl")
if a is None or b is None or len(a) != len(b):
    print(f"compare {leg} logprobs: missing output {verdict(False)}")
else:
    worst = max(diff(x["logprobs"], y["logprobs"]) for x, y in zip(a, b))
    same = all(len(x["logprobs"]) == len(y["logprobs"]) for x, y in zip(a, b))
    print(f"compare {leg} logprobs: {sum(len(x['logprobs']) for x in a)} log-probs, max |Δ| {worst:.2e} (tol {tol:g}) {verdict(same and worst <= tol)}")
a, b = rows(f"{w}/cpu/ig.jsonl"), rows(f"{w}/{leg}/ig.jsonl")
if a is None or b is None or len(a) != len(b):
    print(f"compare {leg} score-ig: missing output {verdict(False)}")
else:
    steps, wr, wig, same = 0, 0.0, 0.0, True
    for x, y in zip(a, b):
        sx, sy = x.get("ig_steps") or [], y.get("ig_steps") or []
        same &= len(sx) == len(sy)
        for p, q in zip(sx, sy):
            steps += 1
            wr = max(wr, abs(p["logp_real"] - q["logp_real"]), abs(p["logp_random_mean"] - q["logp_random_mean"]))
            wig = max(wig, abs(p["ig"] - q["ig"]))
    same &= steps > 0
    print(f"compare {leg} score-ig: {steps} steps, max |Δlogp| {wr:.2e}, max |ΔIG| {wig:.2e} (tol {tol:g}) {verdict(same and wr <= tol and wig <= tol)}")
# Boundary bytes: the meter counts Go ↔ ONNX Runtime copies whatever the
# device, so a device leg should move what the CPU leg moves (informational:
# a stage may batch differently on a device, e.g. --ig-workers).
def moved(l, stage):
    p = f"{w}/{l}/{stage}.log"
    if not os.path.exists(p):
        return None
    for line in open(p):
        f = line.split()
        if len(f) == 6 and f[:2] == ["transfers", "total"]:
            return int(f[3]) + int(f[4])
    return None
parts, same = [], True
for stage in ("generate", "logprobs", "score-ig", "trainer-step"):
    x, y = moved("cpu", stage), moved(leg, stage)
    if not x or not y:  # the stage did not run, or failed before its first run
        continue
    same &= x == y
    parts.append(f"{stage} {y} B" + ("" if x == y else f" (cpu {x} B)"))
if parts:
    print(f"compare {leg} transfers: {', '.join(parts)}: {'as on the CPU' if same else 'NOT as on the CPU (informational)'}")
if leg != "fp16":
    a, b = rows(f"{w}/cpu/trainer-step.stdout"), rows(f"{w}/{leg}/trainer-step.stdout")
    if not a or not b:
        print(f"compare {leg} trainer-step: missing output {verdict(False)}")
    else:
        x, y = a[-1], b[-1]
        rel = lambda k: abs(x[k] - y[k]) / max(abs(x[k]), 1e-12)
        ok = rel("loss") <= tol_step and rel("grad_norm") <= tol_step
        print(f"compare {leg} trainer-step: loss {x['loss']:.6g} vs {y['loss']:.6g}, grad_norm {x['grad_norm']:.6g} vs {y['grad_norm']:.6g} (relative tol {tol_step:g}) {verdict(ok)}")
sys.exit(bad)
EOF
	# The prompts' ids, for re-scoring a device's greedy tokens on the CPU
	# (generate encodes a prompt as tokenize does).
	"$bin" tokenize --tokenizer "$tok" --in "$W/prompt_text.jsonl" --out "$W/prompt_ids.jsonl"
	for leg in $legs; do
		[[ "$leg" == cpu ]] && continue
		tol="$TOL_FP32"; [[ "$leg" == fp16 ]] && tol="$TOL_FP16"
		tie="${TIE:-$(awk -v t="$tol" 'BEGIN {print 2 * t}')}"
		rc=0
		python3 "$W/compare.py" "$W" "$leg" "$tol" "$tie" "$TOL_STEP" gen >>"$summary" || rc=$?
		if [[ $rc == 3 ]]; then
			# Greedy tokens differ: score the device's tokens on the CPU.
			"$bin" logprobs --model "$model" --in "$W/$leg/rescore.jsonl" --out "$W/$leg/rescore_lp.jsonl" --device cpu 2>>"$W/$leg/rescore.log"
			rc=0
			python3 "$W/compare.py" "$W" "$leg" "$tol" "$tie" "$TOL_STEP" gen >>"$summary" || rc=$?
		fi
		[[ $rc == 0 ]] || fails=$((fails + 1))
		rc=0
		python3 "$W/compare.py" "$W" "$leg" "$tol" "$tie" "$TOL_STEP" rest >>"$summary" || rc=$?
		fails=$((fails + rc))
	done
fi

if [[ $fails == 0 ]]; then
	echo "cuda-check: OK" >>"$summary"
else
	echo "cuda-check: FAIL ($fails failed checks; logs in $W/LEG/STAGE.log)" >>"$summary"
fi
# The summary, grouped: device and model, speed and time, comparisons,
# placement, transfers.
{
	grep '^cuda-check device\|^cuda-check model' "$summary"
	grep '^speed \|^time ' "$summary" || true
	grep '^compare \|^FAIL ' "$summary" || true
	grep -v '^transfers \|^cuda-check\|^speed \|^time \|^compare \|^FAIL ' "$summary" || true
	grep '^transfers ' "$summary" | awk '{printf "%-9s %-5s %-13s %-14s %6s %14s %14s %14s\n", $1, $2, $3, $4, $5, $6, $7, $8}' || true
	tail -1 "$summary"
} >"$W/report.txt"
cat "$W/report.txt"
if [[ -n "${OUT:-}" ]]; then
	cp "$W/report.txt" "$OUT/cuda-check.txt"
	tar -C "$W" -czf "$OUT/cuda-check-logs.tar.gz" $(cd "$W" && ls -d */*.log 2>/dev/null) 2>/dev/null || true
fi
[[ $fails == 0 ]]
