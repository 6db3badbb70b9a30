"""Image-level (scene) classification with a multi-label model."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from rsviz.datasets.base import Sample
from rsviz.errors import BandCountError
from rsviz.models.preprocessing import Normalisation

if TYPE_CHECKING:
    from rsviz.models.api import LoadedModel
    from rsviz.models.card import ModelCard


def normalise_s2(image: np.ndarray, card: ModelCard) -> torch.Tensor:
    """``(12, 120, 120)`` reflectance x 10000 -> ``(1, 12, 120, 120)`` normalised float tensor."""
    if image.shape[0] != card.in_channels:
        raise BandCountError(
            f"{card.name} expects {card.in_channels} bands ({', '.join(card.input.bands)}), got {image.shape[0]}"
        )
    return Normalisation.from_spec(card.input).normalise(image)[None]


@torch.inference_mode()
def classify_patch(model: LoadedModel | str, sample: Sample | np.ndarray) -> np.ndarray:
    """Label probabilities of one patch.

    Args:
        model: Model name or :class:`~rsviz.models.api.LoadedModel` with a ``labels`` multilabel head.
        sample: Sample (its ``image``) or ``(12, 120, 120)`` array in the card's band order.

    Returns:
        ``(num_labels,)`` float32 probabilities (sigmoid).

    Raises:
        BandCountError: Wrong number of bands.
        ModelInputError: NaN or infinite pixels, or values the card's scaling would misread (see
            :func:`rsviz.inference.engine.check_value_range`).
    """
    from rsviz.errors import ModelInputError
    from rsviz.inference.engine import check_value_range
    from rsviz.models.api import LoadedModel, load_model_cached

    lm = model if isinstance(model, LoadedModel) else load_model_cached(model, "cpu")
    img = sample.image if isinstance(sample, Sample) else sample
    arr = np.asarray(img)
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ModelInputError(
            f"the patch has {int((~np.isfinite(arr)).sum())} NaN or infinite values; a whole-patch classifier has "
            "no nodata handling: fill them (e.g. with the band mean) first"
        )
    if arr.size and arr.dtype.kind in "uif":
        check_value_range(lm.card, arr.dtype, (float(arr.min()), float(arr.max())))
    x = normalise_s2(img, lm.card).to(lm.device)
    from rsviz.models.fusion import TRACE_GATE

    with TRACE_GATE.shared():
        return torch.sigmoid(lm.net(x)["labels"])[0].float().cpu().numpy()
