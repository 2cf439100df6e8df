"""trainer refit-color: only the colour head learns, features resume chunk by chunk, bad input refused."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")
pytest.importorskip("albumentations")

from safetensors.torch import load_file  # noqa: E402

from edge.errors import ConfigError, ModelError  # noqa: E402
from studio.demo_library import DEMO_PARTS  # noqa: E402
from tests.helpers.renders import render_demo  # noqa: E402
from trainer import cli, color_refit  # noqa: E402
from trainer.checkpoint import CheckpointMeta, load_checkpoint, save_checkpoint  # noqa: E402
from trainer.color_refit import RefitSettings, refit_color  # noqa: E402
from trainer.models import create_model, default_input_spec  # noqa: E402
from trainer.train_build import build_data  # noqa: E402
from trainer.train_config import TrainConfig  # noqa: E402

HEAD = ("color_features.", "color_stats.", "color_head.")
SETTINGS = RefitSettings(images=12, val_images=2, epochs=2, batch_size=8)


@pytest.fixture(scope="module")
def renders(demo_library: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 parts x 4 captures x 2 views at 64x64, in red, white and blue."""
    return render_demo(demo_library, tmp_path_factory.mktemp("refit-renders"), DEMO_PARTS[:3], (4, 15, 1))


def _config(data: Path, out: Path) -> TrainConfig:
    return TrainConfig.model_validate(
        {
            "sources": [{"path": str(data)}],
            "input_size": 64,
            "pretrained": False,
            "embedding_dim": 16,
            "freeze_blocks": 2,
            "threads": 1,
            "out": str(out),
        }
    )


def _checkpoint(cfg: TrainConfig, folder: Path, *, colors: bool = True) -> Path:
    """An untrained network for the config's label map, saved as a stage 1 checkpoint."""
    labels = build_data(cfg, folder.parent / "labels")["label_map"]
    torch.manual_seed(0)
    model = create_model(
        "efficientnet_lite0",
        num_parts=labels.num_parts,
        num_colors=labels.num_colors if colors else 0,
        embedding_dim=16,
        pretrained=False,
        freeze_blocks=2,
    )
    meta = CheckpointMeta(default_input_spec("efficientnet_lite0", 64), labels, stage="stage1", epoch=1)
    return save_checkpoint(folder, model, None, meta)


@pytest.fixture
def setup(renders: Path, tmp_path: Path) -> tuple[TrainConfig, Path]:
    cfg = _config(renders, tmp_path / "refit")
    return cfg, _checkpoint(cfg, tmp_path / "stage1" / "best")


def test_only_the_colour_head_changes(setup: tuple[TrainConfig, Path]) -> None:
    cfg, ckpt = setup
    out = Path(cfg.out)
    result = refit_color(cfg, ckpt, out, SETTINGS, progress=False)
    before, after = load_file(str(ckpt / "model.safetensors")), load_file(str(out / "best/model.safetensors"))
    assert before.keys() == after.keys()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(HEAD) for k in changed), sorted(changed)
    assert any(k.startswith("color_head.") for k in changed)
    _, meta = load_checkpoint(out / "best")
    assert meta.stage == "refit-color" and meta.label_map.parts == load_checkpoint(ckpt)[1].label_map.parts
    saved = json.loads((out / "refit.json").read_text())
    assert saved == json.loads(json.dumps(result))
    assert [h["epoch"] for h in saved["history"]] == [1, 2]
    assert saved["images"] == 12 and saved["val_images"] == 2 and saved["settings"]["tone"] == 0.7
    assert all(0.0 <= h["val_color_top1"] <= 1.0 for h in saved["history"])


def test_features_resume_chunk_by_chunk_and_restart_on_other_settings(
    setup: tuple[TrainConfig, Path], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    cfg, ckpt = setup
    out = Path(cfg.out)
    monkeypatch.setattr(color_refit, "CHUNK", 8)
    refit_color(cfg, ckpt, out, SETTINGS, progress=False)
    folder = out / "features"
    chunks = sorted(folder.glob("train-*.safetensors"))
    assert [c.name for c in chunks] == [f"train-{i:04d}.safetensors" for i in range(2)]
    first = {c: load_file(str(c)) for c in chunks}
    stamps = {c: c.stat().st_mtime_ns for c in chunks}
    chunks[1].unlink()  # a stop in the middle of the second chunk
    refit_color(cfg, ckpt, out, SETTINGS, progress=False)
    assert chunks[0].stat().st_mtime_ns == stamps[chunks[0]]  # kept, not recomputed
    again = load_file(str(chunks[1]))
    for key, value in first[chunks[1]].items():
        assert torch.equal(again[key], value), key  # the same draws: the same features
    with caplog.at_level(logging.WARNING, logger="trainer.color_refit"):
        refit_color(cfg, ckpt, out, RefitSettings(**{**SETTINGS.__dict__, "tone": 0.0}), progress=False)
    assert "other settings" in caplog.text
    key = json.loads((folder / "key.json").read_text())
    assert key["tone"] is None and len(key["samples"]) == 2  # the drawn training and validation samples
    other = cfg.model_copy(update={"seed": 1})  # another split draws other samples: computed anew
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="trainer.color_refit"):
        refit_color(other, ckpt, out, RefitSettings(**{**SETTINGS.__dict__, "tone": 0.0}), progress=False)
    assert "other settings" in caplog.text
    assert json.loads((folder / "key.json").read_text())["samples"] != key["samples"]
    assert not torch.equal(load_file(str(chunks[0]))["stats"], first[chunks[0]]["stats"])


def test_a_network_without_a_colour_head_or_another_label_map_is_refused(
    renders: Path, demo_library: Path, tmp_path: Path
) -> None:
    cfg = _config(renders, tmp_path / "refit")
    bare = _checkpoint(cfg, tmp_path / "bare" / "best", colors=False)
    with pytest.raises(ModelError, match="no colour head"):
        refit_color(cfg, bare, tmp_path / "out1", SETTINGS, progress=False)
    other = render_demo(demo_library, tmp_path / "other", DEMO_PARTS[3:5], (4,), per_part=2, views=1)
    with pytest.raises(ConfigError, match="another label map"):
        refit_color(
            _config(other, tmp_path / "o"),
            _checkpoint(cfg, tmp_path / "c" / "best"),
            tmp_path / "out2",
            SETTINGS,
        )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tone": 1.5}, "--tone"),
        ({"images": 0}, "--images"),
        ({"lr": 0.0}, "--lr"),
        ({"epochs": 0}, "--epochs"),
    ],
)
def test_settings_out_of_range_are_refused_by_name(change: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RefitSettings(**{**RefitSettings().__dict__, **change}).check()


def test_the_command_writes_the_checkpoint_and_says_what_it_did(
    setup: tuple[TrainConfig, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, ckpt = setup
    config = tmp_path / "stage1.yaml"
    config.write_text(json.dumps(cfg.model_dump(mode="json")))
    out = tmp_path / "color"
    argv = ["refit-color", "--config", str(config), "--checkpoint", str(ckpt), "--out", str(out)]
    argv += ["--images", "16", "--val-images", "4", "--epochs", "1", "--no-progress"]
    assert cli.main(argv) == 0
    assert (out / "best" / "checkpoint.json").is_file()
    assert "validation colour top-1" in capsys.readouterr().out
    assert cli.main([*argv[:-1], "--tone", "2"]) == 2
