"""A trained network together with the input standardisation it was trained with: raw inputs in, logits out.

Training standardises every split with the per-channel mean and std of the training inputs
(``TrainingProtocol.normalize``); a network taken away from a final evaluation must carry those numbers, or
its user would have to know and repeat them.  They are buffers, so they travel in the weights file.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn


def stats_shape(input_shape: Sequence[int], input_mode: str) -> tuple[int, ...]:
    """The shape of the mean and std of inputs of ``input_shape``: one value per channel of an image
    (``1×C×1×1``), one per feature of a sequence (``1×1×D``), broadcasting over a batch."""
    return (1, int(input_shape[0]), 1, 1) if input_mode == "im" else (1, 1, int(input_shape[-1]))


class Standardized(nn.Module):
    """``net((x - mean) / std)``: ``net`` is the compiled network, ``mean`` and ``std`` the training inputs'
    per-channel statistics (zeros and ones when the protocol does not normalise: the identity)."""

    def __init__(self, net: nn.Module, mean: Tensor, std: Tensor) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", mean.detach().clone())
        self.register_buffer("std", std.detach().clone())

    @classmethod
    def identity(cls, net: nn.Module, shape: Sequence[int]) -> "Standardized":
        """``net`` with no standardisation (mean 0, std 1, of ``shape``): the frame to load saved weights into."""
        return cls(net, torch.zeros(tuple(shape)), torch.ones(tuple(shape)))

    def forward(self, x: Tensor) -> Tensor:
        return self.net((x - self.mean) / self.std)
