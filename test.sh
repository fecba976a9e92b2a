#!/usr/bin/env bash
# The project's whole test run: formatting, vet, the real peers the
# end-to-end tests talk to (built once, then cached), and every test under
# the race detector. .ci/run calls exactly this. Under CI=true a peer that
# cannot be built or started fails the run instead of skipping.
set -euo pipefail
cd "$(dirname "$0")"

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...
(cd bench && go vet ./...) # the nested benchmark module must keep compiling

echo "== test peers: OTel collector, Jaeger, VictoriaLogs (built from their nested modules, cached)"
internal/testpeers/build.sh

echo "== go test -race"
go test -race -count=1 ./...

echo "== nested module tests: compose file check"
(cd internal/testpeers/collector && go test -count=1 ./...)
