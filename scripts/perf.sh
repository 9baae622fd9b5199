#!/usr/bin/env bash
# The whole performance benchmark of docs/performance.md, in one command:
#
#   scripts/perf.sh                    # criterion + ratio table, then the HTTPS load test
#   scripts/perf.sh --rounds 3         # extra arguments go to rollguard-loadgen
#
# 1. `cargo bench --bench admission`: the engine, the full review path and the
#    floor on the same bodies (criterion, one line per benchmark), then the
#    alternating ratio table -> target/perf/admission-scaling.csv.
# 2. `cargo run --release --example rollguard-loadgen`: rollguard against a
#    floor webhook over HTTPS, alternating rounds -> target/perf/loadgen.csv.
# 3. Prints both ratio tables again, together. Nothing is asserted.
set -euo pipefail
cd "$(dirname "$0")/.."

target=${CARGO_TARGET_DIR:-target}
mkdir -p "$target/perf"
started=$(date +%s)

echo "== building (release)"
cargo build --release --locked --bin rollguard --example rollguard-loadgen
cargo bench --locked --bench admission --no-run

echo
echo "== cargo bench --bench admission"
cargo bench --locked --bench admission -- --output-format bencher 2>&1 |
  tee "$target/perf/bench.log" | grep -v '^$'

echo
echo "== cargo run --release --example rollguard-loadgen -- $*"
cargo run --quiet --release --locked --example rollguard-loadgen -- "$@" 2>&1 |
  tee "$target/perf/loadgen.log"

echo
echo "== ratios (full logs: $target/perf/bench.log, $target/perf/loadgen.log)"
sed -n '/^rollguard admission path vs floor/,/^target:/p' "$target/perf/bench.log"
echo
sed -n '/^summary:/,$p' "$target/perf/loadgen.log"
echo
echo "total $(( $(date +%s) - started )) s"
