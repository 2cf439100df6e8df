"""The recognizer's parts as ``edge run`` builds them from a config: the embedding indexes (the
shipped one with the rig's enrolled views added, and those views alone), the size prior from the
calibration file's scale, the part prior and the saved ``rig_threshold`` fit.

:class:`~edge.pipeline.Pipeline` and ``edge check`` both build through these functions, so the
check refuses exactly what the daemon refuses.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from edge.enroll import engine_model_key, merged_index, rig_index
from edge.errors import ConfigError
from edge.index import EmbeddingIndex
from edge.manifest import Manifest, inside
from edge.prior import load_part_prior
from edge.recognize import Recognizer
from edge.settings import EdgeConfig
from edge.size import SizePrior, missing_table_hint, tilt_table

if TYPE_CHECKING:
    from edge.calibration_file import RecognitionSection, ScaleSection

log = logging.getLogger(__name__)


def load_indexes(cfg: EdgeConfig, manifest: Manifest) -> tuple[EmbeddingIndex | None, EmbeddingIndex | None]:
    """``(index, rig)`` as ``edge run`` loads and checks them: the embedding index ``cfg`` needs (the
    shipped one with the views enrolled on this rig added) and those enrolled views alone (searched
    first; see :mod:`edge.recognize`); ``(None, None)`` in classifier mode, ``rig`` None when
    nothing is enrolled.

    ``edge check`` calls this too, so it refuses exactly the indexes the daemon refuses.
    """
    rec = cfg.recognition
    if rec.mode == "classifier":
        return None, None
    folder = Path(cfg.engine.model_set)
    index = None
    if manifest.index is not None:
        inside(folder, manifest.index.path, "index file")
        if manifest.index.graph is not None:
            inside(folder, manifest.index.graph, "index graph")
        index = EmbeddingIndex.from_manifest(folder, manifest.index, memory_budget_mb=cfg.memory_budget_mb)
    # Parts enrolled with `edge enroll` are searched too.
    key = engine_model_key(cfg.engine)
    rig = rig_index(Path(cfg.data.user_index), manifest, key)
    index = merged_index(index, rig)
    if index is None:
        raise ConfigError(
            f"recognition.mode {rec.mode!r} needs an embedding index, but the model set {str(folder)!r} "
            "has none; build one with `trainer index`, enrol parts with `edge enroll`, or set "
            "recognition.mode: classifier"
        )
    return index, rig


def make_recognizer(
    cfg: EdgeConfig,
    manifest: Manifest,
    index: EmbeddingIndex | None,
    rig: EmbeddingIndex | None = None,
) -> Recognizer:
    """The recognizer of ``cfg.recognition`` over ``manifest``, ``index`` and the rig's own enrolled
    views ``rig`` (see :func:`load_indexes`)."""
    rec = cfg.recognition
    rig_threshold = rec.rig_threshold
    if rig_threshold is None and rig is not None:
        fit = saved_fit(cfg)
        if fit is not None:
            rig_threshold = fit.rig_threshold
            note = stale_fit_note(cfg, len(rig), len(set(rig.labels)), fit=fit)
            if note:
                log.warning("%s", note)
    return Recognizer(
        manifest,
        mode=rec.mode,
        index=index,
        threshold=rec.threshold,
        vector_threshold=rec.vector_threshold,
        k=rec.k,
        fusion=rec.fusion,
        rig_index=rig,
        rig_threshold=rig_threshold,
        size=size_prior(cfg, manifest) if rec.size_prior else None,
        prior=load_part_prior(
            rec.part_prior, manifest, rec.part_prior_strength, required="part_prior" in rec.model_fields_set
        ),
    )


def calibrated_scale(cfg: EdgeConfig) -> ScaleSection | None:
    """The calibration file's scale section, or None without one."""
    from edge.calibration_file import read_calibration

    if cfg.calibration is not None and Path(cfg.calibration).is_file():
        return read_calibration(cfg.calibration).scale
    return None


def size_prior(cfg: EdgeConfig, manifest: Manifest) -> SizePrior | None:
    """The size prior (:mod:`edge.size`) of the calibration file's scale and the manifest's
    footprints, or None where either is missing (logged when only one of them is)."""
    from edge.calibration_file import FIX_RUN

    scale = calibrated_scale(cfg)
    table = tilt_table(manifest, scale.tilt_deg if scale is not None else 0.0)
    if scale is None or not table:
        if scale is not None:
            log.warning(
                "calibration %s has a scale but %s, so the size prior is off",
                cfg.calibration,
                missing_table_hint(manifest, scale.tilt_deg),
            )
        elif manifest.footprints and cfg.calibration is not None:
            log.info("no scale in the calibration file: the size prior is off (%s)", FIX_RUN["scale"])
        return None
    return SizePrior(manifest.parts, table, scale.px_per_mm, cfg.recognition.size_sigma)


def saved_fit(cfg: EdgeConfig, *, warn: bool = True) -> RecognitionSection | None:
    """The calibration file's ``recognition`` section (``edge enrolled --fit-threshold --save``), or
    None: no calibration file or no fit in it, or a fit made with another model than the configured
    one (logged unless ``warn`` is false: it would not fit this model's similarities)."""
    from edge.calibration_file import FIX_RUN, read_calibration

    if cfg.calibration is None or not Path(cfg.calibration).is_file():
        return None
    fit = read_calibration(cfg.calibration).recognition
    if fit is None:
        return None
    key = engine_model_key(cfg.engine)
    if fit.model != key:
        if warn:
            log.warning(
                "calibration %s: rig_threshold %s was fitted with another model (%s; now %s), so it is "
                "not used: %s",
                cfg.calibration,
                fit.rig_threshold,
                fit.model,
                key,
                FIX_RUN["recognition"],
            )
        return None
    return fit


def stale_fit_note(
    cfg: EdgeConfig, views: int, parts: int, *, fit: RecognitionSection | None = None
) -> str | None:
    """What to do when the ``rig_threshold`` saved in the calibration file (the one the daemon takes
    while the config leaves the setting unset) was fitted to other enrolled views than the ``views``
    of ``parts`` parts enrolled now; None when it was fitted to as many (or the config sets the
    threshold, or no fit of this model is saved). ``fit``: the :func:`saved_fit` when the caller
    has read it already.

    The fit is not redone by itself: a threshold fitted to some of a rig's parts takes the photos of
    parts never enrolled for enrolled ones (docs/real_transfer.md, rule 4), so refitting is the
    owner's call."""
    from edge.calibration_file import FIX_RUN

    if cfg.recognition.rig_threshold is not None:
        return None
    fit = fit or saved_fit(cfg, warn=False)
    if fit is None or (fit.views, fit.parts) == (views, parts):
        return None
    fix = (
        FIX_RUN["recognition"]
        if parts >= 2
        else "fewer than two parts are enrolled, so it cannot be refitted: set recognition.rig_threshold "
        "in the config to use another"
    )
    return (
        f"the rig_threshold {fit.rig_threshold:g} in {cfg.calibration} was fitted to {fit.views} enrolled "
        f"view(s) of {fit.parts} parts; {views} view(s) of {parts} part(s) are enrolled now: {fix}"
    )
