#!/usr/bin/env bash
# The whole benchmark suite in one command: lpc against the floors of this machine (lpc-bench)
# and against iceoryx2, tarpc, ipc-channel and tonic (bench-peers, a crate outside the
# workspace), measured in one run and written to docs/benchmarks.md and docs/bench-latency.png.
#
#   scripts/bench.sh            # the full suite (a few minutes)
#   scripts/bench.sh --quick    # a smoke run, written to target/bench-quick/ instead of docs/
#
# Other arguments go to lpc-bench (see `cargo run -p lpc-bench -- --help`), e.g.
# `--only small,echo`. Run it on a quiet machine: `uptime` is printed first, and the report
# records the load average before and after the run.
set -euo pipefail
cd "$(dirname "$0")/.."

out=docs results=target/bench-results.json
if [[ " $* " == *" --quick "* ]]; then
    out=target/bench-quick results=target/bench-quick/bench-results.json
fi
mkdir -p "$out" target

# The chart's text needs a TrueType font (any; DejaVu Sans from Debian if there is none).
have_font() {
    [[ -n "${LPC_BENCH_FONT:-}" ]] && return 0
    fc-match -f '%{file}' sans-serif 2>/dev/null | grep -q '\.ttf$' && return 0
    [[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]]
}
if ! have_font; then
    echo "bench: installing a font for the chart (fonts-dejavu-core)" >&2
    sudo_="" && [[ $(id -u) -ne 0 ]] && sudo_="sudo"
    $sudo_ apt-get update -qq && $sudo_ apt-get install -y -qq fonts-dejavu-core >/dev/null
fi

echo "bench: building (release)…" >&2
cargo build --release --quiet --manifest-path bench-peers/Cargo.toml
cargo build --release --quiet -p lpc-bench --features chart
# The C client section (`--only c`) runs `lpc gen c` and links lpc-c's static library.
cargo build --release --quiet -p lpc-cli -p lpc-c
peers=bench-peers/target/release/bench-peers

echo "bench: $(uptime)" >&2
target/release/lpc-bench \
    --peers "$peers" \
    --markdown "$out/benchmarks.md" \
    --chart "$out/bench-latency.png" \
    --json "$results" \
    "$@" >/dev/null
echo "bench: report in $out/benchmarks.md, chart in $out/bench-latency.png, raw results in $results" >&2
echo "bench: (lpc-bench --replay $results --markdown … --chart … rebuilds them without measuring)" >&2
