#!/usr/bin/env bash
# One device call: Beauty quality (OneRec, SASRec-CE, SASRec-BCE) then bench/train.py (MFU, latency).
#   run: bash bench/gpu_session.sh            (on the GPU box; results under $OUT)
#   QUICK=1 bash bench/gpu_session.sh         (CPU rehearsal with tiny settings, seconds)
# The box has torch but not our venv: var/gpu/site carries pure-Python tqdm and the abi3
# safetensors wheel's package, appended to PYTHONPATH so the box's own copies win if present.
set -u
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
export PYTHONPATH="$PWD:${PYTHONPATH:-}:$PWD/var/gpu/site" TQDM_DISABLE=1 PYTHONUNBUFFERED=1
PY=${PY:-python3}
T0=$(date +%s)
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
  $PY -c "import sys, torch, numpy, safetensors, tqdm; print(sys.version.split()[0], torch.__version__, numpy.__version__)"
} 2>&1 | tee "$OUT/env.txt"
if [ "${QUICK:-0}" = 1 ]; then
  Q=(--quick --device cpu --threads 1); TR=(--quick --device cpu --threads 1 --steps 2 --requests 3)
  TQ=120; TT=60
else
  Q=(--profile gpu --device cuda); TR=(--device cuda); TQ=${TQ:-440}; TT=${TT:-90}
fi
timeout "$TQ" $PY -m bench.quality --data var/gpu/Beauty.txt --format amazon_seq --name amazon-beauty \
  --out "$OUT/quality" "${Q[@]}" ${QUALITY_ARGS:-} > "$OUT/quality.log" 2>&1
echo "bench.quality rc=$? after $(( $(date +%s) - T0 )) s"; tail -12 "$OUT/quality.log"
for d in "$OUT"/quality/*/runs/*/; do  # nested folders do not come back: flat copies of the logs
  [ -f "$d/train_log.jsonl" ] && cp "$d/train_log.jsonl" "$OUT/log_$(basename "$d").jsonl"
  rm -rf "$d"
done
timeout "$TT" $PY -m bench.train --out "$OUT/train.json" "${TR[@]}" ${TRAIN_ARGS:-} > "$OUT/train.log" 2>&1
echo "bench.train rc=$? after $(( $(date +%s) - T0 )) s"; tail -60 "$OUT/train.log" | grep -v Warning
