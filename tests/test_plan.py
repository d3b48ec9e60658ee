"""The attack plan the audit and the grid share: standalone attacks on every clean-correct point, the rest on the
points they leave robust, and a row for every attack even when no point was left to attack."""
import pytest

from natrob.errors import ConfigError
from natrob.harness.plan import NONE_LEFT, on_survivors, run_plan, standalone

PLAN = [{"name": "fgsm", "id": "fgsm", "label": "FGSM"},
        {"name": "pgd", "steps": 10, "alpha_rel": 0.25, "id": "pgd", "label": "PGD-10"},
        {"name": "random-noise", "trials": 3, "id": "noise", "label": "noise"},
        {"name": "pgd", "steps": 20, "alpha_rel": 0.25, "restarts": 2, "id": "pgd-more", "label": "PGD-20x2",
         "on": "survivors"},
        {"name": "square", "n_queries": 50, "id": "square", "label": "Square", "on": "survivors"}]


@pytest.fixture(scope="module")
def points(digits):
    return digits.test_x[:40], digits.test_y[:40]


def test_worst_case_is_below_every_attack_and_survivors_only_ones_run_on_survivors(trained_cnn, points):
    x, y = points
    res = run_plan(trained_cnn, x, y, 0.05, PLAN, seed=0)
    worst, rows = res["worst_case"], res["rows"]
    assert set(rows) == {s["id"] for s in PLAN} and worst["n"] == len(y)
    solo_worst = min(rows[s["id"]]["robust"]["k"] for s in standalone(PLAN))
    for s in standalone(PLAN):
        assert rows[s["id"]]["robust"]["k"] <= res["clean"]["k"] and not rows[s["id"]]["cumulative"]
        assert rows[s["id"]]["n_attacked"] == res["clean"]["k"]  # every clean-correct point
    first = rows[on_survivors(PLAN)[0]["id"]]
    assert first["cumulative"] and first["n_attacked"] <= solo_worst  # only what the standalone ones left robust
    assert worst["k"] <= min(r["robust"]["k"] for r in rows.values()) and int(res["worst"].sum()) == worst["k"]


def test_no_survivor_still_gives_every_row(trained_cnn, points):
    x, y = points
    res = run_plan(trained_cnn, x, y, 0.5, PLAN, seed=0)  # eps 0.5 breaks every point of a plain CNN
    assert res["worst_case"]["k"] == 0
    for s in on_survivors(PLAN):
        row = res["rows"][s["id"]]
        assert row["skipped"] == [NONE_LEFT] and row["robust"]["k"] == 0 and row["n_attacked"] == 0
        assert row["robust"]["n"] == len(y) and row["error"] is None


def test_bad_plans_are_refused(trained_cnn, points):
    x, y = points
    with pytest.raises(ConfigError, match="survivors"):
        run_plan(trained_cnn, x, y, 0.1, [{"name": "fgsm", "id": "fgsm", "on": "later"}])
    with pytest.raises(ConfigError, match="every point"):
        run_plan(trained_cnn, x, y, 0.1, [dict(PLAN[3])])
