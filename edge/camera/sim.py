"""``type: sim``: the simulated rig's camera, a turntable that parts arrive on.

It behaves like the rig: told the turntable angle (:meth:`SimSource.set_angle`, or
:meth:`SimSource.follow` a turntable), and told when a part arrives (:meth:`SimSource.next_part`)
and leaves (:meth:`SimSource.remove_part`), ``capture()`` returns the empty turntable when no
part is present and the part at the current angle otherwise, with the ground truth (``part_num``,
``color_id``, ...) in ``Frame.meta``. Two modes:

- live (``ldraw`` set): renders each view with :class:`studio.scene.SceneRenderer` from an LDraw
  library, a parts list and colours, seeded so a run is repeatable. Only this mode needs the
  ``studio`` package, imported when a live stage opens (or ``rig`` is validated), never at module
  level;
- replay (default): plays back rendered or real frames from a folder in the rig's capture layout
  (``manifest.csv`` + images, as ``trainer render --layout real`` writes), default the frames
  shipped under ``edge/data/sim/``. The empty turntable is ``empty.png`` when the folder has one,
  else the mean background of the frames (pixels outside each frame's ``*_mask.png``). A packed
  set (``trainer pack-frames``) stores each view as the window around the part (manifest columns
  ``window_x``/``window_y``): its frame is ``empty.png`` with the window pasted in at that corner.
"""

from __future__ import annotations

import logging
import math
import re
import zlib
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import Field, field_validator

from edge.camera.base import CameraSource, EndOfStream, register_camera
from edge.camera.folder import MANIFEST_NAME, read_manifest
from edge.config import StrictModel, read_text_file, validate_config
from edge.errors import ConfigError, DataFileError, HardwareError, ImageError, MissingDependencyError
from edge.imagefile import read_image

log = logging.getLogger(__name__)

#: Frames shipped with the package for the replay mode.
DEFAULT_FRAMES = Path(__file__).resolve().parents[1] / "data" / "sim"
EMPTY_NAME = "empty.png"


class SimConfig(StrictModel):
    """Settings of the simulated rig's camera."""

    type: Literal["sim"] = Field("sim", description="'sim': the simulated rig's camera")
    ldraw: str | None = Field(
        None, description="LDraw library folder: set it to render live; unset = replay 'frames'"
    )
    parts: list[str] = Field(default_factory=list, description="part numbers that arrive (live mode)")
    parts_file: str | None = Field(
        None, description="text file of part numbers, one a line, # comments (live mode; adds to parts)"
    )
    colors: str | int = Field(
        8, description="colours parts come in: a count of common colours or ids/names '4,15,Black'"
    )
    randomization: Literal["off", "train", "test"] = Field(
        "off", description="live mode's domain randomisation preset (lighting, noise, placement)"
    )
    rig: dict[str, Any] = Field(
        default_factory=dict, description="overrides of studio.scene.RigGeometry (e.g. width, height)"
    )
    supersample: int = Field(1, ge=1, le=4, description="live mode's antialiasing factor (1 = fastest)")
    frames: str | None = Field(
        None, description="replay folder (manifest.csv + images); unset = the frames shipped in edge/data/sim"
    )
    order: Literal["cycle", "random"] = Field(
        "cycle", description="which part arrives next: in list order, or drawn at random (seeded)"
    )
    loop: bool = Field(True, description="replay: start again after the last capture; false: stop there")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="seed of part order, colours and placements")

    @field_validator("colors")
    @classmethod
    def _known_colors(cls, value: str | int) -> str | int:
        from edge.colors import parse_color_list

        parse_color_list(value)  # raises ConfigError (a ValueError) naming the bad entries
        return value

    @field_validator("rig")
    @classmethod
    def _valid_rig(cls, value: dict[str, Any]) -> dict[str, Any]:
        _require_studio("the sim camera's rig settings (live simulation)")
        from studio.scene import RigGeometry

        validate_config(RigGeometry, value, "rig")  # ConfigError lists the bad keys and the known ones
        return value


@dataclass
class Arrival:
    """The part on the turntable: its ground truth and what the stage needs to show it."""

    truth: dict[str, Any]
    key: Any


class Stage(ABC):
    """What the sim camera shows: parts arriving and the turntable seen at an angle."""

    name: str

    @abstractmethod
    def arrive(self, number: int, rng: np.random.Generator) -> Arrival:
        """The ``number``-th part to arrive (drawn with ``rng`` when the order is random)."""

    @abstractmethod
    def view(self, arrival: Arrival, angle_deg: float) -> tuple[np.ndarray, dict[str, Any]]:
        """The part of ``arrival`` seen with the turntable at ``angle_deg``: RGB image, extra meta."""

    @abstractmethod
    def empty(self, angle_deg: float) -> np.ndarray:
        """The turntable without a part."""


@register_camera("sim")
class SimSource(CameraSource):
    """The simulated rig's camera (see the module docstring)."""

    config_model = SimConfig
    config: SimConfig

    def __init__(self, config: SimConfig) -> None:
        super().__init__(config)
        self._stage: Stage | None = None
        self._angle = 0.0
        self._angle_source: Callable[[], float] | None = None
        self._arrival: Arrival | None = None
        self._arrivals = 0
        self._rng = np.random.default_rng(config.seed)

    @property
    def name(self) -> str:
        """E.g. ``"sim camera (replay '/.../edge/data/sim')"``."""
        where = f"live {self.config.ldraw!r}" if self.config.ldraw else f"replay {str(self._frames)!r}"
        return f"sim camera ({where})"

    @property
    def _frames(self) -> Path:
        return Path(self.config.frames).expanduser() if self.config.frames else DEFAULT_FRAMES

    # --- the rig's side ---------------------------------------------------------------------

    @property
    def angle(self) -> float:
        """The turntable angle in degrees [0, 360) the next capture sees."""
        if self._angle_source is not None:
            return float(self._angle_source()) % 360.0
        return self._angle

    def set_angle(self, angle_deg: float) -> None:
        """Tell the camera where the turntable is (stops following a turntable)."""
        if not math.isfinite(angle_deg):
            raise ValueError(f"turntable angle {angle_deg!r} is not a finite number of degrees")
        self._angle_source = None
        self._angle = float(angle_deg) % 360.0

    def follow(self, turntable: Any) -> None:
        """Read the angle at each capture from ``turntable``: an object with ``.angle`` or a callable."""
        if callable(turntable):
            self._angle_source = turntable
        elif hasattr(turntable, "angle"):
            self._angle_source = lambda: float(turntable.angle)
        else:
            raise TypeError(
                f"follow() needs a callable or an object with .angle; got {type(turntable).__name__}"
            )

    @property
    def part(self) -> dict[str, Any] | None:
        """Ground truth of the part on the turntable, or None when it is empty."""
        return dict(self._arrival.truth) if self._arrival else None

    def next_part(self) -> dict[str, Any]:
        """A new part arrives on the turntable (replacing any part there); returns its ground truth."""
        stage = self._require_stage()
        self._arrival = stage.arrive(self._arrivals, self._rng)
        self._arrivals += 1
        return dict(self._arrival.truth)

    def remove_part(self) -> None:
        """The part leaves the turntable (down the chute); captures show it empty again."""
        self._arrival = None

    # --- CameraSource ---------------------------------------------------------------------

    def _require_stage(self) -> Stage:
        if self._stage is None:
            raise HardwareError(f"{self.name} is not open; call open() first or use it in a `with` block")
        return self._stage

    def _open(self) -> None:
        if self.config.ldraw:
            self._stage = LiveStage(self.config)
        else:
            self._stage = ReplayStage(self._frames, self.config.order, self.config.loop)
        # A part already on the turntable stays there across a reconnect, as on the real rig.

    def _close(self) -> None:
        self._stage = None

    def _grab(self) -> tuple[np.ndarray, dict[str, Any]]:
        stage = self._require_stage()
        angle = self.angle
        meta: dict[str, Any] = {"device": self.name, "turntable_angle": angle}
        if self._arrival is None:
            return stage.empty(angle), {**meta, "part_present": False}
        image, extra = stage.view(self._arrival, angle)
        return image, {**meta, "part_present": True, **self._arrival.truth, **extra}


# --- replay ------------------------------------------------------------------------------------


@dataclass
class _Capture:
    """The views of one physical placement: ground truth and (angle, image path) pairs."""

    truth: dict[str, Any]
    views: list[tuple[float, Path]]
    windows: dict[Path, tuple[int, int]] = field(default_factory=dict)  # packed views: top-left corner


class ReplayStage(Stage):
    """Captures read from a folder in the rig's layout; see the module docstring."""

    def __init__(self, folder: Path, order: str = "cycle", loop: bool = True) -> None:
        self.name = f"sim frames {str(folder)!r}"
        self.folder, self.order, self.loop = folder, order, loop
        if not (folder / MANIFEST_NAME).is_file():
            raise DataFileError(
                f"{self.name}: no {MANIFEST_NAME} here; point camera.frames at a folder written by "
                "`trainer render --layout real` (or a rig capture), or set camera.ldraw to render live"
            )
        self.captures = group_captures(folder, read_manifest(folder))
        if not self.captures:
            raise DataFileError(f"{self.name}: {MANIFEST_NAME} lists no image with part_num and angle")
        self._empty: np.ndarray | None = None

    def arrive(self, number: int, rng: np.random.Generator) -> Arrival:
        """The next capture in manifest order (or a random one)."""
        if self.order == "random":
            index = int(rng.integers(len(self.captures)))
        elif number >= len(self.captures) and not self.loop:
            raise EndOfStream(f"{self.name}: all {len(self.captures)} captures replayed; set loop: true")
        else:
            index = number % len(self.captures)
        return Arrival(truth=dict(self.captures[index].truth), key=index)

    def view(self, arrival: Arrival, angle_deg: float) -> tuple[np.ndarray, dict[str, Any]]:
        """The capture's view whose angle is nearest (around the circle) to ``angle_deg``."""
        capture = self.captures[arrival.key]
        angle, path = min(capture.views, key=lambda v: abs((v[0] - angle_deg + 180.0) % 360.0 - 180.0))
        image = read_image(path)
        if path in capture.windows:
            image = paste_window(self.empty(angle_deg), image, capture.windows[path], path)
        return image, {"angle": angle, "path": str(path)}

    def empty(self, angle_deg: float) -> np.ndarray:
        """``empty.png`` if present, else the mean background of every view (cached)."""
        if self._empty is None:
            stored = self.folder / EMPTY_NAME
            paths = [p for c in self.captures for _, p in c.views]
            if stored.is_file():
                self._empty = read_image(stored)
            elif any(c.windows for c in self.captures):
                raise DataFileError(
                    f"{self.name}: the manifest lists packed views (window_x/window_y) but {EMPTY_NAME} "
                    "is missing; restore it (trainer pack-frames writes it) or replay full frames"
                )
            else:
                if not any(p.with_name(f"{p.stem}_mask.png").is_file() for p in paths):
                    log.warning(
                        "%s: no %s and no *_mask.png files: the empty turntable is the plain mean of "
                        "all frames and shows ghosts of the parts; add %s",
                        self.name,
                        EMPTY_NAME,
                        EMPTY_NAME,
                    )
                self._empty = mean_background(paths)
        return self._empty.copy()


def group_captures(folder: Path, truth: dict[str, dict[str, Any]]) -> list[_Capture]:
    """Manifest rows grouped into captures: same part, colour and repeat suffix, in manifest order.

    The rig names views ``{part}_{color}_{angle}.jpg``; ``trainer render`` adds ``_{k}`` for the
    k-th repeat of a part and colour, which is what tells two placements apart.
    """
    groups: dict[tuple[str, int | None, str], _Capture] = {}
    for rel, row in truth.items():
        if "part_num" not in row or "angle" not in row:
            continue
        stem = Path(rel).stem
        match = re.search(rf"_{round(row['angle'])}(?:_(\d+))?$", stem)
        repeat = (match.group(1) or "") if match else stem  # unknown naming: each view its own capture
        key = (row["part_num"], row.get("color_id"), repeat)
        if key not in groups:
            fields = ("part_num", "color_id", "color_name", "part_name")
            groups[key] = _Capture({k: row[k] for k in fields if k in row}, [])
        groups[key].views.append((float(row["angle"]) % 360.0, folder / rel))
        if "window" in row:
            groups[key].windows[folder / rel] = row["window"]
    return list(groups.values())


def paste_window(frame: np.ndarray, window: np.ndarray, corner: tuple[int, int], path: Path) -> np.ndarray:
    """``frame`` with ``window`` (a packed view read from ``path``) pasted with its top-left at ``corner``."""
    x, y = corner
    h, w = window.shape[:2]
    if x + w > frame.shape[1] or y + h > frame.shape[0]:
        raise ImageError(
            f"packed view {str(path)!r} ({w}x{h} at {x},{y}) reaches past the {frame.shape[1]}x"
            f"{frame.shape[0]} empty frame; the set's empty.png belongs to another rig"
        )
    frame[y : y + h, x : x + w] = window
    return frame


def mean_background(paths: list[Path]) -> np.ndarray:
    """Per-pixel mean of the images outside their masks (``{stem}_mask.png``, grown by a margin).

    Images without a mask count everywhere, so without masks this is the plain mean. Pixels that
    are part in every image are filled by inpainting from their surroundings.
    """
    if not paths:
        raise DataFileError("no frames to build the empty turntable from")
    first = read_image(paths[0])
    total = np.zeros(first.shape, np.float64)
    count = np.zeros(first.shape[:2], np.float64)
    for path in paths:
        image = first if path == paths[0] else read_image(path)
        if image.shape != first.shape:
            raise ImageError(
                f"image {str(path)!r} is {image.shape[1]}x{image.shape[0]}, {str(paths[0])!r} is "
                f"{first.shape[1]}x{first.shape[0]}: replay frames must share one size"
            )
        keep = np.ones(image.shape[:2], bool)
        mask_path = path.with_name(f"{path.stem}_mask.png")
        if mask_path.is_file():
            mask = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE)
            if mask is None or mask.shape != image.shape[:2]:
                raise ImageError(f"mask {str(mask_path)!r} is unreadable or not the size of its image")
            # Grow the mask so the part's soft edge and contact shadow do not leak into the mean.
            keep = cv2.dilate(mask, np.ones((9, 9), np.uint8)) == 0
        total[keep] += image[keep]
        count[keep] += 1
    mean = np.clip(total / np.maximum(count, 1)[..., None] + 0.5, 0, 255).astype(np.uint8)
    holes = (count == 0).astype(np.uint8)
    return cv2.inpaint(mean, holes, 5, cv2.INPAINT_TELEA) if holes.any() else mean


# --- live rendering ----------------------------------------------------------------------------

_CACHE_VIEWS = 16  # rendered views kept (a capture loop often asks for the same angle again)


class LiveStage(Stage):
    """Parts rendered on demand with :class:`studio.scene.SceneRenderer` (see the module docstring)."""

    def __init__(self, config: SimConfig) -> None:
        from edge.colors import parse_color_list

        _require_studio("live simulation (camera.ldraw set)")
        from studio.ldconfig import read_ldconfig
        from studio.ldraw import LDrawLibrary
        from studio.scene import Randomization, RigGeometry, SceneRenderer

        root = Path(str(config.ldraw)).expanduser()
        self.name = f"sim rig with LDraw library {str(root)!r}"
        if not (root / "parts").is_dir():
            raise DataFileError(
                f"{self.name}: no parts/ folder there; point camera.ldraw at an LDraw library root"
            )
        self.library = LDrawLibrary(root)
        self.parts = _parts(config)
        unknown = [p for p in self.parts if not self.library.has_part(p)]
        if unknown:
            raise ConfigError(
                f"camera.parts: {unknown!r} not found in the LDraw library {str(root)!r}; "
                "fix the part numbers or the library path"
            )
        self.colors = parse_color_list(config.colors)
        rig = validate_config(RigGeometry, config.rig, "camera.rig")
        ldconfig_path = root / "LDConfig.ldr"
        ldconfig = read_ldconfig(ldconfig_path) if ldconfig_path.is_file() else None
        randomization = getattr(Randomization, config.randomization)()
        self.scene = SceneRenderer(rig, randomization, ldconfig=ldconfig, supersample=config.supersample)
        self.order, self.seed = config.order, config.seed
        self._views: OrderedDict[tuple[Any, float], tuple[np.ndarray, dict[str, Any]]] = OrderedDict()
        self._empty: OrderedDict[float, np.ndarray] = OrderedDict()

    def arrive(self, number: int, rng: np.random.Generator) -> Arrival:
        """Parts in list order, each round shifting the colours by one so every part comes in every
        colour (or both drawn at random); a fresh placement each time."""
        if self.order == "random":
            part = self.parts[int(rng.integers(len(self.parts)))]
            color = self.colors[int(rng.integers(len(self.colors)))]
        else:
            turn, index = divmod(number, len(self.parts))
            part, color = self.parts[index], self.colors[(index + turn) % len(self.colors)]
        placement_seed = zlib.crc32(f"{self.seed}/{number}".encode())
        truth = {
            "part_num": part,
            "color_id": color.id,
            "color_name": color.name,
            "part_name": self.library.part_title(part),
        }
        return Arrival(truth, (part, color, placement_seed))

    def view(self, arrival: Arrival, angle_deg: float) -> tuple[np.ndarray, dict[str, Any]]:
        """The placement rendered at ``angle_deg`` (cached: the same angle gives the same image)."""
        key = (arrival.key, round(angle_deg, 3))
        if key not in self._views:
            part, color, seed = arrival.key
            mesh = self.library.part_mesh(part)
            view = self.scene.render_views(mesh, color, [angle_deg], seed, frame="full", name=part)[0]
            bbox = [int(v) for v in view.bbox] if view.bbox is not None else None
            extra = {"angle": float(view.angle_deg), "bbox": bbox, "placement_seed": seed}
            _remember(self._views, key, (view.image, extra))
        image, extra = self._views[key]
        return image.copy(), dict(extra)

    def empty(self, angle_deg: float) -> np.ndarray:
        """The turntable with nothing on it, lit as a placement seeded with the config's seed.

        SceneRenderer has no part-less path yet, so this renders a 0.04 mm speck (well under a
        pixel) and inpaints the few pixels it and its shadow touch.
        """
        key = round(angle_deg, 3)
        if key not in self._empty:
            view = self.scene.render_views(_speck(), self.colors[0], [angle_deg], self.seed, name="speck")[0]
            touched = cv2.dilate(view.mask, np.ones((3, 3), np.uint8))
            cv2.circle(touched, self._speck_pixel(view.meta, angle_deg, view.image.shape), 4, 255, -1)
            _remember(self._empty, key, cv2.inpaint(view.image, touched, 3, cv2.INPAINT_TELEA))
        return self._empty[key].copy()

    def _speck_pixel(self, meta: dict[str, Any], angle_deg: float, shape: tuple[int, ...]) -> tuple[int, int]:
        """Where the speck (and so its one-pixel shadow) lands in the image."""
        from studio.poses import yaw_matrix
        from studio.scene import MM_PER_LDU

        x_mm, z_mm = meta.get("offset_mm", (0.0, 0.0))  # the placement offset the scene drew
        world = yaw_matrix(angle_deg) @ np.array([x_mm / MM_PER_LDU, 0.0, z_mm / MM_PER_LDU, 1.0])
        xy, _ = self.scene.camera(shape[1], shape[0]).project(world[None, :3])
        return round(float(xy[0, 0])), round(float(xy[0, 1]))


def _require_studio(purpose: str) -> None:
    """Raise :class:`MissingDependencyError` unless the ``studio`` package (the renderer) imports.

    ``studio`` ships with ``lego-edge``; only live simulation needs it, so ``edge`` imports it
    inside the functions that render, never at module level.
    """
    try:
        import studio  # noqa: F401
    except ModuleNotFoundError as exc:
        if exc.name != "studio":
            raise
        raise MissingDependencyError("studio", None, purpose) from None


def _remember(cache: OrderedDict[Any, Any], key: Any, value: Any) -> None:
    cache[key] = value
    while len(cache) > _CACHE_VIEWS:
        cache.popitem(last=False)


def _parts(config: SimConfig) -> list[str]:
    parts = list(config.parts)
    if config.parts_file:
        path = Path(config.parts_file).expanduser()
        lines = read_text_file(
            path, "parts list", missing=DataFileError, fix="fix camera.parts_file"
        ).splitlines()
        parts += [line.split("#", 1)[0].strip() for line in lines]
    parts = list(dict.fromkeys(p for p in parts if p))  # drop blanks and repeats, keep the order
    if not parts:
        raise ConfigError(
            "camera.parts is empty: list the part numbers that arrive (or a parts_file) for live mode"
        )
    return parts


def _speck(side_ldu: float = 0.1) -> Any:
    """A tiny cube (0.1 LDU = 0.04 mm): a stand-in part too small to show (a ``studio.mesh.Mesh``)."""
    from studio.mesh import EDGE_COLOR, MAIN_COLOR, Mesh

    h = side_ldu / 2
    corner = np.array([[x, y, z] for x in (-h, h) for y in (-h, h) for z in (-h, h)], np.float32)
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    tris = []
    for a, b, c, d in quads:
        for tri in ((a, b, c), (a, c, d)):
            pts = corner[list(tri)]
            outward = float(np.dot(np.cross(pts[1] - pts[0], pts[2] - pts[0]), pts.mean(axis=0))) > 0
            tris.append(pts if outward else pts[::-1])
    n = len(tris)
    return Mesh(
        triangles=np.array(tris, np.float32),
        colors=np.full(n, MAIN_COLOR, np.int32),
        two_sided=np.zeros(n, bool),
        edges=np.zeros((0, 2, 3), np.float32),
        edge_colors=np.full(0, EDGE_COLOR, np.int32),
        cond_edges=np.zeros((0, 4, 3), np.float32),
    )
