"""Frames for calibration: from a folder of images, or captured from the configured camera."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import ImageError


def frames_from_dir(folder: Path) -> list[np.ndarray]:
    """Every image under ``folder`` (natural order) as RGB uint8; an empty folder is an error."""
    from edge.camera.folder import list_images
    from edge.imagefile import read_image

    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(f"{str(folder)!r} is not a folder of images; pass the folder the frames are in")
    paths = list_images(folder)
    if not paths:
        raise ImageError(f"{str(folder)!r} holds no images (.png, .jpg, ...); capture some first")
    return [read_image(p) for p in paths]


def frames_from_camera(camera_config: Any, count: int, calibration: Any = None) -> list[np.ndarray]:
    """``count`` frames from the configured camera (the turntable is expected to be empty).

    The simulated rig's camera shows its empty turntable unless told a part arrived, and turns to an
    even spread of angles, as the real turntable would between frames.
    """
    from edge.camera import create_camera

    frames = []
    with create_camera(camera_config, calibration=calibration) as camera:
        for i in range(count):
            if hasattr(camera, "set_angle"):
                camera.set_angle(360.0 * i / count)
            frames.append(camera.capture().image)
    return frames
