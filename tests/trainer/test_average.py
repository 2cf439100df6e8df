"""trainer average: a checkpoint whose weights are the mean of several, and the refusals."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from edge.errors import ConfigError, ModelError

HAVE_TORCH = all(importlib.util.find_spec(m) for m in ("torch", "timm", "safetensors"))
pytestmark = pytest.mark.skipif(not HAVE_TORCH, reason="torch/timm (the train extra) are not installed")

PARTS = ["3001", "3003", "3023"]


def _checkpoint(folder: Path, seed: int, *, epoch: int, parts: list[str] = PARTS) -> Path:
    """A small untrained network (its weights drawn from ``seed``) saved as a checkpoint."""
    import torch

    from trainer.checkpoint import CheckpointMeta, save_checkpoint
    from trainer.data import LabelMap
    from trainer.models import create_model, default_input_spec

    torch.manual_seed(seed)
    labels = LabelMap(parts, [4, 1])
    model = create_model(
        "efficientnet_lite0", num_parts=len(parts), num_colors=2, embedding_dim=16, pretrained=False
    )
    with torch.no_grad():  # running statistics and step counters that differ per checkpoint
        for name, buf in model.named_buffers():
            if name.endswith("running_mean"):
                buf.normal_()
            elif name.endswith("num_batches_tracked"):
                buf.fill_(100 * epoch)
    meta = CheckpointMeta(
        default_input_spec("efficientnet_lite0", 64), labels, stage="stage1", epoch=epoch, metrics={"x": 1.0}
    )
    return save_checkpoint(folder, model, None, meta)


@pytest.fixture(scope="module")
def epochs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("average")
    return [_checkpoint(root / f"epoch_{e:04d}", seed=e, epoch=e) for e in (3, 4, 5)]


def test_the_average_holds_the_mean_of_every_float_tensor(epochs: list[Path], tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    from trainer.average import average_checkpoints
    from trainer.checkpoint import load_checkpoint, read_meta

    out = average_checkpoints(epochs, tmp_path / "avg")
    sources = [load_file(str(p / "model.safetensors")) for p in epochs]
    got = load_file(str(out / "model.safetensors"))
    assert got.keys() == sources[0].keys()
    floats = [k for k, t in got.items() if t.is_floating_point()]
    counters = [k for k in got if k.endswith("num_batches_tracked")]
    assert floats and counters
    for name in floats:
        want = torch.stack([s[name].double() for s in sources]).mean(0).float()
        assert torch.allclose(got[name], want, atol=1e-6), name
    drawn = [k for k in floats if not torch.equal(sources[0][k], sources[-1][k])]
    assert drawn and all(not torch.equal(got[k], sources[-1][k]) for k in drawn)  # not the last one
    for name in counters:
        assert int(got[name]) == 500  # the last checkpoint's step counter
    meta, raw = read_meta(out)
    assert [a["epoch"] for a in meta.extra["averaged_from"]] == [3, 4, 5]
    assert meta.epoch == 5 and meta.metrics == {} and "optimizer" not in raw
    model, _ = load_checkpoint(out)  # rebuilds and loads strictly, as trainer export does
    assert model.model_args()["num_parts"] == len(PARTS)


def test_refusals_name_the_problem(epochs: list[Path], tmp_path: Path) -> None:
    from trainer.average import average_checkpoints

    with pytest.raises(ConfigError, match="at least 2 checkpoints"):
        average_checkpoints(epochs[:1], tmp_path / "a")
    with pytest.raises(ConfigError, match="listed twice"):
        average_checkpoints([epochs[0], epochs[0]], tmp_path / "a")
    with pytest.raises(ConfigError, match="is one of the checkpoints"):
        average_checkpoints(epochs, epochs[1])
    (tmp_path / "taken").mkdir()
    with pytest.raises(ConfigError, match="--force"):
        average_checkpoints(epochs, tmp_path / "taken")
    other = _checkpoint(tmp_path / "other", seed=9, epoch=6, parts=["3001", "3003", "3024"])
    with pytest.raises(ModelError, match="label map"):
        average_checkpoints([*epochs, other], tmp_path / "a")
    assert not (tmp_path / "a").exists()  # nothing written on a refusal


def test_the_command_line_writes_the_average(epochs: list[Path], tmp_path: Path, capsys) -> None:
    from trainer.cli import main

    assert main(["average", *map(str, epochs[1:]), "--out", str(tmp_path / "avg")]) == 0
    assert (tmp_path / "avg" / "checkpoint.json").is_file()
    assert "trainer export --checkpoint" in capsys.readouterr().out
    assert main(["average", str(epochs[0]), "--out", str(tmp_path / "b")]) == 2  # a clear error, no trace


def test_a_runs_last_epochs(epochs: list[Path], tmp_path: Path) -> None:
    """--run RUN --last N takes the run's newest N epoch checkpoints, and says when it keeps fewer."""
    import shutil

    from trainer.average import last_epochs
    from trainer.cli import main

    run = tmp_path / "run"
    for path in epochs:
        shutil.copytree(path, run / "checkpoints" / path.name)
    (run / "checkpoints" / "epoch_0009").mkdir()  # incomplete (no checkpoint.json): not an epoch
    assert last_epochs(run, 2) == [run / "checkpoints" / "epoch_0004", run / "checkpoints" / "epoch_0005"]
    assert last_epochs(run, 3)[0].name == "epoch_0003"
    with pytest.raises(ConfigError, match=r"keeps 3 epoch checkpoint.*keep_last: 4"):
        last_epochs(run, 4)
    with pytest.raises(ConfigError, match="at least 2"):
        last_epochs(run, 1)
    assert main(["average", "--run", str(run), "--last", "2", "--out", str(tmp_path / "avg")]) == 0
    from trainer.checkpoint import read_meta

    assert [a["epoch"] for a in read_meta(tmp_path / "avg")[0].extra["averaged_from"]] == [4, 5]
    assert main(["average", "--out", str(tmp_path / "none")]) == 2  # neither folders nor --run
    assert (
        main(["average", str(epochs[0]), "--run", str(run), "--last", "2", "--out", str(tmp_path / "b")]) == 2
    )
