#!/usr/bin/env bash
# Per-rule counts of `rollguard check` (enforce mode, default settings) over the
# real manifests of ../shared/corpus: what a team turning on enforce mode should
# expect. The table in docs/corpus.md is this script's output.
#   usage: scripts/corpus_counts.sh [CORPUS_DIR]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
corpus="${1:-$root/../shared/corpus}"
[ -d "$corpus" ] || { echo "no corpus at $corpus (pass its path)" >&2; exit 2; }
cargo build --quiet --locked --manifest-path "$root/Cargo.toml" --bin rollguard
bin="$root/target/debug/rollguard"
report="$(mktemp)"
trap 'rm -f "$report"' EXIT
# Exit 1 (a denial) or 2 (unreadable input) is expected on a real corpus.
"$bin" check --output json "$corpus" >"$report" 2>"$report.summary" || true
python3 - "$report" "$report.summary" <<'PY'
import json, sys, collections
entries = json.load(open(sys.argv[1]))
summary = open(sys.argv[2]).read().strip().splitlines()
objects = [e for e in entries if e.get("checked")]
counts = collections.Counter()
objs = collections.defaultdict(set)
for i, e in enumerate(objects):
    for m in e.get("mutations", []):
        key = (m["rule"], "mutation (" + m["action"] + ")")
        counts[key] += 1
        objs[key].add(i)
    for v in e.get("violations", []):
        key = (v["rule"], v["action"] + (" (waived)" if v.get("waived") else ""))
        counts[key] += 1
        objs[key].add(i)
errors = [e for e in entries if "error" in e]
warnings = [e for e in entries if "warning" in e]
print(f"workloads checked: {len(objects)}; unreadable documents: {len(errors)}; input warnings: {len(warnings)}")
print(f"summary: {summary[-1] if summary else ''}")
print()
print("| rule | outcome | workloads | changes/findings |")
print("| --- | --- | ---: | ---: |")
for (rule, outcome), n in sorted(counts.items(), key=lambda kv: (-len(objs[kv[0]]), kv[0])):
    print(f"| `{rule}` | {outcome} | {len(objs[(rule, outcome)])} | {n} |")
# GitOps drift (docs/gitops.md): applied changes to a value git already sets,
# which a GitOps tool would show out of sync. Unset fields rollguard fills in
# are not counted: server-side apply leaves fields git does not own alone.
rewritten = collections.Counter()
rewritten_objs = collections.defaultdict(set)
for i, e in enumerate(objects):
    for m in e.get("mutations", []):
        if m["action"] == "apply" and m.get("old") is not None:
            rewritten[m["rule"]] += 1
            rewritten_objs[m["rule"]].add(i)
            rewritten_objs["*"].add(i)
print()
print(f"workloads with a value set in git that rollguard rewrites: {len(rewritten_objs['*'])}")
print()
print("| rule | workloads | values rewritten |")
print("| --- | ---: | ---: |")
for rule, n in sorted(rewritten.items(), key=lambda kv: (-len(rewritten_objs[kv[0]]), kv[0])):
    print(f"| `{rule}` | {len(rewritten_objs[rule])} | {n} |")
PY
rm -f "$report.summary"
