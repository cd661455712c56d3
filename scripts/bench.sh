#!/usr/bin/env bash
# Benchmarks strata on a deterministic synthetic checkpoint of realistic shape
# (24 layers, hidden 1024, 16 heads over 4 KV heads, intermediate 2816, vocab
# 32000): exports it as fp32 and int4 packages with model_full.onnx, runs
# `strata bench` on both and writes JSON, Markdown and a PNG plot into docs/.
#
#   scripts/bench.sh                 # everything, with the defaults below
#   WORK=/data/strata-bench THREADS=4 REPS=5 scripts/bench.sh
#
# The checkpoint and packages (about 4 GB) are kept in $WORK between runs.
set -euo pipefail

cd "$(dirname "$0")/.."
WORK=${WORK:-${TMPDIR:-/tmp}/strata-bench}
DTYPES=${DTYPES:-fp32 int4}
RATIOS=${RATIOS:-1,2,3,5}
BATCH=${BATCH:-1,2,8}
PROMPT_LEN=${PROMPT_LEN:-64}
GEN=${GEN:-32}
REPS=${REPS:-3}
WARMUP=${WARMUP:-1}
THREADS=${THREADS:-1}
OUT=${OUT:-docs}

mkdir -p "$WORK" "$OUT"
echo "== machine"
echo "cores: $(nproc); cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
go run ./cmd/strata runtime info

echo "== checkpoint and packages in $WORK"
# shellcheck disable=SC2086
go run ./scripts/bench/mkpkg -dir "$WORK" -dtypes "$(echo $DTYPES | tr ' ' ,)"

go build -o "$WORK/strata" ./cmd/strata
for dt in $DTYPES; do
	echo "== bench $dt"
	"$WORK/strata" bench --model "$WORK/$dt" --ratios "$RATIOS" --batch "$BATCH" \
		--prompt-len "$PROMPT_LEN" --gen "$GEN" --reps "$REPS" --warmup "$WARMUP" --threads "$THREADS" \
		--json "$OUT/bench-$dt.json" --markdown "$OUT/bench-$dt.md" --plot "$OUT/bench-$dt.png" \
		${CPUPROFILE:+--cpuprofile "$WORK/$dt.pprof"}
done
echo "results in $OUT/bench-*.{json,md,png}"
