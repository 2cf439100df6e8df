"""The rig calibration file: its schema, reader and writer, in one place.

One JSON (or YAML) file per rig, written by ``edge calibrate ...`` (the :mod:`calibration` package)
and read by the segmenters, cameras and pipeline that have ``calibration: true``. Sections, each
optional and each stamped with the time it was measured:

* ``background``: the HSV range of the empty stage and/or the path of a fitted per-pixel background
  model (``.npz``, relative to the calibration file's folder);
* ``color``: white-balance gains, a 3x3 colour-correction matrix (both in linear sRGB) and the
  Delta E 2000 of each reference patch after correction;
* ``camera``: the locked exposure time, analogue gain, white-balance gains (and lens position);
* ``turntable``: steps per turn and the zero offset in steps;
* ``scale``: pixels per millimetre on the stage, fitted to views of a reference part of known size
  (``edge calibrate scale``), for the size prior (:mod:`edge.size`);
* ``recognition``: the ``rig_threshold`` fitted to the views enrolled on this rig (``edge enrolled
  --fit-threshold --save``), with the model that embedded them and how many there were.

The file carries ``format_version``; files of the older unversioned layout (top-level
``background_hsv``, ``background_model``, ``camera``) are read and migrated in memory. Writes are
atomic (:mod:`edge.fileio`): a power cut leaves the old file or the new one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import cv2
import numpy as np
import yaml
from pydantic import Field, model_validator

from edge.config import StrictModel, parse_yaml, read_text_file, validate_config
from edge.errors import ConfigError, DataFileError
from edge.fileio import write_atomic
from edge.manifest import MAX_TILT_DEG

#: The calibration file format this code reads and writes.
CALIBRATION_FORMAT_VERSION = 1
#: What a message says to do about a missing or bad section.
FIX_RUN = {
    "background": "run `edge calibrate background`",
    "color": "run `edge calibrate color`",
    "camera": "run `edge calibrate camera` or set the camera's exposure/gain in the config",
    "turntable": "run `edge calibrate turntable`",
    "recognition": "run `edge enrolled --fit-threshold --save`",
    "scale": "run `edge calibrate scale --part PART IMAGE...` with views of a part of known size",
}

Hue = Annotated[int, Field(ge=0, le=179, description="OpenCV hue, 0..179 (degrees / 2)")]
Sat = Annotated[int, Field(ge=0, le=255, description="saturation, 0..255")]
Val = Annotated[int, Field(ge=0, le=255, description="value (brightness), 0..255")]
#: An OpenCV HSV colour: hue 0..179, saturation and value 0..255.
HsvTriplet = tuple[Hue, Sat, Val]
Gain = Annotated[float, Field(ge=0.0, le=32.0, description="white-balance gain (libcamera allows 0..32)")]
Positive = Annotated[float, Field(gt=0.0, le=100.0, description="a gain, (0, 100]")]
Channel = Annotated[float, Field(ge=0.0, le=255.0, description="an sRGB channel, 0..255")]
Coefficient = Annotated[float, Field(ge=-100.0, le=100.0, description="matrix entry, -100..100")]


class HsvThresholds(StrictModel):
    """An inclusive HSV range; hue wraps around red when ``lower[0] > upper[0]``."""

    lower: HsvTriplet = Field(description="lowest [h, s, v] that counts as background")
    upper: HsvTriplet = Field(description="highest [h, s, v] that counts as background")

    @model_validator(mode="after")
    def _ordered(self) -> HsvThresholds:
        for i, name in ((1, "saturation"), (2, "value")):
            if self.lower[i] > self.upper[i]:
                raise ValueError(
                    f"lower {name} {self.lower[i]} exceeds upper {name} {self.upper[i]}; swap them "
                    "(only hue may wrap around)"
                )
        return self

    def in_range(self, hsv: np.ndarray) -> np.ndarray:
        """(H, W) uint8 mask, 255 where an (H, W, 3) uint8 HSV image lies inside the range."""
        (hl, sl, vl), (hu, su, vu) = self.lower, self.upper
        if hl <= hu:
            return cv2.inRange(hsv, np.array([hl, sl, vl], np.uint8), np.array([hu, su, vu], np.uint8))
        high = cv2.inRange(hsv, np.array([hl, sl, vl], np.uint8), np.array([179, su, vu], np.uint8))
        low = cv2.inRange(hsv, np.array([0, sl, vl], np.uint8), np.array([hu, su, vu], np.uint8))
        return cv2.bitwise_or(high, low)

    @classmethod
    def from_calibration(cls, data: Any, source: str = "calibration") -> HsvThresholds:
        """The background HSV range of calibration data (a file, a mapping or a CalibrationFile)."""
        cal, source, _ = load_calibration(data, source)
        if cal.background is None or cal.background.hsv is None:
            raise ConfigError(
                f"{source}: no 'background_hsv' section (background.hsv); {FIX_RUN['background']}, or set "
                "segmenter.background_lower/background_upper and calibration: false"
            )
        return cal.background.hsv

    @classmethod
    def load(cls, path: str | Path) -> HsvThresholds:
        """The background HSV range of a calibration file (JSON or YAML)."""
        return cls.from_calibration(Path(path))


class Section(StrictModel):
    """What every section has: when it was measured."""

    timestamp: datetime | None = Field(
        None, description="when this section was measured (ISO 8601, UTC); unset only in old files"
    )


class BackgroundSection(Section):
    """The empty stage: an HSV range for ``hsv`` and/or a fitted model for ``bgdiff``."""

    hsv: HsvThresholds | None = Field(
        default=None, description="HSV range of the empty stage (hsv segmenter)"
    )
    model: str | None = Field(
        None, description="background model (.npz) for the bgdiff segmenter, relative to this file"
    )
    frames: int | None = Field(None, ge=0, le=100_000, description="frames of the empty stage fitted")
    keyed_share: float | None = Field(
        None, ge=0.0, le=1.0, description="share of the empty stage's pixels the HSV range keys out"
    )

    @model_validator(mode="after")
    def _something(self) -> BackgroundSection:
        if self.hsv is None and self.model is None:
            raise ValueError("a background section needs hsv and/or model")
        return self


class PatchError(StrictModel):
    """One reference brick of the colour calibration and its remaining error."""

    color_id: int = Field(ge=-1, le=100_000, description="Rebrickable colour id of the brick")
    name: str = Field(description="colour name")
    measured_rgb: tuple[float, float, float] = Field(description="median sRGB the camera saw, 0..255")
    delta_e_before: float = Field(ge=0.0, description="CIEDE2000 to the reference before correction")
    delta_e: float = Field(ge=0.0, description="CIEDE2000 to the reference after correction")
    clipped: float = Field(
        0.0, ge=0.0, le=1.0, description="share of the brick's pixels with a channel at 250+ (over-exposed)"
    )


class ColorSection(Section):
    """Colour correction, applied in linear sRGB: ``rgb' = matrix @ (white_balance * rgb)``."""

    white_balance: tuple[Positive, Positive, Positive] = Field(description="gains [r, g, b], linear")
    matrix: tuple[
        tuple[Coefficient, Coefficient, Coefficient],
        tuple[Coefficient, Coefficient, Coefficient],
        tuple[Coefficient, Coefficient, Coefficient],
    ] = Field(description="3x3 colour-correction matrix (rows: output r, g, b), linear")
    patches: list[PatchError] = Field(default_factory=list, description="per reference brick: Delta E 2000")
    background_rgb: tuple[Channel, Channel, Channel] | None = Field(
        None,
        description="median sRGB 0..255 of the stage around the reference bricks, uncorrected: the "
        "drift correction's reference",
    )

    @property
    def mean_delta_e(self) -> float | None:
        """Mean CIEDE2000 over the patches after correction (None without patches)."""
        return float(np.mean([p.delta_e for p in self.patches])) if self.patches else None


class CameraSection(Section):
    """The camera's image settings, fixed while sorting."""

    exposure_us: int = Field(ge=1, le=10_000_000, description="exposure time in microseconds")
    gain: float = Field(ge=1.0, le=64.0, description="analogue gain")
    colour_gains: tuple[Gain, Gain] = Field(description="white-balance gains [red, blue]")
    lens_position: float | None = Field(
        None, ge=0.0, le=32.0, description="lens position in dioptres (0 = infinity); autofocus cameras"
    )


class TurntableSection(Section):
    """The turntable's geometry as measured on the rig."""

    steps_per_turn: int = Field(ge=4, le=1_000_000, description="(half-)steps for one full turn")
    zero_offset_steps: int = Field(
        0, ge=-1_000_000, le=1_000_000, description="steps from the motor's start to the view zero"
    )


class RecognitionSection(Section):
    """The rig's ``recognition.rig_threshold``, fitted to the views enrolled on it
    (:func:`edge.enroll.fit_rig_threshold`). Used while the config leaves the setting unset, and
    only with the model that embedded those views."""

    rig_threshold: float = Field(gt=0.0, le=1.0, description="the fitted rig_threshold, (0, 1]")
    model: str = Field(
        min_length=1,
        description="the model the enrolled views were embedded with (edge.enroll.model_key: manifest "
        "sha256 and runtime/precision); another model set ignores the fit",
    )
    views: int = Field(ge=2, description="enrolled views the fit saw")
    parts: int = Field(ge=2, description="enrolled parts the fit saw")


class ScaleSection(Section):
    """Pixels per millimetre on the stage (:func:`edge.size.fit_scale`), from views of a reference
    part whose footprints the model set knows."""

    px_per_mm: float = Field(ge=0.05, le=200.0, description="pixels per millimetre on the stage")
    part: str = Field(min_length=1, max_length=100, description="the reference part")
    views: int = Field(ge=1, description="views of it the fit measured")
    tilt_deg: float = Field(
        0.0,
        ge=0.0,
        le=MAX_TILT_DEG,
        description="the camera's tilt from vertical in degrees the fit assumed (0: straight down); "
        "the size prior uses the model set's footprints for this tilt",
    )


SECTIONS = ("background", "color", "camera", "turntable", "recognition", "scale")


class CalibrationFile(StrictModel):
    """The whole calibration file (see the module docstring)."""

    format_version: Literal[1] = Field(default=1, description="calibration file format version (1)")
    background: BackgroundSection | None = Field(default=None, description="the empty stage")
    color: ColorSection | None = Field(default=None, description="white balance and colour-correction matrix")
    camera: CameraSection | None = Field(default=None, description="locked exposure, gain, colour gains")
    turntable: TurntableSection | None = Field(default=None, description="steps per turn, zero offset")
    recognition: RecognitionSection | None = Field(
        default=None, description="rig_threshold fitted to the views enrolled on this rig"
    )
    scale: ScaleSection | None = Field(default=None, description="pixels per millimetre on the stage")

    def ages(self, now: datetime | None = None) -> dict[str, float | None]:
        """Seconds since each present section was measured (None: no timestamp)."""
        now = now or datetime.now(UTC)
        out: dict[str, float | None] = {}
        for name in SECTIONS:
            section = getattr(self, name)
            if section is not None:
                ts = section.timestamp
                if ts is not None and ts.tzinfo is None:
                    ts = ts.replace(tzinfo=UTC)
                out[name] = None if ts is None else (now - ts).total_seconds()
        return out

    def to_data(self) -> dict[str, Any]:
        """Plain JSON-able data, without unset sections."""
        return self.model_dump(mode="json", exclude_none=True)


def now_utc() -> datetime:
    """The timestamp sections get: now, UTC, whole seconds."""
    return datetime.now(UTC).replace(microsecond=0)


def _migrate(data: Mapping[str, Any]) -> dict[str, Any]:
    """The unversioned layout (background_hsv, background_model, camera at the top) as version 1."""
    old = dict(data)
    out: dict[str, Any] = {"format_version": CALIBRATION_FORMAT_VERSION}
    background = {}
    if "background_hsv" in old:
        background["hsv"] = old.pop("background_hsv")
    if "background_model" in old:
        background["model"] = old.pop("background_model")
    if background:
        out["background"] = background
    for name in SECTIONS:
        if name in old:
            out[name] = old.pop(name)
    # Anything else was never read by edge (notes, fit figures): dropped on migration.
    return out


def parse_calibration(data: Any, source: str = "calibration") -> CalibrationFile:
    """Validate parsed calibration data (either layout); errors name ``source`` and the fix."""
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{source}: a calibration must be a mapping at the top level; {FIX_RUN['background']}"
        )
    if "format_version" not in data:
        data = _migrate(data)
    version = data.get("format_version")
    if version != CALIBRATION_FORMAT_VERSION:
        raise ConfigError(
            f"{source}: calibration format_version {version!r} is not {CALIBRATION_FORMAT_VERSION}; "
            "calibrate again with this version of edge"
        )
    return validate_config(CalibrationFile, dict(data), source)


def read_calibration(path: str | Path) -> CalibrationFile:
    """Read and validate a calibration file (JSON, or YAML which JSON is a subset of)."""
    path = Path(path)
    source = f"calibration file {str(path)!r}"
    # Read like a config file: at most 1 MB of UTF-8, no YAML aliases, no deep nesting.
    text = read_text_file(
        path,
        "calibration file",
        missing=DataFileError,
        fix="run the rig calibration first (`edge calibrate background`) or pass the file it wrote",
    )
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{source} is not valid JSON at line {exc.lineno}: {exc.msg}; fix it or calibrate again"
            ) from None
        except RecursionError:
            raise ConfigError(f"{source} is nested deeper than JSON reading allows; check the file") from None
    else:
        data = parse_yaml(text, source)
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"calibration file {str(path)!r} must hold a mapping at the top level; calibrate again"
        )
    return parse_calibration(data, f"calibration file {str(path)!r}")


def load_calibration(data: Any, source: str = "calibration") -> tuple[CalibrationFile, str, Path]:
    """Calibration from a file path, parsed mapping or :class:`CalibrationFile`.

    Returns the calibration, how messages should name it, and the folder relative paths in it
    (the background model) are taken from: the file's folder, else the working directory.
    """
    if isinstance(data, CalibrationFile):
        return data, source, Path.cwd()
    if isinstance(data, str | Path):
        path = Path(data)
        return read_calibration(path), str(path), path.parent
    return parse_calibration(data, source), source, Path.cwd()


def write_calibration(path: str | Path, calibration: CalibrationFile) -> None:
    """Write ``calibration`` atomically: JSON for ``.json`` files, YAML otherwise."""
    path = Path(path)
    data = calibration.to_data()
    if path.suffix.lower() == ".json":
        text = json.dumps(data, indent=2) + "\n"
    else:
        text = yaml.safe_dump(data, sort_keys=False)
    write_atomic(path, text)


def update_calibration(path: str | Path, **sections: Any) -> CalibrationFile:
    """Replace the named sections of the file at ``path`` (created if missing) and write it back.

    A section given as a mapping without a timestamp is stamped now. Returns what was written.
    """
    path = Path(path)
    current = read_calibration(path) if path.exists() else CalibrationFile()
    data = current.to_data()
    for name, value in sections.items():
        if name not in SECTIONS:
            raise ValueError(f"unknown calibration section {name!r}; expected one of {SECTIONS}")
        if isinstance(value, StrictModel):
            value = value.model_dump(mode="json", exclude_none=True)
        if value is not None:
            value = {**value, "timestamp": value.get("timestamp") or now_utc().isoformat()}
        data[name] = value
    updated = parse_calibration(data, f"calibration file {str(path)!r}")
    write_calibration(path, updated)
    return updated


def describe_age(seconds: float | None) -> str:
    """``"3 days old"``, ``"5 h old"``... or ``"age unknown"``."""
    if seconds is None:
        return "age unknown (no timestamp)"
    seconds = max(seconds, 0.0)
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} old"
    return f"{seconds:.0f} s old"


#: Share of a reference brick's pixels that may be clipped before the colour calibration warns.
CLIPPED_SHARE = 0.02


def clipped_patches(patches: list[PatchError]) -> list[PatchError]:
    """The reference bricks clipped beyond :data:`CLIPPED_SHARE`."""
    return [p for p in patches if p.clipped > CLIPPED_SHARE]


def clipping_advice(patches: list[PatchError]) -> str:
    """Why clipped reference bricks matter and what to do, naming them."""
    named = ", ".join(f"{p.name} ({p.color_id}) {p.clipped:.0%}" for p in patches)
    return (
        f"reference brick pixels clipped by over-exposure: {named}. Light the camera clips is lost before "
        "any correction, so bright parts lose their colour too: lower the exposure (camera.exposure_us, or "
        "`edge calibrate camera` with less light) and photograph the bricks again"
    )


def check_calibration(
    path: str | Path,
    *,
    stale_days: float = 90.0,
    steps_per_turn: int | None = None,
    model_key: str | None = None,
) -> list[tuple[str, str, str]]:
    """``edge check`` lines for a calibration file: validity, each section's age, (given the
    config's ``steps_per_turn``) which steps per turn the rig turns by when they differ, and (given
    the configured model's ``model_key``) whether the fitted rig_threshold belongs to that model."""
    path = Path(path)
    if not path.exists():
        # Not a failure by itself: what needs a section (a calibrated segmenter, the colour
        # corrections) fails its own check, and the rest runs uncalibrated.
        return [
            (
                "WARN",
                "calibration",
                f"{path} is not written yet: the rig runs uncalibrated (no size prior, the config's "
                "steps per turn); each `edge calibrate` step writes its section",
            )
        ]
    try:
        cal = read_calibration(path)
    except (ConfigError, DataFileError) as exc:
        return [("FAIL", "calibration", str(exc))]
    ages = cal.ages()
    if not ages:
        return [("WARN", "calibration", f"{path} is valid but holds no section; {FIX_RUN['background']}")]
    out = [("OK", "calibration", f"{path} (format {cal.format_version}: {', '.join(ages)})")]
    if cal.background is not None and cal.background.model is not None:
        model = path.parent / cal.background.model
        if not model.is_file():
            out.append(
                (
                    "FAIL",
                    "calibration",
                    f"background model {str(model)!r} is missing; {FIX_RUN['background']}",
                )
            )
    measured = cal.turntable.steps_per_turn if cal.turntable is not None else None
    if steps_per_turn is not None and measured is not None and measured != steps_per_turn:
        out.append(
            (
                "OK",
                "calibration turntable",
                f"the rig turns by the {measured} steps per turn measured; the config's "
                f"rig.turntable.steps_per_turn ({steps_per_turn}) is the fallback without this file",
            )
        )
    fit = cal.recognition
    if fit is not None and model_key is not None and fit.model != model_key:
        out.append(
            (
                "WARN",
                "calibration recognition",
                f"rig_threshold {fit.rig_threshold:g} was fitted with another model ({fit.model}; the "
                f"config's is {model_key}), so edge run does not use it; {FIX_RUN['recognition']}",
            )
        )
    if cal.color is not None:
        over = clipped_patches(cal.color.patches)
        if over:
            out.append(("WARN", "calibration color", clipping_advice(over)))
    for name, age in ages.items():
        stale = age is None or age > stale_days * 86400
        level = "WARN" if stale else "OK"
        hint = f"; re-run: {FIX_RUN[name]}" if stale else ""
        out.append((level, f"calibration {name}", describe_age(age) + hint))
    return out
