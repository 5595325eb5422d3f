#!/usr/bin/env bash
# `make fuzz`: builds the NBD wire fuzzer (Fuzz/, libFuzzer with AddressSanitizer) and runs it
# for SECONDS from the seed corpus plus what earlier runs kept. A crash, leak or sanitizer
# report fails the run and leaves its input in .build-fuzz/artifacts/.
#   run.sh SECONDS
set -euo pipefail
seconds="${1:?usage: $0 SECONDS}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
scratch="$root/.build-fuzz"
corpus="$scratch/corpus"
artifacts="$scratch/artifacts"
(cd "$root/Fuzz" && swift build --scratch-path "$scratch" -Xswiftc -sanitize=fuzzer,address 2>&1 | grep -v "Cannot export local symbol" | tail -n 3)
mkdir -p "$corpus" "$artifacts"
python3 "$root/scripts/fuzz/make-corpus.py" "$corpus"
"$scratch/debug/NBDWireFuzzer" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=4096 \
    -artifact_prefix="$artifacts/" "$corpus" 2>&1 | grep -E "^(#[0-9]+ +DONE|stat::|Done|==[0-9]+==|SUMMARY|INFO: (Seed|Loaded))" || true
if ls "$artifacts"/* > /dev/null 2>&1; then
    echo "fuzz: inputs that failed are in $artifacts:"; ls "$artifacts"; exit 1
fi
echo "fuzz: no crash in $seconds s"
