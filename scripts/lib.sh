# Shared by scripts/*.sh: where things are cached, and a step printer with elapsed time.
# Prepared models, the Python venv and oracle outputs live outside the clone, so fresh clones reuse them.
BLORA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export BLORA_CACHE="${BLORA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/blora-studio}"
export BLORA_VENV="${BLORA_VENV:-$BLORA_CACHE/venv}"
export BLORA_PYTHON="$BLORA_VENV/bin/python"
export BLORA_MODEL_DIR="${BLORA_MODEL_DIR:-$BLORA_CACHE/models/whisper-base}"
export BLORA_TINY_EN_DIR="${BLORA_TINY_EN_DIR:-$BLORA_CACHE/models/whisper-tiny.en}"  # English-only second model
_blora_t0=${_blora_t0:-$(date +%s)}
step() { printf '\n\033[1m[%s +%ss] %s\033[0m\n' "$(basename "$0")" "$(( $(date +%s) - _blora_t0 ))" "$*"; }
die() { printf '\033[31merror:\033[0m %s\n' "$*" >&2; exit 1; }
