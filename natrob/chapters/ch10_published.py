"""Chapter 10 (notebook 10-published-neural-odes): published robust Neural-ODE models under the audit.

TisODE (Yan et al., ICLR 2020) publishes three MNIST checkpoints and a log of its own attack; the notebook loads
them as a user would (:func:`natrob.audit.usermodel.load_module_checkpoint`), replays the logged attack
(:class:`natrob.attacks.AdamStep`) on the logged images, runs FGSM, the paper's PGD and the audit
(:func:`natrob.audit.audit_model`). Payload, sentences, figure, report section and cost row; see
:mod:`natrob.chapters`. Where the checkpoints are absent the notebook audits small stand-ins of the same
classes, and every sentence says so.
"""
from __future__ import annotations

from ..eps import same_eps
from ..stats import ci
from .drawing import frame, legend_outside, pyplot

RESULT = "10-published-odes"
PRIVATE = ("findings", "checks", "roles")  # the audit keeps these once, at the top, not under each model


def result_name(standin: bool, dataset: str) -> str:
    """``10-published-odes-<dataset>`` for the published checkpoints, ``10-published-odes-standin-<dataset>`` for
    the stand-ins: the two never share a file (nor a verify comparison)."""
    return f"{RESULT}-{'standin-' if standin else ''}{dataset}"


def payload(source: dict, data, points: dict, subnormal: list, clean: list, logged: list, pgd: list,
            audits: dict, headline: list) -> dict:
    """The result payload. ``source``: repository, commit, paper, ``standin`` and per checkpoint its provenance;
    ``points``: how many images each measurement used; ``subnormal``: per model the flushed weights and
    ``logits_identical`` (a count); ``clean``: per model a count on the whole test split; ``logged``: per model
    and eps the log's figure, ``replayed`` (the logged attack here, a count) and ``fgsm`` (a count); ``pgd``: per
    model and eps the paper's PGD (a count); ``audits``: {label: audit_model result}; ``headline`` the audit's
    sentences. Adds ``findings`` and ``verdict`` (sentences written from these numbers)."""
    out = {"source": source, "dataset": data.describe(), "points": points, "subnormal": subnormal,
           "clean": clean, "logged": logged, "pgd": pgd,
           "audit": {"headline": headline,
                     "findings": [f for r in audits.values() for f in r["findings"]],
                     "checks": [c for r in audits.values() for c in r["checks"]],
                     "models": {k: {kk: vv for kk, vv in v.items() if kk not in PRIVATE} for k, v in audits.items()}}}
    out["findings"] = findings(out)
    out["verdict"] = verdict(out)
    return out


# ------------------------------------------------------------------------------------------- sentences
def _k(c) -> str:
    return "–" if c is None or c["k"] is None else f"{c['k']}/{c['n']}"


def _who(p) -> str:
    return ("the stand-ins (small models of TisODE's classes trained here: the published checkpoints were absent)"
            if p["source"]["standin"] else "TisODE's published checkpoints")


def _loading(p) -> str:
    ckpts = p["source"]["checkpoints"]
    published = sum(bool(c.get("is_published_file")) for c in ckpts)
    sub = p["subnormal"]
    share = sum(s["subnormal"] for s in sub) / max(1, sum(s["entries"] for s in sub))
    same = ", ".join(f"{s['model']} {_k(s['logits_identical'])}" for s in sub)
    files = ("" if p["source"]["standin"] else f" ({published} of {len(ckpts)} byte-identical to the files "
             f"published at {p['source']['commit'][:7]})")
    return (f"{len(ckpts)} checkpoints of {_who(p)} loaded as whole pickled modules through natrob's restricted "
            f"unpickler{files}; {100 * share:.0f}% of their weights are subnormal floats, set to 0 for speed, and "
            f"the test images whose logits stayed bit-identical are {same}.")


def _replay(p) -> str | None:
    rows = [r for r in p["logged"] if r["log"] is not None]
    if not rows:
        return None
    exact = [r for r in rows if r["replayed"]["k"] == round(r["log"] * r["replayed"]["n"])]
    n = rows[0]["replayed"]["n"]
    return (f"The log's attack, re-implemented from its script (one coordinate-Adam step on the log-probability "
            f"margin) and run on the {n} images the script draws, gives {len(exact)} of the log's {len(rows)} "
            f"figures to the image (" + ", ".join(
                f"{r['model']} eps {r['eps']:g}: {_k(r['replayed'])} vs {r['log']:.3f}" for r in rows) + ").")


def _strength(p) -> list:
    out = []
    for e in sorted({r["eps"] for r in p["pgd"]}):
        parts = []
        for m in dict.fromkeys(r["model"] for r in p["pgd"]):
            lg = next((r for r in p["logged"] if r["model"] == m and same_eps(r["eps"], e)), None)
            pg = next(r for r in p["pgd"] if r["model"] == m and same_eps(r["eps"], e))
            logged = f"logged attack {_k(lg['replayed'])}, FGSM {_k(lg['fgsm'])}, " if lg else ""
            parts.append(f"{m} {logged}{pg['attack']} {_k(pg['robust'])}")
        out.append(f"At eps {e:g}: " + "; ".join(parts) + ".")
    return out


def findings(p) -> list:
    """Sentences written from the payload's numbers: what was loaded, clean accuracy, the replay of the log,
    the attacks' strength per eps, and the audit's sentence per model."""
    out = [_loading(p), "Clean accuracy on every test image: " + ", ".join(
        f"{r['model']} {ci(r['clean'])}" for r in p["clean"]) + "."]
    replay = _replay(p)
    out += ([replay] if replay else []) + _strength(p) + list(p["audit"]["headline"])
    return out


def _above(a, b) -> bool:
    """Whether count ``a`` is above count ``b`` beyond sampling noise: their 95% intervals apart."""
    return a["ci95"][0] > b["ci95"][1]


def _worst_cases(p) -> dict:
    """{eps: {model: the audit's worst-case count}} for every audited eps (None where one was not measured)."""
    out = {}
    for f in p["audit"]["findings"]:
        c = f.get("worst_case")
        out.setdefault(f["eps"], {})[f["model"]] = c if c is not None and c["k"] is not None else None
    return out


def verdict(p) -> str:
    """One sentence on TisODE's claim (ODE nets more robust than a CNN of the same size, TisODE more still) under
    the strongest evaluation: at each audited eps, the worst case over every attack of each model, its two parts
    judged by 95% intervals (above = intervals apart)."""
    worst = _worst_cases(p)
    if not worst or any(None in w.values() for w in worst.values()):
        return "The strongest evaluation did not measure every model at every eps: no verdict."
    if not all({"CNN", "ODE", "TisODE"} <= set(w) for w in worst.values()):
        return "The audit lacks one of TisODE's three models: no verdict."
    ode_cnn = [e for e, w in worst.items() if _above(w["ODE"], w["CNN"]) and _above(w["TisODE"], w["CNN"])]
    tis_ode = [e for e, w in worst.items() if _above(w["TisODE"], w["ODE"])]
    both = set(ode_cnn) & set(tis_ode)
    if len(both) == len(worst):
        head = "TisODE's claim holds under the strongest evaluation"
    elif ode_cnn or tis_ode:
        head = ("TisODE's claim holds only in part under the strongest evaluation: "
                + (f"both ODE nets keep more than the CNN at eps {_list(ode_cnn)}" if ode_cnn else
                   "no ODE net keeps more than the CNN at any audited eps") + ", and "
                + (f"TisODE more than the plain ODE net at eps {_list(tis_ode)}" if tis_ode else
                   "TisODE no more than the plain ODE net at any audited eps"))
    else:
        head = ("TisODE's claim does not survive the strongest evaluation: at no audited eps does an ODE net keep more "
                "than the CNN beyond sampling noise")
    who = " (stand-ins, not the published models)" if p["source"]["standin"] else ""
    counts = "; ".join(f"at eps {e:g} CNN {_k(w['CNN'])}, ODE {_k(w['ODE'])}, TisODE {_k(w['TisODE'])}"
                       for e, w in sorted(worst.items()))
    logged = [f"{r['log']:.3f} at eps {r['eps']:g}" for r in p["logged"]
              if r["model"] == "TisODE" and r["log"] is not None and any(same_eps(r["eps"], e) for e in worst)]
    tail = f"; TisODE's log reports {', '.join(logged)}" if logged else ""
    return f"{head}{who} ({counts}){tail}."


def _list(radii) -> str:
    return ", ".join(f"{e:g}" for e in sorted(radii))


# ------------------------------------------------------------------------------------------- figure, report
def published_odes(payload, params):
    """Accuracy per eps and model: the log, the logged attack replayed, FGSM, the paper's PGD and the audit's
    worst case, with 95% intervals."""
    import seaborn as sns
    points = []
    for r in payload["logged"]:
        if r["log"] is not None:
            points.append({"model": r["model"], "eps": r["eps"], "evaluation": "the log", "accuracy": r["log"],
                           "lo": r["log"], "hi": r["log"]})
        for what, c in (("logged attack (ours)", r["replayed"]), ("FGSM", r["fgsm"])):
            points.append(_point(r["model"], r["eps"], what, c))
    points += [_point(r["model"], r["eps"], r["attack"], r["robust"]) for r in payload["pgd"]]
    points += [_point(f["model"], f["eps"], "worst case (audit)", f["worst_case"])
               for f in payload["audit"]["findings"]]
    points = frame([q for q in points if q is not None])
    fig, ax = pyplot().subplots(figsize=(9, 4.5))
    sns.lineplot(data=points, x="eps", y="accuracy", hue="model", style="evaluation", marker="o", ax=ax)
    ax.vlines(points.eps, points.lo, points.hi, color="0.5", lw=0.8)
    ax.set_ylim(0, 1.02)
    ax.set_xticks(sorted(points.eps.unique()))
    ax.set_title(f"{'Stand-ins of ' if payload['source']['standin'] else ''}TisODE's MNIST models: the log beside "
                 "stronger attacks (95% intervals)")
    legend_outside(ax, fig, fontsize=7)
    return fig


def _point(model, eps, what, c):
    if c is None or c["k"] is None:
        return None
    return {"model": model, "eps": eps, "evaluation": what, "accuracy": c["accuracy"], "lo": c["ci95"][0],
            "hi": c["ci95"][1]}


def section(results, env) -> dict:
    """Report: the verdict, the sentences, then tables: the checkpoints read, the log beside the attacks, and the
    audit's four findings per model and eps."""
    from .tables import status, table
    paragraphs, tables = [], []
    for r in results:
        paragraphs += [r.get("verdict", "")] + (r.get("findings") or [])
        tables.append(table([{k: c.get(k) for k in ("model", "file", "sha256", "is_published_file", "class")}
                             for c in r["source"]["checkpoints"]]))
        pgd = {(x["model"], round(x["eps"], 6)): x for x in r["pgd"]}
        tables.append(table([{"model": x["model"], "eps": x["eps"], "the log": x["log"],
                              "logged attack (ours)": ci(x["replayed"]), "FGSM": ci(x["fgsm"]),
                              "paper's PGD": ci((pgd.get((x["model"], round(x["eps"], 6))) or {}).get("robust"))}
                             for x in r["logged"]]))
        tables.append(table([{"model": f["model"], "eps": f["eps"], "clean": ci(f["clean"]),
                              "paper's PGD": ci(f["paper_attack"]), "worst case": ci(f["worst_case"]),
                              **{k: status(f[k]["status"]) for k in ("converged", "masking", "feasible")}}
                             for f in r["audit"]["findings"]], html_columns=("converged", "masking", "feasible")))
    return {"paragraphs": paragraphs, "tables": tables}


def cost(p: dict, u) -> dict:
    """Three MNIST-sized models (about a 64-channel ODE net each): the audit's attacks on every point at each
    eps, and the paper's PGD on its points; the cascade on surviving points is not counted."""
    units = u.audit_units(p)
    n = (p.get("PUB_AUDIT_N", 0) * len(p.get("PUB_AUDIT_EPS", []))
         + p.get("PUB_PGD_N", 0) * len(p.get("PUB_PGD_EPS", [])))
    return {"notebook": "10", "what": f"TisODE's 3 models: audit of {p.get('PUB_AUDIT_N')} points x "
                                      f"{len(p.get('PUB_AUDIT_EPS', []))} eps, the paper's PGD on {p.get('PUB_PGD_N')}",
            "hours": sum(u.attack_h("odenet", n, units) for _ in range(3))}
