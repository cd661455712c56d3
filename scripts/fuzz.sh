#!/usr/bin/env bash
# Runs every Go fuzz target in the repository, one after another, each for a
# bounded time, and fails on the first crasher (Go saves the failing input
# under the package's testdata/fuzz/<Target>/, where `go test` replays it
# from then on).
#
#   scripts/fuzz.sh                 # every target, FUZZTIME each (default 10s)
#   FUZZTIME=1m scripts/fuzz.sh     # longer
#   scripts/fuzz.sh ./export/...    # only the targets under these package patterns
#
# Environment: FUZZTIME (per target, default 10s), FUZZMINIMIZETIME (time to
# minimise a crasher, default 30s), FUZZPARALLEL (fuzzing workers, default:
# GOMAXPROCS).
set -euo pipefail

cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-10s}
minimize=${FUZZMINIMIZETIME:-30s}
patterns=("$@")
if [ ${#patterns[@]} -eq 0 ]; then
	patterns=(./...)
fi

# "dir target" for every func FuzzXxx(f *testing.F) in a _test.go file.
targets=$(go list -f '{{.Dir}}' "${patterns[@]}" | while read -r dir; do
	{ grep -sho '^func Fuzz[A-Za-z0-9_]*(' "$dir"/*_test.go || true; } | sed 's/^func \(.*\)(/\1/' | sort -u |
		while read -r name; do echo "$dir $name"; done
done)
if [ -z "$targets" ]; then
	echo "fuzz.sh: no fuzz targets found in ${patterns[*]}" >&2
	exit 1
fi

parallel=()
if [ -n "${FUZZPARALLEL:-}" ]; then
	parallel=(-parallel "$FUZZPARALLEL")
fi
# saved counts the inputs in a fuzz corpus directory (0 when it is absent).
saved() {
	if [ -d "$1" ]; then
		find "$1" -type f | wc -l
	else
		echo 0
	fi
}

failed=0
count=0
while read -r dir name; do
	count=$((count + 1))
	pkg=".${dir#"$PWD"}"
	corpus="$dir/testdata/fuzz/$name"
	# A failure that saved no new input is the fuzzing engine itself timing out
	# (its workers did not stop within the deadline on a loaded machine, "context
	# deadline exceeded"), not a crasher: run the target once more. A crasher is
	# always saved, and then the target fails.
	for attempt in 1 2; do
		before=$(saved "$corpus")
		echo "fuzz.sh: $pkg $name for $fuzztime"
		if go test "$pkg" -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" \
			-fuzzminimizetime "$minimize" "${parallel[@]}"; then
			break
		fi
		if [ "$attempt" -eq 1 ] && [ "$(saved "$corpus")" -eq "$before" ]; then
			echo "fuzz.sh: $pkg $name stopped without a crasher; running it again" >&2
			continue
		fi
		echo "fuzz.sh: $pkg $name FAILED; the crasher is in $pkg/testdata/fuzz/$name/" >&2
		failed=$((failed + 1))
		break
	done
done <<<"$targets"
if [ "$failed" -ne 0 ]; then
	echo "fuzz.sh: $failed of $count fuzz targets failed" >&2
	exit 1
fi
echo "fuzz.sh: $count fuzz targets passed"
