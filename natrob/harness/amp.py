"""Float16 autocast (AMP) on a CPU, computed as a GPU computes it and at float32 speed.

Under ``torch.autocast(float16)`` a GPU runs convolutions and linear layers on float16 tensors: inputs and weights
rounded to float16, the products summed in float32 (cuDNN / cuBLAS on tensor cores), the output rounded to float16;
in the backward pass the incoming gradient is float16 and the gradients it produces are rounded to float16 again,
which is where small gradients underflow (float16's smallest subnormal is 6e-8). A CPU without float16 arithmetic
(natrob's machines: AVX512, no AVX512-FP16 or AMX) runs torch's float16 convolutions through slow fallback kernels,
10-20x a float32 convolution (``bench/amp_speed.py``). :func:`float16_storage` computes the same roundings with
float32 kernels: every ``conv2d`` and ``linear`` under it rounds its tensor arguments to float16, runs in float32
with autocast off, and rounds its output to float16, so every tensor autocast would store in float16 is float16 and
every sum is float32 (matmuls too); ``group_norm`` runs in float32, as CUDA autocast runs it (CPU autocast does not).
Only inside float16 CPU autocast: a nested ``autocast(enabled=False)`` or bfloat16 block, and float64 tensors, are
left alone. torch's own CPU float16 kernels give the same outputs up to one float16 ulp in about 0.2% of
them (the order of the sums); the test suite checks the two against each other.

Everything else (activations, the loss, an ODE solver's state) is left to the enclosing autocast, as on a GPU. Source
of the numerics: NVIDIA, "Mixed precision training" (Micikevicius et al., ICLR 2018): float16 storage, float32
accumulation.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

# the float16 ops of CUDA autocast that natrob's nets call (torch.conv2d is F.conv2d; nn.Linear calls F.linear; an
# ODE net's time map is a matmul), and the float32 op among them (CUDA autocast runs group_norm in float32, CPU
# autocast does not)
FLOAT16_OPS = frozenset({F.conv2d, torch.conv2d, F.linear, torch.matmul, torch.Tensor.__matmul__, torch.mm,
                         torch.bmm, torch.addmm})
FLOAT32_OPS = frozenset({F.group_norm})


def _round(a):
    if torch.is_tensor(a) and a.dtype in (torch.float32, torch.float16):
        return a.to(torch.float16).to(torch.float32)
    return a


def _float32(a):
    return a.float() if torch.is_tensor(a) and a.dtype in (torch.float16, torch.bfloat16) else a


def _float16_autocast() -> bool:
    return torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.float16


class _Float16Storage(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        # only where float16 autocast is on: a nested autocast(enabled=False) or bfloat16 block runs as it says
        if (func not in FLOAT16_OPS and func not in FLOAT32_OPS) or not _float16_autocast():
            return func(*args, **kwargs)
        if any(torch.is_tensor(a) and a.dtype == torch.float64 for a in (*args, *kwargs.values())):
            return func(*args, **kwargs)  # autocast never casts float64
        cast = _round if func in FLOAT16_OPS else _float32
        with torch.autocast("cpu", enabled=False):
            out = func(*[cast(a) for a in args], **{k: cast(v) for k, v in kwargs.items()})
        return out.to(torch.float16) if func in FLOAT16_OPS else out


@contextlib.contextmanager
def float16_storage():
    """Within the block, ``conv2d`` and ``linear`` compute as under float16 autocast on a GPU (float16 inputs,
    weights and outputs, float32 sums; see the module doc), with float32 kernels. Use it inside
    ``torch.autocast("cpu", dtype=torch.float16)`` so that the other ops keep autocast's policy."""
    with _Float16Storage():
        yield
