"""The daemon's configuration: one YAML file validated by :class:`EdgeConfig`.

Sections: ``camera`` and ``segmenter`` (each backend's own model, chosen by ``type``), ``engine``
(runtime, precision, threads, model set), ``recognition``, ``capture`` (views per part), ``sorting``
(rules -> bins), ``rig`` (pins and devices), ``presence`` (when a part is on the turntable),
``clearing``, ``data`` (decision record), ``timeouts``, plus ``memory_budget_mb``, ``calibration``,
``autostart`` and ``poweroff_on_shutdown``. :func:`load_edge_config` reads a file and resolves
relative paths against the file's folder, so a config works from any working directory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from edge.camera import camera_config_type
from edge.config import MAX_ERRORS_SHOWN, StrictModel, load_config, preview, short_name
from edge.errors import ConfigError
from edge.prior import DEFAULT_STRENGTH
from edge.rig import RigConfig
from edge.segment import segmenter_config_type

if TYPE_CHECKING:  # the unions spelled out for static checkers
    from edge.camera import CameraConfig
    from edge.segment import SegmenterConfig
else:  # built at import from the backend modules (light imports)
    CameraConfig = camera_config_type()
    SegmenterConfig = segmenter_config_type()

#: Path-valued fields of camera and segmenter backends, resolved against the config's folder.
_BACKEND_PATH_FIELDS = ("path", "ldraw", "frames", "parts_file", "model", "sidecar")


class EngineSettings(StrictModel):
    """Which exported network runs, and how."""

    runtime: Literal["onnxruntime", "litert"] = Field(
        default="onnxruntime", description="inference runtime: onnxruntime or litert"
    )
    precision: Literal["fp32", "fp16", "int8"] = Field(
        default="int8",
        description="which file of the model set: fp32, fp16 or int8 (smallest, fastest on the Pi)",
    )
    threads: int = Field(
        default_factory=lambda: max(1, min(os.cpu_count() or 1, 4)),
        ge=1,
        le=4,
        description="inference threads, 1..4; unset: the machine's cores, at most 4 (the Pi 5 has 4)",
    )
    model_set: Path = Field(
        default=Path("models/default"),
        description="model set folder holding manifest.json (relative to the config file's folder)",
    )


class RecognitionSettings(StrictModel):
    """How engine outputs become a decision (see :mod:`edge.recognize`)."""

    mode: Literal["classifier", "vector", "hybrid"] = Field(
        default="classifier", description="classifier, vector (embedding index) or hybrid"
    )
    threshold: float = Field(
        default=0.6, gt=0.0, le=1.0, description="minimum fused classifier probability to sort a part, (0, 1]"
    )
    vector_threshold: float = Field(
        default=0.7, gt=0.0, le=1.0, description="minimum fused similarity for a vector answer, (0, 1]"
    )
    rig_threshold: float | None = Field(
        default=None,
        gt=0.0,
        le=1.0,
        description="fused similarity at which a part enrolled on this rig (edge enroll) is named from "
        "its own views before anything else, (0, 1]; unset: the calibration file's fit (edge enrolled "
        "--fit-threshold --save), else vector_threshold",
    )
    k: int = Field(
        default=5, ge=1, le=100, description="neighbours per view and length of the top-k lists, 1..100"
    )
    fusion: Literal["mean_log_prob", "mean_prob", "max"] = Field(
        default="mean_log_prob", description="how views are fused: mean_log_prob, mean_prob or max"
    )
    size_prior: bool = Field(
        default=True,
        description="weigh the classifier's answer by the part's measured footprint (edge/size.py) when "
        "the calibration file has a scale (edge calibrate scale) and the model set has footprints "
        "(trainer footprints); the camera should look (nearly) straight down",
    )
    size_sigma: float = Field(
        default=0.15,
        ge=0.01,
        le=2.0,
        description="relative spread of a measured footprint for the size prior (0.15: a side within "
        "about 15% of the part's is as expected)",
    )
    part_prior: Literal["none", "popularity"] | Path = Field(
        default="popularity",
        description="weigh the classifier's answer by how common each part is (edge/prior.py): none; "
        "popularity (the default: the model set's ranking, trainer popularity; weight 1 / rank, raised "
        "to part_prior_strength; a model set without ranks runs without it, with a warning); or a parts file "
        "(relative to the config): one part per line, most common first, or 'PART COUNT' lines, or a "
        "CSV with part and quantity columns such as a set's inventory",
    )
    part_prior_strength: float = Field(
        default=DEFAULT_STRENGTH,
        ge=0.0,
        le=3.0,
        description="power the part prior's weights are raised to, 0..3 (0.25, the default: a gentle "
        "prior, 1 / rank ** 0.25 for popularity; 1: the weights as given, e.g. a set's counts)",
    )


class AdaptiveViews(StrictModel):
    """Stop taking views of a part once the views so far agree confidently (see :mod:`edge.views`)."""

    min_views: int = Field(
        default=1, ge=1, le=16, description="views always taken before stopping early, 1..capture.views"
    )
    threshold: float = Field(
        gt=0.0,
        le=1.0,
        description="stop once the fused part probability times the fused colour probability reaches "
        "this and the part would be sorted, (0, 1]; chosen per model set "
        "(benchmarks/adaptive_views.py --choose)",
    )


class CaptureSettings(StrictModel):
    """The views taken of each part while the turntable turns."""

    views: int = Field(
        default=4, ge=1, le=16, description="camera views per part (with adaptive: at most), 1..16"
    )
    angle_deg: float | None = Field(
        default=None,
        gt=0.0,
        lt=360.0,
        description="turntable turn between views in degrees; unset = 360 / views",
    )
    settle_s: float = Field(
        default=0.0, ge=0.0, le=5.0, description="seconds to wait after each turn before capturing, 0..5"
    )
    adaptive: AdaptiveViews | None = Field(
        default=None,
        description="{min_views, threshold}: stop turning once the fused decision is confident; "
        "unset = always take all views",
    )
    overlap: bool = Field(
        default=False,
        description="recognise each view while the turntable turns to the next (one engine run per "
        "view); false: one engine run for all views after the last one (or per view with adaptive)",
    )

    @model_validator(mode="after")
    def _check_min_views(self) -> CaptureSettings:
        if self.adaptive is not None and self.adaptive.min_views > self.views:
            raise ValueError(
                f"adaptive.min_views {self.adaptive.min_views!r} is more than views {self.views!r}; "
                "lower min_views or raise views"
            )
        return self

    @property
    def step_deg(self) -> float:
        """Degrees the turntable turns between two views."""
        return self.angle_deg if self.angle_deg is not None else 360.0 / self.views


class SortRule(StrictModel):
    """One routing rule: every criterion given must match (lists match any of their entries)."""

    part: list[str] | None = Field(default=None, description="part numbers, e.g. ['3001', '3003']")
    color: list[int] | None = Field(
        default=None, description="Rebrickable colour ids or names, e.g. [4, 'Blue'] (see `edge colors`)"
    )
    category: list[str] | None = Field(
        default=None,
        description="part category names, e.g. ['Plate'] (from the manifest's categories or categories_file)",
    )
    bin: str = Field(min_length=1, description="chute bin the matching parts go to (a rig.chute.bins name)")

    @field_validator("part", "category", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str | int) and not isinstance(value, bool) else value

    @field_validator("color", mode="before")
    @classmethod
    def _colour_ids(cls, value: Any) -> Any:
        from edge.colors import color_by_name, get_color
        from edge.errors import UnknownColorError

        if value is None:
            return None
        items = value if isinstance(value, list | tuple) else [value]
        ids = []
        for item in items:
            try:
                if isinstance(item, int) and not isinstance(item, bool):
                    ids.append(get_color(item).id)
                elif isinstance(item, str) and item.strip().lstrip("+-").isdigit():
                    ids.append(get_color(int(item)).id)
                elif isinstance(item, str):
                    ids.append(color_by_name(item).id)
                else:
                    raise ValueError(f"colour {item!r} must be a Rebrickable id or a colour name")
            except UnknownColorError as exc:  # a KeyError: pydantic only wraps ValueErrors
                raise ValueError(str(exc)) from None
        return ids

    @field_validator("bin", mode="before")
    @classmethod
    def _bin_name(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _has_criterion(self) -> SortRule:
        if not (self.part or self.color or self.category):
            raise ValueError("a rule needs at least one of part, color or category (non-empty)")
        return self


class SortingSettings(StrictModel):
    """Rules from part, colour or category to bin; first match wins."""

    rules: list[SortRule] = Field(default_factory=list, description="ordered routing rules; first match wins")
    default_bin: str = Field(
        default="0", min_length=1, description="bin for recognised parts that no rule matches"
    )
    unknown_bin: str | None = Field(
        default=None, description="bin for unknown and low-confidence parts; unset = reject_bin"
    )
    reject_bin: str = Field(
        default="0",
        min_length=1,
        description="bin for errors and two parts at once (and unknown parts by default)",
    )
    categories_file: Path | None = Field(
        default=None,
        description="CSV (part_num,category) adding part categories the model set lacks; optional",
    )
    route_by: Literal["part", "bin"] = Field(
        default="part",
        description="part: route the recognised part (unknown and low-confidence parts go to the "
        "unknown bin); bin: route to the bin the fused part and colour probabilities give the most "
        "probability, when that reaches bin_threshold (unsure between two red plates: still 'red')",
    )
    bin_threshold: float = Field(
        default=0.75, gt=0.0, le=1.0, description="route_by bin: least bin probability to route, (0, 1]"
    )

    @field_validator("default_bin", "unknown_bin", "reject_bin", mode="before")
    @classmethod
    def _bin_name(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class PresenceSettings(StrictModel):
    """When a part counts as lying on the turntable, judged from the frames themselves."""

    method: Literal["auto", "mask", "difference"] = Field(
        default="auto",
        description="mask: segmenter mask beyond the empty turntable's; difference: pixels changed from "
        "the empty frame; auto: mask unless the segmenter is 'none'",
    )
    min_area_px: int = Field(
        default=150, ge=1, le=10_000_000, description="part pixels needed to count as present, 1..10000000"
    )
    stable_frames: int = Field(
        default=3,
        ge=1,
        le=100,
        description="consecutive frames that must agree (part still, or turntable empty)",
    )
    stable_iou: float = Field(
        default=0.8,
        ge=0.0,
        le=1.0,
        description="mask overlap (IoU) between frames for a part to count as still",
    )
    diff_level: int = Field(
        default=30,
        ge=1,
        le=255,
        description="difference method: channel change that counts as changed, 1..255",
    )
    poll_s: float = Field(
        default=0.05, ge=0.0, le=5.0, description="seconds between frames while waiting, 0..5"
    )


class ClearingSettings(StrictModel):
    """How a sorted part leaves the turntable on the real rig (the sim removes it itself)."""

    sweep_deg: float = Field(
        default=360.0,
        ge=0.0,
        le=3600.0,
        description="turntable turn that carries the part past the sweeper into the chute; 0 = by hand",
    )


class DataSettings(StrictModel):
    """Where decisions and crops are kept."""

    db: Path = Field(
        default=Path("data/record.db"), description="SQLite decision record (relative to the config)"
    )
    crops_dir: Path = Field(
        default=Path("data/crops"), description="folder of kept crops (relative to the config)"
    )
    keep_crops: Literal["uncertain", "all", "none"] = Field(
        default="uncertain", description="crops to keep: uncertain (unknown/low confidence), all or none"
    )
    user_index: Path = Field(
        default=Path("data/user_index.npz"),
        description="embedding index of parts enrolled with `edge enroll` (relative to the config); its "
        "record (.json) and crops (_crops/) lie beside it; searched with the model set's in vector/hybrid",
    )


class TimeoutSettings(StrictModel):
    """How long the daemon waits before calling something a fault, and how it retries."""

    clear_s: float = Field(
        default=15.0,
        gt=0.0,
        le=600.0,
        description="seconds for the turntable to be empty after clearing, then error",
    )
    camera_retry_s: float = Field(
        default=0.5,
        gt=0.0,
        le=60.0,
        description="first wait before reconnecting a lost camera; doubles each try",
    )
    camera_retry_max_s: float = Field(
        default=30.0, gt=0.0, le=600.0, description="longest wait between camera reconnection tries"
    )
    bad_frame_retries: int = Field(
        default=3, ge=0, le=100, description="corrupt frames skipped per view before the part is abandoned"
    )


class EdgeConfig(StrictModel):
    """The whole ``edge run`` configuration (see the module docstring)."""

    camera: CameraConfig = Field(
        description="camera: type picamera2 | opencv | folder | sim, and its settings"
    )
    segmenter: SegmenterConfig = Field(description="background removal: type none | hsv | u2net | mobileseg")
    engine: EngineSettings = Field(
        default_factory=EngineSettings, description="inference engine and model set"
    )
    recognition: RecognitionSettings = Field(
        default_factory=RecognitionSettings, description="recognition mode and thresholds"
    )
    capture: CaptureSettings = Field(default_factory=CaptureSettings, description="views per part")
    sorting: SortingSettings = Field(default_factory=SortingSettings, description="routing rules and bins")
    rig: RigConfig = Field(
        default_factory=RigConfig, description="GPIO backend, turntable, chute, light, panel"
    )
    presence: PresenceSettings = Field(default_factory=PresenceSettings, description="part detection")
    clearing: ClearingSettings = Field(default_factory=ClearingSettings, description="removing a sorted part")
    data: DataSettings = Field(default_factory=DataSettings, description="decision record and crops")
    timeouts: TimeoutSettings = Field(default_factory=TimeoutSettings, description="fault timeouts, retries")
    memory_budget_mb: float = Field(
        default=512.0, ge=16.0, le=65536.0, description="resident memory the daemon may use, MB, 16..65536"
    )
    calibration: Path | None = Field(
        default=None, description="rig calibration file (JSON/YAML) for segmenter/camera 'calibration: true'"
    )
    color_correction: bool = Field(
        default=False,
        description="true: correct each frame's colours with the calibration file's color section "
        "(white balance + 3x3 matrix, `edge calibrate color`) before recognition",
    )
    drift_correction: bool = Field(
        default=False,
        description="true: per view, scale the colours so the stage around the part looks as it did at "
        "colour calibration (undoes exposure/white-balance drift; needs the calibration's color section)",
    )
    autostart: bool = Field(
        default=False, description="start sorting at once; false: wait for the START button"
    )
    poweroff_on_shutdown: bool = Field(
        default=False,
        description="a long STOP press powers the Pi off (systemctl poweroff); never in simulation",
    )

    def bin_problems(self) -> list[str]:
        """Sorting bins that are not chute bins, as ``"sorting.rules[1].bin 'red'"`` (empty: all fine).

        Checked by :func:`load_edge_config` rather than a model validator, whose message would have
        to quote the whole config as the bad value.
        """
        names = self.bin_names
        s = self.sorting
        wanted = [("sorting.default_bin", s.default_bin), ("sorting.reject_bin", s.reject_bin)]
        if s.unknown_bin is not None:
            wanted.append(("sorting.unknown_bin", s.unknown_bin))
        wanted += [(f"sorting.rules[{i}].bin", r.bin) for i, r in enumerate(s.rules)]
        return [f"{where} {preview(name)}" for where, name in wanted if name not in names]

    def check_bins(self, source: str = "<config>") -> None:
        """Raise :class:`ConfigError` naming every sorting bin the chute lacks."""
        bad = self.bin_problems()
        if bad:
            more = len(bad) - MAX_ERRORS_SHOWN
            listed = ", ".join(bad[:MAX_ERRORS_SHOWN]) + (f" and {more} more" if more > 0 else "")
            names = ", ".join(short_name(n) for n in self.bin_names[:MAX_ERRORS_SHOWN])
            raise ConfigError(
                f"{source}: {listed} not among the chute's bins ({names}); "
                "use one of those or add it to rig.chute.bins"
            )

    @property
    def bin_names(self) -> list[str]:
        """The chute's bin names in config order (list bins are named '0', '1', ...)."""
        bins = self.rig.chute.bins
        return list(bins) if isinstance(bins, dict) else [str(i) for i in range(len(bins))]


def _resolve(path: Path | str | None, base: Path) -> Any:
    if path is None:
        return None
    p = Path(path).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def resolve_paths(cfg: EdgeConfig, base: Path) -> EdgeConfig:
    """A copy of ``cfg`` with every relative path made absolute against ``base``."""
    base = Path(base).resolve()

    def backend(model: Any) -> Any:
        update = {}
        for name in _BACKEND_PATH_FIELDS:
            value = getattr(model, name, None)
            if isinstance(value, str | Path) and value:
                kind = type(value)
                update[name] = kind(_resolve(value, base))
        return model.model_copy(update=update)

    return cfg.model_copy(
        update={
            "camera": backend(cfg.camera),
            "segmenter": backend(cfg.segmenter),
            "engine": cfg.engine.model_copy(update={"model_set": _resolve(cfg.engine.model_set, base)}),
            "recognition": cfg.recognition.model_copy(
                update={"part_prior": _resolve(cfg.recognition.part_prior, base)}
            )
            if isinstance(cfg.recognition.part_prior, Path)
            else cfg.recognition,
            "sorting": cfg.sorting.model_copy(
                update={"categories_file": _resolve(cfg.sorting.categories_file, base)}
            ),
            "data": cfg.data.model_copy(
                update={
                    "db": _resolve(cfg.data.db, base),
                    "crops_dir": _resolve(cfg.data.crops_dir, base),
                    "user_index": _resolve(cfg.data.user_index, base),
                }
            ),
            "calibration": _resolve(cfg.calibration, base),
        }
    )


def load_edge_config(path: str | Path) -> EdgeConfig:
    """Read and validate an ``edge`` config file; relative paths are taken from the file's folder.

    Raises:
        ConfigError: the file is missing, not YAML, or holds a bad setting (file, key path, value, fix).
    """
    path = Path(path)
    cfg = load_config(EdgeConfig, path)
    cfg.check_bins(str(path))
    return resolve_paths(cfg, path.parent)
