#!/usr/bin/env bash
# Launch the studio: prepare whatever is missing (cached), then serve it at http://127.0.0.1:5173
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bash "$BLORA_ROOT/scripts/setup.sh"
cd "$BLORA_ROOT"
step "starting the studio at http://127.0.0.1:${PORT:-5173}  (Ctrl-C to stop)"
exec npx vite --host 127.0.0.1 --port "${PORT:-5173}" --strictPort
