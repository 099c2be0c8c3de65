#!/usr/bin/env bash
# Installs what randyGPT-C needs, builds it, and trains the default model (preset small) on the
# default corpus (Debian's fortunes) with --backend auto (the fastest that loads) and the default
# schedule (3000 steps at lr 2e-3, chosen by the sweep in results/*/schedule-*).
# Extra arguments go to `randygpt train` (e.g. --iters 2000 --data FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec build/bin/randygpt train "$@"
