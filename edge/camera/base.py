"""Camera contract, backend registry and the checks every camera source shares.

A backend is one module in :mod:`edge.camera` that defines its config model (a
:class:`StrictModel` with ``type: Literal["<key>"]``) and its :class:`CameraSource` subclass
decorated with :func:`register_camera`. The key is the module's name unless :data:`_MODULE_OF_KEY`
says otherwise (``picamera2`` lives in ``picam.py``, ``opencv`` in ``webcam.py``). Adding a backend
means adding one file: :func:`camera_config_type` discovers the modules to build the discriminated
union, and :func:`create_camera` imports only the selected module. Backend modules import only
light libraries at module level; device libraries (picamera2) are imported in ``open()``.

Images are RGB uint8 ``(H, W, 3)`` throughout; backends convert at their device's boundary.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar

import numpy as np

from edge.config import StrictModel
from edge.errors import HardwareError, ImageError
from edge.registry import BackendRegistry
from edge.segment.base import Calibration, check_frame

log = logging.getLogger(__name__)

_PACKAGE = "edge.camera"
_NOT_BACKENDS = frozenset({"base"})
#: Backends whose key differs from their module's name.
_MODULE_OF_KEY = {"picamera2": "picam", "opencv": "webcam"}


@dataclass
class Frame:
    """One captured image.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        timestamp: when the frame was taken, seconds since the epoch (``time.time()`` clock).
        meta: JSON-serialisable facts about the frame: its source, a running ``index``, and
            whatever the backend knows (file path, ground truth, sensor exposure, ...).
    """

    image: np.ndarray
    timestamp: float
    meta: dict[str, Any] = field(default_factory=dict)


class EndOfStream(HardwareError):
    """The source has no more frames (a video file or a replay folder ran out)."""


class CameraSource(ABC):
    """A source of RGB frames: ``open()``, ``capture() -> Frame``, ``close()``; also a context manager.

    Subclasses implement :meth:`_open`, :meth:`_close` and :meth:`_grab`; the base tracks the open
    state, checks every image (a corrupt or empty one raises :class:`ImageError` naming the
    device), stamps frames and counts them. A device that is gone raises :class:`HardwareError`
    naming it and the fix; the caller may then back off and call :meth:`reconnect`.
    """

    key: ClassVar[str]
    config_model: ClassVar[type[StrictModel]]

    def __init__(self, config: StrictModel) -> None:
        self.config = config
        self._is_open = False
        self._index = 0

    @classmethod
    def from_config(cls, config: StrictModel, *, calibration: Calibration = None) -> CameraSource:
        """Build from a validated config; backends that use calibration data override this."""
        return cls(config)

    @property
    def name(self) -> str:
        """How messages name this camera, e.g. ``"opencv camera '/dev/video0'"``."""
        return f"{self.key} camera"

    @property
    def is_open(self) -> bool:
        """Whether :meth:`open` succeeded and :meth:`close` has not been called since."""
        return self._is_open

    @abstractmethod
    def _open(self) -> None:
        """Acquire the device; raise HardwareError (or MissingDependencyError) when it cannot."""

    @abstractmethod
    def _close(self) -> None:
        """Release the device; called once per successful :meth:`_open`."""

    @abstractmethod
    def _grab(self) -> tuple[Any, dict[str, Any]]:
        """A fresh image (RGB, not yet checked) taken after this call began, and its meta."""

    def open(self) -> None:
        """Acquire the device (a no-op when already open)."""
        if not self._is_open:
            self._open()
            self._is_open = True

    def close(self) -> None:
        """Release the device (a no-op when not open)."""
        if self._is_open:
            self._is_open = False
            self._close()

    def reconnect(self) -> None:
        """Close (ignoring errors from a device that is already gone) and open again.

        Raises whatever :meth:`open` raises; the daemon calls this with backoff after a
        :class:`HardwareError`.
        """
        try:
            self.close()
        except Exception as exc:  # the device is likely gone already; reopening is what matters
            log.warning("%s: error while closing before reconnect (ignored): %s", self.name, exc)
        self._is_open = False
        self.open()

    def capture(self) -> Frame:
        """Take one frame after this call began: RGB uint8 (H, W, 3), stamped and counted."""
        if not self._is_open:
            raise HardwareError(f"{self.name} is not open; call open() first or use it in a `with` block")
        raw, meta = self._grab()
        image = check_image(raw, self.name)
        meta = {"source": self.key, "index": self._index, **meta}
        self._index += 1
        return Frame(image=image, timestamp=time.time(), meta=meta)

    def __enter__(self) -> CameraSource:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def check_image(image: Any, source: str) -> np.ndarray:
    """``image`` as a contiguous (H, W, 3) uint8 array, else :class:`ImageError` naming ``source``."""
    if image is None:
        raise ImageError(f"{source} returned no image (an empty or undecodable frame)")
    try:
        return check_frame(image)
    except ImageError as exc:
        raise ImageError(f"{source}: {exc}") from None


_REGISTRY: BackendRegistry[CameraSource] = BackendRegistry(
    "camera", _PACKAGE, not_backends=_NOT_BACKENDS, module_of_key=_MODULE_OF_KEY
)

#: Class decorator registering a :class:`CameraSource` subclass under ``key`` (its config's ``type``).
register_camera = _REGISTRY.register
#: Keys of every camera backend in the package (without importing them).
available_cameras = _REGISTRY.available
_backend_class = _REGISTRY.backend_class
#: ``Annotated[Union[<every backend's config>], Field(discriminator="type")]`` for the daemon's config.
camera_config_type = _REGISTRY.config_union


def parse_camera_config(data: Any, source: str = "camera") -> StrictModel:
    """Validate a mapping such as ``{"type": "opencv", "device": 0}`` into the selected backend's config."""
    return _REGISTRY.parse_config(data, source)


def create_camera(cfg: StrictModel | Mapping[str, Any], *, calibration: Calibration = None) -> CameraSource:
    """Build (but do not open) the camera ``cfg`` selects, importing only that backend's module.

    Args:
        cfg: a backend config model or a mapping with ``type`` (validated; errors are ConfigError).
        calibration: the rig's calibration data (parsed mapping or a JSON/YAML file); the
            ``picamera2`` backend reads its ``camera`` section when its config says
            ``calibration: true``; other backends ignore it.
    """
    config = parse_camera_config(cfg)
    return _REGISTRY.class_for(config).from_config(config, calibration=calibration)


def __getattr__(name: str) -> Any:
    # ``CameraConfig`` is built on first access so importing this module loads no backend.
    if name == "CameraConfig":
        return camera_config_type()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
