"""The findings page's sections on notebooks 01 to 06 and 10: a profile's head (its data and files), Table 1,
Table 2, the audit, §3, Fig. 1 and Fig. 3, and the published Neural-ODE models. Each takes a
:class:`~natrob.report.published_files.Run` and returns markdown lines, or a line saying its file is absent.
"""
from __future__ import annotations

from .. import reference
from ..stats import constant_image_limit
from .markdown import kn, num, pct, table
from .published_files import (AUDIT, BOUNDARY, FIG1, LIPSCHITZ, PUBLISHED_ODES, STANDIN_ODES, TABLE2, WHITE_BOX, Run,
                              absent, commit_of, ordered_models, paper_model, paper_table2, row_at, table1_kind)


def profile_head(run: Run, title: str) -> list:
    ds = run.dataset
    shape = "x".join(str(s) for s in ds.get("shape") or [])
    lines = [f"## {title}", "",
             f"**Data: {ds.get('protocol', ds.get('name', '?'))}**: {num(ds.get('n_train'), ',')} training and "
             f"{num(ds.get('n_test'), ',')} test images of {shape}."]
    other = sorted(n for n, f in run.files.items() if isinstance(f.get("dataset"), dict)
                   and f["dataset"].get("protocol") != ds.get("protocol"))
    if other:
        lines[-1] += " Files on other data: " + ", ".join(f"`{n}` ({run.files[n]['dataset'].get('protocol')})"
                                                         for n in other) + "."
    lines += ["", f"Published in `reference-results/{run.profile}/` (`python -m natrob.report --profile "
              f"{run.profile} --published` renders them); each file from the commit its provenance names:", ""]
    rows = [[f"`{n}`", f"`{commit_of(f)}`", str((f.get("provenance") or {}).get("created") or "–")]
            for n, f in sorted(run.files.items())]
    return lines + table(["file", "commit", "created"], rows)


def table1_section(run: Run) -> list:
    wb = run.get(WHITE_BOX)
    if wb is None:
        return absent(run, WHITE_BOX)
    ds, rows = run.dataset.get("name", run.data), wb.get("table1") or []
    clean = wb.get("clean") or {}
    models = ordered_models(r.get("model") for r in rows)
    said = ", ".join(f"{m} {pct(clean.get(m))}" for m in models)
    paper = ", ".join(f"{m} {pct(reference.clean(ds, paper_model(m)))}" for m in models)
    eps = sorted({r["eps"] for r in rows if isinstance(r.get("eps"), (int, float))})
    out = [f"Clean accuracy on all {num(run.dataset.get('n_test'), ',')} test images: {said} (the paper, MNIST: "
           f"{paper}). Robust points of those evaluated, ours (`k/n`) with the paper's MNIST figure in brackets:", ""]
    body = []
    for model in models:
        for kind in ("FGSM", "PGD"):
            mine = [r for r in rows if r.get("model") == model and table1_kind(r) == kind]
            if not mine:
                continue
            ref = reference.table1(ds, kind, model)
            cells = [f"{kn((row_at(mine, e) or {}).get('robust'))} ({pct(reference.lookup(ref, e))})" for e in eps]
            body.append([model, kn(mine[0].get("clean")), mine[0].get("attack", kind), *cells])
    return out + table(["model", "clean", "attack", *(f"ε = {e:g}" for e in eps)], body)


def table2_section(run: Run) -> list:
    t2 = run.get(TABLE2)
    if t2 is None:
        return absent(run, TABLE2)
    attack = reference.numbers()["table2_cifar10"]["attack"]
    out = ["PGD-20 on the evaluated points (robust `k/n`) per training method, beside the paper's Table 2, which "
           f"is on CIFAR-10 ({attack}), not on this data:", ""]
    body = [[r.get("model", "?"), r.get("training", "?"), num(r.get("eps"), "g"), kn(r.get("clean")),
             kn(r.get("robust")), pct(paper_table2(r, "clean")), pct(paper_table2(r, "robust"))]
            for r in t2.get("rows") or []]
    return out + table(["model", "training", "ε", "clean", "PGD-20", "paper CIFAR-10 clean",
                        "paper CIFAR-10 PGD-20"], body)


def audit_section(run: Run) -> list:
    audit = run.get(AUDIT)
    if audit is None:
        return absent(run, AUDIT)
    checks = audit.get("checks") or []
    flagged = [c for c in checks if c.get("status") != "pass"]
    n, share = audit.get("n"), (audit.get("constant_image") or {}).get("bound")
    out = [f"{num(n, 'd')} points per model, every attack of notebook 06; {len(checks)} sanity checks, "
           f"{len(flagged)} flagged."]
    if isinstance(share, (int, float)) and isinstance(n, int):
        out[-1] += (f" At ε ≥ 0.5 the constant 0.5 image lies in every ε-ball, so no classifier keeps more than "
                    f"{constant_image_limit(share, n)}/{n} of these points (the largest class share, {pct(share, 1)}).")
    out += ["", "Each model's verdict, as the file states it:", ""]
    out += [f"- {m.get('sentence', name)}" for name, m in (audit.get("models") or {}).items()]
    body = [[f.get("model", "?"), num(f.get("eps"), "g"), kn(f.get("clean")),
             f"{f.get('paper_attack_label', 'paper attack')} {kn(f.get('paper_attack'))}", kn(f.get("worst_case")),
             pct(f.get("paper")), (f.get("reproduced") or {}).get("status", "–"),
             (f.get("converged") or {}).get("status", "–"), (f.get("masking") or {}).get("status", "–")]
            for f in audit.get("findings") or []]
    out += ["", "Per model and ε: the paper's attack, the worst case over every attack, the paper's figure and the "
                "findings (see How to read the verdict):", ""]
    out += table(["model", "ε", "clean", "paper's attack", "worst case", "paper", "reproduced", "converged",
                  "masking"], body)
    if flagged:
        out += ["", "Flagged checks:", ""]
        out += table(["model", "ε", "check", "detail"], [[c.get("model", "?"), num(c.get("eps"), "g"),
                                                           c.get("check", "?"), c.get("detail", "")] for c in flagged])
    return out


def _lipschitz(run: Run) -> list:
    lip = run.get(LIPSCHITZ)
    if lip is None:
        return absent(run, LIPSCHITZ)
    eq12 = lip.get("eq12") or {}
    trials, bad = eq12.get("trials"), eq12.get("violations")
    held = trials - bad if isinstance(trials, int) and isinstance(bad, int) else "?"
    return [f"§3 (notebook 01): Eq. 12 held in {num(held, ',')} of {num(trials, ',')} trials; Theorem 3.1 "
            f"{num(lip.get('thm31_violations'), 'd')} violations over {len(lip.get('thm31') or [])} settings, "
            f"Theorem 3.2 {num(lip.get('thm32_violations'), 'd')} violations."]


def _step_size(run: Run) -> list:
    fig1 = run.get(FIG1)
    if fig1 is None:
        return absent(run, FIG1)
    rows = fig1.get("rows") or []
    settings = list(dict.fromkeys(r.get("setting") for r in rows))
    hs = list(dict.fromkeys(r.get("h") for r in rows))
    at = {(r.get("h"), r.get("setting")): kn(r.get("robust")) for r in rows}
    out = [f"Fig. 1, ResNets at step size h (notebook 02; FGSM transferred from a source net, clean "
           f"{pct(fig1.get('source_clean_acc'), 1)}):", ""]
    return out + table(["h", *settings], [[num(h, "g"), *(at.get((h, s), "–") for s in settings)] for h in hs])


def _boundary(run: Run) -> list:
    fig3 = run.get(BOUNDARY)
    if fig3 is None:
        return absent(run, BOUNDARY)
    body = [[s.get("model", "?"), kn(s.get("clean")), kn(s.get("found")), num(s.get("median_linf"), ".2f"),
             num(s.get("median_l2"), ".2f"), num(s.get("queries"), ",")] for s in fig3.get("summary") or []]
    return (["Fig. 3, the decision-based Boundary Attack (notebook 04): the distance of the adversarial examples it "
             "finds, a query-limited upper bound:", ""]
            + table(["model", "clean", "found", "median L∞", "median L2", "queries"], body))


def others_section(run: Run) -> list:
    parts = [_lipschitz(run), _step_size(run), _boundary(run)]
    return [line for part in parts for line in ([""] + part)][1:]


def _published_rows(f: dict) -> list:
    pgd, worst = f.get("pgd") or [], (f.get("audit") or {}).get("findings") or []
    rows = []
    for r in f.get("logged") or []:
        m, e = r.get("model"), r.get("eps")
        p = row_at([x for x in pgd if x.get("model") == m], e) or {}
        w = row_at([x for x in worst if x.get("model") == m], e) or {}
        rows.append([m, num(e, "g"), num(r.get("log"), ".3f"), kn(r.get("replayed")), kn(r.get("fgsm")),
                     kn(p.get("robust")), kn(w.get("worst_case"))])
    return rows


def published_section(run: Run) -> list:
    f = run.get(PUBLISHED_ODES) or run.get(STANDIN_ODES)
    if f is None:
        return absent(run, PUBLISHED_ODES)
    out = [f.get("verdict", ""), ""]
    if (f.get("source") or {}).get("standin"):
        out += ["*Stand-ins: small models of TisODE's classes trained on this profile's data (the published "
                "checkpoints were not given); they test the path, not TisODE's claim.*", ""]
    out += ["Clean accuracy on every test image: " + ", ".join(
        f"{c.get('model')} {kn(c.get('clean'))}" for c in f.get("clean") or []) + ".", ""]
    out += table(["model", "ε", "the log", "the log's attack (ours)", "FGSM", "the paper's PGD", "worst case (audit)"],
                 _published_rows(f))
    out += ["", "As the file states it:", ""] + [f"- {s}" for s in f.get("findings") or []]
    return out
