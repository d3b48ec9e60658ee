"""The verify command and the result-file schemas, on the committed reference results of every profile: every
count has one key, sits where its file's schema declares one, and is compared; MISSING, "none survived" and the
exit codes are told apart."""
import io
import json
import shutil

import pytest

from natrob import paths
from natrob.report.schemas import SchemaError, check_schema, counts, matches, schema_for, schemas, show_key
from natrob.stats import count, wilson
from natrob.report.verify import compare, main, verify

PROFILES = sorted(p.name for p in paths.PUBLISHED.iterdir() if p.is_dir())
FILES = sorted(p for prof in PROFILES for p in (paths.PUBLISHED / prof).glob("*.json") if not p.name.startswith("_"))


def _raw_counts(obj) -> int:
    """Count values in a file, found without natrob.results (an independent walk: dicts with int k and n)."""
    if isinstance(obj, dict):
        if set(obj) >= {"k", "n"} and set(obj) <= {"k", "n", "accuracy", "ci95"}:
            return 1
        return sum(_raw_counts(v) for k, v in obj.items() if k != "provenance")
    if isinstance(obj, list):
        return sum(_raw_counts(v) for v in obj)
    return 0


def _copy(tmp_path, profile="tiny"):
    ours = tmp_path / "ours"
    shutil.copytree(paths.PUBLISHED / profile, ours)
    return ours


def _edit(path, change):
    d = json.loads(path.read_text())
    change(d)
    path.write_text(json.dumps(d))


def test_profiles_have_published_results():
    assert {"tiny", "quick", "mnist"} <= set(PROFILES)
    assert any(p.name.startswith("07-grid") for p in FILES)


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_count_has_one_declared_key(path):
    data = json.loads(path.read_text())
    found = check_schema(path.name, data)  # raises on a collision or an undeclared count
    assert len(found) == _raw_counts(data)  # no count lost to a shared key, none outside the walk
    assert len({show_key(k) for k in found}) == len(found)
    for key, c in found.items():  # the stored accuracy and interval are those of k of n (none edited apart)
        if c["k"] is None:
            assert c["accuracy"] is None and c["ci95"] is None, show_key(key)
            continue
        lo, hi = wilson(c["k"], c["n"])  # raises unless 0 <= k <= n
        assert c["n"] > 0 and round(c["accuracy"] * c["n"]) == c["k"], show_key(key)
        assert abs(c["ci95"][0] - lo) < 1e-9 and abs(c["ci95"][1] - hi) < 1e-9, show_key(key)


def test_every_declared_pattern_occurs_in_some_published_file():
    declared = schemas()
    seen = {prefix: set() for prefix in declared}
    for path in FILES:
        prefix = max((p for p in declared if path.name.startswith(p)), key=len)
        for key in counts(json.loads(path.read_text())):
            seen[prefix] |= {p for p in declared[prefix] if matches(key, p)}
    stale = {prefix: set(declared[prefix]) - seen[prefix] for prefix in declared}
    assert not any(stale.values()), stale


def test_keys_name_model_attack_eps_and_cell():
    audit = json.loads(next(p for p in FILES if p.name.startswith("06-audit")).read_text())
    keys = [show_key(k) for k in counts(audit)]
    pgd = [k for k in keys if k.startswith("models.") and ".attacks.pgd-paper." in k]
    eps = {e for pe in next(iter(audit["models"].values()))["per_eps"] for e in [pe["eps"]]}
    assert len(pgd) == len(audit["models"]) * len(eps)  # one per model and eps: the eps is in the key
    grid = json.loads(next(p for p in FILES if p.name.startswith("07-grid")).read_text())
    cells = {show_key(k).split(".")[0] for k in counts(grid)}
    assert len(cells) == len(grid["cells"]) and all("id=c" in c and "protocol=" in c for c in cells)


def test_colliding_or_undeclared_counts_are_refused():
    two = {"rows": [{"eps": 0.1, "robust": count(1, 4)}, {"eps": 0.1, "robust": count(2, 4)}]}
    with pytest.raises(SchemaError, match="share the key"):
        counts(two)
    with pytest.raises(SchemaError, match="not declared"):
        check_schema("02-fig1-digits", {"rows": [{"h": 1.0, "setting": "clean", "robust": count(1, 4)}],
                                        "extra": count(0, 4)})
    with pytest.raises(SchemaError, match="no declared schema"):
        schema_for("99-new-digits")


def test_tolerances():
    assert compare(True, (38, 40), (39, 40))["ok"]        # one point of 40 (2.5 pts) is allowed for clean counts
    assert not compare(True, (36, 40), (39, 40))["ok"]    # 7.5 pts is not
    assert compare(False, (4, 40), (6, 40))["ok"]         # the intervals overlap
    assert compare(False, (0, 8), (1, 8))["ok"]           # a one-point flip on a small sample
    assert not compare(False, (0, 40), (20, 40))["ok"]
    for n in (8, 40, 100, 1000):  # an exact match always passes, at 0 and at n included
        assert all(compare(False, (k, n), (k, n))["ok"] for k in range(n + 1))


@pytest.mark.parametrize("profile", PROFILES)
def test_every_count_of_every_file_is_compared(tmp_path, profile):
    out = io.StringIO()
    assert verify(profile, _copy(tmp_path, profile), paths.PUBLISHED / profile, out=out) == 0
    lines = out.getvalue().splitlines()
    for path in (paths.PUBLISHED / profile).glob("*.json"):
        n = _raw_counts(json.loads(path.read_text()))
        assert sum(line.startswith(f"ok       {path.name} ") for line in lines) == n, path.name
    total = sum(_raw_counts(json.loads(p.read_text())) for p in (paths.PUBLISHED / profile).glob("*.json"))
    assert lines[-1] == f"verify {profile}: {total} of {total} numbers match the published results; {total} identical"


def _pick(profile, clean: bool):
    """A published count to change: a clean count (n >= 8), or another count at 0 or n of n >= 8 (one point
    towards the middle stays within its tolerance, the other end of the range is beyond it)."""
    for path in sorted((paths.PUBLISHED / profile).glob("*.json")):
        for key, c in counts(json.loads(path.read_text())).items():
            if (key[-1] == "clean") == clean and c["k"] is not None and c["n"] >= 8 \
                    and (clean or c["k"] in (0, c["n"])):
                return path.name, key, c["k"], c["n"]
    raise AssertionError(f"{profile}: no count to change")


@pytest.mark.parametrize("clean", [False, True], ids=["robust", "clean"])
@pytest.mark.parametrize("profile", PROFILES)
def test_one_changed_count_is_judged_by_its_tolerance(tmp_path, profile, clean):
    """This run differs from the published files in one count: by one point it passes (exit 0, that line ok with
    our changed count), at the other end of its range it fails (exit 1, one MISMATCH line naming that key)."""
    name, key, k, n = _pick(profile, clean)
    where = f"{name} {show_key(key)}:"
    for k_new, code in ((k + 1 if k < n / 2 else k - 1, 0), (n if k < n / 2 else 0, 1)):
        ours = tmp_path / f"ours-{k_new}"
        shutil.copytree(paths.PUBLISHED / profile, ours)
        _edit(ours / name, lambda d: counts(d)[key].update(count(k_new, n)))
        out = io.StringIO()
        assert verify(profile, ours, paths.PUBLISHED / profile, out=out) == code, (where, k, k_new, n)
        lines = out.getvalue().splitlines()
        mine = [ln for ln in lines if where in ln]
        assert len(mine) == 1 and f"ours {100 * k_new / n:.2f}% ({k_new}/{n}), published {100 * k / n:.2f}% ({k}/{n})" \
            in mine[0], mine
        assert mine[0].startswith("ok       " if code == 0 else "MISMATCH")
        assert [ln for ln in lines if not ln.startswith("ok       ")][:-1] == ([] if code == 0 else mine)
        assert lines[-1].startswith(f"verify {profile}: {len(lines) - 1 - code} of {len(lines) - 1} numbers match")


def _audit(folder):
    return next(folder.glob("06-audit-*.json"))


def test_a_change_at_one_eps_is_caught_at_that_eps(tmp_path):
    ours = _copy(tmp_path)
    audit = json.loads(_audit(ours).read_text())
    model = next(iter(audit["models"]))
    pe = audit["models"][model]["per_eps"][-1]  # the last eps: before, its key was shared and silently won
    old = pe["attacks"]["fgsm"]["robust"]
    n = old["n"]
    pe["attacks"]["fgsm"]["robust"] = count(n if old["k"] < n / 2 else 0, n)
    _audit(ours).write_text(json.dumps(audit))
    out = io.StringIO()
    assert verify("tiny", ours, paths.PUBLISHED / "tiny", out=out) == 1
    bad = [line for line in out.getvalue().splitlines() if line.startswith("MISMATCH")]
    assert len(bad) == 1 and f"per_eps[eps={pe['eps']:.6g}].attacks.fgsm.robust" in bad[0]


def _without_survivor_rows(tmp_path) -> tuple:
    """A copy of the tiny run whose audit lacks its survivors-only rows at one place where points survived, its
    worst case there set to 0: (ours, published copy, audit, model, per_eps row, survivors-only ids, n)."""
    ours, pub = _copy(tmp_path), tmp_path / "published"
    shutil.copytree(paths.PUBLISHED / "tiny", pub)
    audit = json.loads(_audit(ours).read_text())
    m, pe = next((m, pe) for m, r in audit["models"].items() for pe in r["per_eps"]
                 if any(row["cumulative"] for row in pe["attacks"].values()))  # a place where points survived
    survivors_only = sorted(a for a, row in pe["attacks"].items() if row["cumulative"])
    n = pe["worst_case"]["n"]
    assert survivors_only and n >= 8
    for a in survivors_only:  # this run lacks the rows that run only on survivors ...
        del pe["attacks"][a]
    pe["worst_case"] = count(0, n)  # ... because none survived: each count is 0 by implication
    _audit(ours).write_text(json.dumps(audit))
    return ours, pub, audit, m, pe, survivors_only, n


def test_missing_number_against_none_survived(tmp_path):
    """This run lacks the survivors-only rows at one place because its worst case there is 0: each is compared as
    0 of n against the published count (never MISSING); 1 of n published is within the tolerance (exit 0), n of n
    is not (exit 1, that one row). With survivors in this run, the same rows are MISSING (exit 1)."""
    ours, pub, audit, m, pe, survivors_only, n = _without_survivor_rows(tmp_path)
    where = {a: f"{_audit(ours).name} models.{m}.per_eps[eps={pe['eps']:.6g}].attacks.{a}.robust:"
             for a in survivors_only}

    def set_published(k_of):  # the published survivors-only counts at that place
        def change(d):
            row = next(r for r in d["models"][m]["per_eps"] if r["eps"] == pe["eps"])
            for a in survivors_only:
                row["attacks"][a]["robust"] = count(k_of(a), n)
        _edit(_audit(pub), change)

    def run():
        out = io.StringIO()
        code = verify("tiny", ours, pub, out=out)
        lines = out.getvalue().splitlines()
        return code, lines, {a: [ln for ln in lines if where[a] in ln] for a in survivors_only}

    set_published(lambda a: 1)  # 0/n against 1/n: the intervals overlap
    code, lines, rows = run()
    assert code == 0 and not any(ln.startswith(("MISSING", "MISMATCH")) for ln in lines)
    for a in survivors_only:
        assert len(rows[a]) == 1 and rows[a][0].startswith("ok       " + where[a]), rows[a]
        assert f"ours 0.00% (0/{n}), published {100 / n:.2f}% (1/{n})" in rows[a][0]
        assert rows[a][0].endswith("(none survived in this run: 0 by implication)")

    far = survivors_only[-1]
    set_published(lambda a: n if a == far else 1)  # 0/n against n/n: a real difference, still not MISSING
    code, lines, rows = run()
    assert code == 1 and not any(ln.startswith("MISSING") for ln in lines)
    assert [ln for ln in lines if ln.startswith("MISMATCH")] == rows[far]
    assert len(rows[far]) == 1 and rows[far][0].startswith("MISMATCH " + where[far])
    assert f"ours 0.00% (0/{n}), published 100.00% ({n}/{n})" in rows[far][0]
    assert rows[far][0].endswith("(none survived in this run: 0 by implication)")
    assert lines[-1].startswith(f"verify tiny: {len(lines) - 2} of {len(lines) - 1} numbers match the published "
                                f"results; ")

    pe["worst_case"] = count(n, n)  # points did survive: the rows are missing
    _audit(ours).write_text(json.dumps(audit))
    code, lines, rows = run()
    assert code == 1
    missing = [ln for ln in lines if ln.startswith("MISSING")]
    assert len(missing) == len(survivors_only) and all(len(rows[a]) == 1 and rows[a][0] in missing
                                                       for a in survivors_only)
    assert not any("none survived" in ln for ln in lines)


def test_cli_exit_codes(tmp_path, capsys):
    ours = _copy(tmp_path)
    assert main(["--profile", "tiny", "--results", str(ours)]) == 0
    grid = next(ours.glob("07-grid-*.json"))
    def flip(d):  # the first cell's clean count to the far end of its range
        c = d["cells"][0]["clean"]
        d["cells"][0]["clean"] = count(c["n"] if c["k"] < c["n"] / 2 else 0, c["n"])
    _edit(grid, flip)
    assert main(["--profile", "tiny", "--results", str(ours)]) == 1  # a grid number is compared too
    _edit(grid, lambda d: d.__setitem__("stray", count(1, 2)))
    assert main(["--profile", "tiny", "--results", str(ours)]) == 2  # a count outside the schema
    grid.unlink()
    assert main(["--profile", "tiny", "--results", str(ours)]) == 2  # a whole file missing
    assert "07-grid" in capsys.readouterr().out
