#!/usr/bin/env bash
# Fuzzes lpc's decoders and generated dispatchers with cargo-fuzz (libFuzzer), one target after
# the other, each for SECONDS (default 600). Not part of CI: it takes minutes per target.
#
#   scripts/fuzz.sh [SECONDS] [TARGETS...]     targets: handshake frame dispatch decode (default: all)
#
# Each target starts from its committed seeds (fuzz/corpus/T, never written) plus what earlier
# runs found (fuzz/work/corpus/T, where new inputs go). One fuzzing process at a time.
# Crashes are saved in fuzz/artifacts/T/; the script exits non-zero if any target crashed.
# Logs: fuzz/work/logs/T.log. Extra libFuzzer flags: LIBFUZZER_ARGS="-max_len=512 ...".
# Works on a stable toolchain: RUSTC_BOOTSTRAP=1 lets it take cargo-fuzz's nightly flags.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-600}"
shift || true
if ! [[ "$seconds" =~ ^[0-9]+$ ]]; then
    echo "usage: $0 [SECONDS] [TARGETS...]" >&2
    exit 2
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(handshake frame dispatch decode)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
cd fuzz
mkdir -p work/logs
failed=()
for target in "${targets[@]}"; do
    if [ ! -f "fuzz_targets/$target.rs" ]; then
        echo "fuzz: no target '$target' (have: $(cd fuzz_targets && ls | sed 's/\.rs$//' | xargs))" >&2
        exit 2
    fi
    mkdir -p "work/corpus/$target"
    log="work/logs/$target.log"
    echo "fuzz: $target for ${seconds}s (log: fuzz/$log)" >&2
    status=0
    # decode runs under memory limits: an allocation a peer could size is a crash.
    limits=()
    if [ "$target" = decode ]; then
        limits=(-rss_limit_mb=512 -malloc_limit_mb=32 -max_len=65536)
    fi
    # -close_fd_mask=1: the compare example's handler prints to stdout on every call.
    # shellcheck disable=SC2086
    cargo fuzz run "$target" "work/corpus/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -close_fd_mask=1 -print_final_stats=1 \
        ${limits[@]+"${limits[@]}"} ${LIBFUZZER_ARGS:-} >"$log" 2>&1 || status=$?
    grep -E '^#[0-9]+[[:space:]]+DONE|^Done [0-9]+ runs|^stat::number_of_executed_units' "$log" >&2 || true
    if [ "$status" -ne 0 ]; then
        echo "fuzz: $target FAILED (exit $status); see fuzz/$log and fuzz/artifacts/$target/" >&2
        grep -E -A3 "panicked at|ERROR: (AddressSanitizer|libFuzzer)" "$log" | head -20 >&2 || true
        failed+=("$target")
    fi
done

if [ ${#failed[@]} -ne 0 ]; then
    echo "fuzz: crashes in: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: no crash in: ${targets[*]}" >&2
