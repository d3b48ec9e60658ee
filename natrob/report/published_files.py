"""The published result files of a profile, as the findings pages read them: :class:`Run`, :func:`load`, the
file names each section reads, and the lookups into their rows (the row at a radius, a Table 1 row's attack, the
paper's Table 2 figure, the commit a file was published from).
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import paths
from . import claims
from ..eps import at_eps
from ..results import read_json

LIPSCHITZ, FIG1 = "01-lipschitz-{data}.json", "02-fig1-{data}.json"
WHITE_BOX, BOUNDARY, TABLE2 = claims.WHITE_BOX, claims.BOUNDARY, claims.TABLE2
AUDIT, GRID, WIDTH, MECHANISM = claims.AUDIT, "07-grid-{data}.json", claims.WIDTH, claims.MECHANISM
PUBLISHED_ODES, STANDIN_ODES = claims.PUBLISHED_ODES, "10-published-odes-standin-{data}.json"
ODE = claims.ODE


@dataclass(frozen=True)
class Run:
    """One profile's published files: ``files`` maps each file name to its JSON."""
    profile: str
    data: str
    files: dict

    def get(self, template: str):
        return self.files.get(template.format(data=self.data))

    def name(self, template: str) -> str:
        return template.format(data=self.data)

    @property
    def dataset(self) -> dict:
        return next((f["dataset"] for f in self.files.values() if isinstance(f.get("dataset"), dict)), {})


def load(profile: str) -> Run:
    """The published result files of ``profile`` (``paths.PUBLISHED / profile``, read now)."""
    folder = paths.PUBLISHED / profile
    files = {p.name: read_json(p) for p in sorted(folder.glob("[0-9][0-9]-*.json"))}
    return Run(profile, claims.DATA.get(profile, profile), files)


def absent(run: Run, template: str) -> list:
    return [f"*No `{run.name(template)}` in `reference-results/{run.profile}/`.*"]


def row_at(rows, eps):
    """The row of ``rows`` (a list of mappings; None or anything else holds none) at radius ``eps``
    (:func:`natrob.eps.at_eps`), or None."""
    return at_eps([r for r in rows if isinstance(r, dict)] if isinstance(rows, (list, tuple)) else [], eps)


def commit_of(payload: dict) -> str:
    """The short commit a file was published from (``provenance.git_commit``), ``+dirty`` kept."""
    commit = str((payload.get("provenance") or {}).get("git_commit") or "unknown")
    head, dirty = commit.split("+", 1) if "+" in commit else (commit, "")
    return head[:7] + (f"+{dirty}" if dirty else "")


def table1_kind(row: dict):
    """'FGSM' or 'PGD' (the paper's Table 1 attacks) of a Table 1 row, else None."""
    ident, label = str(row.get("id") or ""), str(row.get("attack") or "")
    if ident == "fgsm" or label == "FGSM":
        return "FGSM"
    return "PGD" if ident.startswith("pgd") or label.startswith("PGD") else None


def paper_model(model: str) -> str:
    return "ResNet" if model.startswith("ResNet") else model


def ordered_models(names) -> list:
    seen = list(dict.fromkeys(names))
    return sorted(seen, key=lambda m: (m != ODE, seen.index(m)))


def paper_table2(row: dict, what: str):
    """The paper's CIFAR-10 figure of a Table 2 row (``what`` 'clean' or 'robust'; older files: 'paper robust')."""
    v = row.get(f"paper CIFAR-10 {what}")
    return v if v is not None else row.get(f"paper {what}")
