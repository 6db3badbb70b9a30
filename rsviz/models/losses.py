"""Training losses: uncertainty-weighted multi-task sum, Dice, focal."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class UncertaintyWeightedLoss(nn.Module):
    """Sum of task losses weighted by learned homoscedastic uncertainty.

    Kendall, Gal & Cipolla, "Multi-Task Learning Using Uncertainty to Weigh Losses
    for Scene Geometry and Semantics", CVPR 2018. Per task ``i`` with learned
    ``s_i = log sigma_i^2`` (initialised at 0)::

        L = sum_i exp(-s_i) * L_i + s_i

    Args:
        tasks: Task names, in a fixed order.

    Attributes:
        log_vars: ``(len(tasks),)`` learned ``s_i``.
    """

    def __init__(self, tasks: list[str] | tuple[str, ...]) -> None:
        super().__init__()
        self.tasks = tuple(tasks)
        self.log_vars = nn.Parameter(torch.zeros(len(self.tasks)))

    def forward(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        total = torch.zeros((), device=self.log_vars.device)
        for i, t in enumerate(self.tasks):
            total = total + torch.exp(-self.log_vars[i]) * losses[t] + self.log_vars[i]
        return total

    def weights(self) -> dict[str, float]:
        """Current effective weights ``exp(-s_i)`` per task."""
        return {t: float(torch.exp(-self.log_vars[i].detach())) for i, t in enumerate(self.tasks)}


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Binary soft Dice loss ``1 - (2|P∩T| + eps) / (|P| + |T| + eps)`` over the batch.

    Args:
        logits: ``(B, 1, H, W)`` logits.
        target: ``(B, 1, H, W)`` in {0, 1}.
    """
    p = torch.sigmoid(logits)
    inter = (p * target).sum()
    return 1 - (2 * inter + eps) / (p.sum() + target.sum() + eps)


def binary_focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0, alpha: float = 0.25) -> torch.Tensor:
    """Focal loss (Lin et al., ICCV 2017) for binary logits, mean over pixels."""
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p = torch.sigmoid(logits)
    pt = p * target + (1 - p) * (1 - target)
    w = alpha * target + (1 - alpha) * (1 - target)
    return (w * (1 - pt) ** gamma * ce).mean()
