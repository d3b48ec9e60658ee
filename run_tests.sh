#!/usr/bin/env bash
# Runs the natrob test suite (CPU). Bootstraps .venv on first use. Extra args go to pytest.
# Two pytest-xdist workers, one per core of the 2-core CI machine (NATROB_TEST_WORKERS; 0 runs in this process), each test file whole in
# one worker (--dist loadfile), so a module's fixtures (the tiny profile's notebook run) are built once.
# Passing -n yourself overrides both.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh
workers=(-n "${NATROB_TEST_WORKERS:-2}" --dist loadfile)
for arg in "$@"; do
  case "$arg" in -n|-n*|--numprocesses*|--pdb|no:xdist) workers=() ;; esac
done
if [ "${NATROB_TEST_WORKERS:-2}" = "0" ]; then workers=(); fi
exec "$NATROB_PY" -m pytest "${workers[@]}" "$@"
