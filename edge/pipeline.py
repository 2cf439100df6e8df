"""One part's views -> one decision: segment, crop, infer as one batch, search, fuse; timed per stage.

:class:`Pipeline` composes the library stages (camera, segmenter, engine, recognizer) without
re-implementing any of them. Whether a part lies on the turntable is :mod:`edge.presence`'s job.

Stage timings are milliseconds: ``capture`` (measured by whoever captured the frames), ``segment``,
``preprocess`` (crops and the input batch), ``infer`` (one engine run for all views), ``search``
(embedding index queries) and ``fuse`` (the rest of the recognizer's work), plus ``total``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from edge.camera import CameraSource, Frame, create_camera
from edge.color_correction import IDENTITY, ColorCorrection, DriftCorrection
from edge.errors import ConfigError, ImageError, ModelError
from edge.imagefile import DEFAULT_MAX_MEGAPIXELS, read_image
from edge.index import EmbeddingIndex
from edge.manifest import Manifest, open_manifest
from edge.part import STAGES, PartRecord, ViewRecord
from edge.preprocess import Crop, crop_for, crop_to_mask, prepare_batch, prepare_crop
from edge.recognition_setup import load_indexes, make_recognizer
from edge.recognize import Decision, Recognizer
from edge.segment import Segmenter, create_segmenter
from edge.settings import EdgeConfig
from edge.size import measure

log = logging.getLogger(__name__)


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000.0


class _TimedIndex:
    """Wraps an :class:`EmbeddingIndex` to add up the time spent in ``search``."""

    def __init__(self, index: EmbeddingIndex) -> None:
        self.inner = index
        self.elapsed_ms = 0.0

    def __len__(self) -> int:
        return len(self.inner)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def search(self, vectors: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
        start = time.perf_counter()
        try:
            return self.inner.search(vectors, k)
        finally:
            self.elapsed_ms += _ms(start)


@dataclass
class ViewResult:
    """One view recognised on its own (:meth:`Pipeline.process_view`), waiting to be fused."""

    frame: Frame | np.ndarray
    outputs: dict[str, np.ndarray]  # the engine's outputs for this view, each (1, K)
    crop: np.ndarray
    objects: int  # regions the segmenter found
    timings: dict[str, float]  # ms: segment, preprocess, infer
    footprint: tuple[float, float] | None = None  # the mask's footprint in px (size prior only)

    @property
    def compute_ms(self) -> float:
        """Milliseconds this view's recognition took."""
        return sum(self.timings.values())


def _image(frame: Frame | np.ndarray) -> np.ndarray:
    return frame.image if isinstance(frame, Frame) else frame


@dataclass
class Classified:
    """One row of :meth:`Pipeline.classify_images`: its image files, and the result or the error."""

    paths: list[Path]
    result: PartRecord | None
    error: str | None = None


class Pipeline:
    """Camera, segmenter, engine and recognizer for the views of one part at a time."""

    def __init__(
        self,
        camera: CameraSource | None,
        segmenter: Segmenter,
        engine: Any,
        recognizer: Recognizer,
        *,
        model_folder: Path | None = None,
        color_correction: ColorCorrection | None = None,
        drift_correction: DriftCorrection | None = None,
    ) -> None:
        """``color_correction``: applied to each view's crop after segmentation, before the network;
        ``drift_correction``: per-view gains from the stage around the part, applied before it."""
        self.camera = camera
        self.color_correction = color_correction
        self.drift_correction = drift_correction
        #: The drift gains of the last part's views (None: not measured or not enabled).
        self.last_drift: list[np.ndarray | None] = []
        self.segmenter = segmenter
        self.engine = engine
        self.recognizer = recognizer
        self.manifest: Manifest = recognizer.manifest
        self.model_folder = model_folder
        indexes: tuple[Any, ...] = (recognizer.index, recognizer.rig_index)
        self._timed: list[_TimedIndex] = [i for i in indexes if isinstance(i, _TimedIndex)]

    @classmethod
    def from_config(
        cls, cfg: EdgeConfig, *, camera: CameraSource | None = None, with_camera: bool = True
    ) -> Pipeline:
        """Load the model set (checksums verified), index, segmenter and (unopened) camera from ``cfg``.

        Raises ModelError naming the file and the fix when a model or index does not match the
        manifest, DataFileError/ConfigError for missing files or settings.
        """
        from edge.engines import create_engine

        folder = Path(cfg.engine.model_set)
        manifest = open_manifest(folder)
        correction, drift = None, None
        for setting in ("color_correction", "drift_correction"):
            if getattr(cfg, setting) and cfg.calibration is None:
                raise ConfigError(
                    f"{setting} is true but the config names no calibration file; set "
                    f"calibration: PATH (and run `edge calibrate color`) or {setting}: false"
                )
        if cfg.color_correction:
            correction = ColorCorrection.from_calibration(cfg.calibration)
        if cfg.drift_correction:
            drift = DriftCorrection.from_calibration(cfg.calibration)
        index, rig = load_indexes(cfg, manifest)
        timed = _TimedIndex(index) if index is not None else None
        timed_rig = _TimedIndex(rig) if rig is not None else None
        recognizer = make_recognizer(
            cfg, manifest, cast(EmbeddingIndex | None, timed), cast(EmbeddingIndex | None, timed_rig)
        )
        engine = create_engine(
            cfg.engine.runtime, folder, manifest, precision=cfg.engine.precision, threads=cfg.engine.threads
        )
        segmenter = None
        try:
            segmenter = create_segmenter(cfg.segmenter, calibration=cfg.calibration)
            if camera is None and with_camera:
                camera = create_camera(cfg.camera, calibration=cfg.calibration)
        except BaseException:
            if segmenter is not None:
                segmenter.close()
            engine.close()
            raise
        return cls(
            camera,
            segmenter,
            engine,
            recognizer,
            model_folder=folder,
            color_correction=correction,
            drift_correction=drift,
        )

    def correct_crop(self, crop: Crop) -> np.ndarray:
        """A view's crop as the network sees it: drift gains (from the stage around the part), then
        the colour correction; the crop itself when neither is enabled."""
        gains = self.drift_correction.gains(crop.image, crop.mask) if self.drift_correction else None
        self.last_drift.append(gains)
        if self.color_correction is None and gains is None:
            return crop.image
        return (self.color_correction or IDENTITY).apply(crop.image, gains)

    def capture_views(
        self,
        count: int,
        between: Callable[[int], None] | None = None,
        *,
        before: Callable[[int], None] | None = None,
        retries: int = 0,
        on_frame: Callable[[ImageError | None], None] | None = None,
    ) -> tuple[list[Frame], float]:
        """Capture ``count`` frames, calling ``between(i)`` before view i > 0 (e.g. turn the turntable).

        ``before(i)`` is called before every view, ahead of ``between`` (the daemon kicks its
        watchdog there, and stops by raising). A corrupt frame (:class:`ImageError`) is taken again,
        up to ``retries`` times per view; ``on_frame`` hears of every attempt (its error, or None
        for a good frame). After ``retries + 1`` corrupt frames in a row an ImageError says so;
        camera errors (HardwareError, EndOfStream) propagate at once.

        Returns the frames and the milliseconds spent in good ``capture()`` calls (turning not
        included).
        """
        camera = self.camera
        if camera is None:
            raise ConfigError("this pipeline has no camera; build it with a camera to capture views")
        frames: list[Frame] = []
        spent = 0.0
        for i in range(count):
            if before is not None:
                before(i)
            if i and between is not None:
                between(i)
            for _ in range(retries + 1):
                start = time.perf_counter()
                try:
                    frame = camera.capture()
                except ImageError as exc:
                    if on_frame is not None:
                        on_frame(exc)
                    continue
                spent += _ms(start)
                if on_frame is not None:
                    on_frame(None)
                frames.append(frame)
                break
            else:
                raise ImageError(f"{retries + 1} corrupt frames in a row at view {i + 1} of {count}")
        return frames, spent

    def process(self, frames: Sequence[Frame | np.ndarray], capture_ms: float = 0.0) -> PartRecord:
        """Segment each view, crop, run all views as ONE engine batch, recognise and fuse.

        The part's :class:`~edge.part.PartRecord` holds the decision, each view (angle, top parts,
        crop), the objects seen per view, the stage timings and the ground truth of the frames.
        """
        if not frames:
            raise ImageError("process() got no frames; pass the views of one part")
        images = [_image(f) for f in frames]
        timings = dict.fromkeys(STAGES, 0.0)
        timings["capture"] = float(capture_ms)
        start = time.perf_counter()
        masks, objects, boxes = self._segment(images)
        footprints = self._footprints(masks)  # the size prior's measurement is part of segmenting
        timings["segment"] = _ms(start)
        start = time.perf_counter()
        batch, crops = self._prepare(images, masks, boxes)
        timings["preprocess"] = _ms(start)
        start = time.perf_counter()
        outputs = self.engine.run(batch)
        timings["infer"] = _ms(start)
        return self._decided(frames, outputs, crops, objects, timings, footprints)

    def process_view(self, frame: Frame | np.ndarray) -> ViewResult:
        """Segment, crop and infer ONE view (an engine run of its own), to be fused by :meth:`decide_views`.

        The daemon runs this for a view while the turntable turns to the next one.
        """
        image = _image(frame)
        timings: dict[str, float] = {}
        start = time.perf_counter()
        masks, objects, boxes = self._segment([image])
        footprint = self._footprints(masks)[0]
        timings["segment"] = _ms(start)
        start = time.perf_counter()
        batch, crops = self._prepare([image], masks, boxes)
        timings["preprocess"] = _ms(start)
        start = time.perf_counter()
        outputs = self.engine.run(batch)
        timings["infer"] = _ms(start)
        return ViewResult(frame, outputs, crops[0], objects[0], timings, footprint)

    def decide_views(self, views: Sequence[ViewResult], capture_ms: float = 0.0) -> PartRecord:
        """The part's record from views recognised one at a time: the same decision as
        :meth:`process` of their frames (the engine outputs are stacked in view order and fused).

        The stage timings add up the views' own; each view's ``compute_ms`` is its share.
        """
        if not views:
            raise ImageError("decide_views() got no views; pass the views of one part")
        timings = dict.fromkeys(STAGES, 0.0)
        timings["capture"] = float(capture_ms)
        for view in views:
            for stage, ms in view.timings.items():
                timings[stage] += ms
        outputs = {
            role: np.concatenate([np.asarray(v.outputs[role]) for v in views]) for role in views[0].outputs
        }
        part = self._decided(
            [v.frame for v in views],
            outputs,
            [v.crop for v in views],
            [v.objects for v in views],
            timings,
            [v.footprint for v in views],
        )
        for record, view in zip(part.views, views, strict=True):
            record.compute_ms = view.compute_ms
        return part

    def _footprints(self, masks: list[np.ndarray]) -> list[tuple[float, float] | None]:
        """Each view's footprint in pixels where the recognizer has a size prior to weigh it by."""
        if self.recognizer.size is None:
            return [None] * len(masks)
        return [measure(m) for m in masks]

    def _segment(
        self, images: list[np.ndarray]
    ) -> tuple[list[np.ndarray], list[int], list[tuple[int, int, int, int] | None]]:
        """Each view's mask, regions counted and the part's box where the segmenter found it."""
        masks: list[np.ndarray] = []
        objects: list[int] = []
        boxes: list[tuple[int, int, int, int] | None] = []
        for image in images:
            mask, count, box = self.segmenter.mask_count_box(image)
            masks.append(mask)
            objects.append(count)
            boxes.append(box)
        return masks, objects, boxes

    def _prepare(
        self, images: list[np.ndarray], masks: list[np.ndarray], boxes: Sequence[Any]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """The engine's input batch and the crops (colour-corrected when configured)."""
        spec = self.manifest.input
        self.last_drift = []
        corrected = self.color_correction is not None or self.drift_correction is not None
        if not corrected:
            # The crop prepare() starts from is the view's crop: cut each frame once (in fill
            # mode its padding is the fill colour; the recorded crop keeps the part's surroundings).
            cut = [crop_for(img, m, spec, box=b) for img, m, b in zip(images, masks, boxes, strict=True)]
            return np.stack([prepare_crop(c, spec) for c in cut]), [c.image for c in cut]
        # Only the crops are corrected (the whole frame would cost 10x more); re-cropping a crop
        # around its own mask gives the same square. The segmenter saw the uncorrected frame,
        # as it was calibrated on uncorrected frames. The drift is measured on the crop's stage
        # pixels around the part (the part's own colour must not move its gains).
        cut = [crop_to_mask(img, m, spec.crop_margin) for img, m in zip(images, masks, strict=True)]
        crops = [self.correct_crop(c) for c in cut]
        batch = prepare_batch([(img, c.mask) for img, c in zip(crops, cut, strict=True)], spec)
        return batch, crops

    def _decided(
        self,
        frames: Sequence[Frame | np.ndarray],
        outputs: dict[str, np.ndarray],
        crops: list[np.ndarray],
        objects: list[int],
        timings: dict[str, float],
        footprints: Sequence[tuple[float, float] | None] | None = None,
    ) -> PartRecord:
        """Recognise and fuse the engine outputs of one part's views; the record (timings completed)."""
        for timed in self._timed:
            timed.elapsed_ms = 0.0
        start = time.perf_counter()
        decision = self.recognizer.decide(outputs, footprints)
        decide_ms = _ms(start)
        search_ms = sum(timed.elapsed_ms for timed in self._timed)
        timings["search"] += search_ms
        timings["fuse"] += max(decide_ms - search_ms, 0.0)
        timings["total"] = sum(timings[s] for s in STAGES)

        metas = [f.meta for f in frames if isinstance(f, Frame)]
        truth = truth_of(metas[0]) if metas else None
        angles: list[float | None] = [m.get("turntable_angle", m.get("angle")) for m in metas]
        if not metas:
            angles = [None] * len(frames)
        topks = [list(v.part_topk) for v in decision.per_view]
        if len(topks) != len(frames):
            topks = [[] for _ in frames]
        views = [ViewRecord(a, t, c) for a, t, c in zip(angles, topks, crops, strict=True)]
        return PartRecord.decided(decision, views, timings, objects, truth)

    def process_views(
        self, frames: Sequence[Frame | np.ndarray], capture_ms: float = 0.0
    ) -> tuple[Decision, dict[str, float]]:
        """The decision for one part's views and the per-stage timings in ms (see :meth:`process`)."""
        result = self.process(frames, capture_ms)
        assert result.decision is not None  # process() raises rather than leave it undecided
        return result.decision, result.timings

    def classify_images(
        self,
        paths: Sequence[str | Path],
        *,
        fuse: bool = False,
        max_megapixels: float = DEFAULT_MAX_MEGAPIXELS,
    ) -> list[Classified]:
        """Recognise image files: each file on its own, or all as views of one part (``fuse``).

        Each file is read (:func:`edge.imagefile.read_image`: larger than ``max_megapixels`` is
        refused) and classified on its own, so one bad file costs only its own row: a row with
        ``error`` set instead of a result. With ``fuse`` the readable files make one part (the
        first row) and each unreadable one gets its own error row.
        """
        if not fuse:
            rows = []
            for p in paths:
                image = self._read_for_classify(Path(p), max_megapixels)
                rows.append(image if isinstance(image, Classified) else self._classify([Path(p)], [image]))
            return rows
        read: list[tuple[Path, np.ndarray]] = []
        failed: list[Classified] = []
        for p in paths:
            image = self._read_for_classify(Path(p), max_megapixels)
            if isinstance(image, Classified):
                failed.append(image)
            else:
                read.append((Path(p), image))
        fused = [self._classify([p for p, _ in read], [img for _, img in read])] if read else []
        return fused + failed

    def _read_for_classify(self, path: Path, max_megapixels: float) -> np.ndarray | Classified:
        try:
            return read_image(path, max_megapixels=max_megapixels, setting="--max-megapixels")
        except ImageError as exc:
            return Classified([path], None, str(exc))

    def _classify(self, paths: list[Path], images: list[np.ndarray]) -> Classified:
        try:
            return Classified(paths, self.process(images))
        except (ImageError, ModelError) as exc:  # this image's problem; the next may be fine
            return Classified(paths, None, str(exc))

    def close(self) -> None:
        """Release the engine, the segmenter and the camera."""
        try:
            self.engine.close()
            self.segmenter.close()
        finally:
            if self.camera is not None:
                self.camera.close()


def truth_of(meta: dict[str, Any]) -> dict[str, Any] | None:
    """The ground truth a frame's meta carries (sim and replayed captures), or None."""
    if "part_num" not in meta:
        return None
    return {k: meta[k] for k in ("part_num", "color_id", "color_name", "part_name") if k in meta}
