"""The fast training path: bfloat16 convolutions for training only (evaluation and every attack stay float32).

``TrainConfig(precision='bfloat16')`` trains

- an ODE net with the convs of its vector field f in bfloat16 (``ODENet.configure_solver(conv_dtype='bfloat16')``)
  while the ODE state, the GroupNorms, the time term and dopri5's error estimate stay float32. Autocast of the
  whole step is not used for ODE nets: it also rounds the stem, and on CPUs with bf16 units the rounding noise in
  f makes dopri5 take more steps, which cancels most of the conv speed-up (bench/ode_speed.py prints both);
- any other model under ``torch.autocast(device, bfloat16)``.

Where the device has no bfloat16 support, training falls back to float32 and the history says so
(``precision_used`` per epoch). The trained weights are float32 in both cases.
"""
from __future__ import annotations

import contextlib
import warnings

import torch

from ..errors import ConfigError

PRECISIONS = ("float32", "bfloat16")


def bf16_supported(device) -> bool:
    """Whether ``device`` (a torch.device or string) runs bfloat16 convolutions natively: CUDA's
    ``is_bf16_supported()``, on CPU oneDNN's bf16 check (AVX512-BF16 or AMX)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
        try:
            return bool(check()) if check is not None else False
        except RuntimeError:
            return False
    return False


def resolve(precision: str, device) -> str:
    """The precision training will use on ``device``: ``precision`` itself, or 'float32' (with a warning)
    when 'bfloat16' is asked for and the device lacks it. Raises ConfigError for an unknown name."""
    if precision not in PRECISIONS:
        raise ConfigError("precision", precision, "one of " + ", ".join(PRECISIONS))
    if precision == "bfloat16" and not bf16_supported(device):
        warnings.warn(f"precision='bfloat16': {torch.device(device)} has no native bfloat16 "
                      f"(CPU capability {torch.backends.cpu.get_cpu_capability()}); training in float32")
        return "float32"
    return precision


@contextlib.contextmanager
def training_precision(model, precision: str, device):
    """Within the block, ``model`` trains at ``precision`` (from :func:`resolve`); restored afterwards."""
    if precision == "float32":
        yield
        return
    configure = getattr(model, "configure_solver", None)
    if configure is not None and "conv_dtype" in model.solver_config():
        old = configure(conv_dtype="bfloat16")
        try:
            yield
        finally:
            configure(conv_dtype=old["conv_dtype"])
        return
    with torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
        yield
