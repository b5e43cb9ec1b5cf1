"""FasterKAN, the Kolmogorov-Arnold layer MedViTV2 uses in place of an MLP.

Each layer: LayerNorm, then the reflectional-switch basis ``1 - tanh((x - g) / h)^2`` on a fixed grid ``g``
(8 points on [-2, 2], ``h = 0.33``), then one bias-free linear map from ``in * grid`` features.
Parameter names (``layernorm``, ``rbf.grid``, ``spline_linear``) match upstream checkpoints.
"""

from __future__ import annotations

import torch
from torch import nn


class ReflectionalSwitchBasis(nn.Module):
    def __init__(
        self, grid_min: float = -2.0, grid_max: float = 2.0, num_grids: int = 8, denominator: float = 0.33
    ) -> None:
        super().__init__()
        # a (frozen) Parameter upstream, so it is part of the checkpoint
        self.grid = nn.Parameter(torch.linspace(grid_min, grid_max, num_grids), requires_grad=False)
        self.inv_denominator = 1.0 / denominator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = torch.tanh((x[..., None] - self.grid) * self.inv_denominator)
        return 1.0 - t * t


class FasterKANLayer(nn.Module):
    def __init__(self, in_features: int, out_features: int, num_grids: int = 8) -> None:
        super().__init__()
        self.layernorm = nn.LayerNorm(in_features)
        self.rbf = ReflectionalSwitchBasis(num_grids=num_grids)
        self.spline_linear = nn.Linear(in_features * num_grids, out_features, bias=False)
        nn.init.xavier_uniform_(self.spline_linear.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spline_linear(self.rbf(self.layernorm(x)).flatten(-2))


class FasterKAN(nn.Module):
    """A stack of FasterKAN layers with widths ``widths`` (e.g. ``[C, 2C, C]``)."""

    def __init__(self, widths: list[int]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(FasterKANLayer(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x
