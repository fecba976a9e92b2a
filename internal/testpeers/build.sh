#!/usr/bin/env bash
# Prebuild the end-to-end test peers (collector, jaeger, victorialogs) into
# the cache that testpeers.Build uses ($SLOGAUDIT_TESTPEERS_CACHE, else
# ${XDG_CACHE_HOME:-~/.cache}/slogaudit-testpeers), printing timings.
# Peers whose sources are unchanged are not rebuilt (a second run takes
# about a second). Run it before the tests so the cold build (minutes) is
# paid once and outside the `go test` timeout:
#
#   internal/testpeers/build.sh            # all peers, 2 at a time
#   internal/testpeers/build.sh -j 1 jaeger
set -euo pipefail
cd "$(dirname "$0")/../.."
exec go run ./internal/testpeers/prebuild "$@"
