"""Training losses: uncertainty-weighted multi-task sum, Dice, focal, clDice."""

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

    def set_log_vars(self, values: dict[str, float]) -> None:
        """Start from earlier learned ``s_i`` (a fine-tuning stage continues its init run's weighting);
        tasks missing from ``values`` keep theirs, unknown names are ignored."""
        with torch.no_grad():
            for i, t in enumerate(self.tasks):
                if t in values:
                    self.log_vars[i] = float(values[t])

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


def binary_focal_loss(
    logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0, alpha: float = 0.25
) -> torch.Tensor:
    """Focal loss (Lin et al., ICCV 2017) for binary logits, mean over pixels."""
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p = torch.sigmoid(logits)
    pt = p * target + (1 - p) * (1 - target)
    w = alpha * target + (1 - alpha) * (1 - target)
    return (w * (1 - pt) ** gamma * ce).mean()


def _soft_erode(x: torch.Tensor) -> torch.Tensor:
    return torch.minimum(-F.max_pool2d(-x, (3, 1), 1, (1, 0)), -F.max_pool2d(-x, (1, 3), 1, (0, 1)))


def _soft_open(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(_soft_erode(x), 3, 1, 1)


def soft_skeleton(x: torch.Tensor, iterations: int) -> torch.Tensor:
    """Differentiable soft skeleton by iterated min/max pooling (Shit et al., CVPR 2021, Alg. 1).

    Args:
        x: ``(B, 1, H, W)`` probabilities in [0, 1].
        iterations: Erosion steps; at least half the widest structure, in pixels, to thin it fully.

    Returns:
        ``(B, 1, H, W)`` soft skeleton in [0, 1].
    """
    skel = F.relu(x - _soft_open(x))
    for _ in range(iterations):
        x = _soft_erode(x)
        delta = F.relu(x - _soft_open(x))
        skel = skel + F.relu(delta - skel * delta)
    return skel


def soft_cldice_loss(
    logits: torch.Tensor, target: torch.Tensor, iterations: int = 10, downsample: int = 1, eps: float = 1.0
) -> torch.Tensor:
    """Soft centreline Dice loss, a topology-preserving term for tubular structures such as roads.

    Shit et al., "clDice - a Novel Topology-Preserving Loss Function for Tubular Structure
    Segmentation", CVPR 2021: topology precision ``|S_P ∩ T| / |S_P|`` and sensitivity
    ``|S_T ∩ P| / |S_T|`` from soft skeletons ``S`` (:func:`soft_skeleton`); the loss is one
    minus their harmonic mean, pooled over the batch. Breaks in a predicted road cut the
    target skeleton, so they cost sensitivity even where they are only a few pixels long.

    Args:
        logits: ``(B, 1, H, W)`` logits.
        target: ``(B, 1, H, W)`` in {0, 1}.
        iterations: Skeleton iterations (see :func:`soft_skeleton`), counted at the downsampled scale.
        downsample: Average-pool probabilities and target by this factor first (road widths shrink
            with it, so fewer iterations thin them; the loss costs about ``downsample**2`` less).

    Returns:
        Scalar loss in [0, 1].
    """
    p = torch.sigmoid(logits)
    if downsample > 1:
        p, target = F.avg_pool2d(p, downsample), F.avg_pool2d(target, downsample)
    sp = soft_skeleton(p, iterations)
    with torch.no_grad():
        st = soft_skeleton(target, iterations)
    tprec = ((sp * target).sum() + eps) / (sp.sum() + eps)
    tsens = ((st * p).sum() + eps) / (st.sum() + eps)
    return 1 - 2 * tprec * tsens / (tprec + tsens)
