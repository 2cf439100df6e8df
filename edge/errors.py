"""The project's exception tree.

Every error derives from :class:`EdgeError` and from the builtin it resembles, so callers can
catch either (``except EdgeError`` or ``except FileNotFoundError``). Messages name the offending
thing with ``!r`` and say what to do about it.
"""

from __future__ import annotations


class EdgeError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(EdgeError, ValueError):
    """A configuration file is unreadable or holds a bad value."""


class MissingDependencyError(EdgeError, ImportError):
    """An optional dependency is not installed; the message names the extra to install.

    ``extra=None`` is for a package that ships with ``lego-edge`` itself (``studio``) but is absent
    from this install: the fix is to install the whole distribution. ``fix`` replaces the fix named.
    """

    def __init__(self, package: str, extra: str | None, purpose: str = "", *, fix: str | None = None) -> None:
        what = f" for {purpose}" if purpose else ""
        if fix is None:
            fix = (
                f"pip install 'lego-edge[{extra}]'"
                if extra
                else "install the whole lego-edge distribution (pip install lego-edge), which ships it"
            )
        super().__init__(f"{package!r} is needed{what} but is not installed: {fix}")
        self.package = package
        self.extra = extra


class DataFileError(EdgeError, FileNotFoundError):
    """A file the project needs is missing or unreadable."""


class DiskFullError(EdgeError, OSError):
    """The disk holding the decision record is full: no decision can be committed.

    The daemon stops the rig with the part in hand where it is and exits with
    :data:`edge.service.EXIT_DISK_FULL`, which the systemd unit does not restart on.
    """


class UnknownColorError(EdgeError, KeyError):
    """A colour id or LDraw colour code is not in the colour table."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


class ImageError(EdgeError, ValueError):
    """An image is corrupt, empty, or of the wrong shape."""


class ModelError(EdgeError, ValueError):
    """A model file disagrees with its manifest or cannot be loaded."""


class HardwareError(EdgeError, RuntimeError):
    """A camera, pin or other device is missing or misbehaves."""
