#!/usr/bin/env bash
# Run every cargo-fuzz target for SECONDS (default 10) from the seed corpus in fuzz/corpus.
# New inputs go to a temporary directory, so the repository's corpus stays as committed.
# A crash fails the run and leaves its input under fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-10}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for t in $(cargo +nightly fuzz list); do
    mkdir -p "$work/$t"
    echo "== fuzz $t for ${secs}s"
    if ! cargo +nightly fuzz run "$t" "$work/$t" "corpus/$t" -- -max_total_time="$secs" -print_final_stats=1 \
        >"$work/$t.log" 2>&1; then
        tail -n 60 "$work/$t.log"
        echo "fuzz: target $t failed (its input is under fuzz/artifacts/$t)" >&2
        exit 1
    fi
    grep -E "DONE +cov:|^stat::peak_rss_mb" "$work/$t.log" | tail -n 2
done
echo "fuzz: every target ran ${secs}s without a crash"
