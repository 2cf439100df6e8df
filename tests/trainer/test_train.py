"""trainer stage1/stage2 on tiny renders of the demo library, the feature cache and the configs."""

from __future__ import annotations

import argparse
import itertools
import json
import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

torch = pytest.importorskip("torch")
pytest.importorskip("timm")
A = pytest.importorskip("albumentations")

from edge.errors import ConfigError  # noqa: E402
from edge.manifest_entries import InputSpec  # noqa: E402
from studio.demo_library import DEMO_PARTS  # noqa: E402
from tests.helpers.renders import render_demo  # noqa: E402
from trainer import train as train_cmd  # noqa: E402
from trainer.augment import Augmenter  # noqa: E402
from trainer.checkpoint import latest_checkpoint, load_checkpoint  # noqa: E402
from trainer.data import LabelMap, load_source, split_samples  # noqa: E402
from trainer.data.sources import Sample  # noqa: E402
from trainer.dataset import CachedDataset, FeatureCache, item_seed, prepare_sample  # noqa: E402
from trainer.models import create_model, default_input_spec  # noqa: E402
from trainer.train import train  # noqa: E402
from trainer.train_build import lr_factor, resolve_device  # noqa: E402
from trainer.train_config import TrainConfig, load_train_config  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def synth(demo_library: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 parts x 4 captures x 2 views at 64x64, in red, white and blue."""
    return render_demo(demo_library, tmp_path_factory.mktemp("synth"), DEMO_PARTS[:4], (4, 15, 1))


def _config(data: Path, out: Path, **kw: object) -> TrainConfig:
    base: dict[str, object] = {
        "sources": [{"path": str(data)}],
        "input_size": 64,
        "pretrained": False,
        "embedding_dim": 32,
        "freeze_blocks": 2,
        "epochs": 2,
        "batch_size": 8,
        "threads": 1,  # two OpenMP threads crawl when CI shares the 2 cores
        "cache": {"copies": 2, "mode": "on"},
        "out": str(out),
    }
    base.update(kw)
    return TrainConfig.model_validate(base)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    train_cmd.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser


@pytest.fixture(scope="module")
def stage1_run(synth: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stage 1 run through the command line: a YAML config, 10 epochs."""
    root = tmp_path_factory.mktemp("stage1")
    cfg = _config(synth, root / "run", epochs=10, warmup_epochs=0.5, lr=1e-3).model_dump(mode="json")
    cfg["sources"] = [{"path": "data"}]  # relative to the config file's folder
    cfg["out"] = "run"
    (root / "data").symlink_to(synth)
    (root / "stage1.yaml").write_text(yaml.safe_dump(cfg))
    args = _parser().parse_args(["stage1", "--config", str(root / "stage1.yaml"), "--no-progress"])
    assert train_cmd.main(args) == 0
    return root / "run"


def test_stage1_reduces_the_loss_and_writes_every_output(stage1_run: Path) -> None:
    history = json.loads((stage1_run / "history.json").read_text())
    assert [h["epoch"] for h in history] == list(range(1, 11))
    first = np.mean([h["train_loss"] for h in history[:2]])
    last = np.mean([h["train_loss"] for h in history[-2:]])
    assert last < 0.8 * first, f"training loss went from {first:.3f} to {last:.3f}"
    assert history[-1]["train_color_top1"] is not None  # the renders carry colour labels
    assert (stage1_run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert LabelMap.from_json(stage1_run / "label_map.json").parts == sorted(DEMO_PARTS[:4])
    kept = sorted(p.name for p in (stage1_run / "checkpoints").iterdir())
    assert kept == ["epoch_0009", "epoch_0010"]  # keep_last: 2
    _, meta = load_checkpoint(stage1_run / "best")
    assert meta.stage == "stage1" and meta.label_map.colors == [1, 4, 15]
    assert meta.input_spec.size == (64, 64) and meta.input_spec.mean == (0.5, 0.5, 0.5)
    best = max(h["val_part_top1"] for h in history)
    assert meta.metrics["val_part_top1"] == best


def test_resume_after_an_interruption_ends_with_the_same_weights(synth: Path, tmp_path: Path) -> None:
    cache = {"copies": 2, "mode": "on", "dir": str(tmp_path / "cache")}
    straight = train(_config(synth, tmp_path / "a", epochs=3, cache=cache), "stage1", progress=False)
    per_epoch = math.ceil(
        sum(json.loads((tmp_path / "a" / "splits.json").read_text())["images"]["train"].values()) / 8
    )

    cfg = _config(synth, tmp_path / "b", epochs=3, cache=cache)
    first = train(cfg, "stage1", max_steps=per_epoch, progress=False)  # "interrupted" after epoch 1
    assert [h["epoch"] for h in first["history"]] == [1]
    assert latest_checkpoint(tmp_path / "b").name == "epoch_0001"
    resumed = train(cfg, "stage1", resume=True, progress=False)
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3]
    assert resumed["steps"] == straight["steps"] == 3 * per_epoch

    a, _ = load_checkpoint(tmp_path / "a" / "checkpoints" / "epoch_0003")
    b, _ = load_checkpoint(tmp_path / "b" / "checkpoints" / "epoch_0003")
    wa, wb = a.state_dict(), b.state_dict()
    differ = {
        k: float((wa[k].double() - wb[k].double()).abs().max()) for k in wa if not torch.equal(wa[k], wb[k])
    }
    some = dict(list(differ.items())[:3])
    assert not differ, f"resumed weights differ from the uninterrupted run: {len(differ)} tensors, as {some}"
    for x, y in zip(straight["history"], resumed["history"], strict=True):
        assert x["train_loss"] == y["train_loss"] and x["val_loss"] == y["val_loss"]


@pytest.mark.parametrize("mode", ["on", "off"])
def test_mixstyle_changes_what_a_run_learns(synth: Path, tmp_path: Path, mode: str) -> None:
    """MixStyle (trainer.mixstyle) on the cached front features and on the uncached forward alike:
    the same run with it trains to other weights, and its config records it."""
    cache = {"copies": 2, "mode": mode, "dir": str(tmp_path / "cache")}
    plain = train(_config(synth, tmp_path / "plain", epochs=2, cache=cache), "stage1", progress=False)
    mixed = train(
        _config(synth, tmp_path / "mixed", epochs=2, cache=cache, mixstyle=1.0), "stage1", progress=False
    )
    a, _ = load_checkpoint(tmp_path / "plain" / "checkpoints" / "epoch_0002")
    b, meta = load_checkpoint(tmp_path / "mixed" / "checkpoints" / "epoch_0002")
    assert meta.config["mixstyle"] == 1.0
    wa, wb = a.state_dict(), b.state_dict()
    assert any(not torch.equal(wa[k], wb[k]) for k in wa), "mixstyle 1.0 trained the same weights as 0"
    for h in plain["history"] + mixed["history"]:
        assert math.isfinite(h["train_loss"]) and math.isfinite(h["val_loss"])


def _backbone_params(path: Path) -> dict[str, torch.Tensor]:
    model, _ = load_checkpoint(path)
    return {n: p.detach().clone() for n, p in model.named_parameters() if n.startswith("backbone.")}


def test_a_linear_probe_holds_the_backbone_then_fine_tunes_it(synth: Path, tmp_path: Path) -> None:
    cache = {"copies": 2, "mode": "on", "dir": str(tmp_path / "cache")}
    cfg = _config(synth, tmp_path / "probe", epochs=3, probe_epochs=1, keep_last=3, cache=cache)
    straight = train(cfg, "stage1", progress=False)
    start = train(  # one step: no parameter has moved far, and the backbone not at all
        _config(synth, tmp_path / "start", epochs=3, probe_epochs=1, cache=cache),
        "stage1",
        max_steps=1,
        progress=False,
    )
    assert start["steps"] == 1
    initial = _backbone_params(tmp_path / "start" / "best")
    probed = _backbone_params(tmp_path / "probe" / "checkpoints" / "epoch_0001")
    tuned = _backbone_params(tmp_path / "probe" / "checkpoints" / "epoch_0002")
    assert all(torch.equal(initial[n], probed[n]) for n in initial)  # held in the probe epoch
    last_stage = [n for n in initial if n.startswith("backbone.blocks.6.")]
    assert last_stage and all(not torch.equal(probed[n], tuned[n]) for n in last_stage)  # then trained
    heads_start, _ = load_checkpoint(tmp_path / "start" / "best")
    heads_probed, _ = load_checkpoint(tmp_path / "probe" / "checkpoints" / "epoch_0001")
    assert not torch.equal(heads_start.part_head[1].weight, heads_probed.part_head[1].weight)

    resumed_cfg = _config(synth, tmp_path / "resumed", epochs=3, probe_epochs=1, cache=cache)
    per_epoch = straight["steps"] // 3
    train(resumed_cfg, "stage1", max_steps=per_epoch, progress=False)  # stopped at the probe's end
    train(resumed_cfg, "stage1", resume=True, progress=False)
    a = _backbone_params(tmp_path / "probe" / "checkpoints" / "epoch_0003")
    b = _backbone_params(tmp_path / "resumed" / "checkpoints" / "epoch_0003")
    assert all(torch.equal(a[n], b[n]) for n in a)

    with pytest.raises(ValueError, match="probe_epochs 3 leaves no epoch"):
        _config(synth, tmp_path / "bad", epochs=3, probe_epochs=3)


def test_a_new_run_in_a_folder_with_checkpoints_is_refused_unless_fresh(synth: Path, tmp_path: Path) -> None:
    cfg = _config(synth, tmp_path, epochs=1)
    train(cfg, "stage1", progress=False)
    old = (tmp_path / "checkpoints" / "epoch_0001" / "model.safetensors").read_bytes()
    with pytest.raises(ConfigError, match=r"epoch_0001.*--resume.*--fresh"):
        train(cfg, "stage1", progress=False)  # would overwrite the finished run without a word
    assert (tmp_path / "checkpoints" / "epoch_0001" / "model.safetensors").read_bytes() == old
    with pytest.raises(ConfigError, match="contradict"):
        train(cfg, "stage1", resume=True, fresh=True, progress=False)

    again = train(_config(synth, tmp_path, epochs=1, seed=7), "stage1", fresh=True, progress=False)
    assert [h["epoch"] for h in again["history"]] == [1]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["epoch_0001"]
    assert (tmp_path / "checkpoints" / "epoch_0001" / "model.safetensors").read_bytes() != old


def test_a_resume_with_other_settings_is_refused(synth: Path, tmp_path: Path) -> None:
    train(_config(synth, tmp_path, epochs=2), "stage1", progress=False)
    kept = (tmp_path / "checkpoints" / "epoch_0002" / "model.safetensors").read_bytes()
    # Another seed (a build of seed 1 in the folder of seed 0's run) would continue the other run.
    with pytest.raises(ConfigError, match=r"epoch_0002.*seed 0 there, 1 here.*--fresh"):
        train(_config(synth, tmp_path, epochs=2, seed=1), "stage1", resume=True, progress=False)
    with pytest.raises(ConfigError, match=r"epochs 2 there, 3 here"):
        train(_config(synth, tmp_path, epochs=3), "stage1", resume=True, progress=False)
    assert (tmp_path / "checkpoints" / "epoch_0002" / "model.safetensors").read_bytes() == kept
    # Where and how it runs may change: more checkpoints kept, another worker count.
    same = _config(synth, tmp_path, epochs=2, keep_last=5, workers=1)
    done = train(same, "stage1", resume=True, progress=False)
    assert [h["epoch"] for h in done["history"]] == [1, 2]


def test_max_steps_inside_an_epoch_keeps_a_best_checkpoint_only(synth: Path, tmp_path: Path) -> None:
    result = train(_config(synth, tmp_path, epochs=5), "stage1", max_steps=1, progress=False)
    assert result["steps"] == 1 and result["history"][0]["complete"] is False
    assert latest_checkpoint(tmp_path) is None  # nothing to resume from: the epoch did not finish
    _, meta = load_checkpoint(tmp_path / "best")
    assert meta.step == 1 and meta.epoch == 0


def _small_cached_front(synth: Path) -> tuple[list[Sample], LabelMap, torch.nn.Module, InputSpec]:
    """Six samples, their label map, a small untrained network with a frozen front, and a 64 px spec."""
    samples = load_source(synth)[:6]
    label_map = LabelMap(sorted({s.part_num for s in samples}), sorted({s.color_id for s in samples}))
    torch.manual_seed(0)
    model = create_model(
        num_parts=label_map.num_parts, num_colors=2, embedding_dim=16, pretrained=False, freeze_blocks=3
    ).eval()
    spec = default_input_spec("efficientnet_lite0", 64)
    return samples, label_map, model, spec


def test_feature_cache_gives_the_uncached_forward(synth: Path, tmp_path: Path) -> None:
    samples, label_map, model, spec = _small_cached_front(synth)
    plain = Augmenter("none", min_side=64)
    cache = FeatureCache(tmp_path, model, spec, plain, copies=1)
    assert cache.build(samples, batch_size=4, progress=False) == 6
    assert cache.build(samples, batch_size=4, progress=False) == 0  # all there: nothing recomputed
    data = CachedDataset(samples, label_map, cache)
    for i, sample in enumerate(samples):
        item = data[i]
        x = torch.from_numpy(prepare_sample(sample, spec, plain, seed=0))[None]
        with torch.no_grad():
            want = model(x)
            got = model.forward_cached(item["front"][None], item["stats"][None])
        for key in want:  # float16 storage: close, not equal
            torch.testing.assert_close(got[key], want[key], atol=2e-2, rtol=2e-2)
        assert item["part"] == label_map.part_index(sample.part_num)

    other = create_model(
        num_parts=label_map.num_parts, num_colors=2, embedding_dim=16, pretrained=False, freeze_blocks=3
    )
    assert FeatureCache(tmp_path, other, spec, plain, copies=1).key(samples[0], 0) != cache.key(samples[0], 0)
    augmented = FeatureCache(tmp_path, model, spec, Augmenter("stage1", min_side=64), copies=2)
    # Other augmentation settings under the same stage name (a changed module) are other entries.
    changed = Augmenter("stage1", min_side=64)
    changed.pipeline = A.Compose([A.GaussNoise(std_range=(0.1, 0.2), p=1.0)], seed=0)
    changed_cache = FeatureCache(tmp_path, model, spec, changed, copies=2)
    assert changed_cache.key(samples[0], 0) != augmented.key(samples[0], 0)
    assert Augmenter("stage1", min_side=64).fingerprint == augmented.augmenter.fingerprint
    augmented.build(samples, progress=False)
    # Two copies are distinct draws. Some draws leave an image as it was (each stage-1 transform
    # has p < 1; here about 1 pair in 10 comes out identical), so two copies of one sample can match by
    # chance: ask it of 6 samples (copies that were always equal would fail every time).
    distinct = [not torch.equal(augmented.load(s, 0)[0], augmented.load(s, 1)[0]) for s in samples]
    assert any(distinct), distinct


def test_feature_cache_finds_its_entries_for_a_moved_folder_and_not_for_changed_pixels(
    synth: Path, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    model = create_model(
        num_parts=4, num_colors=2, embedding_dim=16, pretrained=False, freeze_blocks=2
    ).eval()
    spec = default_input_spec("efficientnet_lite0", 64)
    augmenter = Augmenter("stage1", min_side=64)
    cache = FeatureCache(tmp_path / "cache", model, spec, augmenter, copies=2)
    samples = load_source(synth)[:3]
    assert cache.build(samples, progress=False) == 6
    # The same renders in another folder (a build moved, or its renders linked into another).
    moved = shutil.copytree(synth, tmp_path / "moved")
    moved_samples = load_source(moved)[:3]
    again = FeatureCache(tmp_path / "cache", model, spec, augmenter, copies=2)
    assert again.build(moved_samples, progress=False) == 0
    for old, new in zip(samples, moved_samples, strict=True):
        assert new.image_path != old.image_path
        torch.testing.assert_close(again.load(new, 1)[0], cache.load(old, 1)[0], rtol=0, atol=0)
    # One pixel changed in one image: that sample's entries are computed afresh, the others kept.
    image = cv2.imread(str(moved_samples[0].image_path))
    image[0, 0] = 255 - image[0, 0]
    cv2.imwrite(str(moved_samples[0].image_path), image)
    assert again.build(moved_samples, progress=False) == 2


def test_part_photometric_copy_drops_the_colour_label_and_shares_the_plain_copies(
    synth: Path, tmp_path: Path
) -> None:
    from trainer.augment import PartPhotometric

    samples, label_map, model, spec = _small_cached_front(synth)
    plain = FeatureCache(tmp_path, model, spec, Augmenter("stage1", min_side=64), copies=2)
    photometric = PartPhotometric(0.5)
    strong_aug = Augmenter("stage1", min_side=64, photometric=photometric)
    strong = FeatureCache(tmp_path, model, spec, strong_aug, copies=2)
    assert strong.total_copies == 3 and plain.total_copies == 2
    # The plain copies are the same entries with or without the jitter: nothing is recomputed for them.
    assert [strong.key(samples[0], c) for c in (0, 1)] == [plain.key(samples[0], c) for c in (0, 1)]
    assert plain.build(samples, progress=False) == 12
    assert strong.build(samples, progress=False) == 6  # only the photometric copies
    changed = [not torch.equal(strong.load(s, 2)[0], plain.load(s, 0)[0]) for s in samples]
    assert all(changed)

    data = CachedDataset(samples, label_map, strong)
    dropped = 0
    for epoch in range(10):
        data.set_epoch(epoch)
        for position in range(len(samples)):
            item = data[position]
            draw = item_seed(strong.seed, epoch, position)
            chosen = photometric.chosen(draw)
            assert (item["color"] == -1) == chosen  # colour ignored exactly on the jittered copy
            assert item["part"] == label_map.part_index(samples[int(data.indices[position])].part_num)
            dropped += chosen
    assert 15 < dropped < 45  # about half of 60 draws
    assert Augmenter("none", photometric=photometric).photometric is None  # validation stays exact


def test_frame_edge_copy_comes_after_the_photometric_one_and_keeps_the_colour_label(
    synth: Path, tmp_path: Path
) -> None:
    from trainer.augment import FrameEdge, PartPhotometric

    samples, label_map, model, spec = _small_cached_front(synth)
    photometric, edge = PartPhotometric(0.4), FrameEdge(0.5)
    before = FeatureCache(
        tmp_path, model, spec, Augmenter("stage1", min_side=64, photometric=photometric), copies=2
    )
    after = FeatureCache(
        tmp_path,
        model,
        spec,
        Augmenter("stage1", min_side=64, photometric=photometric, frame_edge=edge),
        copies=2,
    )
    assert (before.total_copies, after.total_copies, after.photometric_copy, after.edge_copy) == (3, 4, 2, 3)
    # A run that adds the frame's edge reuses every entry of one without it, photometric copy included.
    assert [after.key(samples[0], c) for c in range(3)] == [before.key(samples[0], c) for c in range(3)]
    assert before.build(samples, progress=False) == 18
    assert after.build(samples, progress=False) == 6  # only the frame's-edge copies
    assert all(not torch.equal(after.load(s, 3)[0], after.load(s, 0)[0]) for s in samples)

    data = CachedDataset(samples, label_map, after)
    counts = {"strong": 0, "edge": 0}
    for epoch in range(20):
        data.set_epoch(epoch)
        for position in range(len(samples)):
            item = data[position]
            draw = item_seed(after.seed, epoch, position)
            strong, on_edge = photometric.chosen(draw), not photometric.chosen(draw) and edge.chosen(draw)
            assert (item["color"] == -1) == strong  # the frame's edge keeps the colour label
            sample = samples[int(data.indices[position])]
            expected = 2 if strong else 3 if on_edge else None
            if expected is not None:
                assert torch.equal(item["front"], after.load(sample, expected)[0].float())
            counts["strong"] += strong
            counts["edge"] += on_edge
    assert 30 < counts["strong"] < 70 and 20 < counts["edge"] < 55  # 40% and 30% of 120 draws


def test_stage2_starts_from_stage1_and_appends_new_parts_and_colours(
    stage1_run: Path, synth: Path, demo_library: Path, tmp_path: Path
) -> None:
    real = render_demo(demo_library, tmp_path / "real", [DEMO_PARTS[4]], (4, 14))
    cfg = _config(
        synth,
        tmp_path / "run",
        sources=[{"path": str(real), "name": "real"}, {"path": str(synth), "name": "synth"}],
        init_from=str(stage1_run / "best"),
        epochs=1,
    )
    result = train(cfg, "stage2", max_steps=2, progress=False)
    assert result["steps"] == 2
    stage1_map = LabelMap.from_json(stage1_run / "label_map.json")
    model, meta = load_checkpoint(tmp_path / "run" / "best")
    assert meta.stage == "stage2" and meta.config["augment"] is None
    assert meta.label_map.parts == [*stage1_map.parts, DEMO_PARTS[4]]
    assert meta.label_map.colors == [*stage1_map.colors, 14]
    assert model.num_parts == 5 and model.num_colors == 4


def test_stage2_needs_a_stage1_checkpoint(synth: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="stage2 needs a stage 1 checkpoint"):
        train(_config(synth, tmp_path), "stage2", progress=False)


def test_the_shipped_configs_are_valid_and_anchor_paths_at_their_folder() -> None:
    one = load_train_config(REPO / "config" / "stage1_synthetic.yaml")
    two = load_train_config(REPO / "config" / "stage2_real.yaml", epochs=1, out="elsewhere")
    assert Path(one.sources[0].path).resolve() == REPO / "data" / "synth-legacy"
    assert (one.model, one.input_size, one.embedding_dim) == ("efficientnet_lite0", 128, 128)
    assert two.init_from and Path(two.init_from).resolve() == REPO / "runs" / "stage1" / "best"
    assert {s.name: s.weight for s in two.sources}["real"] == 3.0
    assert (two.epochs, two.out) == (1, "elsewhere")


def test_a_config_given_by_a_relative_path_records_absolute_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sources a checkpoint records must be findable from any folder (trainer export reads them)."""
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "stage1.yaml").write_text("sources: [{path: renders}]\nout: runs/stage1\n")
    monkeypatch.chdir(tmp_path / "work")
    cfg = load_train_config("stage1.yaml")
    assert cfg.sources[0].path == str(tmp_path / "work" / "renders")
    assert cfg.out == str(tmp_path / "work" / "runs" / "stage1")


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("sources: [{path: x}]\nout: o\nbatchsize: 3\n")
    with pytest.raises(ConfigError, match="batchsize"):
        load_train_config(path)
    path.write_text("sources: [{path: x}]\nout: o\nembedding_dim: 512\n")
    with pytest.raises(ConfigError, match="embedding_dim"):
        load_train_config(path)


def test_learning_rate_warms_up_then_decays_to_the_floor() -> None:
    values = [lr_factor(s, 10, 100, 0.01) for s in range(100)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(values[10:]))
    assert lr_factor(100, 10, 100, 0.01) == pytest.approx(0.01)


def test_a_missing_gpu_is_an_error_not_a_silent_cpu_run() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ConfigError, match="cuda"):
        resolve_device("cuda")
    assert resolve_device("auto") == "cpu"


def test_splits_written_match_the_data_splitter(stage1_run: Path, synth: Path) -> None:
    written = json.loads((stage1_run / "splits.json").read_text())
    splits = split_samples(load_source(synth), (0.8, 0.1, 0.1), 0)
    assert {k: sum(v.values()) for k, v in written["images"].items()} == {
        k: len(v) for k, v in splits.items()
    }
