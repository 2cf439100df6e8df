"""The model set's self-description: ``manifest.json`` in a model folder.

A model set is a folder holding one or more exported files of the same network (ONNX fp32, TFLite
int8, ...), optionally an embedding index, and ``manifest.json`` which says how to feed the network
(:class:`~edge.manifest_entries.InputSpec`, shared with :mod:`edge.preprocess`), what its outputs
mean, which classes the logits index, and the checksum of every file. The trainer writes it; the Pi
only reads it. The entries it is built from (input, outputs, one per shipped file) are in
:mod:`edge.manifest_entries`; this module holds the whole manifest, reads and writes it, and checks
the files it lists against their checksums.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from edge.config import StrictModel, format_validation_error
from edge.errors import ModelError
from edge.fileio import atomic_write
from edge.manifest_entries import (
    FileEntry,
    IndexEntry,
    InputSpec,
    OutputNames,
    OutputRole,
    Precision,
    Runtime,
    SegmenterEntry,
)

#: The manifest format this code reads and writes.
FORMAT_VERSION = 1
#: File name of the manifest inside a model folder.
MANIFEST_NAME = "manifest.json"
#: Largest manifest read (label lists of tens of thousands of parts take a few MB).
MAX_MANIFEST_BYTES = 32 << 20
#: The largest camera tilt from vertical, in degrees, a footprint table or a scale fit may assume.
MAX_TILT_DEG = 70.0


def tilt_key(tilt_deg: float) -> str:
    """The key of a tilt's table in ``footprints_tilted``: the degrees as written, e.g. "30"."""
    return f"{float(tilt_deg):g}"


PositiveMm = Annotated[float, Field(gt=0.0, le=10000.0, description="millimetres")]
Probability = Annotated[float, Field(gt=0.0, le=1.0)]
_FIX_HASH = "re-download/re-export the model set or run `trainer export` again"


class Manifest(StrictModel):
    """Everything the runtime needs to know about a model set."""

    format_version: int = Field(default=FORMAT_VERSION, ge=1, le=1000, description="manifest format version")
    architecture: str = Field(min_length=1, description="network architecture, e.g. efficientnet_lite0")
    input: InputSpec = Field(description="how to turn an image into the input tensor")
    outputs: OutputNames = Field(
        default_factory=lambda: OutputNames(), description="output tensor names by role"
    )
    parts: list[str] = Field(min_length=1, description="part ids; the index is the part logit's class")
    colors: list[int] = Field(default_factory=list, description="Rebrickable colour ids; index = class")
    embedding_dim: int | None = Field(
        default=None, ge=1, le=65536, description="length of the embedding vector"
    )
    files: list[FileEntry] = Field(min_length=1, description="the exported network files")
    index: IndexEntry | None = Field(default=None, description="optional embedding index")
    segmenters: list[SegmenterEntry] = Field(
        default_factory=list, description="trained segmentation models shipped with the set (mobileseg)"
    )
    temperatures: dict[Literal["part_logits", "color_logits"], float] = Field(
        default_factory=dict,
        description="logits are divided by these before the softmax (temperature scaling, fitted on "
        "the validation split so probabilities match accuracy); missing = 1",
    )
    categories: dict[str, Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=dict,
        description="part id -> category name (Brick, Plate, Tile, Slope, Technic...; from the LDraw "
        "files, written by `trainer categories`), so sorting rules can match by category; optional",
    )
    footprints: dict[str, list[tuple[PositiveMm, PositiveMm, Probability]]] = Field(
        default_factory=dict,
        description="part id -> [long mm, short mm, probability] of each stable resting pose's outline "
        "seen from above (from the LDraw files, written by `trainer footprints`), for the size prior "
        "(edge/size.py); optional",
    )
    footprints_tilted: dict[str, dict[str, list[tuple[PositiveMm, PositiveMm, Probability]]]] = Field(
        default_factory=dict,
        description='camera tilt from vertical in degrees (as written, e.g. "30") -> part id -> '
        "[long mm, short mm, probability] rows of the outline that camera sees, over each pose "
        "turned through half a turn (`trainer footprints --tilt`), for a tilted rig's size prior; "
        "optional",
    )
    popularity: dict[str, Annotated[int, Field(ge=1)]] = Field(
        default_factory=dict,
        description="part id -> rank, 1 = most common (from the training parts list's order, written by "
        "`trainer popularity`), for the part prior (edge/prior.py); optional",
    )
    evaluation: dict[str, Any] = Field(default_factory=dict, description="free-form evaluation figures")
    build: dict[str, Any] = Field(
        default_factory=dict, description="free-form build record: command, date, git commit, versions"
    )

    @field_validator("format_version")
    @classmethod
    def _known_version(cls, v: int) -> int:
        if v != FORMAT_VERSION:
            raise ValueError(
                f"format_version {v} is not supported (this runtime reads {FORMAT_VERSION}); "
                "update lego-edge or re-export the model set"
            )
        return v

    @field_validator("temperatures")
    @classmethod
    def _positive(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: t for k, t in v.items() if not 0.01 <= t <= 100}
        if bad:
            raise ValueError(f"temperatures {bad!r} must lie in [0.01, 100]; re-run `trainer export`")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        for name, items in (("parts", self.parts), ("colors", self.colors)):
            dupes = sorted(str(x) for x, n in Counter[object](items).items() if n > 1)
            if dupes:
                raise ValueError(f"{name} must be unique; repeated: {', '.join(dupes)}")
        paths = [f.path for f in self.files]
        if len(set(paths)) != len(paths):
            raise ValueError(f"files lists a path twice: {paths!r}")
        shipped = [p for s in self.segmenters for p in (s.path, s.sidecar)]
        taken = set(paths) | ({self.index.path, self.index.labels} if self.index else set())
        clash = sorted({p for p in shipped if shipped.count(p) > 1 or p in taken})
        if clash:
            raise ValueError(f"segmenters reuse a path listed elsewhere: {clash!r}")
        if self.outputs.color_logits is not None and not self.colors:
            raise ValueError("outputs.color_logits is set but colors is empty; list the colour ids")
        if self.outputs.embedding is not None and self.embedding_dim is None:
            raise ValueError("outputs.embedding is set but embedding_dim is missing")
        for table, command in (
            (self.categories, "categories"),
            (self.footprints, "footprints"),
            (self.popularity, "popularity"),
        ):
            strangers = sorted(set(table) - set(self.parts))
            if strangers:
                shown = ", ".join(strangers[:5]) + (" ..." if len(strangers) > 5 else "")
                raise ValueError(
                    f"{command} names part(s) not in parts: {shown}; run `trainer {command}` again"
                )
        for tilt, table in self.footprints_tilted.items():
            try:
                degrees = float(tilt)
            except ValueError:
                degrees = math.nan
            if not 0 < degrees <= MAX_TILT_DEG or tilt != tilt_key(degrees):
                raise ValueError(
                    f"footprints_tilted has the key {tilt!r}; keys are tilts in degrees in "
                    f'(0, {MAX_TILT_DEG:g}] as `trainer footprints --tilt` writes them (e.g. "30")'
                )
            strangers = sorted(set(table) - set(self.parts))
            if strangers:
                raise ValueError(
                    f"footprints_tilted[{tilt!r}] names part(s) not in parts: {', '.join(strangers[:5])}; "
                    f"run `trainer footprints --tilt {tilt}` again"
                )
        if self.index is not None and self.index.dim != self.embedding_dim:
            raise ValueError(f"index.dim {self.index.dim} differs from embedding_dim {self.embedding_dim}")
        return self

    def output_widths(self) -> dict[OutputRole, int]:
        """Expected last dimension of each output role present."""
        widths: dict[OutputRole, int] = {"part_logits": len(self.parts), "color_logits": len(self.colors)}
        if self.embedding_dim is not None:
            widths["embedding"] = self.embedding_dim
        return {role: widths[role] for role in self.outputs.roles()}

    def not_shipped(self) -> dict[str, Mapping[str, Any]]:
        """``runtime/precision`` -> the entry (path, why, ...) of each file ``trainer ship`` left out."""
        return {
            str(item["key"]): item
            for item in self.evaluation.get("not_shipped", [])
            if isinstance(item, Mapping) and item.get("key")
        }

    def select(self, runtime: str, precision: str | None = None) -> FileEntry:
        """The file for ``runtime`` (and ``precision``; None takes the first listed for the runtime)."""
        for entry in self.files:
            if entry.runtime == runtime and precision in (None, entry.precision):
                return entry
        available = ", ".join(f"{f.key} ({f.path})" for f in self.files)
        wanted = f"{runtime}/{precision}" if precision else runtime
        left = [
            f"{item.get('path')}: {item.get('why')}"
            for key, item in self.not_shipped().items()
            if key.startswith(wanted)
        ]
        why = f" (left out when the set was shipped: {'; '.join(left)})" if left else ""
        raise ModelError(
            f"the model set has no file for {wanted!r}{why}; available: {available}; "
            "choose one of those or export the missing variant with `trainer export`"
        )


def _manifest_path(folder: str | Path) -> Path:
    folder = Path(folder)
    return folder if folder.suffix == ".json" else inside(folder, MANIFEST_NAME, "model manifest")


def inside(folder: str | Path, relative: str, what: str = "model file") -> Path:
    """``folder / relative``, refused (ModelError) when its target lies outside ``folder``.

    The manifest's paths are already relative and free of '..'
    (:func:`~edge.manifest_entries._relative_path`); this also follows symlinks, so
    ``model_int8.onnx -> /etc/passwd`` is refused before a byte is read. The folder itself may be
    reached through a link, and links between files inside it are fine. The path is returned as
    given (messages keep naming it); the caller opens it right away.
    """
    path = Path(folder) / relative
    root = Path(folder).resolve()
    target = path.resolve()
    if not target.is_relative_to(root):
        raise ModelError(
            f"{what} {str(path)!r} leads outside the model set folder {str(root)!r} (to {str(target)!r}); "
            "a model set's files must lie inside its folder: copy the file in instead of linking it"
        )
    return path


def load_manifest(folder: str | Path) -> Manifest:
    """Read and validate ``folder/manifest.json`` (or a manifest path given directly)."""
    path = _manifest_path(folder)
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_MANIFEST_BYTES + 1)
        if len(raw) > MAX_MANIFEST_BYTES:
            raise ModelError(
                f"model manifest {str(path)!r} is larger than {MAX_MANIFEST_BYTES >> 20} MB; "
                "it is not a manifest written by `trainer export`"
            )
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise ModelError(
            f"model manifest {str(path)!r} does not exist; point the model setting at a folder "
            "written by `trainer export`"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"model manifest {str(path)!r} cannot be read: {exc}") from None
    try:
        data = json.loads(text)
    except RecursionError:
        raise ModelError(
            f"model manifest {str(path)!r} is nested too deeply; re-export the model set"
        ) from None
    except json.JSONDecodeError as exc:
        raise ModelError(
            f"model manifest {str(path)!r} is not valid JSON at line {exc.lineno}, column {exc.colno}: "
            f"{exc.msg}; re-export the model set"
        ) from None
    if not isinstance(data, dict):
        raise ModelError(f"model manifest {str(path)!r} must hold a JSON object, got {type(data).__name__}")
    try:
        return Manifest.model_validate(data)
    except ValidationError as err:
        raise ModelError(format_validation_error(err, Manifest, f"model manifest {str(path)!r}")) from None


def open_manifest(folder: str | Path) -> Manifest:
    """The model set's manifest; a missing folder gets a message saying where it comes from."""
    folder = Path(folder)
    try:
        return load_manifest(folder)
    except ModelError as exc:
        if folder.exists():
            raise
        raise ModelError(
            f"{exc}. The model set folder {str(folder)!r} (engine.model_set) does not exist: the default "
            "model set is shipped separately (install it there), or point engine.model_set at a set you "
            "built with `trainer export`"
        ) from None


def write_manifest(folder: str | Path, manifest: Manifest) -> Path:
    """Write ``folder/manifest.json`` atomically: a reader sees the old file or the new, never half."""
    path = _manifest_path(folder)
    text = json.dumps(manifest.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"
    with atomic_write(path, "w") as fh:
        fh.write(text)
    return path


def sha256_file(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks so large models need little memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def make_file_entry(
    folder: str | Path, path: str, runtime: Runtime, precision: Precision, **fields: Any
) -> FileEntry:
    """A :class:`FileEntry` for an existing file, with its size and hash computed."""
    full = Path(folder) / path
    return FileEntry(
        path=path,
        runtime=runtime,
        precision=precision,
        sha256=sha256_file(full),
        bytes=full.stat().st_size,
        **fields,
    )


def verify_file(folder: str | Path, entry: FileEntry | IndexEntry) -> Path:
    """Check a listed file lies inside ``folder``, exists and matches its SHA-256; return its path."""
    full = inside(folder, entry.path, "index file" if isinstance(entry, IndexEntry) else "model file")
    _check_file(full, entry.sha256, getattr(entry, "bytes", None), "model file", _FIX_HASH)
    return full


def _check_file(full: Path, sha256: str, size: int | None, what: str, fix: str) -> None:
    """ModelError (naming ``what`` and ``fix``) unless ``full`` exists, has ``size`` bytes (None:
    any) and the SHA-256 the manifest lists."""
    if not full.is_file():
        raise ModelError(f"{what} {str(full)!r} listed in the manifest is missing; {fix}")
    if size is not None and full.stat().st_size != size:
        raise ModelError(
            f"{what} {str(full)!r} has {full.stat().st_size} bytes but the manifest expects {size} "
            f"(truncated or replaced?); {fix}"
        )
    actual = sha256_file(full)
    if actual != sha256:
        raise ModelError(
            f"{what} {str(full)!r} is corrupt or was replaced: sha256 expected {sha256}, "
            f"actual {actual}; {fix}"
        )


def verify_shipped_segmenter(model: str | Path, sidecar: str | Path | None = None) -> SegmenterEntry | None:
    """The manifest entry of a segmentation model shipped in a model set, checked; None if not shipped.

    ``model`` is shipped when the ``manifest.json`` in its folder lists it under ``segmenters``; its
    file and its sidecar (``sidecar`` if given, else the entry's) must then match the listed sha256
    (else :class:`ModelError`), so a half-copied or replaced model is refused rather than run.
    """
    model = Path(model)
    folder = model.parent
    if not (folder / MANIFEST_NAME).is_file():
        return None
    manifest = load_manifest(folder)
    entry = next((s for s in manifest.segmenters if (folder / s.path).resolve() == model.resolve()), None)
    if entry is None:
        return None
    fix = (
        "copy the segmenter and its sidecar again from the model set, or ship them again with "
        "`trainer segmenter --ship-to`"
    )
    _check_file(model, entry.sha256, None, "segmenter model", fix)
    listed = inside(folder, entry.sidecar, "segmenter sidecar")
    if sidecar is None or Path(sidecar).resolve() == listed.resolve():  # another sidecar is the user's
        _check_file(listed, entry.sidecar_sha256, None, "segmenter sidecar", fix)
    return entry
