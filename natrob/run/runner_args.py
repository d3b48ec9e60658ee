"""The runner's command line (:mod:`natrob.run.runner`): its arguments, the ``-p KEY=VALUE`` overrides of the
profile, the ``--only`` notebooks and the weights mode a run resolves (``published`` after installing the published
weights, or ``train``) with the id its stamps record.
"""
from __future__ import annotations

import argparse
import sys

from .. import paths
from .execution import notebooks
from ..profiles import available
from .weights import WeightsError, install, manifest


def parse(argv, description: str):
    """The runner's arguments (``description``: its help text, the runner's docstring)."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default=paths.DEFAULT_PROFILE, help=f"one of {', '.join(available())} (default quick)")
    p.add_argument("--only", nargs="+", default=None, help="notebook numbers to run, e.g. --only 01 03")
    p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                   help="override one profile value for this run (VALUE is read as YAML), e.g. -p THREADS=1")
    p.add_argument("--weights", choices=["published", "train"], default=None,
                   help="published: evaluate the profile's published weights (sha256 checked, nothing trained; the "
                        "default where reference-results/<profile>/weights exists); train: train every model")
    p.add_argument("--force", action="store_true", help="re-execute notebooks even when finished results exist")
    p.add_argument("--no-report", action="store_true")
    p.add_argument("--verify", action="store_true",
                   help="afterwards compare the results with the published ones (reference-results/<profile>)")
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="notebooks run side by side (default: one per GPU; on CPUs, the cores over THREADS)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # one notebook of a side-by-side run
    return p.parse_args(argv)


def profile_overrides(items, params: dict) -> dict:
    """``KEY=VALUE`` strings as a dict; raises ValueError naming a malformed item or a key the profile lacks."""
    import yaml
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"-p {item!r} is not KEY=VALUE")
        if key not in params:
            raise ValueError(f"-p {key}: not a value of this profile; allowed: {', '.join(sorted(params))}")
        try:
            out[key] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ValueError(f"-p {key}={value!r} is not a YAML value: {exc}") from None
    return out


def selected_notebooks(only) -> list:
    """The notebooks to consider; raises ValueError naming the numbers that are not notebooks."""
    todo = notebooks()
    if not only:
        return todo
    known = {nb.name[:2] for nb in todo}
    bad = [n for n in only if n.zfill(2) not in known]
    if bad:
        raise ValueError(f"--only {' '.join(bad)} is not a notebook number; allowed: {', '.join(sorted(known))}")
    return [nb for nb in todo if nb.name[:2] in {n.zfill(2) for n in only}]


def weights_mode(a, out=sys.stdout) -> str:
    """``published`` or ``train`` for this run, after putting the published weights in the model store (the
    parent only); raises WeightsError (missing or altered file, or --weights published without a manifest)."""
    m = manifest(a.profile)
    mode = a.weights or ("published" if m is not None else "train")
    if mode == "published" and not a.child:
        r = install(a.profile)
        print(f"[run_all] evaluating the published weights of profile {a.profile} ({r['files']} files, "
              f"{r['bytes'] / 1e6:.1f} MB, sha256 checked; {r['copied']} put in the model store); "
              f"./run_all.sh --profile {a.profile} --weights train retrains them", file=out, flush=True)
    elif mode == "published" and m is None:
        raise WeightsError(f"profile {a.profile} has no published weights; use --weights train")
    return mode


def weights_run_id(mode: str, profile: str) -> str:
    if mode != "published":
        return "train"
    from ..results import sha256
    from .weights import MANIFEST, weights_dir
    return "published:" + sha256(weights_dir(profile) / MANIFEST)[:16]
