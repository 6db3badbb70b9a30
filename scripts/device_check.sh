#!/usr/bin/env bash
# One prepared device check: device info, inference benchmark, FLOP/batch sweep + CUDA OOM halving
# (scripts/device_report.py), tests, a 50-step building-mtl training run. Installs nothing.
# Usage: scripts/device_check.sh [--quick]     (env: PEAK_BF16_TFLOPS, RSVIZ_DATA_DIR, T_BENCH/T_REPORT/T_TESTS/T_TRAIN
#        step timeouts in s, BENCH_ARGS to replace the benchmark's arguments)
# Writes $OUT/device_check.json (+ .md) when $OUT is set, else runs/device_check.json. A failing step does
# not stop the later ones; exits 1 at the end if any step failed.
set -u
cd "$(dirname "$0")/.." || exit 2
QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
[ -f .venv/bin/activate ] && . .venv/bin/activate
export PEAK_BF16_TFLOPS="${PEAK_BF16_TFLOPS:-989}"
if [ -z "${RSVIZ_DATA_DIR:-}" ]; then
  for d in ../shared/rsviz-data shared/rsviz-data; do [ -d "$d" ] && { RSVIZ_DATA_DIR="$d"; break; }; done
fi
export RSVIZ_DATA_DIR="${RSVIZ_DATA_DIR:-../shared/rsviz-data}" HF_HUB_OFFLINE=1 MPLBACKEND=Agg
DEST="${OUT:-runs}"
WORK="$DEST/device_check_files"
mkdir -p "$WORK"
STEPS="$WORK/steps.jsonl"
: > "$STEPS"

DEV=$(python -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")' 2>/dev/null || echo none)
TORCH=$(python -c 'import torch; print(torch.__version__)' 2>/dev/null || echo none)
DEVNAME=$(python -c 'import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu")' 2>/dev/null || echo none)
CPUMODEL=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
FLAGS=$(lscpu 2>/dev/null | sed -n 's/^Flags: *//p')
has() { case " $FLAGS " in *" $1 "*) echo true ;; *) echo false ;; esac; }
MODE=$([ $QUICK = 1 ] && echo quick || echo full)
echo "device $DEV ($DEVNAME), torch $TORCH, CPU $CPUMODEL, avx512_bf16 $(has avx512_bf16), amx_bf16 $(has amx_bf16), mode $MODE"
python - "$STEPS" <<PY
import json, sys
json.dump({"name": "_meta", "mode": "$MODE", "device": "$DEV", "device_name": "$DEVNAME", "torch": "$TORCH",
           "cpu_model": "$CPUMODEL", "avx512_bf16": $( [ "$(has avx512_bf16)" = true ] && echo True || echo False ),
           "amx_bf16": $( [ "$(has amx_bf16)" = true ] && echo True || echo False ), "python": "$(command -v python)",
           "peak_bf16_tflops": float("$PEAK_BF16_TFLOPS"), "rsviz_data_dir": "$RSVIZ_DATA_DIR",
           "data_present": $( [ -d "$RSVIZ_DATA_DIR" ] && echo True || echo False )}, open(sys.argv[1], "a"))
open(sys.argv[1], "a").write("\n")
PY

# step NAME TIMEOUT_S JSON_FILE_OR_EMPTY CMD... : runs CMD under timeout, logs, records rc and wall time
step() {
  local name=$1 tmo=$2 js=$3; shift 3
  local log="$WORK/$name.log" t0 t1 rc
  echo "== $name (timeout ${tmo}s): $*"
  t0=$(date +%s.%N)
  timeout -k 10 "$tmo" "$@" > "$log" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  tail -n 5 "$log"
  echo "== $name rc=$rc"
  printf '{"name": "%s", "rc": %d, "wall_s": %s, "log": "%s", "json": "%s", "timeout_s": %s}\n' \
    "$name" "$rc" "$(python -c "print(round($t1-$t0, 2))")" "$log" "$js" "$tmo" >> "$STEPS"
}

# 1-2. inference benchmark rows (its --device defaults to cpu) and the FLOP / batch sweep / OOM report
if [ $QUICK = 1 ]; then BDEF="--size 512 --repeats 1 --big 0"; else BDEF="--size 4096 --repeats 3 --big 0"; fi
[ "$DEV" = cuda ] || { [ $QUICK = 1 ] || BDEF="--size 1024 --repeats 1 --big 2048 --big-rows 512"; }
DEVFLAG=""; python scripts/benchmark_inference.py --help 2>/dev/null | grep -q -- "--device" && DEVFLAG="--device $DEV"
# shellcheck disable=SC2086
step benchmark "${T_BENCH:-$([ $QUICK = 1 ] && echo 120 || echo 180)}" "" \
  python scripts/benchmark_inference.py ${BENCH_ARGS:-$BDEF} $DEVFLAG --out "$WORK/benchmarks.md"
step report "${T_REPORT:-$([ $QUICK = 1 ] && echo 90 || echo 150)}" "$WORK/report.json" \
  python scripts/device_report.py --out "$WORK/report.json" --device "$DEV" $([ $QUICK = 1 ] && echo --quick)

# 3. tests: everything but the browser tests on CUDA; an inference subset (old or new layout) otherwise
TPATHS=$(ls -d tests/inference tests/test_inference.py 2>/dev/null | tr '\n' ' ')
if [ "$DEV" = cuda ] && [ $QUICK = 0 ]; then
  step tests "${T_TESTS:-300}" "" env RSVIZ_TEST_DEVICE=cuda pytest -q -m "not browser" tests/
else
  # shellcheck disable=SC2086
  step tests "${T_TESTS:-$([ $QUICK = 1 ] && echo 120 || echo 300)}" "" env RSVIZ_TEST_DEVICE="$DEV" \
    pytest -q -x -m "not browser and not realdata" -k "$([ $QUICK = 1 ] && echo 'inference and not tta and not cog' || echo inference)" \
    -p no:cacheprovider ${TPATHS:-tests/}
fi

# 4. 50-step training run of the building recipe (quick: 3 steps, batch 2, crop 128)
CFG=experiments/configs/building-mtl-smoke.json
if [ $QUICK = 1 ]; then
  CFG="$WORK/building-mtl-quick.json"
  python -c "import json; c = json.load(open('experiments/configs/building-mtl-smoke.json')); \
c.update(steps=3, val_every=3, batch_size=2, crop=128, out='runs/device-smoke-quick'); json.dump(c, open('$CFG', 'w'))"
fi
NSTEPS=$(python -c "import json; print(json.load(open('$CFG'))['steps'])")
step train "${T_TRAIN:-$([ $QUICK = 1 ] && echo 150 || echo 240)}" "$WORK/train.json" python -m rsviz train building-mtl --config "$CFG"
python - "$STEPS" "$NSTEPS" "$WORK/train.json" <<'PY'
import json, sys
rec = [json.loads(l) for l in open(sys.argv[1]) if l.strip()][-1]
n = int(sys.argv[2])
out = {"steps": n, "wall_s": rec["wall_s"], "s_per_step": rec["wall_s"] / n, "rc": rec["rc"]}
try:  # the recipe's own summary, if it wrote one
    import glob
    log = open(rec["log"]).read()
    d = [l.split("outputs in ", 1)[1].strip() for l in log.splitlines() if "outputs in " in l]
    for f in glob.glob(f"{d[-1]}/*.json") if d else []:
        s = json.load(open(f))
        if isinstance(s, dict) and "wall_s" in s:
            out.update(recipe_wall_s=s["wall_s"], recipe_s_per_step=s["wall_s"] / n, summary_file=f)
            break
except Exception as e:
    out["summary_error"] = str(e)
json.dump(out, open(sys.argv[3], "w"))
PY

# 5. one JSON (+ Markdown) with everything
python scripts/device_report.py --assemble "$STEPS" --out "$DEST/device_check.json" --md "$DEST/device_check.md"
RC=$?
echo "wrote $DEST/device_check.json and $DEST/device_check.md (failed steps: rc $RC)"
exit $RC
