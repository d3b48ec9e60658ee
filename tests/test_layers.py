"""natrob's folders form layers: no import cycle (function-level imports included), nothing in the computing
layers imports the layers that present or orchestrate, and the report renders result files without importing
torch or the evaluation harness. A new chapter is one registry entry away from every registry."""
import ast
import importlib
import subprocess
import sys

from natrob import chapters, paths

# natrob's floors, lowest first, one per folder: the files directly in natrob/ are the shared floor, each subpackage
# is the floor its folder names, a package's __main__ (a command) sits with the commands (run), and natrob itself
# (the public face, which imports on first use) is above all. A module may import its own floor and the floors below
# it; chapters/, report/ and run/ present or orchestrate, so no computing floor imports them.
FLOORS = ("shared", "models", "attacks", "harness", "train", "audit", "study", "chapters", "report", "run", "natrob")
PRESENTING = ("chapters", "report", "run")
# what the report, verify and every chapter's sections and figures may never load: torch, or a module of these
TORCH_FOLDERS = ("models", "attacks", "train", "harness", "audit")
TOP_LEVEL_MODULES = 12  # at most: files directly in natrob/, __init__.py included


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


def _folder(name: str) -> str:
    """The folder a module's floor is named by: 'shared' for natrob/<m>.py, 'run' for a command (__main__)."""
    parts = name.split(".")
    if name == "natrob":
        return "natrob"
    if parts[-1] == "__main__":
        return "run"
    if len(parts) == 2 and (paths.PACKAGE / f"{parts[1]}.py").is_file():
        return "shared"
    return parts[1]


def _floor(name: str) -> int:
    folder = _folder(name)
    assert folder in FLOORS, f"{name}: folder natrob/{folder}/ is on no floor: add it to FLOORS in its place"
    return FLOORS.index(folder)


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
    # the report, every section and figure function of every chapter, and verify: torch never loads, nor a
    # module of the folders that compute with it (TORCH_FOLDERS)
    code = ("import sys\n"
            "import natrob.report, natrob.report.verify\n"
            "from natrob import chapters\n"
            "from natrob.report.sections import sections\n"
            "for s in sections(): pass\n"
            "for ch, s in chapters.sections(): s.context\n"
            "for name, (prefix, ch) in chapters.figure_table().items(): ch.figures[name].draw\n"
            "bad = sorted(m for m in sys.modules if m == 'torch' or m.split('.')[0] == 'natrob' and "
            f"len(m.split('.')) > 1 and m.split('.')[1] in {list(TORCH_FOLDERS)!r})\n"
            "print(bad)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=paths.REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]", out.stdout


def test_every_folder_is_on_a_floor():
    folders = sorted(p.parent.name for p in paths.PACKAGE.glob("*/__init__.py"))
    assert set(folders) <= set(FLOORS), sorted(set(folders) - set(FLOORS))


def test_no_computing_module_imports_a_presenting_one():
    graph = _graph()
    bad = sorted((m, t) for m in graph for t in graph[m]
                 if _folder(t) in PRESENTING and _folder(m) not in PRESENTING + ("natrob",))
    assert not bad, bad


def test_the_top_level_holds_shared_pieces_only():
    top = sorted(p.name for p in paths.PACKAGE.glob("*.py"))
    assert len(top) <= TOP_LEVEL_MODULES, top


def test_a_new_chapter_reaches_every_registry(tmp_path, monkeypatch):
    """What a new notebook (here a fake 99, a number no notebook has) adds: a module and one record; schemas,
    figures, sections and cost rows follow from it."""
    from natrob.report import figures, schemas
    from natrob.run import costs
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


LINE_LIMIT = 120  # characters, as Python counts them (not bytes)


def _tracked_python(*folders) -> list:
    out = subprocess.run(["git", "ls-files", "--", *(f"{f}/*.py" for f in folders)], cwd=paths.REPO,
                         capture_output=True, text=True, check=True).stdout.split()
    return [paths.REPO / f for f in out]


def test_no_line_over_the_limit():
    """Issue 41: every tracked .py file under natrob/, tests/ and bench/ keeps its lines to LINE_LIMIT."""
    files = _tracked_python("natrob", "tests", "bench")
    assert files
    long = [f"{p.relative_to(paths.REPO)}:{i}: {len(line)}" for p in files
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if len(line) > LINE_LIMIT]
    assert not long, "lines over %d characters:\n%s" % (LINE_LIMIT, "\n".join(long))


MODULE_LIMIT, FUNCTION_LIMIT = 300, 50  # lines


def test_no_module_or_function_over_the_limit():
    """Issue 41: every module under natrob/ holds at most MODULE_LIMIT lines and every function (its decorators
    included) at most FUNCTION_LIMIT."""
    over = []
    for p in _tracked_python("natrob"):
        src = p.read_text(encoding="utf-8")
        name = p.relative_to(paths.REPO)
        if len(src.splitlines()) > MODULE_LIMIT:
            over.append(f"{name}: {len(src.splitlines())} lines")
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([node.lineno] + [d.lineno for d in node.decorator_list])
                if node.end_lineno - start + 1 > FUNCTION_LIMIT:
                    over.append(f"{name}:{start}: {node.name}, {node.end_lineno - start + 1} lines")
    assert not over, "over the limits:\n" + "\n".join(over)
