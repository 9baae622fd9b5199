#!/usr/bin/env bash
# Instructions per request of a whole server, TLS, HTTP, routing, metrics and
# logging included: the floor webhook and rollguard, each run under callgrind
# as the load generator runs them (`rollguard-loadgen --serve floor|rollguard`),
# driven by wrk over HTTPS/1.1 keep-alive on 127.0.0.1 (one connection).
# Each server runs twice, with a short and a long load; the difference in
# instructions divided by the difference in requests excludes start-up.
#
#   scripts/callgrind_server.sh            # typical-pod to /mutate
#   BODY=deployment scripts/callgrind_server.sh
#
# Needs valgrind and wrk (apt-get install valgrind wrk). Leaves the profiles in
# target/perf/callgrind.server.<server>.<seconds>.out for callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/.."

body=${BODY:-typical-pod}
short=${SHORT:-3}
long=${LONG:-13}
for tool in valgrind wrk; do
  command -v "$tool" >/dev/null || { echo "$tool is not installed (apt-get install $tool)" >&2; exit 2; }
done
target=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet --example rollguard-loadgen --example profile-answer
mkdir -p "$target/perf"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$target/release/examples/profile-answer" "$body" 1 body >"$work/body.json"
cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$work/body.json", "rb")
wrk.body = f:read("*a")
f:close()
LUA

# run SERVER SECONDS: prints "instructions requests"
run() {
  local server=$1 seconds=$2 out="$target/perf/callgrind.server.$1.$2.out"
  rm -f "$work/port.json"
  mkfifo "$work/stdin.$server.$seconds"
  valgrind --tool=callgrind --callgrind-out-file="$out" \
    "$target/release/examples/rollguard-loadgen" --serve "$server" \
    --port-file "$work/port.json" --route /mutate --server-log json \
    <"$work/stdin.$server.$seconds" >/dev/null 2>"$work/valgrind.$server.$seconds" &
  local pid=$!
  exec 3>"$work/stdin.$server.$seconds"
  for _ in $(seq 600); do [ -s "$work/port.json" ] && break; sleep 0.1; done
  local port
  port=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["https"].rsplit(":",1)[1])' "$work/port.json")
  local requests
  requests=$(wrk -t1 -c1 -d"${seconds}s" -s "$work/post.lua" "https://127.0.0.1:$port/mutate" |
    awk '/requests in/ { print $1 }')
  exec 3>&-
  wait "$pid" || true
  local instructions
  instructions=$(awk '/I +refs:/ { gsub(",", "", $NF); print $NF }' "$work/valgrind.$server.$seconds")
  echo "$instructions $requests"
}

printf '%-10s %12s %14s %s\n' server requests instructions/req "(body $body, POST /mutate, 1 connection)"
declare -A per=()
for server in floor rollguard; do
  read -r i1 r1 < <(run "$server" "$short")
  read -r i2 r2 < <(run "$server" "$long")
  per[$server]=$(( (i2 - i1) / (r2 - r1) ))
  printf '%-10s %12s %14s\n' "$server" "$((r2 - r1))" "${per[$server]}"
done
awk -v f="${per[floor]}" -v r="${per[rollguard]}" 'BEGIN { printf "rollguard/floor %.2fx\n", r / f }'
