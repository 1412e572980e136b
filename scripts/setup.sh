#!/usr/bin/env bash
# Installs what lpc's build and tests need beyond a Rust toolchain. Today that is nothing but
# the toolchain's own components; this script checks them so that a missing one fails with a
# clear message rather than deep inside the build.
set -euo pipefail
need() { command -v "$1" >/dev/null 2>&1 || { echo "setup: '$1' is required: $2" >&2; exit 1; }; }
need cargo "install Rust from https://rustup.rs"
if ! cargo fmt --version >/dev/null 2>&1; then rustup component add rustfmt; fi
if ! cargo clippy --version >/dev/null 2>&1; then rustup component add clippy; fi
