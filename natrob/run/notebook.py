"""One setup call for every numbered notebook: ``ctx = natrob.run.notebook.start(globals())``.

It runs right after the ``parameters`` cell (and papermill's injected values), so the upper-case names in the
notebook's namespace at that moment are exactly the parameters: those, and nothing computed later, are what
every result records. It then directs artifacts to the notebook's profile, sets threads and seed, the plot
style, and loads the profile's dataset and evaluation points.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from .. import paths
from ..report import plots
from ..data import load_profile_dataset
from ..report.schemas import write_result

_SCALARS = (int, float, str, bool, list, dict, type(None))


@dataclass
class Context:
    """What a notebook needs after setup: its parameters, data, evaluation points, and a result writer."""
    params: dict
    data: object
    x_eval: torch.Tensor
    y_eval: torch.Tensor
    seed: int
    t_start: float = field(default_factory=time.time)

    def write(self, name: str, payload: dict, csv_rows: list | None = None, device=None):
        """``results/<profile>/<name>.json`` with the parameters, seed and wall time since setup."""
        return write_result(name, payload, self.params, seed=self.seed, device=device,
                            wall_time_s=time.time() - self.t_start, csv_rows=csv_rows,
                            folder=paths.results_dir(paths.of(self.params)))

    def describe(self) -> str:
        """One line naming the profile and the dataset."""
        return f"profile {self.params.get('PROFILE')}: {self.data.describe()}"


def parameters(namespace: dict) -> dict:
    """The parameters-cell values: upper-case, JSON-like names of ``namespace``."""
    return {k: v for k, v in namespace.items() if k.isupper() and not k.startswith("_") and isinstance(v, _SCALARS)}


def start(namespace: dict) -> Context:
    """Set up a notebook from its parameters (``PROFILE``, ``DATASET``, ``DATA_ROOT``, ``DATASET_FALLBACK``,
    ``SEED``, ``THREADS``, ``N_EVAL``; missing ones take the quick profile's defaults) and return its Context."""
    params = parameters(namespace)
    if params.get("THREADS"):
        torch.set_num_threads(int(params["THREADS"]))
    seed = int(params.get("SEED", 0))
    torch.manual_seed(seed)
    plots.setup()
    data = load_profile_dataset(params.get("DATASET", "digits"), params.get("DATA_ROOT"),
                                params.get("DATASET_FALLBACK"), seed=seed)
    n = params.get("N_EVAL", len(data.test_y))
    return Context(params=params, data=data, x_eval=data.test_x[:n], y_eval=data.test_y[:n], seed=seed)
