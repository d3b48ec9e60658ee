"""README's evidence table (MNIST, the official split): one row per notebook, natrob's counts beside the paper's
figures, rendered by :func:`render_readme_evidence` from the published files.
"""
from __future__ import annotations

from .. import reference
from ..stats import constant_image_limit
from ..study.fingerprint import quote_eps
from .markdown import kn, num, pct, series, table, wrap
from .published_files import (AUDIT, ODE, TABLE2, WHITE_BOX, WIDTH, Run, load, paper_table2, row_at,
                              table1_kind)

README_CAPTION = ("*MNIST, the official split: natrob's counts from `reference-results/mnist/` beside the paper's "
                  "figures, rendered by `python -m natrob.report.findings --write`; every number of every notebook "
                  "is in [docs/findings.md](docs/findings.md).*")


def _of(counts: list) -> str:
    """``a / b / c of n`` when every count has the same n, else each ``k/n``."""
    ns = {c.get("n") for c in counts if isinstance(c, dict)}
    if len(ns) == 1 and len(counts) == sum(isinstance(c, dict) and isinstance(c.get("k"), int) for c in counts):
        return series(str(c["k"]) for c in counts) + f" of {ns.pop()}"
    return series(kn(c) for c in counts)


def _ev_table1(run: Run) -> list:
    wb = run.get(WHITE_BOX)
    if wb is None:
        return [["03", "Table 1", f"no `{run.name(WHITE_BOX)}`", ""]]
    ds, rows, out = run.dataset.get("name", run.data), wb.get("table1") or [], []
    for model, kind in ((ODE, "FGSM"), (ODE, "PGD"), ("ResNet50", "PGD")):
        mine = [r for r in rows if r.get("model") == model and table1_kind(r) == kind]
        eps = sorted(r["eps"] for r in mine if isinstance(r.get("eps"), (int, float)))
        ref = reference.table1(ds, kind, model)
        label = mine[0].get("attack", kind) if mine else kind
        out.append(["03", f"Table 1, {model}, {label}, ε {series((f'{e:g}' for e in eps), '/')}",
                    _of([(row_at(mine, e) or {}).get("robust") for e in eps]),
                    series(num(100 * (reference.lookup(ref, e) or 0), ".2f") for e in eps) + "%"])
    return out


def _ev_widths(run: Run) -> list:
    width = run.get(WIDTH)
    if width is None:
        return [["08", "widths", f"no `{run.name(WIDTH)}`", ""]]
    ds, e = run.dataset.get("name", run.data), quote_eps(width.get("eps") or [0.3])
    t1 = width.get("table1") or {}
    chans = sorted(t1, key=int)
    paper_ch = reference.numbers()["table_a1_neural_ode_training"]["mnist"]["channels"]
    out = []
    for key, kind in (("fgsm", "FGSM"), ("pgd", "PGD")):
        label = kind if key == "fgsm" else (width.get("pgd") or {}).get("label", kind)
        counts = [(row_at(((t1[c] or {}).get("rows") or {}).get(key), e) or {}).get("robust") for c in chans]
        paper = reference.lookup(reference.table1(ds, kind, ODE), e)
        out.append(["08", f"{label} at ε {e:g}, {series(chans)} channels", _of(counts),
                    f"{pct(paper)} (the paper's net: {paper_ch} channels)"])
    return out


def _ev_strongest(run: Run) -> list:
    audit = run.get(AUDIT)
    if audit is None:
        return [["06", "strongest evaluation", f"no `{run.name(AUDIT)}`", ""]]
    e = quote_eps([f.get("eps") for f in audit.get("findings") or [] if isinstance(f.get("eps"), (int, float))]
                  or [0.3])
    row = row_at([f for f in audit.get("findings") or [] if f.get("model") == ODE], e) or {}
    return [["06", f"strongest evaluation, {ODE}: worst case over every attack at ε {e:g}", kn(row.get("worst_case")),
             f"{pct(row.get('paper'))} ({row.get('paper_attack_label', 'PGD')})"]]


TABLE2_ROWS = (("standard", "none (baseline"), ("PGD-AT", "PGD-10"), ("TRADES", "TRADES"), ("YOPO", "YOPO"),
               (f"natural {ODE}", "none"))


def _ev_table2(run: Run) -> list:
    t2 = run.get(TABLE2)
    if t2 is None:
        return [["05", "Table 2", f"no `{run.name(TABLE2)}`", ""]]
    rows = t2.get("rows") or []
    found = [next((r for r in rows if str(r.get("training", "")) == start
                   or (start != "none" and str(r.get("training", "")).startswith(start))), {})
             for _, start in TABLE2_ROWS]
    eps = next((r.get("eps") for r in found if isinstance(r.get("eps"), (int, float))), None)
    attack = reference.numbers()["table2_cifar10"]["attack"]
    return [["05", f"Table 2, PGD-20 at ε {num(eps, 'g')}: {series(n for n, _ in TABLE2_ROWS)}",
             _of([r.get("robust") for r in found]),
             series(num(100 * v, ".2f") if isinstance(v, (int, float)) else "–"
                     for v in (paper_table2(r, "robust") for r in found)) + f"% (CIFAR-10, {attack})"]]


def _ev_bound(run: Run) -> list:
    audit = run.get(AUDIT)
    if audit is None:
        return [["06", "ε = 0.5 bound", f"no `{run.name(AUDIT)}`", ""]]
    share, n = (audit.get("constant_image") or {}).get("bound"), audit.get("n")
    ours = (f"at most {constant_image_limit(share, n)}/{n} ({pct(share, 1)})"
            if isinstance(share, (int, float)) and isinstance(n, int) else "–")
    paper = reference.lookup(reference.table1(run.dataset.get("name", run.data), "PGD", ODE), 0.5)
    return [["06", "ε = 0.5: the most any classifier keeps on the audit's points (the constant 0.5 image)", ours,
             f"{pct(paper)} ({ODE}, {reference.paper_attack()['label']})"]]


def render_readme_evidence() -> str:
    """README's evidence table (MNIST, the official split): each row a notebook's counts beside the paper's."""
    run = load("mnist")
    rows = [*_ev_table1(run), *_ev_widths(run), *_ev_strongest(run), *_ev_table2(run), *_ev_bound(run)]
    return "\n".join(wrap([README_CAPTION, "", *table(["notebook", "what", "natrob", "paper"], rows)])) + "\n"
