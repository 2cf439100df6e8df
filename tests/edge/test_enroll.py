"""Enrolment end to end: real images, the tiny ONNX model set, the user index and its crops on disk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge.calibration_file import read_calibration
from edge.camera import create_camera
from edge.cli import main
from edge.enroll import UserIndex, crops_dir, fit_rig_threshold, model_key, record_path
from edge.errors import ModelError
from edge.pipeline import Pipeline
from edge.settings import load_edge_config
from tests.edge.test_settings import SIM_PARTS, add_index, write_sim_setup
from tests.helpers.onnx_models import write_model_set


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


@pytest.fixture
def rig(tmp_path: Path, demo_library: Path) -> tuple[Path, list[Path]]:
    """A hybrid-mode sim config with a shipped index, and 3 photos of one part as image files."""
    config = write_sim_setup(tmp_path, demo_library, recognition={"mode": "hybrid", "vector_threshold": 0.5})
    add_index(tmp_path / "models")
    cfg = load_edge_config(config)
    photos = []
    with create_camera(cfg.camera) as camera:
        camera.next_part()  # type: ignore[attr-defined]
        for i in range(3):
            camera.set_angle(i * 120)  # type: ignore[attr-defined]
            path = tmp_path / "photos" / f"view_{i}.png"
            path.parent.mkdir(exist_ok=True)
            cv2.imwrite(str(path), cv2.cvtColor(camera.capture().image, cv2.COLOR_RGB2BGR))
            photos.append(path)
    return config, photos


def test_enroll_list_recognise_reindex_remove(
    rig: tuple[Path, list[Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    config, photos = rig
    cfg = load_edge_config(config)
    code, out = _run(
        capsys, "enroll", "--config", str(config), "--part", "new-1", "--color", "Red", *map(str, photos)
    )
    assert code == 0 and "enrolled 3 view(s) of new-1" in out
    user_path = Path(cfg.data.user_index)
    assert user_path == config.parent / "data" / "user_index.npz"  # beside the config, not in the model set
    assert user_path.is_file() and record_path(user_path).is_file()
    assert len(list(crops_dir(user_path).rglob("*.png"))) == 6  # crop + mask per view
    assert not (config.parent / "models" / "user_index.npz").exists()

    code, out = _run(capsys, "enrolled", "--config", str(config), "--json")
    rows = json.loads(out)
    assert [(r["part"], r["color_id"], r["views"]) for r in rows] == [("new-1", 4, 3)]

    # The daemon's pipeline searches the rig's own enrolled views first, then the shipped index and
    # the user index together (hybrid mode); the search time covers both.
    pipe = Pipeline.from_config(cfg, with_camera=False)
    try:
        assert len(pipe.recognizer.index) == 12 + 3  # type: ignore[arg-type]
        assert len(pipe.recognizer.rig_index) == 3  # type: ignore[arg-type]
        assert pipe.recognizer.rig_threshold == cfg.recognition.vector_threshold  # unset: the same
        [row] = pipe.classify_images(photos[:1])
    finally:
        pipe.close()
    result = row.result
    assert result is not None and result.decision.source == "vector" and result.decision.part_num == "new-1"
    assert result.timings["search"] > 0.0

    # A new model set: the user index is refused until `edge reindex` embeds the kept crops again.
    write_model_set(config.parent / "models", parts=SIM_PARTS, colors=[4, 1, 14], size=(16, 16), seed=5)
    add_index(config.parent / "models")
    with pytest.raises(ModelError, match="edge reindex"):
        Pipeline.from_config(cfg, with_camera=False)
    code, out = _run(capsys, "reindex", "--config", str(config))
    assert code == 0 and "re-embedded 3 view(s)" in out
    pipe = Pipeline.from_config(cfg, with_camera=False)
    try:
        [row] = pipe.classify_images(photos[1:2])
    finally:
        pipe.close()
    assert row.result is not None and row.result.decision.part_num == "new-1"

    code, out = _run(capsys, "enrolled", "--config", str(config), "--remove", "new-1")
    assert code == 0 and "removed 3 view(s)" in out
    assert len(UserIndex.load(user_path)) == 0 and not list(crops_dir(user_path).rglob("*.png"))
    assert _run(capsys, "enrolled", "--config", str(config), "--remove", "new-1")[0] == 2
    code, out = _run(capsys, "enrolled", "--config", str(config))
    assert "nothing enrolled" in out


def test_enroll_views_on_the_sim_rig(
    rig: tuple[Path, list[Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = rig
    code, out = _run(capsys, "enroll", "--config", str(config), "--sim", "--part", "new-2", "--views", "4")
    assert code == 0 and "enrolled 4 view(s) of new-2" in out
    user = UserIndex.load(load_edge_config(config).data.user_index)
    assert [v.source for v in user.record.views] == [f"rig view {i}/4" for i in range(1, 5)]
    assert user.index is not None and len(user.index) == 4
    assert _run(capsys, "enroll", "--config", str(config), "--part", "x")[0] == 2  # no images, no --views


def test_fit_rig_threshold_keeps_the_quantile_of_other_parts_views_below_it() -> None:
    # Part a's views along x, part b's 60 degrees away (cosine 0.5), one b view nearer a (0.8).
    a = [[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]]
    b = [[0.5, np.sqrt(0.75)], [0.5, np.sqrt(0.75)], [0.8, 0.6]]
    fit = fit_rig_threshold(np.asarray(a + b), ["a"] * 3 + ["b"] * 3, quantile=0.5)
    assert fit is not None and (fit["views"], fit["parts"]) == (6, 2)
    # nearest other part: 0.8 for every a view and for b's stray view, 0.5 for b's other two
    assert fit["threshold"] == pytest.approx(0.8) and fit["same_part_median"] == pytest.approx(1.0)
    assert fit_rig_threshold(np.asarray(a + b), list("aaabbb"), quantile=0.0)["threshold"] == 0.5  # type: ignore[index]
    assert fit_rig_threshold(np.asarray(a), ["a"] * 3) is None  # one part: nothing to tell apart
    with pytest.raises(ModelError, match="one label per vector"):
        fit_rig_threshold(np.asarray(a), ["a"])


def test_enrolled_fit_threshold_needs_two_parts_and_prints_the_fit(
    rig: tuple[Path, list[Path]], capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    config, photos = rig
    assert _run(capsys, "enroll", "--config", str(config), "--part", "new-1", *map(str, photos[:2]))[0] == 0
    assert _run(capsys, "enrolled", "--config", str(config), "--fit-threshold")[0] == 2
    assert "needs views of at least two parts" in caplog.text and "edge enroll" in caplog.text
    assert _run(capsys, "enroll", "--config", str(config), "--part", "new-2", str(photos[2]))[0] == 0
    code, out = _run(capsys, "enrolled", "--config", str(config), "--fit-threshold")
    user = UserIndex.load(load_edge_config(config).data.user_index)
    assert user.index is not None
    fit = fit_rig_threshold(user.index.vectors(), list(user.index.labels))
    assert code == 0 and fit is not None
    assert out.startswith(
        f"recognition.rig_threshold: {fit['threshold']}  (95% of 3 enrolled views of 2 parts"
    )
    # two views of one part against a third of the "other": the sim renders one part, so the
    # model cannot tell them apart and says so
    assert ("warning" in out) == (fit["same_part_median"] <= fit["threshold"])


def test_a_saved_fit_is_used_while_the_config_leaves_rig_threshold_unset_and_the_model_is_the_same(
    rig: tuple[Path, list[Path]],
    demo_library: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    config, photos = rig
    folder = config.parent
    assert _run(capsys, "enroll", "--config", str(config), "--part", "new-1", *map(str, photos[:2]))[0] == 0
    assert _run(capsys, "enroll", "--config", str(config), "--part", "new-2", str(photos[2]))[0] == 0
    assert _run(capsys, "enrolled", "--config", str(config), "--save")[0] == 2  # --save alone
    assert "use it with --fit-threshold" in caplog.text
    assert _run(capsys, "enrolled", "--config", str(config), "--fit-threshold", "--save")[0] == 2
    assert "the config names none" in caplog.text  # nowhere to keep it

    hybrid = {"mode": "hybrid", "vector_threshold": 0.5}
    write_sim_setup(folder, demo_library, recognition=hybrid, calibration="calibration.json")
    code, out = _run(capsys, "enrolled", "--config", str(config), "--fit-threshold", "--save")
    assert code == 0 and f"saved to {folder / 'calibration.json'}" in out
    cfg = load_edge_config(config)
    fit = read_calibration(folder / "calibration.json").recognition
    assert fit is not None and (fit.views, fit.parts) == (3, 2) and fit.timestamp is not None
    assert fit.model == model_key(folder / "models", "onnxruntime", "fp32")
    assert fit.rig_threshold != cfg.recognition.vector_threshold  # so the assertions below can tell

    def rig_threshold(cfg: Any) -> float:
        pipe = Pipeline.from_config(cfg, with_camera=False)
        try:
            return pipe.recognizer.rig_threshold
        finally:
            pipe.close()

    assert rig_threshold(cfg) == fit.rig_threshold  # unset in the config: the fit
    code, out = _run(capsys, "check", "--config", str(config))
    assert f"rig_threshold {fit.rig_threshold:g} (fitted, from the calibration file)" in out
    write_sim_setup(
        folder, demo_library, recognition={**hybrid, "rig_threshold": 0.9}, calibration="calibration.json"
    )
    assert rig_threshold(load_edge_config(config)) == 0.9  # set in the config: the config wins
    code, out = _run(capsys, "enrolled", "--config", str(config), "--fit-threshold", "--save")
    assert code == 0 and "which wins" in out

    # Another model set: the views are re-embedded, the old fit is not used and edge check says so.
    write_sim_setup(folder, demo_library, recognition=hybrid, calibration="calibration.json")
    write_model_set(folder / "models", parts=SIM_PARTS, colors=[4, 1, 14], size=(16, 16), seed=5)
    add_index(folder / "models")
    assert _run(capsys, "reindex", "--config", str(config))[0] == 0
    assert rig_threshold(load_edge_config(config)) == 0.5  # vector_threshold
    assert "was fitted with another model" in caplog.text
    code, out = _run(capsys, "check", "--config", str(config))
    assert "WARN calibration recognition" in out and "edge enrolled --fit-threshold --save" in out
    assert "rig_threshold 0.5 (unset: vector_threshold)" in out


def test_a_saved_fit_of_other_enrolled_views_is_named_stale_by_enroll_remove_check_and_the_daemon(
    rig: tuple[Path, list[Path]],
    demo_library: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    config, photos = rig
    folder = config.parent
    write_sim_setup(
        folder,
        demo_library,
        recognition={"mode": "hybrid", "vector_threshold": 0.5},
        calibration="calibration.json",
    )
    for part, views in (("new-1", photos[:2]), ("new-2", photos[2:])):
        code, out = _run(capsys, "enroll", "--config", str(config), "--part", part, *map(str, views))
        assert code == 0 and "note:" not in out  # nothing saved yet: nothing to be stale
    code, out = _run(capsys, "enrolled", "--config", str(config), "--fit-threshold", "--save")
    fit = read_calibration(folder / "calibration.json").recognition
    assert code == 0 and fit is not None and (fit.views, fit.parts) == (3, 2)
    # a fit below the threshold in use warns that parts never enrolled may be taken for enrolled ones
    assert ("never enrolled" in out) == (fit.rig_threshold < 0.5)
    code, out = _run(capsys, "check", "--config", str(config))
    assert "rig threshold" not in out  # fitted to exactly the views enrolled

    code, out = _run(capsys, "enroll", "--config", str(config), "--part", "new-2", str(photos[0]))
    assert code == 0
    assert (
        f"note: the rig_threshold {fit.rig_threshold:g} in {folder / 'calibration.json'} was fitted to 3 "
        "enrolled view(s) of 2 parts; 4 view(s) of 2 part(s) are enrolled now: run `edge enrolled "
        "--fit-threshold --save`"
    ) in out
    code, out = _run(capsys, "check", "--config", str(config))
    assert "WARN rig threshold" in out and "4 view(s) of 2 part(s)" in out
    caplog.clear()
    pipe = Pipeline.from_config(load_edge_config(config), with_camera=False)
    try:
        assert pipe.recognizer.rig_threshold == fit.rig_threshold  # still used, with a warning
    finally:
        pipe.close()
    assert "4 view(s) of 2 part(s) are enrolled now" in caplog.text

    code, out = _run(capsys, "enrolled", "--config", str(config), "--remove", "new-2")
    assert code == 0 and "fewer than two parts are enrolled, so it cannot be refitted" in out
    # the config's own threshold wins over the fit, so nothing is stale
    write_sim_setup(
        folder,
        demo_library,
        recognition={"mode": "hybrid", "vector_threshold": 0.5, "rig_threshold": 0.9},
        calibration="calibration.json",
    )
    code, out = _run(capsys, "enroll", "--config", str(config), "--part", "new-3", str(photos[1]))
    assert code == 0 and "note:" not in out
