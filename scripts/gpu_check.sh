#!/usr/bin/env bash
# The GPU check (python -m natrob.run.gpu_check): the paper's MNIST Neural ODE trained on one GPU for as many epochs
# as fit, Table 1's FGSM/PGD-40 rows on 500 eval points, and the paper profile's GPU-hours, extrapolated.
# Meant for a bare GPU machine: only torch, torchvision, torchdiffeq, pyyaml and tqdm are needed; natrob runs from
# this checkout. Data travels with the checkout: copy the MNIST raw files (the t10k test split is enough) to
# ./data/MNIST/raw/ (ignored by git) and carry ./data; or point NATROB_DATA at a folder holding MNIST/raw.
#   scripts/gpu_check.sh [--budget-s 420] [--n-eval 500] [--channels 128]
# GPU_CHECK_TIMEOUT (default 480 s) stops it whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export NATROB_DATA="${NATROB_DATA:-$PWD/data}"
if [ ! -d "$NATROB_DATA/MNIST/raw" ]; then
  echo "gpu_check: no MNIST under NATROB_DATA=$NATROB_DATA (expected $NATROB_DATA/MNIST/raw with the t10k files)" >&2
  exit 2
fi
exec timeout "${GPU_CHECK_TIMEOUT:-480}" "${PYTHON:-python3}" -m natrob.run.gpu_check "$@"
