"""Exception hierarchy of rsviz.

Every error rsviz raises on purpose derives from :class:`RsvizError`, and each
subclass also derives from the builtin it resembles (rasterio's ``CRSError(ValueError)``
pattern), so callers may catch either ``RsvizError`` or the builtin.  Messages say
what is wrong *and* what to do about it: the dashboard shows them verbatim.
"""

from __future__ import annotations


class RsvizError(Exception):
    """Root of all rsviz errors."""


class RasterReadError(RsvizError, OSError):
    """A file is missing, unreadable or not a raster GDAL understands."""


class BandCountError(RsvizError, ValueError):
    """An image has a different number of bands than the model or loader expects."""


class CRSError(RsvizError, ValueError):
    """A CRS is missing where one is required, or two CRSs do not match."""


class GridMismatchError(RsvizError, ValueError):
    """Two rasters (e.g. image and ground truth) are not on the same pixel grid."""


class ExtentError(RsvizError, ValueError):
    """A requested window or geographic extent does not overlap the raster, or is too large."""


class ChecksumError(RsvizError, ValueError):
    """A file's sha256 differs from the catalog's."""


class DataMissingError(RsvizError, FileNotFoundError):
    """A catalog file is not in the cache; the message names the command that fetches it."""


class UnknownNameError(RsvizError, KeyError):
    """A registry lookup (dataset, model, metric...) used a name that is not registered.

    The message lists the valid names.
    """

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable.
        return str(self.args[0]) if self.args else ""


class ModelInputError(RsvizError, ValueError):
    """An input array does not satisfy the model card (dtype scale, shape, GSD)."""


class GeometryTypeError(RsvizError, ValueError):
    """Vector labels have geometries of a type the target cannot use (e.g. points given as building footprints)."""


class ModelFolderError(RsvizError, ValueError):
    """A model folder is broken: ``card.json`` cut off or missing keys, or ``model.safetensors`` truncated."""


class SplitError(RsvizError, ValueError):
    """A data split cannot be made as asked: too few blocks for the folds, a bad block size or side."""


class OutputPathError(RsvizError, OSError):
    """An output path cannot be written: missing or read-only folder, existing file, or the input itself."""


def unknown_name(kind: str, name: str, valid: list[str] | tuple[str, ...]) -> UnknownNameError:
    """Build an :class:`UnknownNameError` listing the valid names.

    Args:
        kind: What was looked up, e.g. ``"dataset"``.
        name: The name that was not found.
        valid: All registered names.

    Returns:
        The error, ready to raise.
    """
    return UnknownNameError(f"unknown {kind} {name!r}; valid names: {', '.join(sorted(valid))}")


#: What a background run (a model run, a batch, one scene of a batch) catches and reports instead of crashing:
#: project errors (the user's input; the message says what to fix) and the device, the disk or memory running out.
RUN_FAILURES: tuple[type[BaseException], ...] = (RsvizError, OSError, ValueError, RuntimeError, MemoryError)


def failure_message(exc: BaseException) -> str:
    """The message a user sees for a failed run.

    Args:
        exc: One of :data:`RUN_FAILURES`.

    Returns:
        A project error's own message (it says what to fix); any other error prefixed with its type,
        e.g. ``"MemoryError: ..."``.
    """
    return str(exc) if isinstance(exc, RsvizError) else f"{type(exc).__name__}: {exc}"
