#!/usr/bin/env bash
# Instruction-count guard for the hot path: counts, with callgrind, the instructions of the
# client call path (`client_call` in lpc-tests/src/bin/lpc-icount.rs) and of the service's
# dispatch path (`serve_one`) per small call, and fails if either grew by more than
# $LPC_ICOUNT_TOLERANCE percent (default 3) over docs/icount-baseline.txt. Repeated builds of one
# tree (here and on clean clones) counted within 1.5% of each other.
# Instruction counts do not depend on the machine's load, unlike timings.
#
#   scripts/icount.sh            check against the baseline
#   scripts/icount.sh --update   record a new baseline (after an intended change)
set -euo pipefail
cd "$(dirname "$0")/.."
calls=5000
tolerance=${LPC_ICOUNT_TOLERANCE:-3}
baseline=docs/icount-baseline.txt

command -v valgrind >/dev/null || { echo "icount: valgrind is required (scripts/setup.sh installs it)" >&2; exit 1; }
cargo build --quiet --release -p lpc-tests --bin lpc-icount
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# Exact names: a pattern that also matched a closure inside one of them would toggle
# collection off again on entering it.
valgrind --tool=callgrind --callgrind-out-file="$out/cg" \
  --toggle-collect='*::client_call' --toggle-collect='*::serve_one' \
  target/release/lpc-icount "$calls" >/dev/null 2>"$out/log" || { cat "$out/log" >&2; exit 1; }
annotated=$(callgrind_annotate --inclusive=yes "$out/cg" 2>/dev/null)
count() { echo "$annotated" | awk -v f="$1" '$0 ~ f { gsub(",", "", $1); print $1; exit }'; }
client=$(( $(count '::client_call \\[') / calls ))
dispatch=$(( $(count '::serve_one \\[') / calls ))
echo "icount: per call: client path $client instructions, dispatch path $dispatch instructions"

if [ "${1:-}" = "--update" ]; then
  printf 'client %s\ndispatch %s\n' "$client" "$dispatch" > "$baseline"
  echo "icount: baseline written to $baseline"
  exit 0
fi
status=0
while read -r name base; do
  now=$client; [ "$name" = dispatch ] && now=$dispatch
  limit=$(( base * (100 + tolerance) / 100 ))
  if [ "$now" -gt "$limit" ]; then
    echo "icount: REGRESSION: $name path $now instructions per call > $limit (baseline $base + $tolerance%)" >&2
    status=1
  else
    echo "icount: $name path ok ($now, baseline $base, limit $limit)"
  fi
done < "$baseline"
exit $status
