#!/usr/bin/env bash
# `make soak`: the long runs: N kill -9 crash trials on a thin volume and N on a cached volume
# (every flushed block checked, the object store converging), and a full data disk (ENOSPC,
# nothing flushed lost, recovery when space returns; needs root for its tmpfs).
#   run.sh N
set -euo pipefail
rounds="${1:?usage: $0 ROUNDS}"
cd "$(dirname "$0")/../.."
swift build --build-tests
BLOCKGATE_SOAK_ROUNDS="$rounds" swift test --skip-build --disable-xctest --filter SoakTests
