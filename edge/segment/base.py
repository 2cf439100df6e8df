"""Segmenter contract, backend registry and the mask post-processing every backend shares.

A backend is one module in :mod:`edge.segment` named after its key (``hsv.py`` for ``type: hsv``).
The module defines its config model (a :class:`StrictModel` with ``type: Literal["<key>"]``) and
its :class:`Segmenter` subclass decorated with :func:`register_segmenter`. Adding a backend means
adding one file: :func:`segmenter_config_type` discovers the modules to build the discriminated
union, and :func:`create_segmenter` imports only the selected module. Backend modules import only
light libraries at module level; heavy ones (onnxruntime) are imported in their constructors.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Literal

import cv2
import numpy as np
from pydantic import Field

from edge.config import StrictModel
from edge.errors import DataFileError, ImageError, ModelError
from edge.registry import BackendRegistry

_PACKAGE = "edge.segment"
_NOT_BACKENDS = frozenset({"base", "regions"})

#: Calibration data as handed to :func:`create_segmenter`: parsed mapping, a file, or None.
Calibration = Mapping[str, Any] | str | Path | None
#: A box (x0, y0, x1, y1) in pixels, x1 and y1 exclusive.
Box = tuple[int, int, int, int]


class MaskCleanup(StrictModel):
    """Post-processing settings shared by the backends that compute a mask (see :func:`clean_mask`)."""

    open_px: int = Field(
        3, ge=0, le=101, description="diameter of the opening kernel in pixels (removes specks); 0 = off"
    )
    close_px: int = Field(
        5, ge=0, le=101, description="diameter of the closing kernel in pixels (bridges gaps); 0 = off"
    )
    keep: Literal["largest", "all"] = Field(
        "largest", description="'largest' keeps only the biggest part region, 'all' keeps every region"
    )
    min_area_px: int = Field(
        100, ge=0, le=10_000_000, description="regions smaller than this many pixels are dropped"
    )
    fill_holes_px: int = Field(
        0, ge=0, le=10_000_000, description="enclosed holes smaller than this many pixels are filled; 0 = off"
    )


class Segmenter(ABC):
    """Background removal: ``mask(frame)`` returns an (H, W) uint8 mask, 255 on the part, 0 elsewhere.

    Subclasses implement :meth:`_raw_mask` (the backend's own 0/255 decision); the base validates
    the frame and applies the shared :func:`clean_mask` settings when the config carries them.
    """

    key: ClassVar[str]
    config_model: ClassVar[type[StrictModel]]

    def __init__(self, config: StrictModel) -> None:
        self.config = config
        self._cleanup = config if isinstance(config, MaskCleanup) else None

    @classmethod
    def from_config(cls, config: StrictModel, *, calibration: Calibration = None) -> Segmenter:
        """Build from a validated config; backends that use calibration data override this."""
        return cls(config)

    @abstractmethod
    def _raw_mask(self, frame_rgb: np.ndarray) -> np.ndarray:
        """The backend's (H, W) uint8 0/255 mask of a validated frame, before clean-up."""

    def mask(self, frame_rgb: np.ndarray) -> np.ndarray:
        """Foreground mask of an (H, W, 3) uint8 RGB frame: (H, W) uint8, 255 = part."""
        return self.mask_and_count(frame_rgb)[0]

    def mask_and_count(self, frame_rgb: np.ndarray) -> tuple[np.ndarray, int]:
        """The mask plus the number of separate regions found before ``keep`` picks the largest.

        A count above 1 means several parts (or a part and debris) are on the stage at once.
        """
        mask, count, _ = self.mask_count_box(frame_rgb)
        return mask, count

    def mask_count_box(self, frame_rgb: np.ndarray) -> tuple[np.ndarray, int, Box | None]:
        """:meth:`mask_and_count` plus the box ``(x0, y0, x1, y1)`` around the mask's part pixels
        where the clean-up found it on the way (None: empty, or not known), so that
        :func:`edge.preprocess.crop_to_mask` need not search the whole mask for it."""
        frame = check_frame(frame_rgb)
        raw = self._raw_mask(frame)
        c = self._cleanup
        if c is None:
            return raw, count_objects(raw, 0), None
        return clean_count_box(raw, c.open_px, c.close_px, c.keep, c.min_area_px, c.fill_holes_px)

    def close(self) -> None:  # noqa: B027 (optional hook: most backends hold nothing)
        """Release the backend's resources (model sessions); the base has none."""

    def __enter__(self) -> Segmenter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


_REGISTRY: BackendRegistry[Segmenter] = BackendRegistry("segmenter", _PACKAGE, not_backends=_NOT_BACKENDS)

#: Class decorator registering a :class:`Segmenter` subclass under ``key`` (its config's ``type``).
register_segmenter = _REGISTRY.register
#: Keys of every backend module in the package (without importing them).
available_backends = _REGISTRY.available
_backend_class = _REGISTRY.backend_class
#: ``Annotated[Union[<every backend's config>], Field(discriminator="type")]`` for the daemon's config.
segmenter_config_type = _REGISTRY.config_union


def parse_segmenter_config(data: Any, source: str = "segmenter") -> StrictModel:
    """Validate a mapping such as ``{"type": "hsv", ...}`` into the selected backend's config."""
    return _REGISTRY.parse_config(data, source)


def create_segmenter(cfg: StrictModel | Mapping[str, Any], *, calibration: Calibration = None) -> Segmenter:
    """Build the segmenter ``cfg`` selects, importing only that backend's module.

    Args:
        cfg: a backend config model or a mapping with ``type`` (validated; errors are ConfigError).
        calibration: the rig's calibration data (parsed mapping or a JSON/YAML file); backends that
            read thresholds from it (``hsv`` with ``calibration: true``) need it, others ignore it.
    """
    config = parse_segmenter_config(cfg)
    return _REGISTRY.class_for(config).from_config(config, calibration=calibration)


def check_frame(frame: Any) -> np.ndarray:
    """``frame`` (made contiguous) if it is a non-empty (H, W, 3) uint8 RGB array, else ImageError."""
    if not isinstance(frame, np.ndarray):
        raise ImageError(
            f"frame must be a numpy array of shape (H, W, 3) uint8 RGB; got {type(frame).__name__}"
        )
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ImageError(
            f"frame must have shape (H, W, 3) (RGB); got {frame.shape!r}: convert grey or RGBA images "
            "with cv2.cvtColor first"
        )
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ImageError(f"frame is empty (shape {frame.shape!r}); check the camera capture")
    if frame.dtype != np.uint8:
        raise ImageError(
            f"frame must be uint8 (0..255); got dtype {str(frame.dtype)!r}: scale and convert with "
            "np.clip(x, 0, 255).astype(np.uint8)"
        )
    return np.ascontiguousarray(frame)  # OpenCV rejects some views, e.g. frame[..., ::-1]


def _check_mask(mask: Any) -> np.ndarray:
    if not isinstance(mask, np.ndarray) or mask.ndim != 2 or mask.dtype != np.uint8:
        shape = getattr(mask, "shape", None)
        dtype = str(getattr(mask, "dtype", type(mask).__name__))
        raise ImageError(f"mask must be an (H, W) uint8 array; got shape {shape!r}, dtype {dtype!r}")
    if mask.size == 0:
        raise ImageError(f"mask is empty (shape {mask.shape!r})")
    return mask


@functools.lru_cache(maxsize=16)
def _disc(diameter: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (diameter, diameter))


def _components(binary: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """8-connected labels of a 0/1 image and each label's area (index 0 = background)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    return labels, stats[:n, cv2.CC_STAT_AREA]


def clean_mask(
    mask: np.ndarray,
    open_px: int = 0,
    close_px: int = 0,
    keep: Literal["largest", "all"] = "largest",
    min_area_px: int = 0,
    fill_holes_px: int = 0,
) -> np.ndarray:
    """Tidy a raw mask (non-zero = part): opening, closing, small regions, holes.

    Steps: opening with a ``open_px`` disc (drops specks thinner than it), closing with a
    ``close_px`` disc (bridges thin gaps), dropping 8-connected regions under ``min_area_px``,
    keeping only the largest region when ``keep == "largest"``, and filling enclosed holes (not
    touching the image border) smaller than ``fill_holes_px`` pixels; bigger holes, such as the
    background seen through a Technic beam's hole, stay. Returns a new (H, W) uint8 0/255 mask.
    """
    return clean_count_box(mask, open_px, close_px, keep, min_area_px, fill_holes_px)[0]


def clean_count_box(
    mask: np.ndarray,
    open_px: int,
    close_px: int,
    keep: Literal["largest", "all"],
    min_area_px: int,
    fill_holes_px: int,
) -> tuple[np.ndarray, int, Box | None]:
    """:func:`clean_mask`, the number of regions of at least ``min_area_px`` found before ``keep``
    picks one (one labelling pass serves both; holes are filled inside the kept box), and that box
    (None when nothing is kept)."""
    binary: np.ndarray = (_check_mask(mask) > 0).astype(np.uint8)
    if keep not in ("largest", "all"):
        raise ValueError(f"keep must be 'largest' or 'all'; got {keep!r}")
    binary = open_close(binary, open_px, close_px)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    return keep_regions(labels, stats[:n], keep, min_area_px, fill_holes_px)


def open_close(binary: np.ndarray, open_px: int, close_px: int) -> np.ndarray:
    """Opening with an ``open_px`` disc, then closing with a ``close_px`` disc (a 0/1 uint8 image)."""
    if open_px > 1:
        binary = cv2.morphologyEx(binary, cv2.MORPH_OPEN, _disc(open_px))
    if close_px > 1:
        # Pad so closing does not glue a part to the image border.
        pad = close_px
        padded = cv2.copyMakeBorder(binary, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
        binary = cv2.morphologyEx(padded, cv2.MORPH_CLOSE, _disc(close_px))[pad:-pad, pad:-pad]
    return binary


def keep_regions(
    labels: np.ndarray,
    stats: np.ndarray,
    keep: Literal["largest", "all"],
    min_area_px: int,
    fill_holes_px: int,
) -> tuple[np.ndarray, int, Box | None]:
    """The 0/255 mask of the regions ``keep`` picks among those of at least ``min_area_px``, holes
    filled, how many such regions there were, and the box around the picked ones (None: none);
    ``labels`` and ``stats`` as OpenCV's ``connectedComponentsWithStats`` gives them, one ``stats``
    row per label."""
    areas = stats[:, cv2.CC_STAT_AREA]
    keep_label = areas >= max(min_area_px, 1)
    keep_label[0] = False
    count = int(np.count_nonzero(keep_label))
    if keep == "largest" and count > 1:
        best = int(np.argmax(np.where(keep_label, areas, -1)))
        keep_label[:] = False
        keep_label[best] = True
    out = np.zeros(labels.shape, np.uint8)
    if not count:
        return out, 0, None
    kept = np.flatnonzero(keep_label)
    x0, y0 = stats[kept, cv2.CC_STAT_LEFT].min(), stats[kept, cv2.CC_STAT_TOP].min()
    x1 = (stats[kept, cv2.CC_STAT_LEFT] + stats[kept, cv2.CC_STAT_WIDTH]).max()
    y1 = (stats[kept, cv2.CC_STAT_TOP] + stats[kept, cv2.CC_STAT_HEIGHT]).max()
    # Everything kept lies in this box: select and fill there, not over the whole frame.
    box = keep_label.astype(np.uint8)[labels[y0:y1, x0:x1]]
    if fill_holes_px > 0:
        box = fill_small_holes(box, fill_holes_px)
    out[y0:y1, x0:x1] = box * np.uint8(255)
    return out, count, (int(x0), int(y0), int(x1), int(y1))


def fill_small_holes(binary: np.ndarray, max_area: int) -> np.ndarray:
    """Set enclosed background regions smaller than ``max_area`` to foreground.

    A one-pixel border of background around ``binary`` joins everything that reaches its edge,
    so only regions enclosed by foreground count as holes (as in the whole frame, when
    ``binary`` is the box around all foreground).
    """
    padded = cv2.copyMakeBorder(1 - binary, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=1)
    # 4-connected background so that a diagonal gap between part pixels does not leak a hole out.
    ltype = cv2.CV_16U if padded.size < 2**16 else cv2.CV_32S  # 16 bits: twice as fast where they fit
    n, labels = cv2.connectedComponents(padded, connectivity=4, ltype=ltype)
    if n <= 2:  # the part and the outside: no hole (labelling without statistics is 3x faster)
        return binary
    fill = np.bincount(labels.ravel(), minlength=n) < max_area
    fill[0] = False  # label 0 is the foreground of the inverted image
    fill[labels[0, 0]] = False  # the outside, joined by the border
    return binary | fill[labels[1:-1, 1:-1]].astype(np.uint8)


def count_objects(mask: np.ndarray, min_area_px: int = 0) -> int:
    """Number of 8-connected regions of a mask (non-zero = part) with at least ``min_area_px`` pixels."""
    _, areas = _components((_check_mask(mask) > 0).astype(np.uint8))
    return int(np.count_nonzero(areas[1:] >= max(min_area_px, 1)))


# --- ONNX helpers shared by the model backends (onnxruntime is imported only when one is built) ---


def load_onnx_session(path: Path, threads: int, hint: str) -> Any:
    """An onnxruntime CPU session for a segmenter model, its memory arena off (see
    :func:`edge.engines.onnx.ort_session`); ``hint`` says where to get a model if it is missing."""
    if not path.is_file():
        raise DataFileError(f"segmenter model {str(path)!r} does not exist; {hint}")
    from edge.engines.onnx import ort_session

    return ort_session(path, threads, what="segmenter model", fix=hint, arena=False)


def check_input_shape(session: Any, path: Path, expected: tuple[int | None, ...]) -> str:
    """Name of the session's first input after checking its shape fits ``expected`` (None = any).

    Symbolic (named or unknown) dimensions in the model are accepted for any expected size.
    """
    inp = session.get_inputs()[0]
    shape = tuple(inp.shape)
    fits = len(shape) == len(expected) and all(
        not isinstance(have, int) or want is None or have == want
        for have, want in zip(shape, expected, strict=True)
    )
    if not fits:
        want_text = "(" + ", ".join("N" if w is None else str(w) for w in expected) + ")"
        raise ModelError(
            f"segmenter model {str(path)!r} takes input {inp.name!r} of shape {shape!r}, but this backend "
            f"feeds {want_text}; export the model with that input shape or pick the matching backend"
        )
    if inp.type != "tensor(float)":
        raise ModelError(
            f"segmenter model {str(path)!r} input {inp.name!r} is {inp.type}, expected tensor(float)"
        )
    return str(inp.name)


def run_session(
    session: Any, path: Path, outputs: list[str] | None, feed: dict[str, np.ndarray]
) -> list[Any]:
    """``session.run`` with failures reported as ModelError naming the model file."""
    try:
        return list(session.run(outputs, feed))
    except Exception as exc:  # ORT's pybind exception types share no public base
        raise ModelError(f"segmenter model {str(path)!r} failed to run: {exc}") from None


def __getattr__(name: str) -> Any:
    # ``SegmenterConfig`` is built on first access so importing this module loads no backend.
    if name == "SegmenterConfig":
        return segmenter_config_type()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
