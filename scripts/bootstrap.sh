#!/usr/bin/env bash
# Creates (or reuses) the project virtualenv in .venv and installs natrob into it only when
# pyproject.toml changed since the last install, so a second run starts at once.
# Sourced by run_all.sh and run_tests.sh; leaves $NATROB_PY pointing at the venv's python.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${NATROB_VENV:-$root/.venv}"
py_sys="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  echo "[natrob] creating virtualenv at $venv"
  "$py_sys" -m venv "$venv"
fi
stamp="$venv/.natrob-install-stamp"
want="$(cat "$root/pyproject.toml" "$root/scripts/bootstrap.sh" | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || ! "$venv/bin/python" -c "import natrob" 2>/dev/null; then
  echo "[natrob] installing natrob and its dependencies into $venv (first run takes a few minutes)"
  "$venv/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  "$venv/bin/python" -m pip install -q -e "$root[dev]"
  # pyproject.toml's [tool.natrob] no-deps (torchattacks): its requests~=2.25 pin would downgrade jupyter's
  # requests/urllib3; its only real needs (torch, torchvision, numpy, scipy, tqdm) are installed by [dev] above.
  nodeps="$("$venv/bin/python" - "$root/pyproject.toml" <<'PY'
import re, sys
block = re.search(r"^no-deps\s*=\s*\[(.*?)\]", open(sys.argv[1]).read(), re.S | re.M)
print(" ".join(re.findall(r'"([^"]+)"', block.group(1))) if block else "")
PY
)"
  if [ -n "$nodeps" ]; then "$venv/bin/python" -m pip install -q --no-deps $nodeps; fi
  "$venv/bin/python" -m ipykernel install --sys-prefix --name python3 >/dev/null
  echo "$want" > "$stamp"
fi
export NATROB_PY="$venv/bin/python"
