"""natrob's modules form layers: no import cycle (function-level imports included), nothing in the computing
layers imports the layers that present or orchestrate, and the report renders result files without importing
torch or the evaluation harness. A new chapter is one registry entry away from every registry."""
import ast
import importlib
import subprocess
import sys

from natrob import chapters, paths

# every module of natrob in one of three floors; a module may import its own floor and the floors below it
PRESENTING = ("natrob", "natrob.runner", "natrob.report", "natrob.chapters", "natrob.verify", "natrob.claims",
              "natrob.notebook",
              "natrob.figures", "natrob.plots", "natrob.kernels", "natrob.gpu_check", "natrob.schemas",
              "natrob.execution", "natrob.fcall", "natrob.jobs",
              "natrob.audit.__main__")
COMPUTING = ("natrob.evaluate", "natrob.evalrows", "natrob.evalstore", "natrob.prediction", "natrob.contract",
             "natrob.plan",
             "natrob.audit", "natrob.grid", "natrob.protocols", "natrob.attacks", "natrob.models", "natrob.train",
             "natrob.checks", "natrob.verdict", "natrob.lipschitz", "natrob.data", "natrob.saturation",
             "natrob.pipelines", "natrob.budgets", "natrob.usermodel", "natrob.pickled", "natrob.probes",
             "natrob.strongest", "natrob.costs", "natrob.width", "natrob.mechanism", "natrob.attack_runs", "natrob.amp",
             "natrob.weights", "natrob.precision", "natrob.trained", "natrob.mechanism_params", "natrob.mechanism_compare",
             "natrob.param_checks", "natrob.published_odes")
SHARED = ("natrob.errors", "natrob.paths", "natrob.stats", "natrob.results", "natrob.reference", "natrob.provenance",
          "natrob.fingerprint", "natrob.locks", "natrob.eps", "natrob.notes",
          "natrob.profiles")
FLOORS = {"shared": (0, SHARED), "computing": (1, COMPUTING), "presenting": (2, PRESENTING)}


def _modules() -> dict:
    out = {}
    for p in paths.PACKAGE.rglob("*.py"):
        parts = p.relative_to(paths.PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def _imports(name: str, path, mods: dict) -> set:
    """natrob modules ``name`` imports anywhere in its file (top level and inside functions)."""
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = pkg
            for _ in range(max(node.level - 1, 0)):
                base = base.rsplit(".", 1)[0]
            mod = (f"{base}.{node.module}" if node.module else base) if node.level else (node.module or "")
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in mods else mod for a in node.names]
        for t in targets:
            while t and t not in mods and "." in t:
                t = t.rsplit(".", 1)[0]
            if t in mods and t != name:
                found.add(t)
    return found


def _graph() -> dict:
    mods = _modules()
    return {m: _imports(m, p, mods) for m, p in mods.items()}


def _in(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_no_import_cycle():
    graph = _graph()
    done, cycles = set(), []

    def visit(node, stack):
        if node in stack:
            cycles.append(stack[stack.index(node):] + [node])
            return
        if node in done:
            return
        for nxt in sorted(graph[node]):
            visit(nxt, stack + [node])
        done.add(node)

    for node in sorted(graph):
        visit(node, [])
    assert not cycles, " -> ".join(cycles[0])


def _floor(name: str) -> int:
    """The floor of a module: the one whose listed prefix matches it most closely (natrob.audit.__main__ presents
    what natrob.audit computes)."""
    best = max(((len(p), level) for level, prefixes in FLOORS.values() for p in prefixes
                if name == p or name.startswith(p + ".")), default=None)
    assert best is not None, f"{name} is on no floor: add it to SHARED, COMPUTING or PRESENTING"
    return best[1]


def _reachable(graph: dict, start: str) -> set:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_every_module_is_on_one_floor():
    for name in _graph():
        _floor(name)


def test_no_module_reaches_a_floor_above_its_own():
    """Followed transitively: what a computing module imports, and what that imports, never presents."""
    graph = _graph()
    upward = sorted((m, t) for m in graph for t in _reachable(graph, m) if _floor(t) > _floor(m))
    assert not upward, upward


def test_report_imports_no_compute_module():
    # the report, every section and figure function of every chapter, and verify: torch never loads
    code = ("import sys\n"
            "import natrob.report, natrob.verify\n"
            "from natrob import chapters\n"
            "from natrob.report.sections import sections\n"
            "for s in sections(): pass\n"
            "for ch, s in chapters.sections(): s.context\n"
            "for name, (prefix, ch) in chapters.figure_table().items(): ch.figures[name].draw\n"
            "bad = sorted(m for m in sys.modules if m == 'torch' or m.split('.')[0] == 'natrob' and m in "
            f"{list(COMPUTING)!r})\n"
            "print(bad)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=paths.REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]", out.stdout


def test_a_new_chapter_reaches_every_registry(tmp_path, monkeypatch):
    """What a new notebook (here a fake 99, a number no notebook has) adds: a module and one record; schemas,
    figures, sections and cost rows follow from it."""
    from natrob import costs, figures, schemas
    from natrob.profiles import load_profile
    from natrob.report.sections import sections
    from natrob.stats import count
    (tmp_path / "ch99_example.py").write_text(
        "def example(payload, params):\n    return ('figure', payload['rows'][0]['robust']['k'])\n"
        "def section(results, env):\n    return {'paragraphs': ['one per width'], 'tables': []}\n"
        "def cost(p, u):\n    return {'notebook': '99', 'what': 'widths', 'hours': u.train_h(p['ODE'])}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("ch99_example")  # a module written above, not a dependency
    record = chapters.Chapter(
        number="99", cost=module.cost, results={"99-example": ("rows[].robust",)},
        figures={"99-example": chapters.Figure(result="99-example", draw=module.example)},
        sections=(chapters.Section(id="example", title="Width", nav="99", context=module.section,
                                   results="99-example", figures=("99-",), order=66),))
    monkeypatch.setattr(chapters, "CHAPTERS", chapters.CHAPTERS + (record,))
    payload = {"rows": [{"example": 128, "robust": count(3, 8)}]}
    assert schemas.check_schema("99-example-mnist", payload)  # its counts are declared, so verify compares them
    assert figures.registry()["99-example"][1](payload, {}) == ("figure", 3)
    new = [s for s in sections() if s.id == "example"]
    assert len(new) == 1 and new[0].template == "chapter.html.j2"
    assert new[0].context([], {})["paragraphs"] == ["one per width"]
    ids = [s.id for s in sections()]
    assert ids.index("example") == ids.index("width") + 1  # placed by its order, before the general sections
    p = load_profile("paper")
    rows = costs.paper_estimate(p, {"train": 1e-3, "step": 1e-4, "query": 1e-5},
                                {m: 1e-4 for m in ("resnet50", "resnet56", "resnet3block", "preact_resnet18")},
                                chapters.CHAPTERS)
    assert [r["notebook"] for r in rows][-1] == "99"


def test_every_chapter_record_holds_functions_of_its_own_module():
    for ch in chapters.CHAPTERS:
        functions = [*([ch.payload] if ch.payload else []), *(f.draw for f in ch.figures.values()),
                     *(s.context for s in ch.sections), *([ch.cost] if ch.cost else [])]
        for f in functions:  # a record reaches into its own chapter's module, never a neighbour's
            assert callable(f) and f.__module__.startswith(f"natrob.chapters.ch{ch.number}_"), (ch.number, f)
        assert all(prefix.startswith(ch.number + "-") for prefix in ch.results), ch.results
        assert all(f.result in ch.results for f in ch.figures.values()), ch.figures
    numbers = [ch.number for ch in chapters.CHAPTERS]
    assert numbers == sorted(set(numbers))
    notebooks = sorted(p.name[:2] for p in paths.NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))
    assert numbers == notebooks  # one record per notebook
