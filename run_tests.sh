#!/usr/bin/env bash
# Runs the natrob test suite (CPU). Bootstraps .venv on first use. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh
exec "$NATROB_PY" -m pytest "$@"
