"""What a claim reads: the result file names (``{data}`` a profile's data name, :data:`DATA`), the profile groups
a claim applies to, :class:`Missing`, and the lookups into a profile's loaded result files that raise it (a key path,
the rows that match, a count value as ``(k, n)``, Table 1's PGD and FGSM rows).
"""
from __future__ import annotations

from ..eps import same_eps

DATA = {"tiny": "digits", "quick": "digits", "mnist": "mnist"}  # the data name in a profile's result file names
ALL, FINDINGS, MNIST = ("tiny", "quick", "mnist"), ("quick", "mnist"), ("mnist",)

WHITE_BOX = "03-white-box-{data}.json"
BOUNDARY = "04-fig3-{data}.json"
TABLE2 = "05-table2-{data}.json"
AUDIT = "06-audit-{data}.json"
WIDTH = "08-width-{data}.json"
MECHANISM = "09-mechanism-{data}.json"
PUBLISHED_ODES = "10-published-odes-{data}.json"  # the published TisODE models (mnist); stand-ins elsewhere

ODE = "Neural ODE"


class Missing(LookupError):
    """A result file lacks what a claim reads; the message names the file and the key."""


def get_path(obj, where: str, *path):
    """``obj[path[0]][path[1]]...``; Missing naming ``where`` and the path when a step is absent."""
    for i, seg in enumerate(path):
        try:
            obj = obj[seg]
        except (KeyError, IndexError, TypeError):
            raise Missing(f"{where}: no {'.'.join(str(s) for s in path[:i + 1])}") from None
    return obj


def in_file(results: dict, file: str, *path):
    """``path`` inside result file ``file`` (:func:`get_path`)."""
    if file not in results:
        raise Missing(f"no file {file}")
    return get_path(results[file], file, *path)


def select_rows(rows, where: str, **match) -> list:
    """The rows of list ``rows`` whose fields equal ``match`` (an ``eps`` by :func:`natrob.eps.same_eps`; a
    callable value is a test of the field); Missing naming ``where`` and ``match`` when there is none."""
    def fits(row):
        for f, want in match.items():
            have = row.get(f) if isinstance(row, dict) else None
            if callable(want):
                ok = have is not None and want(have)
            else:
                ok = have == want or (f == "eps" and same_eps(have, want))
            if not ok:
                return False
        return True
    found = [r for r in rows if fits(r)] if isinstance(rows, list) else []
    if not found:
        said = ", ".join(f"{f}={getattr(v, 'shows', v)}" for f, v in match.items())
        raise Missing(f"{where}: no row with {said}")
    return found


def starts_with(prefix: str):
    """A field test for :func:`select_rows`: a string starting with ``prefix``."""
    def test(value):
        return isinstance(value, str) and value.startswith(prefix)
    test.shows = prefix + "*"
    return test


def rows_of(results: dict, file: str, key: str, **match) -> list:
    """The rows of list ``key`` of result file ``file`` that match (:func:`select_rows`)."""
    return select_rows(in_file(results, file, key), f"{file}: {key}", **match)


def count_of(c, where: str) -> tuple:
    """``(k, n)`` of a count value; Missing when it is absent or was not measured (``k`` None)."""
    if not isinstance(c, dict) or not isinstance(c.get("k"), int) or not isinstance(c.get("n"), int):
        raise Missing(f"{where}: no measured count")
    return c["k"], c["n"]


def robust_count(row: dict, file: str) -> tuple:
    """``(k, n)`` of a row's ``robust`` count; Missing naming the row by its identifying fields."""
    said = " ".join(str(row[f]) for f in ("model", "training", "attack") if row.get(f) is not None)
    return count_of(row.get("robust"), f"{file}: {said} ε {row.get('eps')}")


def at_most(k: int, n: int, limit: int, of: int) -> bool:
    """``k`` of ``n`` is at most ``limit`` of ``of`` (the same share), in integers."""
    return k * of <= limit * n


def pgd_rows(results: dict, model: str, eps=None) -> list:
    """Table 1's rows of the paper's PGD (PGD-40; PGD-5 in tiny) on ``model`` (notebook 03), at ``eps`` or all."""
    at = {} if eps is None else {"eps": eps}
    return rows_of(results, WHITE_BOX, "table1", model=model, attack=starts_with("PGD"), **at)


def fgsm_row(results: dict, model: str, eps: float) -> dict:
    return rows_of(results, WHITE_BOX, "table1", model=model, attack="FGSM", eps=eps)[0]


def k_of_n(k: int, n: int) -> str:
    return f"{k}/{n}"
