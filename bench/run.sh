#!/usr/bin/env bash
# Runs slogaudit's benchmarks against its peers, saves the raw output, and
# prints benchstat tables and the target ratios (PASS/FAIL per ratio).
#
#   ./run.sh                       # 6 rounds, 1s per benchmark run (~5 min on 2 busy cores)
#   BENCH_COUNT=3 ./run.sh         # quicker
#   BENCH='AuditFile|PeerSlog' BENCH_COUNT=1 BENCHTIME=200ms ./run.sh
#
# Environment:
#   BENCH_COUNT       runs per benchmark, in rounds over all of them (default 6, what
#                     benchstat needs for a confidence interval)
#   BENCHTIME         -benchtime of every benchmark but Verify/SHA256Raw (default 1s)
#   VERIFY_BENCHTIME  -benchtime of Verify and SHA256Raw (default: BENCHTIME if it
#                     is a duration, else 1s; an Nx there means N passes over 64 MiB)
#   BENCH             regexp of benchmarks to run (default: all)
#   BENCH_TAGS        build tags, comma-separated (none of the benchmarks needs one)
#   OUT               directory for the results (default results/<UTC time>)
#   STRICT=1          exit 1 if a ratio fails
set -euo pipefail
cd "$(dirname "$0")"

BENCHSTAT=golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da

count=${BENCH_COUNT:-6}
benchtime=${BENCHTIME:-1s}
if [[ -n ${VERIFY_BENCHTIME:-} ]]; then
	verifytime=$VERIFY_BENCHTIME
elif [[ $benchtime == *x ]]; then
	verifytime=1s
else
	verifytime=$benchtime
fi
filter=${BENCH:-.}
tags=${BENCH_TAGS:-}
out=${OUT:-results/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
raw=$out/raw.txt

echo "== building (tags: ${tags:-none})" >&2
go test -c -o "$out/bench.test" ${tags:+-tags "$tags"} .

run() { # run BENCH_REGEXP BENCHTIME
	# -v makes skipped benchmarks visible (--- SKIP), which the ratios report.
	./bench.test -test.run '^$' -test.bench "$1" -test.count 1 \
		-test.benchtime "$2" -test.benchmem -test.v -test.timeout 30m | tee -a raw.txt |
		grep -E '^(Benchmark.*[0-9] ns/op|--- SKIP|--- FAIL|FAIL|panic)' >&2 || true
}

: >"$raw"
verify='^Benchmark(Verify|SHA256Raw)$'
echo "== benchmarks matching '$filter', $count rounds, benchtime $benchtime (Verify/SHA256Raw: $verifytime) -> $raw" >&2
# The machine is shared, so its load drifts: each round runs every
# benchmark once (-count is 1 per process, the rounds make the count), so
# that drift hits a benchmark and its peer alike instead of one of them.
# Run from the output directory so that nothing lands in the module.
(
	cd "$out"
	# Everything but the verify pair, which has its own benchtime.
	# (grep finding nothing is not an error: BENCH may leave either set empty.)
	names=$(./bench.test -test.list "$filter" | { grep '^Benchmark' || true; } | { grep -Ev "$verify" || true; } | paste -sd'|' -)
	vnames=$(./bench.test -test.list "$filter" | { grep -E "$verify" || true; } | paste -sd'|' -)
	for ((i = 1; i <= count; i++)); do
		echo "-- round $i/$count" >&2
		[[ -z $names ]] || run "^($names)\$" "$benchtime"
		[[ -z $vnames ]] || run "^($vnames)\$" "$verifytime"
	done
)
if grep -qE '^(--- FAIL|FAIL|panic)' "$raw"; then
	echo "run.sh: a benchmark failed; see $raw" >&2
	exit 1
fi

echo
echo "== benchstat ($raw)"
go run "$BENCHSTAT" "$raw" | tee "$out/benchstat.txt"

echo
echo "== ratios (medians of $count runs)"
go run ./cmd/ratios ${STRICT:+-strict} "$raw" | tee "$out/ratios.txt"
