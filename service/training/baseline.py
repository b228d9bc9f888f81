"""A single-frame baseline lifter: a small residual MLP that sees one frame at a time.

After Martinez et al., "A simple yet effective baseline for 3d human pose estimation" (ICCV 2017): a linear
layer to ``hidden`` features, ``blocks`` residual blocks of two (Linear, norm, ReLU, dropout) layers, and a
linear layer out. Two changes for this use: LayerNorm instead of BatchNorm (no batch statistics, so a frame's
answer never depends on its batch), and the input's root is subtracted from x, y and added back to the output,
so the network only models the pose, not where it stands on the image. It reads and writes the same tensors as
the DSTformer (``[B, T, 17, 3]`` normalised x, y, score in; joint3d_image out), so training and evaluation
treat both alike; every frame is lifted on its own.
"""

from __future__ import annotations

import torch
from torch import nn

MLP_DEFAULTS: dict[str, int | float] = {"hidden": 1024, "blocks": 2, "dropout": 0.1, "num_joints": 17}


class _Residual(nn.Module):
    def __init__(self, hidden: int, dropout: float) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(hidden, hidden),
            nn.LayerNorm(hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.LayerNorm(hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = x + self.layers(x)
        return out


class FrameMLP(nn.Module):
    """Single-frame lifter. ``forward(x)``: ``[B, T, J, 3]`` -> ``[B, T, J, 3]``, each frame independently.

    Raises ``ValueError`` for non-positive sizes or a dropout outside [0, 1).
    """

    def __init__(self, hidden: int = 1024, blocks: int = 2, dropout: float = 0.1, num_joints: int = 17) -> None:
        super().__init__()
        if hidden < 1 or blocks < 0 or num_joints < 1 or not 0.0 <= dropout < 1.0:
            raise ValueError(f"bad FrameMLP sizes: hidden={hidden}, blocks={blocks}, dropout={dropout}")
        self.num_joints = num_joints
        self.inp = nn.Sequential(nn.Linear(num_joints * 3, hidden), nn.LayerNorm(hidden), nn.ReLU())
        self.blocks = nn.Sequential(*[_Residual(hidden, dropout) for _ in range(blocks)])
        self.out = nn.Linear(hidden, num_joints * 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, j, c = x.shape
        root = torch.zeros_like(x)
        root[..., :2] = x[..., :1, :2]
        h = self.out(self.blocks(self.inp((x - root).reshape(b, t, j * c))))
        out: torch.Tensor = h.reshape(b, t, j, 3) + root
        return out
