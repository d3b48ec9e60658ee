"""Float16 autocast (AMP) on a CPU, computed as a GPU computes it and at float32 speed.

Under ``torch.autocast(float16)`` a GPU runs convolutions and linear layers on float16 tensors: inputs and weights
rounded to float16, the products summed in float32 (cuDNN / cuBLAS on tensor cores), the output rounded to float16;
in the backward pass the incoming gradient is float16 and the gradients it produces are rounded to float16 again,
which is where small gradients underflow (float16's smallest subnormal is 6e-8). A CPU without float16 arithmetic
(natrob's machines: AVX512, no AVX512-FP16 or AMX) runs torch's float16 convolutions through slow fallback kernels,
10-20x a float32 convolution (``bench/amp_speed.py``). :func:`float16_storage` computes the same roundings with
float32 kernels: every ``conv2d`` and ``linear`` under it rounds its tensor arguments to float16, runs in float32
with autocast off, and rounds its output to float16, so every tensor autocast would store in float16 is float16 and
every sum is float32. torch's own CPU float16 kernels give the same outputs up to one float16 ulp in about 0.2% of
them (the order of the sums); the test suite checks the two against each other.

Everything else (GroupNorm, activations, the loss, an ODE solver's state) is left to the enclosing autocast, as on a
GPU. Source of the numerics: NVIDIA, "Mixed precision training" (Micikevicius et al., ICLR 2018): float16 storage,
float32 accumulation.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

# the float16 ops of autocast that natrob's nets call (torch.conv2d is F.conv2d; nn.Linear calls F.linear)
FLOAT16_OPS = frozenset({F.conv2d, torch.conv2d, F.linear})


def _round(a):
    return a.to(torch.float16).to(torch.float32) if torch.is_tensor(a) and a.is_floating_point() else a


class _Float16Storage(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func not in FLOAT16_OPS:
            return func(*args, **kwargs)
        with torch.autocast("cpu", enabled=False):
            out = func(*[_round(a) for a in args], **{k: _round(v) for k, v in kwargs.items()})
        return out.to(torch.float16)


@contextlib.contextmanager
def float16_storage():
    """Within the block, ``conv2d`` and ``linear`` compute as under float16 autocast on a GPU (float16 inputs,
    weights and outputs, float32 sums; see the module doc), with float32 kernels. Use it inside
    ``torch.autocast("cpu", dtype=torch.float16)`` so that the other ops keep autocast's policy."""
    with _Float16Storage():
        yield
