"""The studio's exception tree.

Every error the studio raises on purpose derives from :class:`StudioError`, and through it from
:class:`edge.errors.EdgeError` (the ``edge`` and ``trainer`` commands report those as one-line
messages), and from the builtin it resembles. The studio's :class:`DataFileError` and
:class:`ImageError` are also ``edge``'s, so ``except edge.errors.DataFileError`` catches a missing
LDraw library as it catches any other missing file.
"""

from __future__ import annotations

from edge import errors as edge_errors


class StudioError(edge_errors.EdgeError):
    """Base of every error the studio raises on purpose."""


class LDrawError(StudioError, ValueError):
    """An LDraw file is malformed, missing, or references itself."""


class MissingPartError(LDrawError, FileNotFoundError):  # type: ignore[misc]
    """An LDraw part or sub-file cannot be found on the library's search path."""


class RenderError(StudioError, RuntimeError):
    """The renderer was given something it cannot draw (an empty mesh, a part off camera)."""


class DataFileError(StudioError, edge_errors.DataFileError):
    """A file the studio reads or writes (LDraw library, LDConfig.ldr) is missing or unusable."""


class ImageError(StudioError, edge_errors.ImageError):
    """An image given to the studio's camera effects is of the wrong shape or type."""
