"""The parts a model manifest is built from: the network's interface and one entry per shipped file.

:class:`InputSpec` says how an image becomes the network's input tensor (shared with
:mod:`edge.preprocess` and the trainer), :class:`OutputNames` which graph output plays which role,
:class:`QuantParams` an integer tensor's quantisation; :class:`FileEntry` (an exported network file),
:class:`IndexEntry` (the embedding index) and :class:`SegmenterEntry` (a trained segmenter) each
name a file inside the model folder and its SHA-256. :class:`edge.manifest.Manifest` holds them all.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from edge.config import StrictModel

Runtime = Literal["onnxruntime", "litert"]
Precision = Literal["fp32", "fp16", "int8"]
Layout = Literal["NCHW", "NHWC"]
InputDType = Literal["float32", "uint8", "int8"]
OutputRole = Literal["part_logits", "color_logits", "embedding"]
#: The roles a classifier's outputs can play, in their canonical order.
OUTPUT_ROLES: tuple[OutputRole, ...] = ("part_logits", "color_logits", "embedding")

_Fraction = Annotated[float, Field(ge=-10.0, le=10.0)]
_PositiveStd = Annotated[float, Field(gt=0.0, le=1000.0)]
_Byte = Annotated[int, Field(ge=0, le=255)]
_Side = Annotated[int, Field(ge=1, le=4096)]
_SHA256 = r"^[0-9a-f]{64}$"


def _relative_path(value: str) -> str:
    """Reject paths that would leave the model folder (absolute, '..', empty)."""
    p = PurePosixPath(value)
    if not value or p.is_absolute() or ".." in p.parts or "\\" in value or (value[1:2] == ":"):
        raise ValueError(f"{value!r} must be a relative path inside the model folder, using '/'")
    return value


class InputSpec(StrictModel):
    """How an image becomes the network's input tensor (see :func:`edge.preprocess.prepare`)."""

    size: tuple[_Side, _Side] = Field(description="network input size [height, width] in pixels")
    channels: Literal[3] = Field(default=3, description="number of colour channels; always 3")
    color_order: Literal["RGB"] = Field(default="RGB", description="channel order of the input; always RGB")
    layout: Layout = Field(
        default="NCHW", description="tensor layout prepare() produces: NCHW (channels first) or NHWC"
    )
    mean: tuple[_Fraction, _Fraction, _Fraction] = Field(
        default=(0.485, 0.456, 0.406), description="per-channel mean subtracted after scaling, RGB order"
    )
    std: tuple[_PositiveStd, _PositiveStd, _PositiveStd] = Field(
        default=(0.229, 0.224, 0.225),
        description="per-channel std divided by after subtracting the mean (> 0)",
    )
    scale: float = Field(
        default=1 / 255, gt=0.0, le=1.0, description="factor applied to 0..255 pixel values first"
    )
    background: Literal["keep", "fill"] = Field(
        default="keep", description="'keep' the camera background around the part or 'fill' it with fill_rgb"
    )
    fill_rgb: tuple[_Byte, _Byte, _Byte] = Field(
        default=(0, 0, 0), description="RGB 0..255 colour of filled background and of padding in 'fill' mode"
    )
    crop_margin: float = Field(
        default=0.1,
        ge=0.0,
        le=2.0,
        description="margin added around the mask's box, as a fraction of its longer side",
    )


class OutputNames(StrictModel):
    """The graph's output tensor name for each role; None where the network lacks that head."""

    part_logits: str = Field(
        default="part_logits", min_length=1, description="output name of the part-class logits"
    )
    color_logits: str | None = Field(
        default="color_logits", min_length=1, description="output name of the colour-class logits, or null"
    )
    embedding: str | None = Field(
        default="embedding", min_length=1, description="output name of the L2-normalised embedding, or null"
    )

    def roles(self) -> dict[OutputRole, str]:
        """Role -> graph output name, for the heads this network has."""
        named: dict[OutputRole, str | None] = {
            "part_logits": self.part_logits,
            "color_logits": self.color_logits,
            "embedding": self.embedding,
        }
        return {role: name for role in OUTPUT_ROLES if (name := named[role]) is not None}


class QuantParams(StrictModel):
    """Affine quantisation of an integer tensor: real = (q - zero_point) * scale."""

    scale: float = Field(gt=0.0, le=1e6, description="real value of one quantisation step (> 0)")
    zero_point: int = Field(ge=-128, le=255, description="integer that represents real 0")


class FileEntry(StrictModel):
    """One exported network file in the model folder."""

    path: str = Field(description="file path relative to the model folder, '/' separated")
    runtime: Runtime = Field(description="engine that runs it: onnxruntime or litert")
    precision: Precision = Field(description="weight precision: fp32, fp16 or int8")
    sha256: str = Field(pattern=_SHA256, description="lower-case hex SHA-256 of the file")
    bytes: int = Field(ge=0, description="file size in bytes")
    layout: Layout | None = Field(
        default=None,
        description="input layout of this file when it differs from input.layout (TFLite is NHWC)",
    )
    input_dtype: InputDType = Field(
        default="float32", description="dtype of the input tensor: float32, uint8 or int8"
    )
    input_quant: QuantParams | None = Field(
        default=None, description="quantisation of an integer input tensor"
    )
    output_quant: dict[OutputRole, QuantParams] | None = Field(
        default=None,
        description="quantisation of integer outputs by role, when the runtime does not report it",
    )
    output_order: list[OutputRole | None] | None = Field(
        default=None,
        description="role of each runtime output in the runtime's order (null for an extra output); "
        "needed when output names are generic, e.g. StatefulPartitionedCall:0",
    )
    input_name: str | None = Field(default=None, description="expected input tensor name; null accepts any")

    @field_validator("path")
    @classmethod
    def _inside_folder(cls, v: str) -> str:
        return _relative_path(v)

    @model_validator(mode="after")
    def _quant_matches_dtype(self) -> FileEntry:
        if self.input_dtype != "float32" and self.input_quant is None:
            raise ValueError(f"input_dtype {self.input_dtype!r} needs input_quant {{scale, zero_point}}")
        if self.input_dtype == "float32" and self.input_quant is not None:
            raise ValueError("input_quant is only meaningful with input_dtype uint8 or int8")
        if self.output_order is not None:
            roles = [r for r in self.output_order if r is not None]
            if len(set(roles)) != len(roles):
                raise ValueError(f"output_order names a role twice: {self.output_order!r}")
        return self

    @property
    def key(self) -> str:
        """``runtime/precision``, as listed in error messages."""
        return f"{self.runtime}/{self.precision}"


class IndexEntry(StrictModel):
    """The embedding nearest-neighbour index (hnswlib) shipped with the model set."""

    path: str = Field(description="index file relative to the model folder")
    sha256: str = Field(pattern=_SHA256, description="lower-case hex SHA-256 of the index file")
    space: Literal["cosine", "l2", "ip"] = Field(default="cosine", description="hnswlib distance space")
    dim: int = Field(ge=1, le=65536, description="vector dimension; equals embedding_dim")
    M: int = Field(default=16, ge=2, le=256, description="hnswlib M (links per node)")
    ef_construction: int = Field(
        default=200, ge=1, le=100000, description="hnswlib ef_construction used to build"
    )
    ef_search: int = Field(default=64, ge=1, le=100000, description="hnswlib ef to set at query time")
    count: int = Field(ge=0, description="number of vectors in the index")
    labels: str = Field(description="JSON file mapping index ids to labels, relative to the model folder")
    labels_sha256: str | None = Field(default=None, pattern=_SHA256, description="SHA-256 of the labels file")
    graph: str | None = Field(
        default=None,
        description="hnswlib graph (its save_index file) built from the vectors, relative to the model "
        "folder; loads without rebuilding. null: the runtime rebuilds the graph from the vectors",
    )
    graph_sha256: str | None = Field(
        default=None, pattern=_SHA256, description="lower-case hex SHA-256 of the graph file"
    )

    @field_validator("path", "labels")
    @classmethod
    def _inside_folder(cls, v: str) -> str:
        return _relative_path(v)

    @field_validator("graph")
    @classmethod
    def _graph_inside_folder(cls, v: str | None) -> str | None:
        return None if v is None else _relative_path(v)

    @model_validator(mode="after")
    def _graph_has_checksum(self) -> IndexEntry:
        if (self.graph is None) != (self.graph_sha256 is None):
            raise ValueError(
                "graph and graph_sha256 go together: give both or neither; "
                "run `trainer index --graph-only` to write them"
            )
        if self.graph is not None and self.graph in (self.path, self.labels):
            raise ValueError(f"graph {self.graph!r} must be its own file, not the vectors or labels file")
        return self


class SegmenterEntry(StrictModel):
    """A trained segmentation model (edge's ``mobileseg`` option) shipped with the model set.

    Written by ``trainer segmenter --ship-to``; edge's ``mobileseg`` checks a model it loads from a
    model folder against its entry here (file and sidecar sha256) before running it.
    """

    path: str = Field(description="ONNX file relative to the model folder")
    sidecar: str = Field(description="its JSON sidecar (input size, mean, std) relative to the model folder")
    precision: Literal["fp32", "int8"] = Field(description="weight precision of the ONNX file")
    sha256: str = Field(pattern=_SHA256, description="lower-case hex SHA-256 of the ONNX file")
    sidecar_sha256: str = Field(pattern=_SHA256, description="lower-case hex SHA-256 of the sidecar")
    bytes: int = Field(ge=0, description="size of the ONNX file in bytes")
    evaluation: dict[str, Any] = Field(
        default_factory=dict, description="free-form figures: mask IoU per image set, training record"
    )

    @field_validator("path", "sidecar")
    @classmethod
    def _inside_folder(cls, v: str) -> str:
        return _relative_path(v)
