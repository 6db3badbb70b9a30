"""Multi-label (image-level) metrics with torchmetrics.

Per-label precision / recall / F1 at a threshold, micro and macro F1, and mAP (macro
average precision over labels with at least one positive), as in the BigEarthNet
benchmarks (Sumbul et al., 2019).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torchmetrics.functional.classification import (
    binary_average_precision,
    multilabel_average_precision,
    multilabel_f1_score,
    multilabel_precision,
    multilabel_recall,
)


def multilabel_metrics(
    probs: np.ndarray, targets: np.ndarray, label_names: Sequence[str], threshold: float = 0.5
) -> dict[str, Any]:
    """Multi-label metrics.

    Args:
        probs: ``(N, L)`` float probabilities.
        targets: ``(N, L)`` {0, 1}.
        label_names: ``L`` names.
        threshold: Decision threshold.

    Returns:
        ``{"per_label": [{"name", "precision", "recall", "f1", "support"}], "micro_f1", "macro_f1", "map"}``;
        labels with no positive and no prediction get NaN and are left out of macro means.
    """
    p = torch.as_tensor(np.asarray(probs, np.float32))
    t = torch.as_tensor(np.asarray(targets, np.int64))
    n_labels = p.shape[1]
    kw: dict[str, Any] = {"num_labels": n_labels, "threshold": threshold}
    prec = multilabel_precision(p, t, average="none", **kw)
    rec = multilabel_recall(p, t, average="none", **kw)
    f1 = multilabel_f1_score(p, t, average="none", **kw)
    support = t.sum(0)
    pred_pos = (p >= threshold).sum(0)
    per: list[dict[str, Any]] = []
    for i, name in enumerate(label_names):
        undefined = support[i] == 0 and pred_pos[i] == 0
        per.append(
            {
                "name": name,
                "precision": float("nan") if undefined else float(prec[i]),
                "recall": float("nan") if undefined else float(rec[i]),
                "f1": float("nan") if undefined else float(f1[i]),
                "support": int(support[i]),
            }
        )
    present = support > 0
    k = int(present.sum())
    if k >= 2:
        mAP = float(multilabel_average_precision(p[:, present], t[:, present], num_labels=k, average="macro"))
    elif k == 1:  # torchmetrics' multilabel form needs two labels: one label's AP is its binary AP
        i = int(torch.nonzero(present)[0])
        mAP = float(binary_average_precision(p[:, i], t[:, i]))
    else:
        mAP = float("nan")
    f1s = np.array([x["f1"] for x in per], float)
    return {
        "per_label": per,
        "micro_f1": float(multilabel_f1_score(p, t, num_labels=n_labels, threshold=threshold, average="micro")),
        "macro_f1": float(np.nanmean(f1s)) if np.isfinite(f1s).any() else float("nan"),
        "map": mAP,
    }
