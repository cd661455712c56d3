#!/usr/bin/env bash
# gpu-check.sh: the GPU measurement of strata in one script (docs/gpu.md).
#
# On a Linux machine with an NVIDIA GPU, from the files `prepare` made, it
# runs engine/ortdev's tests in GPU memory, the placement check of every
# package on each device, checks that greedy ids on the GPU equal the CPU's
# for every dtype and compute type, benchmarks a TinyLlama-shaped int4
# package with `strata bench --device webgpu` and `--device cuda` next to
# Hugging Face transformers on the same GPU, and prints one summary table.
#
#   scripts/gpu-check.sh prepare          # here: build and pack everything into .gpu/ (and .gl/)
#   scripts/gpu-check.sh stage PART...    # there: keep carried chunks of the CUDA build in $STRATA_GPU_WORK
#   scripts/gpu-check.sh run              # there: unpack, test, compare, bench, summarise
#   scripts/gpu-check.sh run --dry-run    # anywhere: the same flow on the CPU, small shapes, local builds
#
# Environment: STRATA_GPU_WORK (default /tmp/strata-gpu) holds staged chunks,
# the unpacked libraries, packages and logs; OUT (when set) receives the logs
# and JSON results too; STRATA_GPU_DEVICES (default "cuda webgpu") lists the
# devices to check and STRATA_GPU_BENCH_DEVICES (default: the same) those to
# benchmark; STRATA_GPU_HF=0 skips the transformers comparison; CHUNK_MB (default 36) is the chunk size `prepare` cuts
# (a chunk and the working tree travel together, 64 MiB a call);
# STEP_TIMEOUT (default 60) bounds each generate (three times that each bench
# and transformers run) in seconds, so one hung step cannot take the whole run.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
WORK=${STRATA_GPU_WORK:-/tmp/strata-gpu}
PACK=$ROOT/.gpu

die() {
	echo "gpu-check: $*" >&2
	exit 1
}

# ---------------------------------------------------------------- prepare
prepare() {
	command -v go >/dev/null || die "prepare needs Go"
	command -v xz >/dev/null || die "prepare needs xz"
	local cuda130 cuda129
	rm -rf "${PACK:?}"
	mkdir -p "$PACK/bin" "$PACK/cuda" || die "cannot create $PACK"
	echo "gpu-check: building strata, the ortdev test binary and mkpkg for linux/amd64" >&2
	GOOS=linux GOARCH=amd64 CGO_ENABLED=1 go build -o "$PACK/bin/strata" ./cmd/strata || die "build strata"
	GOOS=linux GOARCH=amd64 CGO_ENABLED=1 go test -c -o "$PACK/bin/ortdev.test" ./engine/ortdev || die "build the ortdev tests"
	GOOS=linux GOARCH=amd64 go build -o "$PACK/bin/mkpkg" ./scripts/bench/mkpkg || die "build mkpkg"
	tar -C "$PACK/bin" -cf - strata ortdev.test mkpkg | xz -T0 -6 >"$PACK/bin.tar.xz" || die "pack the binaries"
	rm -rf "${PACK:?}/bin"

	cuda130=$(go run ./cmd/strata runtime fetch --provider cpu) || die "fetch ONNX Runtime 1.30.0"
	tar -C "$(dirname "$cuda130")" -cf - "$(basename "$cuda130")" | xz -T0 -6 >"$PACK/ort-cpu.tar.xz" || die "pack ONNX Runtime 1.30.0"
	cuda129=$(go run ./cmd/strata runtime fetch --provider cuda) || die "fetch the CUDA build"
	echo "gpu-check: compressing the CUDA build (a few minutes)" >&2
	tar -C "$(dirname "$cuda129")" -cf - libonnxruntime.so.1 libonnxruntime_providers_shared.so libonnxruntime_providers_cuda.so |
		xz -T0 -6 | split -b "${CHUNK_MB:-36}M" -d -a 2 - "$PACK/cuda/part-" || die "pack the CUDA build"

	if [ ! -d .gl ] || [ -z "$(ls .gl/*.deb 2>/dev/null)" ]; then
		echo "gpu-check: downloading the Vulkan and GL loader packages into .gl/" >&2
		mkdir -p .gl /tmp/amd64/partial
		local o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64)
		apt-get "${o[@]}" update -qq && (cd .gl && apt-get "${o[@]}" download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2) ||
			echo "gpu-check: could not download the loader packages; WebGPU needs them where the machine lacks libvulkan" >&2
	fi
	echo
	echo "Carry plan (64 MiB per call, the working tree included; make the calls back to back):"
	local parts=("$PACK"/cuda/part-*)
	local i=0 p
	for p in "${parts[@]}"; do
		i=$((i + 1))
		echo "  call $i: carry [\".gpu/cuda/$(basename "$p")\"]  command: scripts/gpu-check.sh stage .gpu/cuda/$(basename "$p")"
	done
	echo "  call $((i + 1)): carry [\".gpu/bin.tar.xz\", \".gpu/ort-cpu.tar.xz\", \".gl\"]  command: scripts/gpu-check.sh run"
	du -ch "$PACK"/bin.tar.xz "$PACK"/ort-cpu.tar.xz "$PACK"/cuda/part-* .gl 2>/dev/null | tail -n 1 | sed 's/^/  all carried files: /'
}

# ---------------------------------------------------------------- stage
stage() {
	[ $# -gt 0 ] || die "stage: name the chunk files"
	mkdir -p "$WORK/parts" || die "cannot create $WORK/parts"
	local p
	for p in "$@"; do
		[ -f "$p" ] || die "stage: $p does not exist"
		cp "$p" "$WORK/parts/" || die "stage: copy $p"
	done
	echo "gpu-check: staged $(find "$WORK/parts" -type f | wc -l) chunk(s), $(du -sh "$WORK/parts" | cut -f1) in $WORK/parts"
}

# ---------------------------------------------------------------- run
SUMMARY=()
FAILED=0
record() { # check, result, detail
	SUMMARY+=("$1|$2|$3")
	if [ "$2" = FAIL ]; then FAILED=$((FAILED + 1)); fi
	printf 'gpu-check: %-28s %-5s %s\n' "$1" "$2" "$3" >&2
}

# firstError prints the first line of a log that says what went wrong (a
# strata error, a crash), else its last line.
firstError() {
	grep -m1 -E '^strata:|SIGSEGV|SIGABRT|panic:|fatal error|Traceback|Error' "$1" 2>/dev/null || tail -n 1 "$1"
}

# ids prints the token ids of one greedy generation as "a,b,c".
ids() { # package, device, generate flags...
	local pkg=$1 dev=$2
	shift 2
	timeout "${STEP_TIMEOUT:-60}" "$STRATA" generate --model "$pkg" --device "$dev" --prompt-ids 1,15,29,43,57,71,85,99,113,127,141,155 \
		--max-tokens "$GEN_TOKENS" --json "$@" 2>>"$LOGS/generate.log" |
		python3 -c 'import json,sys; print(",".join(map(str, json.load(sys.stdin)["token_ids"])))'
}

# agree prints how many leading ids two lists share, and the longer length.
agree() {
	python3 - "$1" "$2" <<'EOF'
import sys
a, b = sys.argv[1].split(","), sys.argv[2].split(",")
n = 0
while n < min(len(a), len(b)) and a[n] == b[n]:
    n += 1
print(n, max(len(a), len(b)))
EOF
}

run() {
	local dry=0
	[ "${1:-}" = --dry-run ] && dry=1
	LOGS=${OUT:-$WORK/out}
	mkdir -p "$WORK" "$LOGS" || die "cannot create $WORK"
	local devices=${STRATA_GPU_DEVICES:-cuda webgpu} small_args tiny_args bench_args bench_devices
	if [ "$dry" = 1 ]; then
		# The same steps on the CPU: local builds, the user's caches, small shapes.
		devices=cpu
		mkdir -p "$WORK/bin"
		go build -o "$WORK/bin/strata" ./cmd/strata || die "build strata"
		go test -c -o "$WORK/bin/ortdev.test" ./engine/ortdev || die "build the ortdev tests"
		go build -o "$WORK/bin/mkpkg" ./scripts/bench/mkpkg || die "build mkpkg"
		small_args=(-shape bench -layers 2 -max-seq-len 64)
		tiny_args=(-shape bench -layers 4 -max-seq-len 128)
		bench_args=(--batch 1 --ratios 2 --prompt-len 16 --gen 8 --reps 1 --warmup 0)
		GEN_TOKENS=8
	else
		[ -f .gpu/bin.tar.xz ] || die "carry .gpu/bin.tar.xz (scripts/gpu-check.sh prepare)"
		[ -f .gpu/ort-cpu.tar.xz ] || die "carry .gpu/bin.tar.xz and .gpu/ort-cpu.tar.xz (scripts/gpu-check.sh prepare)"
		ls "$WORK"/parts/part-* >/dev/null 2>&1 || die "no CUDA build chunks in $WORK/parts: stage them first"
		if [ -d .gl ] && ! ldconfig -p | grep -q libvulkan.so.1; then
			for f in .gl/*.deb; do dpkg -x "$f" /; done
			ldconfig
		fi
		export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
		export __EGL_VENDOR_LIBRARY_FILENAMES=${__EGL_VENDOR_LIBRARY_FILENAMES:-/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json}
		export XDG_CACHE_HOME=$WORK/cache
		mkdir -p "$WORK/bin" "$XDG_CACHE_HOME/strata/ort/1.30.0" "$XDG_CACHE_HOME/strata/ort/1.29.0-cuda"
		xz -dc .gpu/bin.tar.xz | tar -C "$WORK/bin" -xf - || die "unpack the binaries"
		xz -dc .gpu/ort-cpu.tar.xz | tar -C "$XDG_CACHE_HOME/strata/ort/1.30.0" -xf - || die "unpack ONNX Runtime 1.30.0"
		cat "$WORK"/parts/part-* | xz -dc | tar -C "$XDG_CACHE_HOME/strata/ort/1.29.0-cuda" -xf - ||
			die "reassemble the CUDA build from $WORK/parts (are all chunks staged?)"
		small_args=(-shape bench -layers 4 -max-seq-len 256)
		tiny_args=(-shape tinyllama -max-seq-len 512)
		bench_args=(--batch "1,8" --ratios 2 --prompt-len 128 --gen 64 --reps 3 --warmup 1)
		GEN_TOKENS=32
	fi
	bench_devices=${STRATA_GPU_BENCH_DEVICES:-$devices}
	STRATA=$WORK/bin/strata
	local mkpkg=$WORK/bin/mkpkg tests=$WORK/bin/ortdev.test

	# The libraries: pinned hashes, and what CUDA can find.
	if "$STRATA" runtime info >"$LOGS/runtime-info.txt" 2>&1; then
		local pins cudaline
		pins=$(grep -c "matches strata's pinned" "$LOGS/runtime-info.txt")
		cudaline=$(grep '^  cuda: ' "$LOGS/runtime-info.txt" | sed 's/^  cuda: *//')
		if [ "$pins" -ge 2 ]; then
			record "libraries" PASS "both pinned builds verified; cuda: $cudaline"
		else
			record "libraries" FAIL "$pins of 2 builds match their pins (runtime-info.txt)"
		fi
	else
		record "libraries" FAIL "strata runtime info failed (runtime-info.txt)"
	fi

	# engine/ortdev's tests in each device's memory; the 1.29 build's
	# provider tests register the CUDA provider for real where CUDA is.
	local dev
	for dev in $devices; do
		[ "$dev" = cuda ] && continue # ortdev's cuda path is TestRegisterCUDAProvider below
		# The slot-table test compiles a C probe against the module's ORT
		# header: it needs Go and the source tree, so it runs in CI only.
		if STRATA_TEST_DEVICE=$dev "$tests" -test.v -test.skip TestSlotNumbersMatchHeader >"$LOGS/ortdev-$dev.log" 2>&1; then
			record "ortdev tests ($dev)" PASS "$(grep -c '^--- PASS' "$LOGS/ortdev-$dev.log") passed"
		else
			record "ortdev tests ($dev)" FAIL "$(grep '^--- FAIL' "$LOGS/ortdev-$dev.log" | head -3 | tr '\n' ' ')(ortdev-$dev.log)"
		fi
	done
	if "$tests" -test.v -test.run 'TestRegisterCUDAProvider|TestExportedGraphsAcrossORTVersions' >"$LOGS/ortdev-cuda-build.log" 2>&1; then
		record "CUDA build (1.29) tests" PASS "$(grep -m1 -o 'without \[.*\]' "$LOGS/ortdev-cuda-build.log" || echo "CUDA provider registered, session on the GPU")"
	else
		record "CUDA build (1.29) tests" FAIL "$(grep '^--- FAIL' "$LOGS/ortdev-cuda-build.log" | head -2 | tr '\n' ' ')(ortdev-cuda-build.log)"
	fi

	# Packages: a small one in three dtypes for the greedy comparison, a
	# TinyLlama-shaped int4 one for the benchmark.
	# fp32 compute is the CPU's; fp16 compute (DTYPE-fp16) is what the GPU
	# providers run (docs/gpu.md).
	"$mkpkg" -dir "$WORK/small" -dtypes fp32,fp16,int4 -computes fp32,fp16 "${small_args[@]}" >"$LOGS/mkpkg-small.log" 2>&1 ||
		die "mkpkg (small) failed: $(tail -n 1 "$LOGS/mkpkg-small.log")"
	local tiny_computes=fp16
	case " $bench_devices " in *" webgpu "* | *" cpu "*) tiny_computes=fp32,fp16 ;; esac
	"$mkpkg" -dir "$WORK/tiny" -dtypes int4 -computes "$tiny_computes" "${tiny_args[@]}" >"$LOGS/mkpkg-tiny.log" 2>&1 ||
		die "mkpkg (tinyllama) failed: $(tail -n 1 "$LOGS/mkpkg-tiny.log")"

	# The placement check (no GPU needed): fp16-compute packages must place
	# on every GPU device; fp32 compute is expected to fail on cuda
	# (GroupQueryAttention is float16 only there).
	local pkg
	for pkg in fp32 fp16 int4 fp16-fp16 int4-fp16; do
		for dev in cuda webgpu; do
			if "$STRATA" verify --model "$WORK/small/$pkg" --device "$dev" --placement >"$LOGS/placement-$pkg-$dev.log" 2>&1; then
				record "placement $pkg $dev" PASS "$(tail -n 1 "$LOGS/placement-$pkg-$dev.log")"
			elif [ "$dev" = cuda ] && [ "${pkg%-fp16}" = "$pkg" ]; then
				record "placement $pkg $dev" PASS "refused as expected: $(tail -n 1 "$LOGS/placement-$pkg-$dev.log")"
			else
				record "placement $pkg $dev" FAIL "$(firstError "$LOGS/placement-$pkg-$dev.log")"
			fi
		done
	done

	# Greedy ids on each device against the CPU's. fp32 must agree on every
	# token; fp16 and int4 run other kernels (fp16 accumulation, device
	# MatMulNBits) and must agree on the first 8 tokens (random-weight
	# models have near-tied logits, so a later flip is not an error).
	local dtype cpu_ids dev_ids n total need
	for dtype in fp32 fp16 int4 fp16-fp16 int4-fp16; do
		cpu_ids=$(ids "$WORK/small/$dtype" cpu) || {
			record "greedy $dtype cpu" FAIL "generate failed: $(firstError "$LOGS/generate.log")"
			continue
		}
		for dev in $devices; do
			if [ "$dev" = cuda ] && [ "${dtype%-fp16}" = "$dtype" ]; then
				continue # fp32 compute does not place on cuda (checked above)
			fi
			if ! dev_ids=$(ids "$WORK/small/$dtype" "$dev"); then
				record "greedy $dtype $dev=cpu" FAIL "$(firstError "$LOGS/generate.log")"
				continue
			fi
			read -r n total < <(agree "$cpu_ids" "$dev_ids")
			need=$total
			[ "$dtype" != fp32 ] && need=$((total < 8 ? total : 8))
			if [ "$n" -ge "$need" ]; then
				record "greedy $dtype $dev=cpu" PASS "$n/$total tokens equal (need $need)"
			else
				record "greedy $dtype $dev=cpu" FAIL "$n/$total tokens equal (need $need): cpu $cpu_ids, $dev $dev_ids"
			fi
		done
	done

	# CUDA graphs: on cuda a fused decode step is recorded once and replayed
	# (docs/design.md, "CUDA graphs"). The replay must give the ids of the
	# same fused graph launched kernel by kernel, token for token, at full
	# depth and on a ULS schedule; the per-layer chain (other kernels in
	# fp16) must agree on the first 8 tokens.
	if [[ " $devices " == *" cuda "* ]]; then
		local speedup graph_ids plain_ids layer_ids
		for dtype in fp16-fp16 int4-fp16; do
			for speedup in 1 2; do
				graph_ids=$(ids "$WORK/small/$dtype" cuda --speedup "$speedup") || {
					record "cuda graph $dtype r$speedup" FAIL "$(firstError "$LOGS/generate.log")"
					continue
				}
				plain_ids=$(ids "$WORK/small/$dtype" cuda --speedup "$speedup" --cuda-graph=false) || {
					record "cuda graph $dtype r$speedup" FAIL "without graphs: $(firstError "$LOGS/generate.log")"
					continue
				}
				layer_ids=$(ids "$WORK/small/$dtype" cuda --speedup "$speedup" --fuse=false) || {
					record "cuda graph $dtype r$speedup" FAIL "per-layer: $(firstError "$LOGS/generate.log")"
					continue
				}
				read -r n total < <(agree "$graph_ids" "$plain_ids")
				read -r m _ < <(agree "$graph_ids" "$layer_ids")
				if [ "$n" -eq "$total" ] && [ "$m" -ge $((total < 8 ? total : 8)) ]; then
					record "cuda graph $dtype r$speedup" PASS "replay = launches on $n/$total tokens; per-layer agrees on $m"
				else
					record "cuda graph $dtype r$speedup" FAIL "replay = launches on $n/$total, per-layer on $m: graph $graph_ids, launches $plain_ids, per-layer $layer_ids"
				fi
			done
		done
	fi

	# The benchmark, one device after the other in the same run: the
	# fp16-compute int4 package everywhere, the fp32-compute one where it
	# places (cpu, webgpu).
	# On cuda the fused rows run once with CUDA graphs (the default) and once
	# without (--cuda-graph=false).
	local bench_pkg variant name
	for dev in $bench_devices; do
		for bench_pkg in int4-fp16 int4; do
			[ "$dev" = cuda ] && [ "$bench_pkg" = int4 ] && continue
			[ -d "$WORK/tiny/$bench_pkg" ] || continue
			for variant in "" nograph; do
				[ -n "$variant" ] && [ "$dev" != cuda ] && continue
				name="$bench_pkg-$dev${variant:+-$variant}"
				local extra=()
				[ "$variant" = nograph ] && extra=(--cuda-graph=false)
				if timeout "$((${STEP_TIMEOUT:-60} * 3))" "$STRATA" bench --model "$WORK/tiny/$bench_pkg" --device "$dev" --no-mono --no-roofline \
					"${bench_args[@]}" "${extra[@]}" --json "$LOGS/bench-$name.json" >"$LOGS/bench-$name.txt" 2>"$LOGS/bench-$name.log"; then
					while read -r line; do record "bench $bench_pkg $dev${variant:+ $variant}" PASS "$line"; done < <(python3 scripts/bench/bench_rows.py "$LOGS/bench-$name.json")
				else
					record "bench $bench_pkg $dev${variant:+ $variant}" FAIL "$(firstError "$LOGS/bench-$name.log")"
				fi
			done
		done
	done

	# The same shape through Hugging Face transformers (fp16, eager) on the
	# GPU, in the same run: what a user would compare against.
	if [ "$dry" = 0 ] && [ "${STRATA_GPU_HF:-1}" != 0 ]; then
		if timeout "$((${STEP_TIMEOUT:-60} * 3))" python3 scripts/bench/hf_decode.py --config "$WORK/tiny/hf/config.json" --batch 1,8 --prompt-len 128 --gen 64 \
			>"$LOGS/hf.txt" 2>"$LOGS/hf.log"; then
			while read -r line; do record "bench transformers cuda" PASS "$line"; done <"$LOGS/hf.txt"
		else
			record "bench transformers cuda" FAIL "$(firstError "$LOGS/hf.log")"
		fi
	fi

	echo
	local machine="dry run on the CPU"
	[ "$dry" = 1 ] || machine=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -n 1)
	echo "strata GPU check ($machine)"
	printf '| %-28s | %-6s | %s\n' check result detail
	printf '|%s|%s|%s\n' "------------------------------" "--------" "--------"
	local row
	for row in "${SUMMARY[@]}"; do
		IFS='|' read -r check result detail <<<"$row"
		printf '| %-28s | %-6s | %s\n' "$check" "$result" "$detail"
	done
	printf '%s\n' "${SUMMARY[@]}" >"$LOGS/summary.txt"
	[ "$FAILED" = 0 ]
}

case "${1:-}" in
prepare) prepare ;;
stage)
	shift
	stage "$@"
	;;
run)
	shift
	run "$@"
	;;
*) die "usage: scripts/gpu-check.sh prepare | stage PART... | run [--dry-run]" ;;
esac
