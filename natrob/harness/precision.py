"""Evaluation precision: one enum (:class:`Precision`) and one wrapper (:class:`AtPrecision`).

A precision says in which floating-point format a trained net is run and its input gradient taken. The saturation
map (:mod:`natrob.study.saturation`), the real pipelines of notebook 09 (:mod:`natrob.study.pipelines`), the float64
transfer source of notebook 07 (:mod:`natrob.study.grid`) and the float16 variant of notebook 08
(:mod:`natrob.study.protocols`) all run a net through :class:`AtPrecision`. "Protocol" is another idea (the threat
model an evaluation follows, :mod:`natrob.study.protocols`) and is not used for precisions.

Sources: float formats, IEEE 754 (smallest subnormal: float16 6e-8, float32 1.4e-45, float64 4.9e-324); AMP,
NVIDIA "Mixed precision training" (Micikevicius et al., ICLR 2018): float16 storage, float32 sums.
"""
from __future__ import annotations

import contextlib
import copy
import enum

import torch
from torch import nn

from .amp import float16_storage
from ..errors import ConfigError
from .prediction import model_device


class Precision(str, enum.Enum):
    """A precision a net is evaluated in (the value is the name result files record)."""
    FLOAT32 = "float32"
    BFLOAT16 = "bfloat16-autocast"
    FLOAT16_AMP = "float16-amp"
    FLOAT16_AMP_CPU = "float16-amp-cpu-kernels"
    FLOAT64 = "float64"
    FLOAT16 = "float16"


DESCRIPTIONS = {
    Precision.FLOAT32: "cross-entropy on float32 logits (the paper's attack)",
    Precision.BFLOAT16: "torch.autocast(bfloat16) around the whole model; loss in float32",
    Precision.FLOAT16_AMP: ("torch.autocast(float16) (AMP) with the ODE state in float32: the stem's and f's "
                            "convolutions and the head's linear layer in float16 as a GPU computes them (float16 "
                            "inputs, weights and outputs, float32 sums; on a CPU by natrob.harness.amp with float32 "
                            "kernels); "
                            "GroupNorm, the loss and dopri5's state and error estimate in float32 (AMP around the "
                            "whole model, state included, makes every solve fail: underflow in dt)"),
    Precision.FLOAT16_AMP_CPU: ("the same autocast through torch's own CPU float16 kernels, which sum differently and "
                                "lose more of the smallest float16 gradients than a GPU's float32 sums (10-20x slower "
                                "than natrob.harness.amp; measured in the saturation map only)"),
    Precision.FLOAT64: "model and images in float64 (the reference)",
    Precision.FLOAT16: "a float16 copy of the model: crafted and judged in float16",
}


def check_precision(name, allowed=tuple(Precision), what: str = "precision") -> Precision:
    """``name`` as a :class:`Precision` among ``allowed``; raises ConfigError naming ``what``, the value and the
    allowed values."""
    try:
        precision = Precision(name)
    except ValueError:
        precision = None
    if precision not in allowed:
        raise ConfigError(what, getattr(name, "value", name), "one of " + ", ".join(p.value for p in allowed))
    return precision


@contextlib.contextmanager
def _state_float32(model):
    """Within the block an ODE net's solver state starts in float32 (the stem's output under autocast is not)."""
    base = getattr(model, "model", model)
    if not hasattr(base, "features") or not hasattr(base, "integrate"):
        yield
        return
    original = base.features
    base.features = lambda x: original(x).float()
    try:
        yield
    finally:
        del base.features  # the instance attribute goes; the class's method is back


def _amp(model, precision):
    device = model_device(model).type
    if precision is Precision.FLOAT16_AMP_CPU and device != "cpu":
        raise ConfigError("precision", precision.value, f"a model on a CPU (this one is on {device}; there "
                                                        "'float16-amp' is the device's own AMP)")
    # on a CPU, a GPU's float16 numerics with float32 kernels (natrob.harness.amp); FLOAT16_AMP_CPU keeps torch's CPU
    # float16 kernels (10-20x slower, and they flush more small gradients)
    gpu_numerics = float16_storage if device == "cpu" and precision is Precision.FLOAT16_AMP else contextlib.nullcontext

    @contextlib.contextmanager
    def amp():
        with _state_float32(model), torch.autocast(device, dtype=torch.float16), gpu_numerics():
            yield
    return amp


def at_precision(model, precision):
    """(net to run, input dtype, context manager factory) of ``model`` under ``precision``: float64 and float16 get
    an evaluation-mode copy, the autocast precisions the model itself inside autocast. Raises ConfigError for an
    unknown precision, or torch's CPU float16 kernels asked of a model that is not on a CPU."""
    precision = check_precision(precision)
    if precision is Precision.FLOAT64:
        return copy.deepcopy(model).double().eval(), torch.float64, contextlib.nullcontext
    if precision is Precision.FLOAT16:
        return copy.deepcopy(model).half().eval(), torch.float16, contextlib.nullcontext
    if precision is Precision.BFLOAT16:
        device = "cpu" if model_device(model).type == "cpu" else "cuda"
        return model, torch.float32, lambda: torch.autocast(device, dtype=torch.bfloat16)
    if precision in (Precision.FLOAT16_AMP, Precision.FLOAT16_AMP_CPU):
        return model, torch.float32, _amp(model, precision)
    return model, torch.float32, contextlib.nullcontext


class AtPrecision(nn.Module):
    """``model`` evaluated in ``precision``, its logits multiplied by ``scale`` (> 0; 1: as trained). Input:
    (n, C, H, W) images of any float dtype in [0, 1]; output: (n, classes) float32 logits (float64 under
    'float64'). Raises ConfigError for an unknown precision, one outside ``allowed`` or a scale that is not positive.

    ``solver``: whether the evaluation harness may reach the ODE net inside (:meth:`configure_solver`,
    :attr:`batch_coupled`). True for notebook 09's pipelines: the harness judges each image with its own step sizes.
    False hides the solver, so the harness runs the wrapper as it is called: notebook 07's float64 transfer source
    and notebook 08's float16 variant were measured so (their published counts depend on it).

    Called as it is, an ODE net inside solves with one step size per batch, as the paper's code did, so a point's
    gradient carries its batch-mates' losses (notebook 09's batched FGSM)."""

    def __init__(self, model, precision=Precision.FLOAT32, scale: float = 1.0, solver: bool = True,
                 allowed=tuple(Precision)):
        super().__init__()
        self.precision = check_precision(precision, allowed)
        if not scale > 0:
            raise ConfigError("scale", scale, "a positive factor on the logits")
        self.scale, self._solver = float(scale), bool(solver)
        self.net, self.in_dtype, self.context = at_precision(model, self.precision)

    def forward(self, x):
        with self.context():
            z = self.net(x.to(self.in_dtype))
        z = z.double() if self.precision is Precision.FLOAT64 else z.float()
        return z if self.scale == 1 else self.scale * z

    @property
    def configure_solver(self):
        """The solver settings of the ODE net inside (:meth:`natrob.models.odenet.ODENet.configure_solver`), a
        function returning the old ones. AttributeError where ``solver`` is False (``hasattr`` is then False and the
        harness leaves the solver alone); ConfigError, when called, where the model inside has none."""
        if not self._solver:
            raise AttributeError("configure_solver")
        configure = getattr(self.net, "configure_solver", None)
        if configure is None:
            def refuse(**changes):
                raise ConfigError("model", type(self.net).__name__, "a model with solver settings (configure_solver)")
            return refuse
        return configure

    @property
    def batch_coupled(self) -> bool:
        """Whether a point's gradient and prediction may depend on its batch-mates: False only in float32 or
        float64 with the ODE net inside solving dopri5 with a step size per sample and no adjoint (the harness then
        freezes fooled points, as for any batch-independent model), and where ``solver`` is False (the harness
        treats the wrapper as any model that declares nothing). Under autocast, float16 and bfloat16 kernels round a
        batch otherwise than a batch of one, so a first fooling iterate, at the decision boundary, could round back
        in another batch: those pipelines are never frozen."""
        if not self._solver:
            return False
        net = self.net
        per_sample = (getattr(net, "per_sample", False) and getattr(net, "method", None) == "dopri5"
                      and not getattr(net, "adjoint", False))
        return not (per_sample and self.precision in (Precision.FLOAT32, Precision.FLOAT64))

    def describe(self) -> str:
        """The wrapper in words (what ran in which precision)."""
        what = DESCRIPTIONS[self.precision]
        return what if self.scale == 1 else f"{what}; logits x {self.scale:g}"
