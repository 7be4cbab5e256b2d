#!/usr/bin/env bash
# Seed the corpora and fuzz the targets: ./fuzz/run.sh [seconds per target]
# Needs cargo-fuzz and a nightly toolchain (cargo +nightly fuzz ...).
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-300}"

seed() { # seed <target> <prefix> <file>
    mkdir -p "corpus/$1"
    local i=0
    while IFS= read -r line; do
        printf '%b%s' "$2" "$line" > "corpus/$1/seed-$i"
        i=$((i + 1))
    done < "$3"
}
seed guard '' seeds/guard.txt
seed placeholders '\x02' seeds/placeholders.txt
seed protocol '' seeds/protocol.txt

for target in guard placeholders protocol; do
    dict=sql.dict
    [ "$target" = protocol ] && dict=protocol.dict
    cargo +nightly fuzz run "$target" -- \
        -max_total_time="$secs" -max_len=512 -dict="$dict" -print_final_stats=1
done
