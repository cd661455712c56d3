#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need
# (npm for ONNX Runtime and the tokenizer goldens, Debian's PyTorch for the
# training recipe), then runs go vet, the Go tests (the engine also under -race), the training recipe's
# tests and every fuzz target for a short bounded time.
#
#   scripts/test.sh            # everything
#   FUZZTIME=0 scripts/test.sh # skip fuzzing
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v npm >/dev/null 2>&1 || need+=(npm)
command -v gcc >/dev/null 2>&1 || need+=(gcc)
/usr/bin/python3 -c 'import torch, numpy' >/dev/null 2>&1 || need+=(python3-torch python3-numpy)
if [ ${#need[@]} -gt 0 ]; then
	echo "test.sh: installing ${need[*]}" >&2
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

go vet ./...
# Fetch ONNX Runtime once, before the parallel test binaries start: the
# CPU/WebGPU build, and the CUDA build (about 330 MB) whose fetch, unpacking
# and loading the tests check on machines without a GPU too.
go run ./cmd/strata runtime info
go run ./cmd/strata runtime fetch --provider cuda
go test ./...
go run github.com/go-task/task/v3/cmd/task@v3.54.0 pipeline-check # the export pipeline (Taskfile.yml) on a synthetic checkpoint; its summary lists each step
# The engine serves concurrent Generate calls: run it under the race detector too.
go test -race ./engine/
/usr/bin/python3 -m unittest discover -s scripts/train -p 'test_*.py'
if [ "${FUZZTIME:-5s}" != 0 ]; then
	FUZZTIME=${FUZZTIME:-5s} scripts/fuzz.sh
fi
