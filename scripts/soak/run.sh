#!/usr/bin/env bash
# `make soak`: the long runs: N kill -9 crash trials on a thin volume and N on a cached volume
# (every flushed block checked, the object store converging), a full data disk (ENOSPC,
# nothing flushed lost, recovery when space returns; needs root for its tmpfs), FAULT_MINUTES of
# object-store errors, latency and outages under a writer (nothing lost, backpressure in the
# metrics, no restart; 0 skips it), CRASH_STATES simulated power losses of the crash-state explorer
# (volumes and tapes; 0 skips it), then LOAD_MINUTES of 64 connections of mixed I/O (load.sh;
# 0 skips it).
#   run.sh N [LOAD_MINUTES [FAULT_MINUTES [CRASH_STATES]]]
set -euo pipefail
rounds="${1:?usage: $0 ROUNDS}"
cd "$(dirname "$0")/../.."
swift build --build-tests
BLOCKGATE_SOAK_ROUNDS="$rounds" BLOCKGATE_FAULT_SOAK_MINUTES="${3:-0}" swift test --skip-build --disable-xctest --filter SoakTests
crash_states="${4:-0}"
if [ "$crash_states" -gt 0 ]; then
    BLOCKGATE_CRASH_STATES="$crash_states" swift test --skip-build --disable-xctest --filter PowerLossTests
fi
load_minutes="${2:-0}"
if [ "$load_minutes" -gt 0 ]; then
    swift build -c release
    "$(dirname "$0")/load.sh" .build/release/blockgate "$load_minutes"
fi
