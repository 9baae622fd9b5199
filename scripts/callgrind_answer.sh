#!/usr/bin/env bash
# Instructions per admission review, counted by callgrind: repeatable where
# wall time on a shared machine is not. Runs examples/profile-answer with 0
# and N iterations and divides the difference by N, so start-up is excluded.
#
#   scripts/callgrind_answer.sh [BODY...]     # default: typical-pod deployment pod-100
#   N=1000 scripts/callgrind_answer.sh pod-10
#
# Leaves target/perf/callgrind.answer.<body>.out (under $CARGO_TARGET_DIR if set) for
#   callgrind_annotate --inclusive=yes target/perf/callgrind.answer.typical-pod.out | head -60
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-500}
bodies=("$@")
[ ${#bodies[@]} -gt 0 ] || bodies=(typical-pod deployment pod-100)

command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 2; }
target=${CARGO_TARGET_DIR:-target}
# PROFILE_BIN: an already-built profile-answer (e.g. of another revision).
if [ -n "${PROFILE_BIN:-}" ]; then
  bin=$PROFILE_BIN
else
  cargo build --release --quiet --example profile-answer
  bin=$target/release/examples/profile-answer
fi
mkdir -p "$target/perf"

# instructions BODY N WORK [OUT]: total instructions of one run.
instructions() {
  local out=${4:-/dev/null}
  valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" "$1" "$2" "$3" 2>&1 >/dev/null |
    awk '/I +refs:/ { gsub(",", "", $NF); print $NF }'
}

printf '%-12s %14s %14s %14s %10s\n' body floor engine answer answer/floor
for body in "${bodies[@]}"; do
  declare -A per=()
  for work in floor engine answer; do
    base=$(instructions "$body" 0 "$work")
    keep=/dev/null
    [ "$work" = answer ] && keep="$target/perf/callgrind.answer.$body.out"
    total=$(instructions "$body" "$N" "$work" "$keep")
    per[$work]=$(( (total - base) / N ))
  done
  printf '%-12s %14d %14d %14d %9.2fx\n' "$body" "${per[floor]}" "${per[engine]}" "${per[answer]}" \
    "$(awk -v a="${per[answer]}" -v f="${per[floor]}" 'BEGIN { print a / f }')"
  unset per
done
echo "instructions per review (N=$N); engine = policy::evaluate (mutate) alone"
