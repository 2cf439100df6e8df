"""``type: bgdiff``: background difference against a model of the empty stage.

For rigs whose background one colour range cannot key: a white belt with white and grey parts on it,
uneven or vignetted light, a printed or textured surface. The background model is fitted from frames
of the empty stage (:meth:`BackgroundModel.fit`): the per-pixel median image and the camera's noise
per channel, both measured from the frames, so no threshold is tuned by hand to one rig.

The difference is taken in log intensity (a ratio, so a dim corner counts like a bright centre), after
removing the smooth change of light between calibration and capture: a quadratic surface per channel,
fitted robustly (the part is the outlier), takes out exposure, white-balance and vignetting drift and
the broad darkening a part's presence causes. A pixel is foreground where a channel's residual exceeds
``threshold_sigma`` times its expected spread: the measured noise, plus what a shift of the camera by
``registration_px`` pixels does at the background's own edges (rails, seams), so those stay background.

A constant background (``background_rgb``) serves photos whose background was painted one colour.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import Field, model_validator

from edge.config import StrictModel
from edge.errors import ConfigError, DataFileError, ImageError
from edge.fileio import write_atomic
from edge.segment.base import Calibration, MaskCleanup, Segmenter, register_segmenter

FORMAT_VERSION = 2
#: Floor of the fitted noise (log units, about 0.5 %): a perfectly clean synthetic frame would
#: otherwise make every rounding difference foreground.
MIN_SIGMA = 0.005
_MAD_TO_SIGMA = 1.4826  # median absolute deviation of a normal distribution -> its sigma
_OFFSET = 8.0  # log(x + 8): the noise of near-black pixels does not explode in log units
_FIT_STEP = 8  # the drift surface is fitted on every 8th pixel


def log_image(rgb: np.ndarray) -> np.ndarray:
    """Log intensity per channel, float32 (differences are then ratios)."""
    return np.log(np.asarray(rgb, np.float32) + np.float32(_OFFSET))


def _basis(ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    return np.stack([np.ones_like(xs), xs, ys, xs * xs, xs * ys, ys * ys], axis=-1)


def drift_surface(diff: np.ndarray, keep: float = 0.6, rounds: int = 3) -> np.ndarray:
    """The smooth part of a log-difference image: a quadratic surface per channel, fitted robustly.

    The fit runs on a grid of every 8th pixel; each round keeps the ``keep`` share of grid points with
    the smallest residual, so a part (or its shadow) covering less than the rest does not pull the
    surface. Returns (H, W, 3) float32.
    """
    h, w = diff.shape[:2]
    gy, gx = np.mgrid[0:h:_FIT_STEP, 0:w:_FIT_STEP].astype(np.float32)
    sy, sx = 2.0 / max(h - 1, 1), 2.0 / max(w - 1, 1)
    design = _basis(gy * sy - 1, gx * sx - 1).reshape(-1, 6)
    target = diff[::_FIT_STEP, ::_FIT_STEP].reshape(-1, 3).astype(np.float64)
    chosen = np.ones(len(target), bool)
    coef = np.zeros((6, 3))
    for _ in range(rounds):
        coef = np.linalg.lstsq(design[chosen], target[chosen], rcond=None)[0]
        residual = np.abs(target - design @ coef).max(axis=1)
        chosen = residual <= np.quantile(residual, keep)
    ys = (np.arange(h, dtype=np.float32) * sy - 1)[:, None, None]
    xs = (np.arange(w, dtype=np.float32) * sx - 1)[None, :, None]
    c = coef.astype(np.float32)
    return c[0] + c[1] * xs + c[2] * ys + c[3] * xs * xs + c[4] * xs * ys + c[5] * ys * ys


def edge_strength(log_bg: np.ndarray) -> np.ndarray:
    """Per-pixel, per-channel gradient magnitude of the log background (log units per pixel)."""
    gx = cv2.Sobel(log_bg, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(log_bg, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    return np.sqrt(gx * gx + gy * gy)


class BackgroundModel:
    """The empty stage as seen by the camera: median image (H, W, 3) float32 RGB and noise sigma (3,)."""

    def __init__(self, image: np.ndarray, sigma: np.ndarray, frames: int) -> None:
        image = np.asarray(image, np.float32)
        sigma = np.asarray(sigma, np.float32)
        if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
            raise ImageError(f"background image must be (H, W, 3); got shape {image.shape!r}")
        if sigma.shape != (3,) or not np.all(np.isfinite(sigma)) or np.any(sigma <= 0):
            raise ImageError(f"background noise sigma must be 3 positive numbers; got {sigma!r}")
        self.image = image
        self.sigma = sigma
        self.frames = int(frames)

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.image.shape[0]), int(self.image.shape[1])

    @classmethod
    def fit(cls, frames: Sequence[np.ndarray]) -> BackgroundModel:
        """Fit from RGB uint8 frames of the empty stage (one or more, all the same size).

        The image is the per-pixel median. With two or more frames the noise is the robust spread
        (MAD) of every frame around that median, which also takes in what moves between frames
        (a belt's texture, flicker); from one frame it is the spread of the frame around a blurred
        copy of itself (sensor noise only).
        """
        if len(frames) == 0:
            raise ImageError("fitting a background model needs at least one frame of the empty stage")
        shapes = {np.asarray(f).shape for f in frames}
        if len(shapes) != 1:
            raise ImageError(f"background frames differ in size ({sorted(shapes)!r}); use one camera mode")
        stack = np.stack([np.asarray(f, np.float32) for f in frames])
        if stack.ndim != 4 or stack.shape[3] != 3:
            raise ImageError(f"background frames must be (H, W, 3) RGB; got {stack.shape[1:]!r}")
        median = np.median(stack, axis=0)
        log_bg = log_image(median)
        if len(frames) >= 2:
            residuals = [(d := log_image(f) - log_bg) - drift_surface(d) for f in stack]
            # The median of n frames sits closer to each frame than the true background does.
            scale = np.sqrt(len(frames) / (len(frames) - 1))
        else:
            residuals = [log_bg - cv2.GaussianBlur(log_bg, (0, 0), 2.0)]
            scale = 1.0
        # Noise where the background is flat: its edges shift with the camera, which the segmenter
        # allows for separately (registration_px).
        flat = edge_strength(log_bg) <= np.median(edge_strength(log_bg))
        mad = np.array(
            [np.median(np.abs(np.stack([r[..., c] for r in residuals]))[:, flat[..., c]]) for c in range(3)]
        )
        sigma = np.maximum(mad * _MAD_TO_SIGMA * scale, MIN_SIGMA)
        return cls(median, sigma, len(frames))

    @classmethod
    def constant(
        cls, rgb: Sequence[int], shape: tuple[int, int] = (1, 1), sigma: float = 0.05
    ) -> BackgroundModel:
        """A flat background of one colour (any frame size)."""
        image = np.broadcast_to(np.asarray(rgb, np.float32), (*shape, 3)).copy()
        return cls(image, np.full(3, sigma, np.float32), 0)

    def save(self, path: str | Path) -> None:
        """Write the model atomically as an ``.npz`` of plain arrays (no pickle)."""
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            format_version=np.int64(FORMAT_VERSION),
            image=np.round(self.image * 16).astype(np.uint16),  # 1/16 grey level is finer than any noise
            sigma=self.sigma,
            frames=np.int64(self.frames),
        )
        write_atomic(path, buffer.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> BackgroundModel:
        """Read a model written by :meth:`save`; errors name the file and the fix."""
        path = Path(path)
        fix = "fit it again from frames of the empty stage (BackgroundModel.fit)"
        if not path.is_file():
            raise DataFileError(f"background model {str(path)!r} does not exist; {fix}")
        try:
            with np.load(path, allow_pickle=False) as data:
                version = int(data["format_version"])
                image, sigma, frames = data["image"], data["sigma"], int(data["frames"])
        except (OSError, ValueError, KeyError) as exc:
            raise DataFileError(
                f"background model {str(path)!r} is not a readable model ({exc}); {fix}"
            ) from None
        if version != FORMAT_VERSION:
            raise DataFileError(
                f"background model {str(path)!r} has format {version}, not {FORMAT_VERSION}; {fix}"
            )
        return cls(image.astype(np.float32) / 16, sigma, frames)


class BgDiffConfig(MaskCleanup):
    """Settings of the background-difference segmenter."""

    type: Literal["bgdiff"] = Field("bgdiff", description="'bgdiff': difference against the empty stage")
    background: str | None = Field(
        None, description="background model file (.npz) fitted from frames of the empty stage"
    )
    background_rgb: tuple[int, int, int] | None = Field(
        None, description="a flat background colour [r, g, b] instead of a fitted model"
    )
    calibration: bool = Field(
        False, description="true: read the model's path from the calibration file's background_model"
    )
    threshold_sigma: float = Field(
        6.0,
        gt=0,
        le=100,
        description="foreground where a channel's residual exceeds this many expected spreads",
    )
    min_change: float = Field(
        0.04, ge=0, le=2, description="... and at least this change in log intensity (0.04 = about 4 %)"
    )
    registration_px: float = Field(
        1.5, ge=0, le=20, description="camera shift allowed for at the background's own edges, in pixels"
    )
    remove_drift: bool = Field(
        True, description="remove smooth changes of light (exposure, white balance, vignetting) first"
    )
    blur_px: int = Field(
        5,
        ge=0,
        le=51,
        description="Gaussian blur kernel before differencing, in pixels (made odd); 0 or 1 = off",
    )
    open_px: int = Field(5, ge=0, le=101, description="diameter of the opening kernel in pixels; 0 = off")
    min_area_px: int = Field(200, ge=0, le=10_000_000, description="regions smaller than this are dropped")
    fill_holes_px: int = Field(
        2000,
        ge=0,
        le=10_000_000,
        description="enclosed holes smaller than this many pixels are filled; 0 = off",
    )

    @model_validator(mode="after")
    def _one_source(self) -> BgDiffConfig:
        given = [self.background is not None, self.background_rgb is not None, self.calibration]
        if sum(given) != 1:
            raise ValueError(
                "set exactly one of background (a model file), background_rgb, or calibration: true"
            )
        if self.background_rgb is not None and not all(0 <= c <= 255 for c in self.background_rgb):
            raise ValueError(f"background_rgb values must be 0..255; got {self.background_rgb!r}")
        return self


def model_from_calibration(calibration: Calibration) -> BackgroundModel:
    """The background model the calibration file names (``edge calibrate background`` wrote it)."""
    from edge.calibration_file import FIX_RUN, load_calibration

    if calibration is None:
        raise ConfigError(
            "segmenter.calibration is true but no calibration file was given; set the config's "
            "calibration path (a bgdiff segmenter may instead name a model file in segmenter.background)"
        )
    cal, source, base = load_calibration(calibration)
    entry = cal.background.model if cal.background is not None else None
    if entry is None:
        raise ConfigError(
            f"{source} has no 'background_model' (background.model: the path of a fitted background "
            f"model); {FIX_RUN['background']} (a bgdiff segmenter may instead set segmenter.background)"
        )
    return BackgroundModel.load(base / entry)


@register_segmenter("bgdiff")
class BgDiffSegmenter(Segmenter):
    """Foreground = pixels that differ from the background model beyond its measured noise."""

    config_model = BgDiffConfig

    def __init__(self, config: BgDiffConfig, model: BackgroundModel | None = None) -> None:
        super().__init__(config)
        if model is None:
            if config.background_rgb is not None:
                model = BackgroundModel.constant(config.background_rgb)
            elif config.background is not None:
                model = BackgroundModel.load(config.background)
            else:
                raise ConfigError("segmenter.calibration is true but no background model was given")
        self.model = model
        self._constant = model.shape == (1, 1)
        self._blur = config.blur_px | 1
        self._prepared: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    @classmethod
    def from_config(cls, config: StrictModel, *, calibration: Calibration = None) -> BgDiffSegmenter:
        if not isinstance(config, BgDiffConfig):
            raise TypeError(f"BgDiffSegmenter needs a BgDiffConfig; got {type(config).__name__}")
        model = model_from_calibration(calibration) if config.calibration else None
        return cls(config, model)

    def _reference(self, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """The log background at ``shape`` and each pixel's allowed residual (cached per frame size)."""
        if shape not in self._prepared:
            cfg: BgDiffConfig = self.config  # type: ignore[assignment]
            image = self.model.image
            if not self._constant and shape != self.model.shape:
                mh, mw = self.model.shape
                if abs(shape[1] / shape[0] - mw / mh) > 0.02:
                    raise ImageError(
                        f"frame {shape[1]}x{shape[0]} has another aspect than the background model "
                        f"{mw}x{mh}; fit the model again in this camera mode"
                    )
                image = cv2.resize(image, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
            if self._blur > 1 and not self._constant:  # blurred like the frames it is compared with
                image = cv2.GaussianBlur(image, (self._blur, self._blur), 0)
            log_bg = log_image(image)
            spread = np.broadcast_to(self.model.sigma, log_bg.shape).astype(np.float32)
            if not self._constant and cfg.registration_px > 0:
                shift = np.float32(cfg.registration_px) * edge_strength(log_bg)
                spread = np.sqrt(spread * spread + shift * shift)
            limit = np.maximum(np.float32(cfg.threshold_sigma) * spread, np.float32(cfg.min_change))
            self._prepared[shape] = (log_bg, limit.astype(np.float32))
        return self._prepared[shape]

    def _raw_mask(self, frame_rgb: np.ndarray) -> np.ndarray:
        cfg: BgDiffConfig = self.config  # type: ignore[assignment]
        if self._blur > 1:
            frame_rgb = cv2.GaussianBlur(frame_rgb, (self._blur, self._blur), 0)
        log_bg, limit = self._reference(frame_rgb.shape[:2])
        diff = log_image(frame_rgb) - log_bg
        if cfg.remove_drift and not self._constant:
            diff -= drift_surface(diff)
        return (np.abs(diff) > limit).any(axis=2).astype(np.uint8) * np.uint8(255)


def fit_background_files(paths: Sequence[str | Path]) -> BackgroundModel:
    """Fit a :class:`BackgroundModel` from image files of the empty stage."""
    from edge.imagefile import read_image

    if not paths:
        raise DataFileError("no frames of the empty stage were given; pass image files of the empty stage")
    return BackgroundModel.fit([read_image(p) for p in paths])


def describe(model: BackgroundModel) -> dict[str, Any]:
    """Summary figures of a model for reports."""
    return {
        "frames": model.frames,
        "size": [model.shape[1], model.shape[0]],
        "sigma": [round(float(s), 3) for s in model.sigma],
        "mean_rgb": [round(float(c), 1) for c in model.image.reshape(-1, 3).mean(axis=0)],
    }
