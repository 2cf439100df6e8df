"""Camera sources: each backend yields RGB uint8 :class:`Frame` objects from one kind of device.

Select one in the config with ``camera: {type: picamera2 | opencv | folder | sim, ...}`` and build
it with :func:`create_camera`, then use it as a context manager::

    with create_camera(cfg.camera, calibration="calibration.json") as camera:
        frame = camera.capture()   # Frame(image (H, W, 3) uint8 RGB, timestamp, meta)

``CameraConfig`` is the pydantic discriminated union of every backend's config, for use as a field
type. A camera that is gone raises :class:`~edge.errors.HardwareError` (``EndOfStream`` when a
file or folder ran out); call ``reconnect()`` after a backoff. A corrupt frame raises
:class:`~edge.errors.ImageError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edge.camera.base import (
    CameraSource,
    EndOfStream,
    Frame,
    available_cameras,
    camera_config_type,
    check_image,
    create_camera,
    parse_camera_config,
    register_camera,
)

if TYPE_CHECKING:
    # Static checkers see the union spelled out; at run time it is discovered from the backend
    # modules (see camera_config_type), so a new backend file needs no edit here.
    from typing import Annotated, Union

    from pydantic import Field

    from edge.camera.folder import FolderConfig
    from edge.camera.picam import PicameraConfig
    from edge.camera.sim import SimConfig
    from edge.camera.webcam import WebcamConfig

    CameraConfig = Annotated[
        Union[PicameraConfig, WebcamConfig, FolderConfig, SimConfig],  # noqa: UP007
        Field(discriminator="type"),
    ]

__all__ = [
    "CameraConfig",
    "CameraSource",
    "EndOfStream",
    "Frame",
    "available_cameras",
    "camera_config_type",
    "check_image",
    "create_camera",
    "parse_camera_config",
    "register_camera",
]


def __getattr__(name: str) -> Any:
    # Built on first access: importing edge.camera loads no backend module.
    if name == "CameraConfig":
        return camera_config_type()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
