#!/usr/bin/env bash
# Runs every notebook headless for a profile (default: quick, CPU, digits) and builds the HTML report.
#   ./run_all.sh [--profile quick|mnist|paper|paper-cifar10|tiny] [--only 03 ...] [--force] [--no-report]
# Bootstraps .venv on first use. Output, per profile: results/<profile>/, figures/<profile>/,
# notebooks/executed/<profile>/, report/<profile>/index.html
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh
exec "$NATROB_PY" -m natrob.run.runner "$@"
