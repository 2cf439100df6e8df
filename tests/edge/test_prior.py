"""The part prior (edge/prior.py): how common each part is, from the model set's ranking or a rig
owner's parts file, weighing the classifier's answer; and `trainer popularity`, which writes the
ranking."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.cli import main as edge_main
from edge.errors import ConfigError, DataFileError, ModelError
from edge.manifest import load_manifest, sha256_file, write_manifest
from edge.pipeline import Pipeline
from edge.prior import PartPrior, load_part_prior, read_parts_file, zipf_weights
from edge.recognize import Recognizer
from edge.settings import load_edge_config
from tests.edge.test_settings import SIM_PARTS, write_sim_setup
from tests.helpers.onnx_models import write_model_set
from tests.helpers.pipeline import decided_probs
from trainer import cli


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_a_ranked_list_weighs_each_part_by_one_over_its_rank(tmp_path: Path) -> None:
    ranks = write(tmp_path / "ranks.txt", "# most common first\n3023\n\n3001\n3023\n18677\n")
    assert read_parts_file(ranks) == {"3023": 1.0, "3001": 0.5, "18677": pytest.approx(1 / 3)}
    assert zipf_weights({"a": 1, "b": 4}) == {"a": 1.0, "b": 0.25}
    with pytest.raises(ConfigError, match=">= 1"):
        zipf_weights({"a": 0})


def test_counts_and_inventory_csvs_are_summed_per_part(tmp_path: Path) -> None:
    counts = write(tmp_path / "counts.txt", "3023 12  # plates\n3001, 2\n3023\t3\n")
    assert read_parts_file(counts) == {"3023": 15.0, "3001": 2.0}
    inventory = write(
        tmp_path / "inventory.csv",
        "Part,Color,Quantity,Is Spare\n3023,4,6,False\n3023,1,2,False\n3001,4,1,False\n4073,0,0,True\n",
    )
    assert read_parts_file(inventory) == {"3023": 8.0, "3001": 1.0}  # a count of 0 is dropped


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "lists no part"),
        ("3023 4\n3001\n", "1 of 2 lines have a count"),
        ("3023 many\n", "'many' is not a number"),
        ("3023 -2\n", "must be a number >= 0"),
        ("3023 0\n", "every count is 0"),
        ("part,color\n3023,4\n", "no count column"),
        ("part_num,quantity\n3023\n", "expected 2 columns"),
        ("3023 4 extra\n", "is not 'PART' or 'PART COUNT'"),
    ],
)
def test_bad_parts_files_are_clear_errors(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(DataFileError, match=match):
        read_parts_file(write(tmp_path / "parts.txt", text))


def test_missing_parts_file_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match=r"not found.*part_prior"):
        read_parts_file(tmp_path / "nope.txt")


def test_a_common_look_alike_wins_and_unlisted_parts_count_as_the_rarest() -> None:
    prior = PartPrior(["18677", "3023", "9999"], {"3023": 1.0, "18677": 1 / 142}, "test")
    assert prior.covered == 2
    assert prior.log_weights[1] == 0.0 and prior.log_weights[2] == pytest.approx(np.log(1 / 142))
    probs = np.array([0.6, 0.3, 0.1])  # the network: the rarer look-alike
    updated = prior.update(probs)
    assert updated.argmax() == 1 and updated.sum() == pytest.approx(1.0)
    sure = prior.update(np.array([0.999, 0.0005, 0.0005]))  # a sure answer survives the prior
    assert sure.argmax() == 0
    with pytest.raises(ConfigError, match="names none of the model's 3 parts"):
        PartPrior(["18677", "3023", "9999"], {"3001": 1.0}, "test")
    with pytest.raises(ConfigError, match="not positive"):
        PartPrior(["3023"], {"3023": 0.0}, "test")


def test_the_recognizer_decides_with_the_prior(tmp_path: Path) -> None:
    manifest = write_model_set(tmp_path, parts=["18677", "3023"], colors=[15])
    outputs = {"part_logits": np.array([[1.0, 0.0], [1.2, 0.0]], np.float32)}
    assert Recognizer(manifest, threshold=0.5).decide(outputs).part_num == "18677"
    prior = PartPrior(manifest.parts, {"3023": 2.0, "18677": 1 / 71}, "test")
    decision = Recognizer(manifest, threshold=0.5, prior=prior).decide(outputs)
    assert decision.part_num == "3023" and decision.distribution is not None
    assert decision.distribution.part_probs.sum() == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="parts differ"):
        Recognizer(manifest, prior=PartPrior(["3023", "18677"], {"3023": 1.0}, "test"))


def test_load_part_prior_by_setting(tmp_path: Path) -> None:
    manifest = write_model_set(tmp_path, parts=["3001", "3023"], colors=[4])
    assert load_part_prior("none", manifest) is None
    with pytest.raises(ConfigError, match="trainer popularity"):
        load_part_prior("popularity", manifest)
    ranked = manifest.model_copy(update={"popularity": {"3023": 1, "3001": 23}})
    prior = load_part_prior("popularity", ranked)
    assert prior is not None and prior.log_weights.tolist() == pytest.approx([np.log(1 / 23), 0.0])
    from_file = load_part_prior(write(tmp_path / "set.txt", "3001 4\n3023 1\n"), manifest)
    assert from_file is not None and from_file.log_weights.argmax() == 0
    assert "set.txt" in from_file.source


def test_trainer_popularity_writes_ranks_and_the_rig_uses_them(
    demo_library: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    config = write_sim_setup(tmp_path, demo_library, recognition={"part_prior": "popularity"})
    models = tmp_path / "models"
    model_hash = sha256_file(models / "classifier.onnx")
    # Without ranks in the model set, the check names the command that writes them.
    assert edge_main(["check", "--config", str(config)]) != 0
    assert "trainer popularity" in capsys.readouterr().out + caplog.text
    ranking = write(tmp_path / "popular.txt", "demo-3062b\nother\ndemo-3001\n")
    assert cli.main(["popularity", "--model-set", str(models), "--parts", str(ranking)]) == 0
    out = capsys.readouterr().out
    assert "2 part rank(s) written" in out and "demo-3039" in out  # not in the list: reported
    manifest = load_manifest(models)
    assert manifest.popularity == {"demo-3062b": 1, "demo-3001": 3}
    assert sha256_file(models / "classifier.onnx") == model_hash  # only the manifest changed
    edge_main(["check", "--config", str(config)])
    assert "part prior on (the model set's ranks, strength 0.25; 2 of 3 listed)" in capsys.readouterr().out

    # The pipeline's decision moves toward the most common part, whatever the random model says.
    frame = np.full((120, 160, 3), (200, 40, 190), np.uint8)
    frame[50:70, 70:90] = (200, 30, 30)
    probs = {}
    for setting in ("none", "popularity"):
        probs[setting], recognizer = decided_probs(config, frame, part_prior=setting)
        assert (recognizer.prior is not None) is (setting == "popularity")
    assert probs["popularity"]["demo-3062b"] > probs["none"]["demo-3062b"]
    assert probs["popularity"]["demo-3039"] < probs["none"]["demo-3039"]  # unlisted: the rarest


def test_the_default_prior_is_gentle_popularity_and_waits_for_ranks(
    demo_library: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # A config that does not name a prior gets popularity at strength 0.25; a model set without
    # ranks runs without it (warned), where naming popularity outright refuses to start (above).
    config = write_sim_setup(tmp_path, demo_library)
    cfg = load_edge_config(config)
    assert (cfg.recognition.part_prior, cfg.recognition.part_prior_strength) == ("popularity", 0.25)
    models = tmp_path / "models"
    with caplog.at_level("WARNING", logger="edge.prior"):
        pipeline = Pipeline.from_config(cfg, with_camera=False)
        pipeline.close()
    assert pipeline.recognizer.prior is None and "no part ranks" in caplog.text
    assert edge_main(["check", "--config", str(config)]) == 0
    assert "part prior off (no part ranks in the model set: trainer popularity)" in capsys.readouterr().out
    ranking = write(tmp_path / "popular.txt", "demo-3062b\ndemo-3001\n")
    assert cli.main(["popularity", "--model-set", str(models), "--parts", str(ranking)]) == 0
    pipeline = Pipeline.from_config(load_edge_config(config), with_camera=False)
    try:
        prior = pipeline.recognizer.prior
        assert prior is not None and prior.strength == 0.25 and "strength 0.25" in prior.source
        # 1 / rank ** 0.25: the second part weighs 2 ** -0.25 of the first.
        ranked = dict(zip(prior.parts, prior.log_weights.tolist(), strict=True))
        assert ranked["demo-3001"] - ranked["demo-3062b"] == pytest.approx(-0.25 * np.log(2))
    finally:
        pipeline.close()


def test_a_parts_file_is_found_beside_the_config(demo_library: Path, tmp_path: Path) -> None:
    config = write_sim_setup(tmp_path, demo_library, recognition={"part_prior": "sets/45345.txt"})
    (tmp_path / "sets").mkdir()
    write(tmp_path / "sets" / "45345.txt", f"{SIM_PARTS[1]} 5\n")
    cfg = load_edge_config(config)
    assert cfg.recognition.part_prior == tmp_path / "sets" / "45345.txt"
    pipeline = Pipeline.from_config(cfg, with_camera=False)
    try:
        assert pipeline.recognizer.prior is not None and pipeline.recognizer.prior.covered == 1
    finally:
        pipeline.close()


def test_the_manifest_refuses_ranks_of_parts_it_lacks(tmp_path: Path) -> None:
    manifest = write_model_set(tmp_path, parts=["3001"], colors=[4])
    write_manifest(tmp_path, manifest.model_copy(update={"popularity": {"3023": 1}}))
    with pytest.raises(ModelError, match=r"popularity names part.*3023.*trainer popularity"):
        load_manifest(tmp_path)


def test_strength_raises_the_weights_to_a_power(tmp_path: Path) -> None:
    weights = {"3023": 1.0, "18677": 1 / 144}
    full = PartPrior(["18677", "3023"], weights, "test")
    half = PartPrior(["18677", "3023"], weights, "test", strength=0.5)
    assert half.log_weights == pytest.approx(full.log_weights / 2)
    assert half.log_weights[0] == pytest.approx(np.log(1 / 12)) and "strength 0.5" in half.source
    probs = np.array([0.7, 0.3])
    assert PartPrior(["18677", "3023"], weights, "test", strength=0).update(probs) == pytest.approx(probs)
    for bad in (-0.1, 3.5, True):
        with pytest.raises(ConfigError, match="strength"):
            PartPrior(["3023"], weights, "test", strength=bad)
    manifest = write_model_set(tmp_path, parts=["3001", "3023"], colors=[4])
    ranked = manifest.model_copy(update={"popularity": {"3023": 1, "3001": 4}})
    prior = load_part_prior("popularity", ranked, 0.5)
    assert prior is not None and prior.log_weights.tolist() == pytest.approx([np.log(0.5), 0.0])
