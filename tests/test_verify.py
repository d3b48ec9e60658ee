"""The verify command: every count compared with the published one, within the stated tolerances."""
import io
import json

from natrob.verify import compare, counts, verify


def _write(folder, name, obj):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(obj))


def _result(clean, robust):
    return {"model": "M", "n": 40, "clean_correct": clean,
            "rows": [{"eps": 0.3, "attack": "PGD", "robust": robust, "n": 40}], "provenance": {"n": 1, "robust": 0}}


def test_counts_are_found_by_place_and_provenance_is_ignored():
    found = counts(_result(38, 4))
    assert found == {("[model=M]", "clean_correct"): (38, 40), ("rows[attack=PGD,eps=0.3]", "robust"): (4, 40)}


def test_tolerances():
    assert compare("clean_correct", (38, 40), (39, 40))["ok"]        # one point of 40 (2.5 pts) is allowed
    assert not compare("clean_correct", (36, 40), (39, 40))["ok"]    # 7.5 pts is not
    assert compare("robust", (4, 40), (6, 40))["ok"]                 # the intervals overlap
    assert compare("robust", (0, 8), (1, 8))["ok"]                   # a one-point flip on a small sample
    assert not compare("robust", (0, 40), (20, 40))["ok"]
    for n in (8, 40, 100, 1000):  # an exact match always passes, at 0 and at n included
        assert all(compare("robust", (k, n), (k, n))["ok"] for k in range(n + 1))


def test_verify_passes_on_a_match_and_fails_on_a_mismatch(tmp_path):
    _write(tmp_path / "pub", "03-x.json", _result(38, 4))
    _write(tmp_path / "same", "03-x.json", _result(38, 5))
    _write(tmp_path / "off", "03-x.json", _result(38, 30))
    out = io.StringIO()
    assert verify("p", tmp_path / "same", tmp_path / "pub", out=out) == 0
    assert "2 of 2 numbers match" in out.getvalue()
    out = io.StringIO()
    assert verify("p", tmp_path / "off", tmp_path / "pub", out=out) == 1
    assert "MISMATCH" in out.getvalue() and "75.00% (30/40)" in out.getvalue()
    assert verify("p", tmp_path / "nothing", tmp_path / "pub", out=io.StringIO()) == 2
