"""Attack registry: ``make_attack(name, eps=..., **params)``. All attacks are L-inf in [0,1] pixel space."""
from __future__ import annotations

from ..errors import UnknownNameError
from .adam_step import AdamStep
from .autoattack import APGD_CE, APGD_T, FAB_T, AutoAttack, AutoAttackRand, Square
from .base import Attack, cw_margin, input_grad
from .boundary import BoundaryAttack, BoundaryResult, robust_curve
from .difgsm import DI2FGSM
from .fgsm import FGSM
from .noise import ConstantImage, RandomNoise, UniformNoise
from .pgd import PGD
from .transfer import Transfer
from .variant import ProtocolVariant

ATTACKS = {
    "fgsm": FGSM,
    "adam-step": AdamStep,
    "pgd": PGD,
    "di2fgsm": DI2FGSM,
    "boundary": BoundaryAttack,
    "transfer": Transfer,
    "protocol-variant": ProtocolVariant,
    "autoattack": AutoAttack,
    "autoattack-rand": AutoAttackRand,
    "apgd-ce": APGD_CE,
    "apgd-t": APGD_T,
    "fab-t": FAB_T,
    "square": Square,
    "random-noise": RandomNoise,
    "uniform-noise": UniformNoise,
    "constant-image": ConstantImage,
}


def make_attack(name: str, **params) -> Attack:
    """The attack registered as ``name`` in :data:`ATTACKS`, built with ``params`` (each class's arguments and
    defaults are in its docstring). An unknown name raises UnknownNameError listing the registered ones."""
    if name not in ATTACKS:
        raise UnknownNameError("attack", name, ATTACKS)
    return ATTACKS[name](**params)


__all__ = ["ATTACKS", "make_attack", "Attack", "FGSM", "AdamStep", "PGD", "DI2FGSM", "BoundaryAttack", "BoundaryResult",
           "robust_curve", "Transfer", "ProtocolVariant", "AutoAttack", "AutoAttackRand", "APGD_CE", "APGD_T", "FAB_T",
           "Square", "RandomNoise",
           "UniformNoise", "ConstantImage", "input_grad", "cw_margin"]
