#!/usr/bin/env bash
# Installs what lpc's build and tests need beyond a Rust toolchain: the toolchain's rustfmt
# and clippy, util-linux's unshare and setpriv (tests with other users and PID namespaces), a C
# and a C++ compiler (the C ABI's tests), and valgrind (for the instruction-count guard,
# scripts/icount.sh), and strace (lpc-bench's system-call count). A missing
# piece is installed, or fails here with a clear message rather than deep inside the build.
set -euo pipefail
need() { command -v "$1" >/dev/null 2>&1 || { echo "setup: '$1' is required: $2" >&2; exit 1; }; }
need cargo "install Rust from https://rustup.rs"
if ! cargo fmt --version >/dev/null 2>&1; then rustup component add rustfmt; fi
if ! cargo clippy --version >/dev/null 2>&1; then rustup component add clippy; fi
# The Windows backend is linted for its own target (.ci/run); its tests build with
# scripts/windows-env.sh.
if ! rustup target list --installed | grep -qx x86_64-pc-windows-gnu; then
    rustup target add x86_64-pc-windows-gnu
fi
# util-linux's `unshare` and `setpriv`: the tests of peers in other PID namespaces and of other
# users (lpc-tests/tests/planting.rs, policy.rs, lpc-cli/tests/cli.rs) start processes with them.
if ! command -v unshare >/dev/null 2>&1 || ! command -v setpriv >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    apt-get install -y util-linux >/dev/null || { apt-get update >/dev/null && apt-get install -y util-linux >/dev/null; }
  else
    echo "setup: util-linux (unshare, setpriv) is required by the tests; install it with your package manager" >&2
    exit 1
  fi
fi
# A C and a C++ compiler: the C ABI's tests build the C examples (examples/c) and check that
# lpc-c/include/lpc.h compiles as C99 and as C++ (examples/tests/c.rs).
if ! command -v cc >/dev/null 2>&1 || ! command -v c++ >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    apt-get install -y gcc g++ >/dev/null || { apt-get update >/dev/null && apt-get install -y gcc g++ >/dev/null; }
  else
    echo "setup: a C and a C++ compiler (cc, c++) are required by the C ABI's tests; install them with your package manager" >&2
    exit 1
  fi
fi
if ! command -v valgrind >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    apt-get install -y valgrind >/dev/null || { apt-get update >/dev/null && apt-get install -y valgrind >/dev/null; }
  else
    echo "setup: valgrind is required for scripts/icount.sh; install it with your package manager" >&2
    exit 1
  fi
fi
# strace: lpc-bench's one-way section (and its smoke test, lpc-bench/tests/smoke.rs) counts the
# system calls of a tight loop of one-way calls to a sleeping service with `strace -f`.
if ! command -v strace >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    apt-get install -y strace >/dev/null || { apt-get update >/dev/null && apt-get install -y strace >/dev/null; }
  else
    echo "setup: strace is required by lpc-bench's one-way section and its smoke test; install it with your package manager" >&2
    exit 1
  fi
fi
# The drawing demo (lpc-draw, `lpc demo draw`) and its tests: Xvfb, a private X server for
# the windows when there is no screen (lpc-draw/tests, lpc-cli/tests/draw.rs,
# scripts/draw-screenshot.sh), and the X client libraries that winit and softbuffer dlopen at
# run time (libX11, libX11-xcb, libXcursor, libXrandr, libXi, libxcb, libxkbcommon-x11);
# xauth for xvfb-run (docs/guide.md runs the demo with it); xdotool, with which a test clicks
# the client window's button as a person would.
draw_packages="xvfb xauth xdotool libx11-6 libx11-xcb1 libxcursor1 libxrandr2 libxi6 libxcb1 libxkbcommon0 libxkbcommon-x11-0"
if command -v dpkg-query >/dev/null 2>&1; then
  missing=""
  for p in $draw_packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
  done
  if [ -n "$missing" ]; then
    # shellcheck disable=SC2086 # one word per package
    apt-get install -y --no-install-recommends $missing >/dev/null \
      || { apt-get update >/dev/null && apt-get install -y --no-install-recommends $missing >/dev/null; }
  fi
elif ! command -v Xvfb >/dev/null 2>&1; then
  echo "setup: Xvfb and the X11 client libraries (libX11, libXcursor, libXrandr, libXi, libxkbcommon-x11) are required by the drawing demo's tests; install them with your package manager" >&2
  exit 1
fi
