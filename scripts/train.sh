#!/usr/bin/env bash
# Installs what randyGPT-C needs, builds it, and trains the default model (preset small) on the
# default corpus (Debian's fortunes) with the fastest backend measured on this kind of machine.
# Extra arguments go to `randygpt train` (e.g. --iters 2000 --data FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec build/bin/randygpt train --backend openmp "$@"
