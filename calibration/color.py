"""``edge calibrate color``: white balance and a 3x3 colour-correction matrix from known bricks.

The user places bricks of known colours (by default White, Black, Red, Blue, Yellow and Light Bluish
Gray, by Rebrickable id) on the stage; each is cut out by the configured segmenter and its median
colour is its patch. The reference of each patch is what the model set's renders show
(:data:`REFERENCE_FILE` in the model set folder, written by ``trainer color-reference``), or the
colour table's sRGB (:mod:`edge.colors`) where the model set has none or ``--reference table`` says so.

The fit runs in linear sRGB (:mod:`edge.color_correction`): the white-balance gains make the white
brick neutral (normalised to green, so they change hue, not brightness), then a 3x3 matrix is solved
by least squares from the balanced patches to their references, pulled gently towards the identity
(``ridge``) so that a few patches cannot produce a wild matrix. Each patch's CIEDE2000 error before
and after correction is measured with colour-science and stored with the matrix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.calibration_file import PatchError, clipped_patches, now_utc, update_calibration
from edge.color_correction import ColorCorrection, linear_to_srgb, srgb_to_linear
from edge.errors import ImageError, MissingDependencyError

#: Rebrickable ids of the default reference bricks: White, Black, Red, Blue, Yellow, Light Bluish Gray.
DEFAULT_BRICKS = (15, 0, 4, 1, 14, 71)
#: A model set's reference patches (the bricks as its training renders show them,
#: ``trainer color-reference``): the default reference of a calibration with that model set.
REFERENCE_FILE = "color_reference.json"
WHITE_ID = 15
#: Fewest patch pixels that give a trustworthy median.
MIN_PATCH_PX = 50
#: An sRGB channel at or above this counts as clipped (over-exposed).
CLIP_LEVEL = 250


def _colour() -> Any:
    try:
        import colour
    except ImportError:
        raise MissingDependencyError("colour-science", "calibration", "Delta E 2000") from None
    return colour


def delta_e_2000(srgb_a: Any, srgb_b: Any) -> np.ndarray:
    """CIEDE2000 between sRGB colours (0..255, (..., 3)), via CIE Lab D65."""
    colour = _colour()

    def lab(rgb: Any) -> Any:
        xyz = colour.sRGB_to_XYZ(np.clip(np.asarray(rgb, np.float64) / 255.0, 0, 1))
        return colour.XYZ_to_Lab(xyz)

    return np.asarray(colour.delta_E(lab(srgb_a), lab(srgb_b), method="CIE 2000"), np.float64)


def patch_color_and_clipping(
    image: np.ndarray, mask: np.ndarray, where: str = "patch"
) -> tuple[np.ndarray, float]:
    """Median sRGB (3,) of the mask's interior (eroded, so edges and background bleed stay out), and
    the share of those pixels with a channel at :data:`CLIP_LEVEL` or above (over-exposed)."""
    inner = cv2.erode((mask > 0).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    if np.count_nonzero(inner) < MIN_PATCH_PX:
        raise ImageError(
            f"{where}: the segmenter found {np.count_nonzero(inner)} brick pixels (< {MIN_PATCH_PX}); "
            "place the brick on the stage, or calibrate the background first"
        )
    pixels = image[inner]
    return np.median(pixels.astype(np.float64), axis=0), float(np.mean(pixels.max(axis=1) >= CLIP_LEVEL))


#: Margin of the crop whose background ring gives the stage's colour: the default model set's
#: crop_margin, so the reference is measured around a brick as the pipeline measures around a part.
RING_MARGIN = 0.1


@dataclass(frozen=True)
class ColorFit:
    """A fitted correction, each patch's error and the stage's colour around the bricks."""

    correction: ColorCorrection
    patches: list[PatchError]
    background_rgb: tuple[float, float, float] | None = None

    @property
    def clipped(self) -> list[PatchError]:
        """Patches whose bricks were over-exposed beyond :data:`edge.calibration_file.CLIPPED_SHARE`."""
        return clipped_patches(self.patches)

    @property
    def mean_delta_e(self) -> tuple[float, float]:
        """Mean CIEDE2000 over the patches (before, after)."""
        return (
            float(np.mean([p.delta_e_before for p in self.patches])),
            float(np.mean([p.delta_e for p in self.patches])),
        )

    def section(self) -> dict[str, Any]:
        """The calibration file's ``color`` section."""
        return {
            "white_balance": [round(float(g), 6) for g in self.correction.white_balance],
            "matrix": [[round(float(v), 6) for v in row] for row in self.correction.matrix],
            "patches": [p.model_dump(mode="json") for p in self.patches],
            **({"background_rgb": [round(v, 2) for v in self.background_rgb]} if self.background_rgb else {}),
            "timestamp": now_utc().isoformat(),
        }

    def lines(self) -> list[str]:
        """Human-readable summary lines."""
        out = [f"{'colour':<26} {'measured':>15}  ΔE2000 before  after"]
        for p in self.patches:
            rgb = ",".join(f"{v:.0f}" for v in p.measured_rgb)
            out.append(
                f"{p.name + f' ({p.color_id})':<26} {rgb:>15}  {p.delta_e_before:13.1f}  {p.delta_e:5.1f}"
            )
        before, after = self.mean_delta_e
        out.append(f"mean ΔE2000: {before:.1f} before, {after:.1f} after correction")
        if self.background_rgb is not None:
            rgb = ",".join(f"{v:.0f}" for v in self.background_rgb)
            out.append(f"stage around the bricks: {rgb} (drift correction's reference)")
        if self.clipped:
            from edge.calibration_file import clipping_advice

            out.append("WARNING: " + clipping_advice(self.clipped))
        return out


def fit_color_correction(
    measured: Mapping[int, Any],
    *,
    reference: Mapping[int, Any] | None = None,
    ridge: float = 0.05,
    clipped: Mapping[int, float] | None = None,
) -> ColorFit:
    """Fit white balance and the matrix from ``{colour id: measured median sRGB 0..255}``.

    ``reference``: the sRGB each brick should come out as; default the colour table's. A model set
    trained on one rig's look can instead be given the patches measured on that rig (relative
    calibration: this rig is made to look like that one). ``clipped``: each brick's over-exposed
    share (:func:`patch_color_and_clipping`), kept with its patch.
    """
    from edge.colors import get_color

    if len(measured) < 3:
        raise ImageError(
            f"colour calibration needs at least 3 reference bricks; got {len(measured)} "
            f"({sorted(measured)}); place more (default: {', '.join(map(str, DEFAULT_BRICKS))})"
        )
    ids = list(measured)
    meas = np.array([measured[i] for i in ids], np.float64)
    ref = np.array([reference[i] if reference else get_color(i).rgb for i in ids], np.float64)
    lin_meas, lin_ref = srgb_to_linear(meas / 255.0), srgb_to_linear(ref / 255.0)
    gains = np.ones(3)
    if WHITE_ID in ids:
        w = ids.index(WHITE_ID)
        ratio = lin_ref[w] / np.maximum(lin_meas[w], 1e-6)
        gains = ratio / ratio[1]
    balanced = lin_meas * gains
    # Ridge towards the identity, scaled by the patches' energy: min |B M^T - R|^2 + r |M - I|^2.
    r = ridge * float(np.mean(np.sum(balanced * balanced, axis=1)))
    a = balanced.T @ balanced + r * np.eye(3)
    matrix = np.linalg.solve(a, balanced.T @ lin_ref + r * np.eye(3)).T
    correction = ColorCorrection(gains, matrix)
    corrected = linear_to_srgb(correction.apply_linear(lin_meas)) * 255.0
    before, after = delta_e_2000(meas, ref), delta_e_2000(corrected, ref)
    patches = [
        PatchError(
            color_id=i,
            name=get_color(i).name,
            measured_rgb=(float(meas[k, 0]), float(meas[k, 1]), float(meas[k, 2])),
            delta_e_before=round(float(before[k]), 3),
            delta_e=round(float(after[k]), 3),
            clipped=round(float((clipped or {}).get(i, 0.0)), 4),
        )
        for k, i in enumerate(ids)
    ]
    return ColorFit(correction, patches)


@dataclass(frozen=True)
class BrickMeasures:
    """What the reference bricks' images say: each brick's median colour and clipped share (the
    largest over its images), and the stage's median colour around them (None without a ring)."""

    colors: dict[int, np.ndarray]
    clipped: dict[int, float]
    stage_rgb: tuple[float, float, float] | None


def measure_bricks(images: Mapping[int, Sequence[np.ndarray]], segmenter: Any) -> dict[int, np.ndarray]:
    """Median colour per reference brick: the segmenter cuts each image out, medians are pooled."""
    return measure_all(images, segmenter).colors


def measure_all(images: Mapping[int, Sequence[np.ndarray]], segmenter: Any) -> BrickMeasures:
    """Each brick's colour and clipped share, and the stage's colour in the background ring around
    the bricks (:func:`edge.color_correction.ring_median` of each brick's crop)."""
    from edge.color_correction import ring_median
    from edge.preprocess import crop_to_mask

    out, clipped, stage = {}, {}, []
    for color_id, frames in images.items():
        pixels, over = [], []
        for f in frames:
            mask = segmenter.mask(f)
            color, clipped_part = patch_color_and_clipping(f, mask, f"colour {color_id}")
            pixels.append(color)
            over.append(clipped_part)
            crop = crop_to_mask(f, mask, RING_MARGIN)
            around = ring_median(crop.image, crop.mask, MIN_PATCH_PX)
            if around is not None:
                stage.append(around)
        out[color_id] = np.median(np.stack(pixels), axis=0)
        clipped[color_id] = max(over)
    if not stage:
        return BrickMeasures(out, clipped, None)
    r, g, b = (float(v) for v in np.median(np.stack(stage), axis=0))
    return BrickMeasures(out, clipped, (r, g, b))


def bricks_from_dir(folder: Path) -> dict[int, list[np.ndarray]]:
    """Reference images named by colour id: ``15.jpg``, ``15_2.png`` or a folder ``15/``."""
    from edge.camera.folder import list_images
    from edge.imagefile import read_image

    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(f"{str(folder)!r} is not a folder; pass the folder of reference brick images")
    found: dict[int, list[np.ndarray]] = {}
    for path in list_images(folder):
        head = path.relative_to(folder).parts[0]
        key = head if len(path.relative_to(folder).parts) > 1 else path.stem
        digits = key.split("_")[0]
        if digits.lstrip("-").isdigit():
            found.setdefault(int(digits), []).append(read_image(path))
    if not found:
        raise ImageError(f"{str(folder)!r} holds no images named by colour id (15.jpg, 15_a.png or 15/*.jpg)")
    return found


def calibrate_color(
    images: Mapping[int, Sequence[np.ndarray]],
    segmenter: Any,
    calibration: Path,
    reference: Mapping[int, Any] | None = None,
) -> ColorFit:
    """Measure the bricks, fit, and write the ``color`` section of ``calibration``."""
    found = measure_all(images, segmenter)
    if reference is not None:
        missing = sorted(set(found.colors) - set(reference))
        if missing:
            raise ImageError(
                f"the reference patches lack colour(s) {missing}; measure them on the reference rig"
            )
    fit = replace(
        fit_color_correction(found.colors, reference=reference, clipped=found.clipped),
        background_rgb=found.stage_rgb,
    )
    update_calibration(calibration, color=fit.section())
    return fit
