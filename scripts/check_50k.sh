#!/usr/bin/env bash
# Measures `rollguard check` on 50,000 Deployments (one 37 MB multi-document
# YAML stream): wall time and peak RSS for each output format. Memory must stay
# flat: documents are read, checked and reported one at a time.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$work/50k.yaml" <<'PY'
import sys
base = open("examples/03-http-service.yaml").read()
with open(sys.argv[1], "w") as out:
    for i in range(50000):
        if i:
            out.write("---\n")
        out.write(base.replace("name: checkout\n  namespace", f"name: checkout-{i}\n  namespace", 1))
PY
head -c 200000 "$work/50k.yaml" > "$work/small.yaml"
ls -l "$work/50k.yaml" "$work/small.yaml" | awk '{print $5, $9}'
for format in text json yaml diff; do
  /usr/bin/time -f "$format: %e s wall, peak RSS %M KiB" \
    target/release/rollguard check --output "$format" "$work/50k.yaml" > /dev/null 2> "$work/err"
  tail -n 2 "$work/err"
done
/usr/bin/time -f "baseline (270 objects): %e s wall, peak RSS %M KiB" \
  target/release/rollguard check "$work/small.yaml" > /dev/null
