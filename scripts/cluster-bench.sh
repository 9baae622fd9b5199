#!/bin/sh
# check --cluster -A over N workloads from a fake paged API server vs check
# over the same objects as a file, measured in the same run, and report
# output (docs/performance.md).
set -eu
n="${1:-10000}"
cargo build --release --locked --example cluster-bench
bin=target/release/examples/cluster-bench
files=$($bin files "$n"); echo "$files"
cluster=$($bin cluster "$n"); echo "$cluster"
report=$($bin report "$n"); echo "$report"
nolimit=$($bin nolimit "$n" 2>/dev/null); echo "$nolimit"
secs() { echo "$1" | sed 's/.* in \([0-9.]*\)s.*/\1/'; }
rss() { echo "$1" | sed 's/.*peak RSS \([0-9]*\) KiB.*/\1/'; }
echo "ratio cluster/files: time $(echo "$(secs "$cluster") / $(secs "$files")" | bc -l | cut -c1-5), peak RSS $(echo "$(rss "$cluster") / $(rss "$files")" | bc -l | cut -c1-5)"
