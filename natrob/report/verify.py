"""Compare a run's results with published ones: ``python -m natrob.report.verify --profile quick``.

Published results are the compact result files of a profile committed under ``reference-results/<profile>/``
(``--publish`` copies a finished run there). Every count value in a published file (:mod:`natrob.results`: its
key names the model, attack id, eps, cell, protocol, ...) is compared with the count at the same key in this
run's file: clean accuracies (counts named ``clean``) may differ by 2 points (or one point of the sample,
whichever is more: a 16-point sample cannot move by less than 6.25); for every other count the 95% Wilson
intervals must overlap. A count this run lacks is

- ``ok (none survived)`` when this run's worst case at that place is 0: an attack that runs only on points that
  survived the others had nothing to attack, and its count is 0 by implication (compared as 0 of n);
- ``MISSING`` otherwise.

One line per number: ours, published, difference, tolerance, status; the last line says how many match and how many
are identical to the published count (from the published weights on the publishing machine: all of them; on another
CPU a few counts may move by a point of evaluation rounding, within tolerance). Exit status 0 when every number
matches, 1 on a mismatch or a missing number, 2 when a file is missing or breaks its schema.

``--claims`` checks the study's findings instead (:mod:`natrob.report.claims`): each claim, holds or fails, with the
numbers it read; exit 1 if one fails. ``--published`` reads the published files instead of this run's.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from .. import paths
from ..results import read_json, write_json
from .schemas import SchemaError, check_schema, nodes, show_key
from ..stats import is_count, wilson

PUBLISHED = paths.PUBLISHED
CLEAN_TOL = 0.02
WORST_FIELDS = ("worst_case", "worst")  # the per-eps worst case a run-on-survivors attack is bounded by


def is_clean(key: tuple) -> bool:
    """Counts named ``clean`` are clean accuracies (the looser, point-based tolerance)."""
    return key[-1] == "clean"


def compare(clean: bool, ours: tuple, published: tuple) -> dict:
    """One number, ours against published, each ``(k, n)``: both shown, the difference, the tolerance and whether
    it holds. ``clean`` selects the clean-accuracy tolerance; otherwise the 95% Wilson intervals must overlap."""
    (k1, n1), (k2, n2) = ours, published
    p1, p2 = k1 / n1 if n1 else 0.0, k2 / n2 if n2 else 0.0
    if clean:
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


def none_survived(key: tuple, ours: dict) -> bool:
    """Whether this run's worst case is 0 at the nearest place above ``key`` that records one: then an attack
    run only on survivors had no point to attack, and ``key``'s count is 0 by implication."""
    if is_clean(key):
        return False
    for i in range(len(key) - 1, 0, -1):
        node = ours.get(key[:i])
        if isinstance(node, dict) and not is_count(node):
            worst = [node[f] for f in WORST_FIELDS if is_count(node.get(f))]
            if worst:
                return worst[0]["k"] == 0
    return False


def compare_file(name: str, mine: dict, theirs: dict, out) -> tuple:
    """Every published count of one file against this run's: prints a line each; returns (compared, bad, differ):
    ``differ`` counts the numbers that are not the published count exactly (within tolerance or not)."""
    pub = check_schema(name, theirs)
    check_schema(name, mine)
    ours = nodes(mine)
    bad = differ = 0
    for key, c in sorted(pub.items()):
        where = f"{name} {show_key(key)}"
        mine_c = ours.get(key)
        if mine_c is None and none_survived(key, ours):
            mine_c, note = {"k": 0, "n": c["n"]}, " (none survived in this run: 0 by implication)"
        elif mine_c is None:
            bad, differ = bad + 1, differ + 1
            print(f"MISSING  {where}: published {c['k']}/{c['n']}, not in this run", file=out)
            continue
        else:
            note = ""
        if mine_c["k"] is None or c["k"] is None:  # "not measured" (the attack raised) on either side
            ok = mine_c["k"] is None and c["k"] is None
            bad, differ = bad + (not ok), differ + (not ok)
            print(f"{'ok      ' if ok else 'MISMATCH'} {where}: ours {mine_c['k']}/{mine_c['n']}, published "
                  f"{c['k']}/{c['n']} (None: not measured)", file=out)
            continue
        r = compare(is_clean(key), (mine_c["k"], mine_c["n"]), (c["k"], c["n"]))
        bad += not r["ok"]
        differ += (mine_c["k"], mine_c["n"]) != (c["k"], c["n"])
        print(f"{'ok      ' if r['ok'] else 'MISMATCH'} {where}: ours {r['ours']}, published {r['published']}, diff "
              f"{r['diff']}, tolerance {r['tolerance']}{note}", file=out)
    return len(pub), bad, differ


class _Problems:
    """An ``out`` that passes on every line but the ``ok`` ones (a run's summary: what differs, and the count)."""

    def __init__(self, out):
        self.out, self.skipping = out, False

    def write(self, text):
        if text != "\n":  # print() writes a line's text and its end apart
            self.skipping = text.startswith("ok")
        if not self.skipping:
            self.out.write(text)


def verify(profile: str, ours_dir: Path | None = None, published_dir: Path | None = None, out=None,
           problems_only: bool = False) -> int:
    """Compare every count of a run with the published one; prints a line per number to ``out`` (default
    stdout; ``problems_only``: only the numbers that do not match, and the last line). Returns 0 (all match), 1 (a
    mismatch or missing number) or 2 (a missing file or a schema break)."""
    out = out or sys.stdout
    out = _Problems(out) if problems_only else out
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
    bad = total = differ = 0
    for name in files:
        try:
            n, b, d = compare_file(name, read_json(ours_dir / name), read_json(published_dir / name), out)
        except SchemaError as exc:
            print(f"verify: {exc}", file=out)
            return 2
        total, bad, differ = total + n, bad + b, differ + d
    print(f"verify {profile}: {total - bad} of {total} numbers match the published results; "
          f"{total - differ} identical", file=out)
    return 1 if bad else 0


def publish(profile: str) -> Path:
    """Copy a finished run's result files (JSON and CSV; no checkpoints, no notebooks) to reference-results/, and
    its timing table (``_runs.json``'s timings, last run and machine) as ``_timings.json``."""
    src, dst = paths.results_dir(profile), PUBLISHED / profile
    dst.mkdir(parents=True, exist_ok=True)
    for old in dst.glob("*"):
        if old.is_file():  # the published weights (weights/) are natrob.run.weights's, not a run's results
            old.unlink()
    for p in sorted(src.glob("*")):
        if p.suffix in (".json", ".csv") and not p.name.startswith(("_", ".")):
            shutil.copy2(p, dst / p.name)
    runs = src / "_runs.json"
    if runs.exists():  # the run's timing table: the runner orders a fresh clone's side-by-side notebooks by it
        record = read_json(runs)
        write_json(dst / "_timings.json", {k: record.get(k) for k in ("_timings", "_last_run", "_machine")})
    return dst


def main(argv=None) -> int:
    """Command line (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default=paths.DEFAULT_PROFILE)
    p.add_argument("--results", default=None, help="folder of this run's results (default results/<profile>)")
    p.add_argument("--publish", action="store_true", help="copy this run's results to reference-results/<profile>")
    p.add_argument("--claims", action="store_true",
                   help="check the study's findings (natrob.report.claims) on the results")
    p.add_argument("--published", action="store_true", help="with --claims: on the published results")
    a = p.parse_args(argv)
    if a.claims:
        from .claims import check_claims, report
        where = PUBLISHED / a.profile if a.published else Path(a.results or paths.results_dir(a.profile))
        return report(check_claims(a.profile, where), sys.stdout)
    if a.publish:
        print(f"published: {publish(a.profile)}")
        return 0
    return verify(a.profile, a.results)


if __name__ == "__main__":
    sys.exit(main())
