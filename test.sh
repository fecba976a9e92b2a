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
(cd internal/testpeers/browser && go vet ./...)
(cd internal/testpeers/collector && go vet ./...)

echo "== staticcheck (a pinned release, built on first use)"
staticcheck="go run honnef.co/go/tools/cmd/staticcheck@v0.8.2"
$staticcheck ./...
(cd bench && $staticcheck ./...)
(cd internal/testpeers/browser && $staticcheck ./...) # the collector module is the builder's generated code

echo "== test peers: OTel collector, Jaeger, VictoriaLogs (built from their nested modules, cached)"
internal/testpeers/build.sh

echo "== chromium for the live view's browser test"
if command -v chromium >/dev/null 2>&1 || [ -n "${SLOGAUDIT_CHROMIUM:-}" ]; then
  echo "using ${SLOGAUDIT_CHROMIUM:-$(command -v chromium)}"
else
  echo "chromium is not installed; installing it (apt-get install -y chromium, ~1-2 min the first time)"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; then
    if [ "${CI:-}" = "true" ]; then
      echo "ERROR: could not install chromium; under CI=true the browser test must run" >&2; exit 1
    fi
    echo "WARNING: could not install chromium; the browser test will SKIP" >&2
  fi
fi

echo "== go test -race"
go test -race -count=1 ./...

echo "== crash loop at full length (the race run above kills 20 times; this one 200)"
go test -count=1 -run '^TestCrashLoop$' ./chain

echo "== nested module tests: compose file check"
(cd internal/testpeers/collector && go test -count=1 ./...)

echo "== nested module tests: the live view in headless Chromium"
(cd internal/testpeers/browser && go test -count=1 ./...)
