#!/usr/bin/env bash
# CPU profiles (and allocation profiles) of the benchmarks that miss their
# targets, with `go tool pprof -top` of each, into results/profile/:
#
#   ./profile.sh                      # AuditFileNone and AppPassthrough, 5s each
#   PROFILE_BENCH='AuditParallelAlways PeerSlogJSONLumberjack' ./profile.sh
#   PROFILE_TIME=2s ./profile.sh
set -euo pipefail
cd "$(dirname "$0")"
out=${OUT:-results/profile}
mkdir -p "$out"
go test -c -o "$out/bench.test" .
for b in ${PROFILE_BENCH:-AuditFileNone AppPassthrough}; do
	(cd "$out" && ./bench.test -test.run '^$' -test.bench "^Benchmark$b\$" -test.benchtime "${PROFILE_TIME:-5s}" \
		-test.benchmem -test.cpuprofile "cpu_$b.prof" -test.memprofile "mem_$b.prof" | grep '^Benchmark')
	go tool pprof -top -nodecount=45 "$out/bench.test" "$out/cpu_$b.prof" >"$out/top_$b.txt" 2>/dev/null
	go tool pprof -top -cum -nodecount=60 "$out/bench.test" "$out/cpu_$b.prof" >"$out/topcum_$b.txt" 2>/dev/null
	go tool pprof -sample_index=alloc_space -top -nodecount=15 "$out/bench.test" "$out/mem_$b.prof" >"$out/alloc_$b.txt" 2>/dev/null
	echo "== $b: $out/top_$b.txt, topcum_$b.txt, alloc_$b.txt"
	sed -n '1,20p' "$out/top_$b.txt"
done
