"""Pieces every model shares: the Normalize input layer and the model metadata used by checkpoints."""
from __future__ import annotations

import torch
from torch import nn


class Normalize(nn.Module):
    """First layer of every natrob model: maps [0,1] pixels to normalised inputs, so attacks work in pixel space."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std
