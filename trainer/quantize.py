"""``trainer quantize``: smaller and faster variants of a model set's ``model_fp32.onnx``, each measured.

Formats (``--formats``, comma separated):

- ``onnx-int8`` (``model_int8.onnx``): ONNX Runtime static quantisation, QDQ format, per-channel int8
  weights and int8 activations calibrated on ``--calib-count`` training images (after
  ``quant_pre_process``: shape inference and graph optimisation). The first ``--float-convs``
  convolutions (of each member's trunk in an ensemble's graph, :mod:`trainer.ensemble`; default
  12: EfficientNet-Lite0's stem and its blocks at 64x64 and 32x32 for a
  128-pixel input, a quarter of the convolutions' multiply-adds) and everything beyond the
  convolutional trunk (heads, colour statistics) stay float. On the default model set's test
  render (single-view part top-1, fp32 0.744; measured on the set that preceded the current one):
  int8 after the first 3 convolutions 0.716, 6: 0.721, 9: 0.723, 12: 0.737, 16: 0.738; the set
  before that lost 5.5 points with every convolution int8. The 128 px set shipped until 3 December
  2026: fp32 0.767, int8 (12 float convolutions) 0.764; the 224 px set after it: 0.785 and
  0.780. ``--float-convs 3`` trades about 2 points for less float work.
- ``onnx-fp16`` (``model_fp16.onnx``): fp16 weights and compute via onnxconverter-common, float32
  input and outputs kept, so the engine wrapper feeds it like the fp32 file.
- ``tflite-fp16`` / ``tflite-int8`` (``model_fp16.tflite`` / ``model_int8.tflite``): onnx2tf (with
  onnxsim, :mod:`trainer.tflite_convert`), offline, from a batch-1 copy of the graph (NHWC
  input; the int8 file is full-integer with int8 input and outputs, calibrated on the same
  images). The file entry records the layout, input dtype and quantisation and the output
  order, found by matching each TFLite output against fp32 outputs on the calibration images
  (TFLite names them generically).

Calibration images come from the training split of ``--calib`` and accuracy is measured on its test
split (captures training never saw), both read through :func:`edge.preprocess.prepare` and run
through edge's engines, as on the Pi. Each artifact's top-1 agreement with fp32, its top-1 accuracy
and the drop from fp32 go into the manifest's ``evaluation.quantization``. A format whose tools are
missing fails with :class:`~edge.errors.MissingDependencyError` after the others are done.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge.engines import create_engine
from edge.errors import ConfigError, DataFileError, MissingDependencyError
from edge.manifest import Manifest, load_manifest, make_file_entry, write_manifest
from edge.manifest_entries import FileEntry
from trainer.data import Sample
from trainer.ensemble import shared_held_out
from trainer.model_set import (
    DataProtocol,
    build_record,
    load_samples,
    prepare_samples,
    run_engine,
    split_like_training,
    spread,
)
from trainer.tflite_convert import manifest_input_name, need, run_onnx2tf, tflite_entry

log = logging.getLogger(__name__)

#: Format -> (file name, runtime, precision).
FORMATS: dict[str, tuple[str, str, str]] = {
    "onnx-int8": ("model_int8.onnx", "onnxruntime", "int8"),
    "onnx-fp16": ("model_fp16.onnx", "onnxruntime", "fp16"),
    "tflite-fp16": ("model_fp16.tflite", "litert", "fp16"),
    "tflite-int8": ("model_int8.tflite", "litert", "int8"),
}
#: The artifact every other one is measured against (``evaluation.quantization``).
REFERENCE = "onnxruntime/fp32"

#: Convolutions kept float at the front of the ONNX int8 file (see the module docstring).
FLOAT_CONVS = 12


def parse_formats(text: str | Sequence[str]) -> list[str]:
    """The formats named in ``text`` ("onnx-int8,onnx-fp16" or a list), in :data:`FORMATS` order."""
    names = [t.strip() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    unknown = [n for n in names if n not in FORMATS]
    if unknown or not names:
        raise ConfigError(f"formats {unknown or names!r} unknown or empty; choose from {', '.join(FORMATS)}")
    return [f for f in FORMATS if f in names]


# ---- ONNX ----------------------------------------------------------------------------------------


def quantize_onnx_int8(
    src: Path, dst: Path, calib: np.ndarray, input_name: str, batch: int = 8, float_convs: int = FLOAT_CONVS
) -> None:
    """Static QDQ int8 quantisation of ``src`` (per-channel weights) calibrated on ``calib``; the
    first ``float_convs`` convolutions (:func:`first_convs`) and the nodes beyond the
    convolutional trunk (:func:`beyond_trunk_nodes`) stay float."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter(calib[i : i + batch] for i in range(0, len(calib), batch))

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self._batches, None)
            return None if x is None else {input_name: x}

    import onnx

    with tempfile.TemporaryDirectory(prefix="quant-") as tmp:
        pre = Path(tmp) / "preprocessed.onnx"
        quant_pre_process(str(src), str(pre))
        graph = onnx.load(str(pre))
        keep_float = beyond_trunk_nodes(graph) + first_convs(graph, float_convs)
        if keep_float:
            onnx.save(graph, str(pre))  # unnamed nodes were given names
        quantize_static(
            str(pre),
            str(dst),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=keep_float,
        )


def named_nodes(model: Any) -> list[Any]:
    """The graph's nodes in order, each unnamed one given the name ``node_<position>`` (ONNX Runtime's
    ``nodes_to_exclude`` and onnxconverter's ``node_block_list`` select nodes by name)."""
    nodes = list(model.graph.node)
    for i, node in enumerate(nodes):
        node.name = node.name or f"node_{i}"
    return nodes


def first_convs(model: Any, count: int) -> list[str]:
    """Names of the first ``count`` Conv nodes in graph order of each trunk (a valid graph is
    topologically sorted, so these are the ones nearest the image; an ensemble's graph has one
    trunk per member, :func:`trunks`). Unnamed nodes are given names first.

    The first layers see the image at full resolution through few channels: int8 rounding there
    loses detail that no later layer recovers, while they cost a small share of the model's time.
    """
    if count < 0:
        raise ConfigError(f"float convs {count!r} must be >= 0")
    nodes = named_nodes(model)
    chosen: set[int] = set()
    for trunk in trunks(nodes):
        chosen.update(sorted(i for i in trunk if nodes[i].op_type == "Conv")[:count])
    return [nodes[i].name for i in sorted(chosen)]


def trunks(nodes: list[Any]) -> list[set[int]]:
    """The convolutional trunks of a graph's (topologically sorted) nodes: for each last Conv (one
    from which no other Conv is reached: one per network, several in an ensemble's graph), the
    positions of the nodes that feed it, itself included."""
    producer = {out: i for i, node in enumerate(nodes) for out in node.output}
    consumers: dict[int, list[int]] = {}
    for i, node in enumerate(nodes):
        for name in node.input:
            if name in producer:
                consumers.setdefault(producer[name], []).append(i)
    reaches_conv = [False] * len(nodes)
    for i in reversed(range(len(nodes))):
        reaches_conv[i] = any(nodes[j].op_type == "Conv" or reaches_conv[j] for j in consumers.get(i, ()))
    out: list[set[int]] = []
    for end in (i for i, node in enumerate(nodes) if node.op_type == "Conv" and not reaches_conv[i]):
        trunk, todo = set(), [end]
        while todo:
            i = todo.pop()
            if i in trunk:
                continue
            trunk.add(i)
            todo += [producer[name] for name in nodes[i].input if name in producer]
        out.append(trunk)
    return out


def beyond_trunk_nodes(model: Any) -> list[str]:
    """Names of the nodes outside the convolutional trunks (everything that feeds no last Conv,
    :func:`trunks`): the heads and the colour descriptor's image statistics (and an ensemble's
    averaging). They cost little time and lose much accuracy in int8 (colour most), so they stay
    float. Unnamed nodes are given names first."""
    nodes = named_nodes(model)
    inside = set().union(*trunks(nodes))
    if not inside:
        return []
    return [node.name for i, node in enumerate(nodes) if i not in inside]


def float_sensitive_nodes(model: Any) -> list[str]:
    """Names of the image-fed nodes before the first or after the last weighted op (Conv, Gemm, MatMul).

    Those compute statistics of the raw image (the colour descriptor's sums over every pixel) or
    normalise the output (the embedding's sum of squares): in fp16 such sums lose precision or
    overflow (65504), so they stay float32. Unnamed nodes are given names first.
    """
    weighted = {"Conv", "Gemm", "MatMul"}
    nodes = named_nodes(model)
    producer = {out: i for i, node in enumerate(nodes) for out in node.output}
    consumers: dict[str, list[int]] = {}
    for i, node in enumerate(nodes):
        for name in node.input:
            consumers.setdefault(name, []).append(i)
    # Nodes are topologically sorted in a valid graph: one pass each way settles the flags.
    fed = {i.name for i in model.graph.input}  # tensors computed from the image (not constants)
    above = [False] * len(nodes)
    on_input = [False] * len(nodes)
    for i, node in enumerate(nodes):
        above[i] = node.op_type in weighted or any(above[producer[n]] for n in node.input if n in producer)
        on_input[i] = any(n in fed for n in node.input)
        if on_input[i]:
            fed.update(node.output)
    below = [False] * len(nodes)
    for i in reversed(range(len(nodes))):
        node = nodes[i]
        below[i] = node.op_type in weighted or any(
            below[j] for out in node.output for j in consumers.get(out, [])
        )
    return [n.name for i, n in enumerate(nodes) if on_input[i] and not (above[i] and below[i])]


def convert_onnx_fp16(src: Path, dst: Path) -> None:
    """fp16 weights and compute, float32 input and outputs (``keep_io_types``).

    The nodes of :func:`float_sensitive_nodes` stay float32.
    """
    need("onnxconverter_common", "onnxconverter-common", "the ONNX fp16 model")
    import onnx
    from onnxconverter_common import float16

    model = onnx.load(str(src))
    keep = float_sensitive_nodes(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constants below fp16's range (epsilons) are clamped: expected
        model = float16.convert_float_to_float16(model, keep_io_types=True, node_block_list=keep)
    # The converter casts the output of a float32-kept last node back to fp16, despite keep_io_types:
    # make that cast produce float32 again (a float32 -> float32 cast, which ONNX Runtime removes).
    producer = {out: n for n in model.graph.node for out in n.output}
    for output in model.graph.output:
        tensor = output.type.tensor_type
        node = producer.get(output.name)
        if tensor.elem_type == onnx.TensorProto.FLOAT16 and node is not None and node.op_type == "Cast":
            for attr in node.attribute:
                if attr.name == "to":
                    attr.i = onnx.TensorProto.FLOAT
            tensor.elem_type = onnx.TensorProto.FLOAT
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))


# ---- measuring -----------------------------------------------------------------------------------


def accuracy_figures(
    outputs: dict[str, np.ndarray],
    reference: dict[str, np.ndarray],
    samples: Sequence[Sample],
    manifest: Manifest,
) -> dict[str, Any]:
    """Top-1 accuracy of ``outputs`` and its agreement with ``reference`` (the fp32 outputs)."""
    parts = {p: i for i, p in enumerate(manifest.parts)}
    truth = np.array([parts[s.part_num] for s in samples])
    pred = outputs["part_logits"].argmax(1)
    figures: dict[str, Any] = {
        "part_top1": float(np.mean(pred == truth)),
        "part_top1_agreement": float(np.mean(pred == reference["part_logits"].argmax(1))),
    }
    colors = {c: i for i, c in enumerate(manifest.colors)}
    has = np.array([s.color_id in colors for s in samples])
    if "color_logits" in outputs and has.any():
        ctruth = np.array([-1 if s.color_id is None else colors.get(s.color_id, -1) for s in samples])
        cpred = outputs["color_logits"].argmax(1)
        figures["color_top1"] = float(np.mean(cpred[has] == ctruth[has]))
        figures["color_top1_agreement"] = float(np.mean(cpred == reference["color_logits"].argmax(1)))
    if "embedding" in outputs:
        a, b = outputs["embedding"], reference["embedding"]
        cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
        figures["embedding_cosine_mean"] = float(cos.mean())
    return figures


def calibration_split(
    manifest: Manifest, calib_paths: Sequence[str | Path], calib_count: int, eval_count: int
) -> tuple[list[Sample], list[Sample]]:
    """``(calibration samples from the train split, held-out samples from the test split)``, known parts.

    For an ensemble the held-out samples are those no member trained on (each member's split from
    the manifest's ``build.data_members``)."""
    protocols = DataProtocol.members_from_manifest(manifest)
    samples = load_samples(calib_paths, protocols[0])  # read once; each member splits it (as export does)
    all_splits = [split_like_training(samples, p)[0] for p in protocols]
    splits = all_splits[0]
    known = set(manifest.parts)
    train = [s for s in splits["train"] if s.part_num in known]
    held = [s for s in shared_held_out(all_splits, "test") if s.part_num in known] or [
        s for s in shared_held_out(all_splits, "val") if s.part_num in known
    ]
    if not train or not held:
        raise DataFileError(
            f"the calibration data gives {len(train)} training and {len(held)} held-out images of the "
            "model's parts; pass --calib with data of these parts holding several captures per part"
        )
    return spread(train, calib_count), spread(held, eval_count)


def quantize_model_set(
    model_set: str | Path,
    calib: Sequence[str | Path],
    formats: str | Sequence[str] = "onnx-int8,onnx-fp16,tflite-fp16,tflite-int8",
    *,
    calib_count: int = 200,
    eval_count: int = 500,
    float_convs: int = FLOAT_CONVS,
    command: str | None = None,
) -> Manifest:
    """Write the requested variants into the model set, list them in its manifest and measure them.

    Raises:
        MissingDependencyError: a format's tools are missing (raised after every other format is done).
        ModelError / DataFileError: a conversion fails, or the data holds no usable images.
    """
    if calib_count < 1 or eval_count < 1:
        raise ConfigError(f"calib count {calib_count!r} and eval count {eval_count!r} must be at least 1")
    if float_convs < 0:
        raise ConfigError(f"float convs {float_convs!r} must be >= 0 (0: every convolution int8)")
    folder = Path(model_set)
    wanted = parse_formats(formats)
    manifest = load_manifest(folder)
    fp32 = manifest.select("onnxruntime", "fp32")
    calib_samples, held = calibration_split(manifest, calib, calib_count, eval_count)
    x_calib = prepare_samples(calib_samples, manifest.input)
    log.info("calibrating on %d training images; measuring on %d held-out images", len(x_calib), len(held))
    src = folder / fp32.path
    input_name = fp32.input_name or manifest_input_name(src)

    new: list[FileEntry] = []
    missing: list[MissingDependencyError] = []
    if "onnx-int8" in wanted:
        quantize_onnx_int8(
            src, folder / FORMATS["onnx-int8"][0], x_calib, input_name, float_convs=float_convs
        )
        new.append(
            make_file_entry(folder, FORMATS["onnx-int8"][0], "onnxruntime", "int8", input_name=input_name)
        )
    if "onnx-fp16" in wanted:
        try:
            convert_onnx_fp16(src, folder / FORMATS["onnx-fp16"][0])
            new.append(
                make_file_entry(folder, FORMATS["onnx-fp16"][0], "onnxruntime", "fp16", input_name=input_name)
            )
        except MissingDependencyError as exc:
            missing.append(exc)
    tflite = [f for f in wanted if f.startswith("tflite-")]
    if tflite:
        try:
            new += _tflite(folder, manifest, src, x_calib, tflite)
        except MissingDependencyError as exc:
            missing.append(exc)

    keep = [f for f in manifest.files if f.path not in {e.path for e in new}]
    manifest = manifest.model_copy(update={"files": keep + new})
    write_manifest(folder, manifest)
    if new:
        manifest = _measure(folder, manifest, [fp32, *new], held, len(calib_samples), command, float_convs)
    if missing:
        raise missing[0]
    return manifest


def _tflite(
    folder: Path, manifest: Manifest, src: Path, x_calib: np.ndarray, formats: list[str]
) -> list[FileEntry]:
    x_nhwc = x_calib.transpose(0, 2, 3, 1) if manifest.input.layout == "NCHW" else x_calib
    with create_engine("onnxruntime", folder, manifest, precision="fp32", threads=2) as engine:
        probe = x_calib[: min(16, len(x_calib))]
        ref = engine.run(probe)
    entries = []
    with tempfile.TemporaryDirectory(prefix="onnx2tf-") as tmp:
        made = run_onnx2tf(src, manifest, x_nhwc, "tflite-int8" in formats, Path(tmp))
        for fmt in formats:
            name, _, precision = FORMATS[fmt]
            shutil.copyfile(made[precision], folder / name)
            entries.append(tflite_entry(folder, name, precision, manifest, probe, ref))
    return entries


def _measure(
    folder: Path,
    manifest: Manifest,
    entries: list[FileEntry],
    held: list[Sample],
    calib_count: int,
    command: str | None,
    float_convs: int,
) -> Manifest:
    results: dict[str, dict[str, Any]] = {}
    reference: dict[str, np.ndarray] = {}
    for entry in entries:
        with create_engine(entry.runtime, folder, manifest, precision=entry.precision) as engine:
            outputs = run_engine(engine, held)
        if entry.key == REFERENCE:
            reference = outputs
        figures = accuracy_figures(outputs, reference, held, manifest)
        figures.update(file=entry.path, bytes=entry.bytes)
        results[entry.key] = figures
    base = results[REFERENCE]
    for figures in results.values():
        figures["part_top1_drop"] = base["part_top1"] - figures["part_top1"]
    for key, figures in results.items():
        log.info(
            "%-18s part top-1 %.3f (drop %+.3f), agreement with fp32 %.3f",
            key,
            figures["part_top1"],
            figures["part_top1_drop"],
            figures["part_top1_agreement"],
        )
    previous = dict(manifest.evaluation.get("quantization", {}).get("artifacts", {}))
    quantization = {
        "held_out_images": len(held),
        "held_out_split": "test",
        "calibration_images": calib_count,
        "onnx_int8_float_convs": float_convs,
        "artifacts": previous | results,
        "build": build_record(command),
    }
    manifest = manifest.model_copy(
        update={"evaluation": {**manifest.evaluation, "quantization": quantization}}
    )
    write_manifest(folder, manifest)
    return manifest


# ---- command line --------------------------------------------------------------------------------


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``trainer quantize``."""
    p = sub.add_parser(
        "quantize",
        help="int8/fp16 ONNX and TFLite variants of a model set, each measured",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model-set", required=True, type=Path, help="model set folder (from trainer export)")
    p.add_argument(
        "--calib", required=True, nargs="+", type=Path, help="data folders (training distribution)"
    )
    p.add_argument(
        "--formats",
        default="onnx-int8,onnx-fp16,tflite-fp16,tflite-int8",
        help=f"comma-separated formats out of {', '.join(FORMATS)} (default: all)",
    )
    p.add_argument("--calib-count", type=int, default=200, help="calibration images (default 200)")
    p.add_argument("--eval-count", type=int, default=500, help="held-out images measured (default 500)")
    p.add_argument(
        "--float-convs",
        type=int,
        default=FLOAT_CONVS,
        help=f"first convolutions kept float in the ONNX int8 file (default {FLOAT_CONVS})",
    )
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Run ``trainer quantize``."""
    manifest = quantize_model_set(
        args.model_set,
        args.calib,
        args.formats,
        calib_count=args.calib_count,
        eval_count=args.eval_count,
        float_convs=args.float_convs,
    )
    for key, f in manifest.evaluation["quantization"]["artifacts"].items():
        print(
            f"{key:<18} {f['file']:<20} {f['bytes'] / 1e6:7.2f} MB  part top-1 {f['part_top1']:.3f} "
            f"(drop {f['part_top1_drop']:+.3f}, agreement {f['part_top1_agreement']:.3f})"
        )
    return 0
