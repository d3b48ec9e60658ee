"""What the benchmarks on the quick profile's nets share: their command line (--n points, --threads, and --eps /
--rounds where a benchmark takes them) and the quick profile's data. Imported as a sibling module: a benchmark runs as
``.venv/bin/python bench/<name>.py``, so bench/ is on its path."""
import argparse

import torch

from natrob.data import load_profile_dataset
from natrob.profiles import load_profile


def quick_setup(n: int, eps=None, rounds: bool = False):
    """Parse the command line (``--n`` default ``n``, ``--threads`` default 1; ``--eps`` default ``eps`` unless None;
    ``--rounds`` default 1 if ``rounds``), set torch's threads, and load the quick profile and its dataset: returns
    (args, params, data)."""
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=n)
    if eps is not None:
        p.add_argument("--eps", type=float, nargs="+", default=list(eps))
    if rounds:
        p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    params = load_profile("quick")
    data = load_profile_dataset(params["DATASET"], params.get("DATA_ROOT"), params.get("DATASET_FALLBACK"),
                                seed=params["SEED"])
    return a, params, data
