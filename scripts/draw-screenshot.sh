#!/usr/bin/env bash
# Makes docs/demo-draw.png, the screenshot of the drawing demo shown in the README: runs
# `lpc demo draw` with the script docs/demo-draw.txt on a private X server (Xvfb, which
# scripts/setup.sh installs) and lets the client write both windows' pixels — its own and
# the service's `snapshot()` — side by side into one PNG.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-docs/demo-draw.png}"
cargo build -p lpc-cli
tmp="$(mktemp -d)"
xvfb=""
cleanup() { [ -n "$xvfb" ] && kill "$xvfb" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
# -displayfd: Xvfb picks a free display itself and writes its number once it is ready.
mkfifo "$tmp/display"
Xvfb -displayfd 3 -nolisten tcp -screen 0 1024x768x24 3>"$tmp/display" 2>/dev/null &
xvfb=$!
read -r -t 30 display <"$tmp/display" || { echo "draw-screenshot: Xvfb reported no display within 30 s" >&2; exit 1; }
DISPLAY=":$display" LPC_RUNTIME_DIR="$tmp/runtime" timeout 120 \
  target/debug/lpc demo draw --script docs/demo-draw.txt --screenshot "$out"
echo "draw-screenshot: wrote $out"
