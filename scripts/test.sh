#!/usr/bin/env bash
# The whole test suite: setup (cached), type check, then every test with Node's test runner —
# unit tests, WGSL kernels on Dawn and in headless Chromium, parity against Python transformers/jiwer
# on the real Whisper, and the end-to-end studio test in headless Chromium.
# Extra arguments are test files to run instead of all (e.g. scripts/test.sh test/gpu/matmul.test.ts).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bash "$BLORA_ROOT/scripts/setup.sh"
cd "$BLORA_ROOT"

# Keep caches and temp files of Mesa/onnxruntime/Chromium out of $HOME and the clone. Mesa's shader cache
# stays on, under $BLORA_CACHE: lavapipe/llvmpipe compile each pipeline with LLVM in every test process (the
# base decoder's kernels: ~2 min on 2 cores), and a cached compile is a read (src/gpu/device.ts).
export MESA_SHADER_CACHE_DIR="${MESA_SHADER_CACHE_DIR:-$BLORA_CACHE/mesa-shader-cache}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d /tmp/blora-xdg.XXXX)}"
mkdir -p test-results

step "type check (tsc --noEmit)"
npx tsc --noEmit -p tsconfig.json

if [ $# -gt 0 ]; then
  files=("$@")
else
  # Slowest first (by their time alone on the idle 2-core machine), then the rest in name order: with two
  # files at a time, the long ones overlap the short ones instead of running last on their own.
  slow=(test/e2e/studio-train.test.ts test/engine/shape-parity.test.ts test/train/overfit.test.ts
        test/e2e/studio-baseline.test.ts test/e2e/studio-faults.test.ts test/e2e/studio-export-load.test.ts test/cli/hub-train.test.ts test/model/tiny-en.test.ts
        test/cli/train.test.ts test/experiment/experiment.test.ts test/engine/decoder-parity.test.ts
        test/train/repro.test.ts test/pipeline/baseline-parity.test.ts test/engine/generate.test.ts
        test/model/hub-source.test.ts test/export/merged.test.ts test/train/faults.test.ts test/engine/memory-plan.test.ts test/experiment/multiproc.test.ts
        test/engine/f16-decoder.test.ts test/engine/f16-storage.test.ts test/engine/buffer-limits.test.ts)
  mapfile -t rest < <(find test -name '*.test.ts' | sort | grep -vxF -f <(printf '%s\n' "${slow[@]}"))
  files=("${slow[@]}" "${rest[@]}")
fi
# Two test files at a time (BLORA_TEST_JOBS): much of a file's time is single-threaded (JS, Python and
# Chromium start-up, read-backs, the wasm encoder), so on 2 cores a second file fills the gaps.
jobs="${BLORA_TEST_JOBS:-2}"
step "node --test: ${#files[@]} files, $jobs at a time"
start=$(date +%s)
node --import tsx --test --test-concurrency="$jobs" --test-reporter=spec "${files[@]}"
step "all tests passed in $(( $(date +%s) - start ))s (whole run incl. setup: $(( $(date +%s) - _blora_t0 ))s)"
