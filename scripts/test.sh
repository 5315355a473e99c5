#!/usr/bin/env bash
# The whole test suite: setup (cached), type check, then every test with Node's test runner —
# unit tests, WGSL kernels on Dawn and in headless Chromium, parity against Python transformers/jiwer
# on the real Whisper, and the end-to-end studio test in headless Chromium.
# Extra arguments are test files to run instead of all (e.g. scripts/test.sh test/gpu/matmul.test.ts).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bash "$BLORA_ROOT/scripts/setup.sh"
cd "$BLORA_ROOT"

# Keep caches and temp files of Mesa/onnxruntime/Chromium out of $HOME and the clone.
export MESA_SHADER_CACHE_DISABLE=true
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d /tmp/blora-xdg.XXXX)}"
mkdir -p test-results

step "type check (tsc --noEmit)"
npx tsc --noEmit -p tsconfig.json

if [ $# -gt 0 ]; then files=("$@"); else mapfile -t files < <(find test -name '*.test.ts' | sort); fi
step "node --test: ${#files[@]} files"
start=$(date +%s)
node --import tsx --test --test-reporter=spec "${files[@]}"
step "all tests passed in $(( $(date +%s) - start ))s (whole run incl. setup: $(( $(date +%s) - _blora_t0 ))s)"
