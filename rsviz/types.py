"""Typed aliases and vocabularies shared across rsviz (rio-tiler style).

The task and head vocabularies are enums here, once: model cards, the evaluator
(:mod:`rsviz.evaluation.tasks`), the inference engine and the app all use them. Both are
``str`` enums, so ``Task.BUILDINGS == "buildings"`` and they serialise to JSON as their value.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Callable, Tuple

import numpy as np
import numpy.typing as npt

#: ``(west, south, east, north)`` in the units of some CRS.
BBox = Tuple[float, float, float, float]
#: ``(row_off, col_off, height, width)`` in pixels.
PixelWindow = Tuple[int, int, int, int]
#: Image array, ``(bands, height, width)``.
ImageArray = npt.NDArray[np.generic]
#: Single-band label array, ``(height, width)``.
MaskArray = npt.NDArray[np.generic]
#: Class id of "no prediction" (input nodata) in class maps: the engine writes it, the evaluator skips it.
NODATA_CLASS = 255
#: Progress callback: ``(done, total)``.
ProgressCallback = Callable[[int, int], None]


class Task(str, Enum):
    """What a model predicts and how it is scored (one :class:`~rsviz.evaluation.tasks.TaskSpec` each).

    ``BUILDINGS`` and ``ROADS`` are binary segmentation with object / graph metrics, ``LANDCOVER``
    multiclass segmentation, ``HEIGHT`` per-pixel regression, ``SCENE`` image-level multi-label
    classification.
    """

    BUILDINGS = "buildings"
    ROADS = "roads"
    LANDCOVER = "landcover"
    HEIGHT = "height"
    SCENE = "scene"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, value: str | Task) -> Task:
        """The task named ``value`` (``segmentation`` is accepted for ``landcover``).

        Raises:
            UnknownNameError: Not a task name; the message lists the valid ones.
        """
        if isinstance(value, Task):
            return value
        v = {"segmentation": "landcover"}.get(str(value), str(value))
        try:
            return cls(v)
        except ValueError:
            from rsviz.errors import unknown_name

            raise unknown_name("task", str(value), [t.value for t in cls]) from None


class HeadKind(str, Enum):
    """Kind of a network output head (a card's ``heads[...].kind``)."""

    BINARY = "binary"  #: one sigmoid channel per pixel
    MULTICLASS = "multiclass"  #: softmax over channels per pixel
    MULTILABEL = "multilabel"  #: one sigmoid per label, per image
    REGRESSION = "regression"  #: a value per pixel (height)
    RECONSTRUCTION = "reconstruction"  #: the input bands, in input units

    def __str__(self) -> str:
        return self.value

    @property
    def dense(self) -> bool:
        """True for per-pixel heads (everything but :attr:`MULTILABEL`)."""
        return self is not HeadKind.MULTILABEL


@dataclass(frozen=True)
class ClassInfo:
    """A semantic class: id (pixel value), name and display colour (RGB 0-255)."""

    id: int
    name: str
    color: tuple[int, int, int]

    @property
    def hex(self) -> str:
        """``#rrggbb`` colour."""
        return "#{:02x}{:02x}{:02x}".format(*self.color)
