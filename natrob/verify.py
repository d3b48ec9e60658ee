"""Compare a run's results with published ones: ``python -m natrob.verify --profile quick``.

Published results are the compact result files of a profile committed under ``reference-results/<profile>/``
(``--publish`` copies a finished run there). Every count in a result file is compared with the published
count at the same place (same file, same model / attack / eps / setting): clean accuracies may differ by 2
points (or one point of the sample, whichever is more: a 16-point sample cannot move by less than 6.25);
the 95% Wilson intervals of robust accuracies must overlap. One line per number: ours, published,
difference, tolerance, status. Exit status 0 when every number matches, 1 on a mismatch, 2 when a file is missing.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from . import paths
from .results import read_json
from .stats import wilson

PUBLISHED = paths.PUBLISHED
CLEAN_FIELDS = ("clean_correct", "clean")
ROBUST_FIELDS = ("robust", "robust_count", "pgd40", "worst_case", "found")
ID_FIELDS = ("model", "training", "attack", "id", "setting", "h", "eps")
CLEAN_TOL = 0.02


def counts(obj, where: str = "") -> dict:
    """Every integer count in a result file: {(place, field): (k, n)}. A place is a dict with an integer ``n``,
    named by its path in the file and its identifying fields (model, attack, eps, ...)."""
    found = {}
    if isinstance(obj, dict):
        if isinstance(obj.get("n"), int) and not isinstance(obj.get("n"), bool):
            ident = ",".join(f"{k}={obj[k]:.6g}" if isinstance(obj[k], float) else f"{k}={obj[k]}"
                             for k in ID_FIELDS if k in obj and not isinstance(obj[k], (dict, list)))
            for f in CLEAN_FIELDS + ROBUST_FIELDS:
                v = obj.get(f)
                if isinstance(v, int) and not isinstance(v, bool):
                    found[(f"{where}[{ident}]", f)] = (v, obj["n"])
        for k, v in obj.items():
            if k != "provenance":
                found.update(counts(v, f"{where}.{k}" if where else k))
    elif isinstance(obj, list):
        for v in obj:
            found.update(counts(v, where))
    return found


def compare(field: str, ours: tuple, published: tuple) -> dict:
    """One number, ours against published: both shown, the difference, the tolerance and whether it holds."""
    (k1, n1), (k2, n2) = ours, published
    p1, p2 = k1 / n1 if n1 else 0.0, k2 / n2 if n2 else 0.0
    if field in CLEAN_FIELDS:
        tol = max(CLEAN_TOL, 1 / min(n1, n2)) if min(n1, n2) else 1.0
        ok = abs(p1 - p2) <= tol + 1e-12
        tol_text = f"±{100 * tol:.2f} pts"
    else:
        lo1, hi1 = wilson(k1, n1)
        lo2, hi2 = wilson(k2, n2)
        # overlapping intervals: a one-point flip between machines (0/8 against 1/8) must not fail, while a real
        # change (0/40 against 20/40) does
        ok = max(lo1, lo2) <= min(hi1, hi2) + 1e-12
        tol_text = (f"95% CIs overlap (ours [{100 * lo1:.1f}, {100 * hi1:.1f}], "
                    f"published [{100 * lo2:.1f}, {100 * hi2:.1f}])")
    return {"ours": f"{100 * p1:.2f}% ({k1}/{n1})", "published": f"{100 * p2:.2f}% ({k2}/{n2})",
            "diff": f"{100 * (p1 - p2):+.2f} pts", "tolerance": tol_text, "ok": ok}


def verify(profile: str, ours_dir: Path | None = None, published_dir: Path | None = None, out=sys.stdout) -> int:
    """Compare every count of a run with the published one; prints a line per number. Returns 0, 1 or 2."""
    ours_dir = Path(ours_dir or paths.results_dir(profile))
    published_dir = Path(published_dir or PUBLISHED / profile)
    files = sorted(p.name for p in published_dir.glob("*.json") if not p.name.startswith("_"))
    if not files:
        print(f"verify: no published results in {published_dir}", file=out)
        return 2
    missing = [f for f in files if not (ours_dir / f).exists()]
    if missing:
        print(f"verify: this run has no {', '.join(missing)} in {ours_dir}", file=out)
        return 2
    bad = total = 0
    for name in files:
        mine, theirs = counts(read_json(ours_dir / name)), counts(read_json(published_dir / name))
        for key in sorted(theirs, key=str):
            total += 1
            if key not in mine:
                bad += 1
                print(f"MISSING  {name} {key[0]} {key[1]}: published {theirs[key]}, not in this run", file=out)
                continue
            c = compare(key[1], mine[key], theirs[key])
            bad += not c["ok"]
            print(f"{'ok      ' if c['ok'] else 'MISMATCH'} {name} {key[0]} {key[1]}: ours {c['ours']}, published "
                  f"{c['published']}, diff {c['diff']}, tolerance {c['tolerance']}", file=out)
    print(f"verify {profile}: {total - bad} of {total} numbers match the published results", file=out)
    return 1 if bad else 0


def publish(profile: str) -> Path:
    """Copy a finished run's result files (JSON and CSV; no checkpoints, no notebooks) to reference-results/."""
    src, dst = paths.results_dir(profile), PUBLISHED / profile
    dst.mkdir(parents=True, exist_ok=True)
    for old in dst.glob("*"):
        old.unlink()
    for p in sorted(src.glob("*")):
        if p.suffix in (".json", ".csv") and not p.name.startswith(("_", ".")):
            shutil.copy2(p, dst / p.name)
    return dst


def main(argv=None) -> int:
    """Command line (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default=paths.DEFAULT_PROFILE)
    p.add_argument("--results", default=None, help="folder of this run's results (default results/<profile>)")
    p.add_argument("--publish", action="store_true", help="copy this run's results to reference-results/<profile>")
    a = p.parse_args(argv)
    if a.publish:
        print(f"published: {publish(a.profile)}")
        return 0
    return verify(a.profile, a.results)


if __name__ == "__main__":
    sys.exit(main())
