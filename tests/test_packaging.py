"""Every third-party module that natrob or its tests import is declared in pyproject.toml: in the dependencies,
the [dev] extra, or [tool.natrob] no-deps (installed without its dependencies by scripts/bootstrap.sh)."""
import ast
import re
import sys
from importlib import metadata

import pytest

from natrob import paths

tomllib = pytest.importorskip("tomllib")


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _declared() -> set:
    cfg = tomllib.loads((paths.REPO / "pyproject.toml").read_text())
    reqs = cfg["project"]["dependencies"] + [r for extra in cfg["project"]["optional-dependencies"].values()
                                             for r in extra] + cfg["tool"]["natrob"]["no-deps"]
    return {_name(r) for r in reqs}


def _top_level_imports(folder) -> set:
    found = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found


def test_every_imported_distribution_is_declared():
    local = {"natrob", "conftest"} | {p.stem for p in (paths.REPO / "tests").rglob("*.py")}
    modules = (_top_level_imports(paths.PACKAGE) | _top_level_imports(paths.REPO / "tests")) - local
    third_party = sorted(m for m in modules if m not in sys.stdlib_module_names)
    dists = metadata.packages_distributions()
    missing = {m: dists.get(m) for m in third_party if not {_name(d) for d in dists.get(m, [m])} & _declared()}
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_torchattacks_is_declared_for_a_no_deps_install():
    cfg = tomllib.loads((paths.REPO / "pyproject.toml").read_text())
    assert any(_name(r) == "torchattacks" for r in cfg["tool"]["natrob"]["no-deps"])
    assert "no-deps" in (paths.REPO / "scripts" / "bootstrap.sh").read_text()  # what installs them, without deps
