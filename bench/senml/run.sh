#!/bin/sh
# bench/senml: the SenML parser alone, old (jansson) against new (streaming), in ns per record
# on the ingest benchmark's 36 KB bodies. A few seconds on one core. Arguments go to
# senml_bench (--rounds N, --ms MS). Checks first that its bodies are byte for byte the ones
# bench/ingest/ingest_load.c sends.
set -eu
cd "$(dirname "$0")/../.."
BUILD=build/bench
mkdir -p "$BUILD"
CFLAGS_BENCH="-std=c17 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -O2 -g -Wall -Wextra -Wshadow"
# shellcheck disable=SC2046,SC2086
cc $CFLAGS_BENCH -Isrc -Itests/fuzz $(pkg-config --cflags jansson) -o "$BUILD/senml_bench" \
    bench/senml/senml_bench.c src/sensors/senml.c tests/fuzz/senml_jansson.c src/core/err.c \
    $(pkg-config --libs jansson) -lm
# shellcheck disable=SC2086
cc $CFLAGS_BENCH -o "$BUILD/ingest_load" bench/ingest/ingest_load.c -lpthread
t0=$(($(date +%s) - 25 * 86400))
"$BUILD/ingest_load" sample --t0 "$t0" --start 7 | sed -n 2p >"$BUILD/senml_body.load"
"$BUILD/senml_bench" --body 7 --t0 "$t0" >"$BUILD/senml_body.bench"
cmp -s "$BUILD/senml_body.load" "$BUILD/senml_body.bench" ||
    { echo "bench/senml: the body differs from ingest_load's" >&2; exit 1; }
echo "bench/senml: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
"$BUILD/senml_bench" "$@"
