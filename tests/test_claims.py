"""The registry of the study's findings (natrob.report.claims) on the published result files: every registered claim
holds there; each claim fails on a copy altered so that its sentence is false; an absent file or key is MISSING, never a
crash; ids are unique and each text names its threshold. Fast: no training, counts compared, not floats."""
import io
import json
import re
import shutil

import pytest

from natrob import paths
from natrob.report import claims
from natrob.report.claims import CLAIMS, DATA, check_claims, report
from natrob.stats import count

IDS = [c.id for c in CLAIMS]
BY_ID = {c.id: c for c in CLAIMS}


def _copy(tmp_path, profile):
    ours = tmp_path / profile
    shutil.copytree(paths.PUBLISHED / profile, ours)
    return ours


def _edit(folder, template, profile, change):
    path = folder / template.format(data=DATA[profile])
    d = json.loads(path.read_text())
    change(d)
    path.write_text(json.dumps(d))


def _row(rows, **match):
    """The one row of ``rows`` matching ``match`` (eps within 1e-6)."""
    found = [r for r in rows if all(abs(r.get(f, -9) - v) < 1e-6 if f == "eps" else r.get(f) == v
                                    for f, v in match.items())]
    assert len(found) == 1, match
    return found[0]


def _status(folder, profile, claim_id):
    return {r["id"]: r for r in check_claims(profile, folder)}[claim_id]


# --------------------------------------------------------------------------------------- the published files hold
@pytest.mark.parametrize("profile", ["quick", "mnist", "tiny"])
def test_every_registered_claim_holds_on_the_published_files(profile):
    rows = check_claims(profile, paths.PUBLISHED / profile)
    assert [r["id"] for r in rows] == [c.id for c in CLAIMS if profile in c.profiles]
    assert rows, f"no claim registered for {profile}"
    assert [(r["id"], r["status"], r["numbers"]) for r in rows if r["status"] != "holds"] == []
    out = io.StringIO()
    assert report(rows, out) == 0
    lines = out.getvalue().splitlines()
    assert lines[-1] == f"claims {profile}: {len(rows)} of {len(rows)} hold"
    assert all(line.startswith("HOLDS  ") and " -- " in line for line in lines[:-1])


def test_which_profiles():
    """Findings for quick and mnist; tiny (8-16 points, PGD-5, one-epoch nets) only the two claims that hold at
    that size whatever the training; no claim for a profile without published results."""
    assert {c.id for c in CLAIMS if "tiny" in c.profiles} == {"paper-above-ours", "eps05-infeasible"}
    assert all("mnist" in c.profiles for c in CLAIMS)
    assert check_claims("paper", paths.PUBLISHED / "paper") == []
    assert report([], io.StringIO()) == 0


def test_numbers_are_the_counts_read():
    rows = {r["id"]: r for r in check_claims("mnist", paths.PUBLISHED / "mnist")}
    assert rows["pgd-breaks-ode"]["numbers"] == "ε 0.3: 0/100, ε 0.4: 0/100, ε 0.5: 0/100"
    assert rows["fgsm-overstates"]["numbers"] == "ε 0.3: FGSM 21/100, PGD-40 0/100"
    assert rows["worst-case-breaks-ode"]["numbers"] == "ε 0.3: worst case 0/40 (PGD-40 0/40)"


# --------------------------------------------------------------------------------------------- the registry
def test_ids_unique_kebab_case_and_each_text_names_its_threshold():
    assert len(IDS) == len(set(IDS)) and 8 <= len(IDS) <= 16
    for c in CLAIMS:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", c.id), c.id
        assert c.threshold and c.threshold in c.text, c.id
        assert re.search(r"\d", c.threshold), c.id
        assert set(c.profiles) <= set(DATA) and c.files, c.id
        assert all(f.endswith("-{data}.json") for f in c.files), c.id
        assert c.check.__doc__, f"{c.id}: its check names its source"


# ------------------------------------------------------------------------------ each claim can fail
def _set(rows_key, robust, **match):
    """An edit: the robust count of the row of ``rows_key`` that matches ``match``."""
    return lambda d: _row(d[rows_key], **match).__setitem__("robust", robust)


def _ode_pgd(eps, robust):
    return lambda d: _row([r for r in d["table1"] if r["attack"].startswith("PGD")], model="Neural ODE",
                          eps=eps).__setitem__("robust", robust)


def _fgsm_just_above_pgd(d):
    pgd = _row([r for r in d["table1"] if r["attack"].startswith("PGD")], model="Neural ODE", eps=0.3)
    _row(d["table1"], model="Neural ODE", attack="FGSM", eps=0.3)["robust"] = count(
        pgd["robust"]["k"] + claims.FGSM_GAP - 1, 100)


def _width_fgsm(d):
    widest = max(d["table1"], key=int)
    ep = d["table1"][widest]["epoch"]
    narrow = _row(_row(d["cells"], id=f"32ch-epoch{ep}")["fgsm"], eps=0.3)["robust"]["k"]
    _row(_row(d["cells"], id=f"{widest}ch-epoch{ep}")["fgsm"], eps=0.3)["robust"] = count(narrow + 1, 100)


def _width_pgd(d):
    _row(d["table1"]["64"]["rows"]["pgd"], eps=0.3)["robust"] = count(claims.PGD_LIMIT + 1, 100)


def _amp_threshold(d):
    t = d["map"]["thresholds"]
    t["float16-amp"]["alone"] = t["float32"]["alone"] / claims.AMP_FACTOR * 1.01


def _pipeline_near(d):
    next(c for c in d["configurations"] if c["kind"] == "pipeline")["rms"] = claims.RMS_MIN - 0.1


def _strongest(d):
    d["strongest"]["rows"][1]["robust"] = count(claims.STRONGEST_LIMIT + 1, 40)


def _boundary(d):
    res = _row(d["summary"], model="ResNet50")["median_linf"]
    _row(d["summary"], model="Neural ODE")["median_linf"] = res * claims.BOUNDARY_FACTOR * 0.99


BREAKS = [  # (claim id, profile, file, edit that makes its sentence false)
    ("pgd-breaks-ode", "quick", claims.WHITE_BOX, _ode_pgd(0.4, count(claims.PGD_LIMIT + 1, 100))),
    ("pgd-breaks-ode", "mnist", claims.WHITE_BOX, _ode_pgd(0.5, count(claims.PGD_LIMIT + 1, 100))),
    ("ode-not-above-resnet", "quick", claims.WHITE_BOX, _ode_pgd(0.3, count(8, 100))),  # [4.1, 15.0] vs [0, 3.7]
    ("fgsm-overstates", "quick", claims.WHITE_BOX, _fgsm_just_above_pgd),
    ("fgsm-overstates", "mnist", claims.WHITE_BOX, _fgsm_just_above_pgd),
    ("paper-above-ours", "quick", claims.WHITE_BOX, _ode_pgd(0.5, count(68, 100))),  # high end 76.1% > 75.23%
    ("paper-above-ours", "tiny", claims.WHITE_BOX, _ode_pgd(0.2, count(16, 16))),
    ("worst-case-breaks-ode", "quick", claims.AUDIT,
     lambda d: _row(d["findings"], model="Neural ODE", eps=0.3).__setitem__(
         "worst_case", count(claims.WORST_LIMIT + 1, 40))),
    ("eps05-infeasible", "quick", claims.AUDIT, lambda d: d["constant_image"].__setitem__("bound", 0.8)),
    ("eps05-infeasible", "tiny", claims.AUDIT, lambda d: d["constant_image"].__setitem__("bound", 0.9)),
    ("adversarial-training-works", "quick", claims.TABLE2,
     lambda d: next(r for r in d["rows"] if r["training"].startswith("TRADES")).__setitem__("robust", count(55, 100))),
    ("adversarial-training-works", "mnist", claims.TABLE2,
     lambda d: next(r for r in d["rows"] if r["training"] == "none").__setitem__("robust", count(95, 100))),
    ("width-does-not-help", "quick", claims.WIDTH, _width_fgsm),
    ("width-does-not-help", "mnist", claims.WIDTH, _width_pgd),
    ("amp-saturates-first", "quick", claims.MECHANISM, _amp_threshold),
    ("amp-saturates-first", "mnist", claims.MECHANISM,
     lambda d: d["map"]["thresholds"]["float16-amp"].__setitem__("alone", None)),
    ("pipelines-far-from-paper", "mnist", claims.MECHANISM, _pipeline_near),
    ("strongest-breaks-nearest", "quick", claims.MECHANISM, _strongest),
    ("boundary-overstates", "mnist", claims.BOUNDARY, _boundary),
    ("nearest-are-saturated", "quick", claims.MECHANISM,  # the scaled net's margin now short of float32's threshold
     lambda d: d["map"]["thresholds"]["float32"].__setitem__("alone", 2 * d["map"]["thresholds"]["float32"]["alone"])),
    ("nearest-are-saturated", "mnist", claims.MECHANISM,  # a real pipeline now nearer than the scaled net
     lambda d: next(c for c in d["configurations"] if c["kind"] == "pipeline").__setitem__("rms", 1.0)),
    ("margins-below-float32", "quick", claims.MECHANISM,
     lambda d: d["map"]["thresholds"]["float32"].__setitem__("alone", 4 * d["map"]["margins"]["p50"])),
    ("log-is-its-own-attack", "mnist", claims.PUBLISHED_ODES,  # the log's 0.545 outside [0.67, 0.73]
     lambda d: _row(d["logged"], model="CNN", eps=0.3).__setitem__("replayed", count(700, 1000))),
    ("pgd-halves-the-log", "mnist", claims.PUBLISHED_ODES,  # high end 0.41 > half of 0.749
     lambda d: _row(d["pgd"], model="TisODE", eps=0.3).__setitem__("robust", count(70, 200))),
]


def test_every_claim_has_a_break():
    assert {b[0] for b in BREAKS} == set(IDS)


@pytest.mark.parametrize("claim_id, profile, template, change", BREAKS, ids=[f"{b[0]}-{b[1]}" for b in BREAKS])
def test_each_claim_fails_where_its_sentence_is_false(tmp_path, claim_id, profile, template, change):
    folder = _copy(tmp_path, profile)
    assert template in BY_ID[claim_id].files
    _edit(folder, template, profile, change)
    row = _status(folder, profile, claim_id)
    assert row["status"] == "fails", row
    out = io.StringIO()
    assert report(check_claims(profile, folder), out) == 1
    assert f"FAILS  {claim_id}: " in out.getvalue()


# --------------------------------------------------------------------------------------------- missing
@pytest.mark.parametrize("claim_id", IDS)
def test_an_absent_file_is_missing(tmp_path, claim_id):
    claim = BY_ID[claim_id]
    profile = "quick" if "quick" in claim.profiles else "mnist"
    folder = _copy(tmp_path, profile)
    name = claim.files[0].format(data=DATA[profile])
    (folder / name).unlink()
    row = _status(folder, profile, claim_id)
    assert row["status"] == "missing" and row["numbers"] == f"no file {name}"
    out = io.StringIO()
    assert report(check_claims(profile, folder), out) == 1
    assert f"MISSING {claim_id}: " in out.getvalue()
    assert out.getvalue().splitlines()[-1].startswith(f"claims {profile}: ")


READS_NO_COUNT = {"eps05-infeasible", "amp-saturates-first", "pipelines-far-from-paper", "boundary-overstates",
                  "nearest-are-saturated", "margins-below-float32"}
READS_NO_LIST = {"eps05-infeasible", "amp-saturates-first", "margins-below-float32"}


def _unmeasure(obj):
    """Every count of ``obj`` made 'not measured' (k None), in place."""
    if isinstance(obj, dict):
        if "k" in obj and "n" in obj:
            obj.update(k=None, accuracy=None, ci95=None)
        for v in obj.values():
            _unmeasure(v)
    elif isinstance(obj, list):
        for v in obj:
            _unmeasure(v)


def _unlist(obj):
    """Every list of ``obj`` emptied, in place (the dataset's shape too)."""
    for key, v in (obj.items() if isinstance(obj, dict) else ()):
        if isinstance(v, list):
            obj[key] = []
        else:
            _unlist(v)


def _only_dataset(d):
    keep = d["dataset"]
    d.clear()
    d["dataset"] = keep


GUTS = [("only its dataset", _only_dataset, set()), ("every list emptied", _unlist, READS_NO_LIST),
        ("every count not measured", _unmeasure, READS_NO_COUNT)]


@pytest.mark.parametrize("claim_id", IDS)
@pytest.mark.parametrize("gut, change, unaffected", GUTS, ids=[g[0] for g in GUTS])
def test_a_file_without_what_it_reads_is_missing_never_a_crash(tmp_path, claim_id, gut, change, unaffected):
    claim = BY_ID[claim_id]
    profile = "quick" if "quick" in claim.profiles else "mnist"
    folder = _copy(tmp_path, profile)
    for template in claim.files:
        _edit(folder, template, profile, change)
    row = _status(folder, profile, claim_id)
    if claim_id in unaffected:  # it reads none of what was removed
        assert row["status"] == "holds", row
        return
    assert row["status"] == "missing", row
    assert DATA[profile] in row["numbers"] and "{data}" not in row["numbers"]


def test_missing_names_the_key(tmp_path):
    folder = _copy(tmp_path, "quick")
    _edit(folder, claims.AUDIT, "quick",
          lambda d: d.__setitem__("findings", [f for f in d["findings"] if f["model"] != "Neural ODE"]))
    row = _status(folder, "quick", "worst-case-breaks-ode")
    assert row["status"] == "missing"
    assert row["numbers"] == "06-audit-digits.json: findings: no row with model=Neural ODE, eps=0.3"
    _edit(folder, claims.MECHANISM, "quick", lambda d: d["map"]["thresholds"].pop("float32"))
    row = _status(folder, "quick", "amp-saturates-first")
    assert row["numbers"] == "09-mechanism-digits.json: no map.thresholds.float32"
