"""trainer export: a tiny untrained network (64x64 input) to ONNX, checked against torch on real images.

The parity images are renders of the project's demo LDraw library, read and prepared with
edge.preprocess exactly as the Pi does. The torch tests need the ``train`` extra and are skipped
without it; the parity check's own logic is tested with plain arrays.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from edge.engines import create_engine
from edge.errors import ConfigError, DataFileError, ModelError
from edge.manifest import load_manifest, verify_file
from studio.demo_library import DEMO_PARTS
from trainer.data import LabelMap, load_source
from trainer.export import FP32_NAME, add_parser, check_parity, parity_figures
from trainer.model_set import DataProtocol, load_samples, prepare_samples, split_like_training, spread
from trainer.quantize import calibration_split
from trainer.render import run_render
from trainer.render_worker import RenderJob

HAVE_TORCH = all(importlib.util.find_spec(m) for m in ("torch", "timm", "safetensors"))
needs_torch = pytest.mark.skipif(not HAVE_TORCH, reason="torch/timm (the train extra) are not installed")
COLORS = (4, 1, 14)


@pytest.fixture(scope="module")
def data(demo_library: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Renders of the demo parts: 3 captures of 2 views each, 64x64, legacy layout."""
    out = tmp_path_factory.mktemp("export_data")
    job = RenderJob(str(demo_library), "legacy", str(out), 3, 2, COLORS, 2, "train", 1, 64)
    assert not [r.error for r in run_render(job, list(DEMO_PARTS)) if r.error]
    return out


def _checkpoint(folder: Path, data: Path, *, colors: tuple[int, ...] = COLORS, seed: int = 0) -> Path:
    from trainer.checkpoint import CheckpointMeta, save_checkpoint
    from trainer.models import create_model, default_input_spec

    labels = LabelMap(sorted(DEMO_PARTS), list(colors))
    model = create_model(
        "efficientnet_lite0",
        num_parts=labels.num_parts,
        num_colors=labels.num_colors,
        embedding_dim=16,
        pretrained=False,
    )
    meta = CheckpointMeta(
        default_input_spec("efficientnet_lite0", 64),
        labels,
        config={
            "sources": [{"path": str(data), "kind": "auto", "name": None}],
            "split": [0.6, 0.2, 0.2],
            "seed": seed,
        },
        stage="stage1",
        extra={"holdout_parts": []},
    )
    return save_checkpoint(folder, model, None, meta)


@pytest.fixture(scope="module")
def exported(data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(checkpoint folder, model set folder) of the tiny network."""
    from trainer.export import export_checkpoint

    root = tmp_path_factory.mktemp("export")
    checkpoint = _checkpoint(root / "ck", data)
    export_checkpoint(checkpoint, root / "set", parity_images=16, command="pytest export")
    return checkpoint, root / "set"


@needs_torch
def test_model_set_is_complete_and_loadable(exported: tuple[Path, Path], data: Path) -> None:
    _, folder = exported
    manifest = load_manifest(folder)
    assert [f.key for f in manifest.files] == ["onnxruntime/fp32"]
    entry = manifest.files[0]
    assert entry.path == FP32_NAME and entry.input_name == "image"
    verify_file(folder, entry)
    assert manifest.architecture == "efficientnet_lite0"
    assert manifest.input.size == (64, 64) and manifest.input.mean == (0.5, 0.5, 0.5)
    assert manifest.parts == sorted(DEMO_PARTS) and manifest.colors == list(COLORS)
    assert manifest.embedding_dim == 16
    assert manifest.outputs.roles() == {r: r for r in ("part_logits", "color_logits", "embedding")}
    build = manifest.build
    assert build["command"] == "pytest export" and build["date"] and build["opset"] == 17
    assert {"torch", "onnx", "onnxruntime", "numpy"} <= set(build["versions"])
    assert build["data"]["fractions"] == [0.6, 0.2, 0.2]
    assert build["data"]["sources"][0]["path"] == str(data.resolve())

    parity = manifest.evaluation["export_parity"]
    assert parity["images"] == 16
    assert max(parity["max_abs_diff"].values()) <= 1e-3
    assert parity["part_top1_agreement"] == 1.0 and parity["color_top1_agreement"] == 1.0
    # Temperatures fitted on training's validation split, with their NLL no worse than at T = 1.
    scaling = manifest.evaluation["temperature_scaling"]
    assert scaling["images"] > 0 and set(manifest.temperatures) == {"part_logits", "color_logits"}
    for role, t in manifest.temperatures.items():
        assert 0.05 <= t <= 20 and scaling[role]["temperature"] == t
        assert scaling[role]["nll"] <= scaling[role]["nll_at_1"]


@needs_torch
def test_onnx_equals_torch_on_prepared_images(exported: tuple[Path, Path], data: Path) -> None:
    import onnx
    import torch

    from trainer.checkpoint import load_checkpoint

    checkpoint, folder = exported
    manifest = load_manifest(folder)
    graph = onnx.load(folder / FP32_NAME).graph
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param  # the batch is dynamic
    model, _ = load_checkpoint(checkpoint)
    x = prepare_samples(spread(load_source(data), 5), manifest.input)  # a batch of 5, not the traced 2
    with torch.no_grad():
        expected = {k: v.numpy() for k, v in model(torch.from_numpy(x)).items()}
    with create_engine("onnxruntime", folder) as engine:
        got = engine.run(x)
    assert set(got) == set(expected)
    for role, value in expected.items():
        np.testing.assert_allclose(got[role], value, atol=1e-4, rtol=1e-4)
    norms = np.linalg.norm(got["embedding"], axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)


@needs_torch
def test_refusals_and_no_colour_head(
    exported: tuple[Path, Path], data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from trainer.export import export_checkpoint

    checkpoint, folder = exported
    with pytest.raises(ConfigError, match="--force"):
        export_checkpoint(checkpoint, folder)
    with pytest.raises(DataFileError, match="--data"):  # training's data is not here and none is given
        export_checkpoint(_checkpoint(tmp_path / "ck", tmp_path / "gone"), tmp_path / "x")

    plain = _checkpoint(tmp_path / "ck0", data, colors=())
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    argv = ["export", "--checkpoint", str(plain), "--out", str(tmp_path / "set0"), "--data", str(data)]
    args = parser.parse_args([*argv, "--parity-images", "4"])
    assert args.func(args) == 0
    assert "parity on 4 images" in capsys.readouterr().out
    manifest = load_manifest(tmp_path / "set0")
    assert manifest.outputs.color_logits is None and manifest.colors == []
    with create_engine("onnxruntime", tmp_path / "set0") as engine:
        out = engine.run(np.zeros((2, *engine.input_shape), np.float32))
    assert set(out) == {"part_logits", "embedding"}


def test_parity_check_enforces_its_limits() -> None:
    rng = np.random.default_rng(0)
    ref = {"part_logits": rng.normal(size=(10, 4)), "embedding": rng.normal(size=(10, 3))}
    same = parity_figures(ref, {k: v + 1e-5 for k, v in ref.items()})
    assert same["part_top1_agreement"] == 1.0
    assert same["max_abs_diff"]["part_logits"] == pytest.approx(1e-5)
    check_parity(same, 1e-3, 0.99)

    drifted = {k: v.copy() for k, v in ref.items()}
    drifted["embedding"][3, 1] += 0.01
    with pytest.raises(ModelError, match=r"embedding differs by up to 0\.01"):
        check_parity(parity_figures(ref, drifted), 1e-3, 0.99)

    flipped = {k: v.copy() for k, v in ref.items()}
    flipped["part_logits"][0] = -flipped["part_logits"][0]  # its top-1 changes
    figures = parity_figures(ref, flipped)
    assert figures["part_top1_agreement"] == pytest.approx(0.9)
    with pytest.raises(ModelError, match=r"part_top1_agreement is 0\.900"):
        check_parity(figures, 100.0, 0.99)
    with pytest.raises(ModelError, match="lacks the output 'embedding'"):
        parity_figures(ref, {"part_logits": ref["part_logits"]})


def test_fit_temperature_recovers_the_temperature_that_made_the_labels() -> None:
    from trainer.export import fit_temperature

    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (4000, 20))
    for true_t in (0.5, 2.0):
        p = np.exp(logits / true_t)
        p /= p.sum(axis=1, keepdims=True)
        labels = np.array([rng.choice(20, p=row) for row in p])
        t, before, after = fit_temperature(logits, labels)
        assert abs(np.log(t / true_t)) < 0.15 and after < before
    with pytest.raises(ValueError, match="must be"):
        fit_temperature(logits, np.zeros(3, int))


@needs_torch
def test_an_averaged_checkpoint_exports_and_names_its_epochs(data: Path, tmp_path: Path) -> None:
    """A weight average exports like any checkpoint (the parity check passes), and the manifest
    says which epochs it is the mean of."""
    import torch

    from trainer.average import average_checkpoints
    from trainer.export import export_checkpoint

    torch.manual_seed(1)
    first = _checkpoint(tmp_path / "epoch_0001", data)
    torch.manual_seed(2)
    second = _checkpoint(tmp_path / "epoch_0002", data)
    mean = average_checkpoints([first, second], tmp_path / "avg")
    manifest = export_checkpoint(mean, tmp_path / "set", parity_images=8, calibration_images=0)
    record = manifest.build["checkpoint"]
    assert [Path(a["checkpoint"]).name for a in record["averaged_from"]] == ["epoch_0001", "epoch_0002"]
    assert record["metrics"] == {}  # no one epoch's figures stand for the average
    on_disk = load_manifest(tmp_path / "set").build["checkpoint"]
    assert on_disk["averaged_from"] == record["averaged_from"]  # written, not only returned


@needs_torch
def test_an_ensemble_exports_as_one_network_whose_answers_are_its_members_mean(
    data: Path, tmp_path: Path
) -> None:
    """Two runs (other seeds, other splits) exported as one graph: its part and colour outputs are
    the mean of the members' log-probabilities, its embedding the members' side by side, a unit
    vector whose cosines are the mean of the members' cosines; the manifest names both members."""
    import torch

    from trainer.checkpoint import load_checkpoint
    from trainer.export import _torch_outputs

    torch.manual_seed(1)
    first = _checkpoint(tmp_path / "run0", data)
    torch.manual_seed(2)
    second = _checkpoint(tmp_path / "run1", data, seed=1)
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    argv = ["export", "--checkpoint", str(first), str(second), "--out", str(tmp_path / "set")]
    args = parser.parse_args(argv)
    args.parity_images, args.calibration_images = 8, 50
    assert args.func(args) == 0
    manifest = load_manifest(tmp_path / "set")
    assert manifest.architecture == "efficientnet_lite0 x2 ensemble" and manifest.embedding_dim == 32
    members = manifest.build["checkpoint"]["ensemble_of"]
    assert [(Path(m["checkpoint"]).name, m["seed"]) for m in members] == [("run0", 0), ("run1", 1)]
    assert manifest.evaluation["export_parity"]["part_top1_agreement"] == 1.0
    assert manifest.evaluation["temperature_scaling"]["images"] > 0  # the images neither run trained on
    # quantize measures on test images no member trained on: each member's split is recorded
    protocols = DataProtocol.members_from_manifest(manifest)
    assert [p.seed for p in protocols] == [0, 1]
    member_splits = [split_like_training(load_samples([data], p), p)[0] for p in protocols]
    trained = {s.image_path for split in member_splits for s in split["train"]}
    first_test = member_splits[0]["test"]
    assert {s.image_path for s in first_test} & trained  # the first run's test split alone would leak
    _, held = calibration_split(manifest, [data], 16, 40)
    assert held and not {s.image_path for s in held} & trained

    samples = spread(load_source(data), 6)
    x = prepare_samples(samples, manifest.input)
    outs = [_torch_outputs(load_checkpoint(c)[0], x) for c in (first, second)]
    with create_engine("onnxruntime", tmp_path / "set", manifest, precision="fp32") as engine:
        got = engine.run(x)
    for role in ("part_logits", "color_logits"):
        mean = np.mean([torch.log_softmax(torch.from_numpy(o[role]), 1).numpy() for o in outs], axis=0)
        np.testing.assert_allclose(got[role], mean, atol=1e-4)
    emb = got["embedding"]
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    member_cos = np.mean([o["embedding"][0] @ o["embedding"][1] for o in outs])
    assert emb[0] @ emb[1] == pytest.approx(member_cos, abs=1e-5)


@needs_torch
def test_an_ensemble_of_runs_that_disagree_is_refused(data: Path, tmp_path: Path) -> None:
    from trainer.export import export_checkpoint

    first = _checkpoint(tmp_path / "run0", data)
    other = _checkpoint(tmp_path / "run1", data, colors=(4, 1))
    with pytest.raises(ConfigError, match=r"run1.*colour list differ"):
        export_checkpoint([first, other], tmp_path / "set", parity_images=4)
    assert not (tmp_path / "set").exists()  # refused before anything is written


def test_the_shared_validation_is_what_no_member_trained_on() -> None:
    from types import SimpleNamespace

    from trainer.ensemble import combine, shared_validation

    a, b, c, d = (SimpleNamespace(image_path=f"/{n}.png") for n in "abcd")
    first = {"train": [c, d], "val": [a, b], "test": []}
    second = {"train": [a], "val": [c], "test": [b, d]}
    assert shared_validation([first, second]) == [b]  # a trained the second run
    with pytest.raises(ConfigError, match="at least two"):
        combine([], [])
