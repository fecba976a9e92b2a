#!/usr/bin/env bash
# The project's whole test run: formatting, vet, and every test under the
# race detector. .ci/run calls exactly this.
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

echo "== go test -race"
go test -race -count=1 ./...
