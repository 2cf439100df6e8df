"""`edge calibrate color`: white balance and matrix from reference bricks, with Delta E 2000."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from calibration.color import DEFAULT_BRICKS, delta_e_2000, fit_color_correction
from edge.calibration_file import read_calibration
from edge.cli import main
from edge.color_correction import ColorCorrection, linear_to_srgb, srgb_to_linear
from edge.colors import get_color
from edge.errors import ImageError
from tests.edge.test_settings import write_sim_setup

#: A camera that is off: exposure, white balance and some channel cross-talk, in linear light.
CAMERA = 0.7 * np.array([[1.2, 0.1, 0.0], [0.05, 0.9, 0.05], [0.0, 0.1, 0.6]])  # nothing clips


def seen(rgb: np.ndarray) -> np.ndarray:
    return linear_to_srgb(srgb_to_linear(np.asarray(rgb, float) / 255) @ CAMERA.T) * 255


def test_delta_e_2000_of_known_pairs() -> None:
    assert delta_e_2000([10, 20, 30], [10, 20, 30]) == pytest.approx(0.0, abs=1e-9)
    assert delta_e_2000([255, 0, 0], [0, 0, 255]) > 40


def test_fit_undoes_a_linear_camera_error() -> None:
    ids = [*DEFAULT_BRICKS, 25, 2]
    measured = {i: seen(np.array(get_color(i).rgb)) for i in ids}
    fit = fit_color_correction(measured, ridge=1e-4)
    before, after = fit.mean_delta_e
    assert before > 5 and after < 1.5
    assert [p.color_id for p in fit.patches] == ids
    # Held-out colours are corrected too: the fitted matrix inverts the camera.
    for other in (27, 322, 70):
        rgb = np.array(get_color(other).rgb, float)
        fixed = linear_to_srgb(fit.correction.apply_linear(srgb_to_linear(seen(rgb) / 255))) * 255
        assert delta_e_2000(fixed, rgb) < delta_e_2000(seen(rgb), rgb)
    with pytest.raises(ImageError, match="at least 3 reference bricks"):
        fit_color_correction({15: (250, 250, 250), 0: (5, 5, 5)})


def brick_frame(rgb: np.ndarray) -> np.ndarray:
    frame = np.full((120, 160, 3), (200, 40, 190), np.uint8)  # the sim rig's magenta disc
    frame[40:80, 60:110] = np.clip(np.round(rgb), 0, 255).astype(np.uint8)
    return frame


def brick_setup(tmp_path: Path, demo_library: Path) -> tuple[list[str], Path]:
    """The sim setup, the default bricks photographed through :data:`CAMERA`, and the command's
    arguments (the calibration file is the second value)."""
    config = write_sim_setup(tmp_path, demo_library)
    bricks = tmp_path / "bricks"
    bricks.mkdir()
    for color_id in DEFAULT_BRICKS:
        frame = brick_frame(seen(np.array(get_color(color_id).rgb)))
        cv2.imwrite(str(bricks / f"{color_id}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    cal = tmp_path / "calibration.json"
    return [
        "calibrate",
        "color",
        "--config",
        str(config),
        "--calibration",
        str(cal),
        "--from",
        str(bricks),
    ], cal


def test_command_from_a_folder_writes_the_color_section(tmp_path: Path, demo_library: Path) -> None:
    args, cal = brick_setup(tmp_path, demo_library)
    assert main(args) == 0
    color = read_calibration(cal).color
    assert color is not None and sorted(p.color_id for p in color.patches) == sorted(DEFAULT_BRICKS)
    # The stage around the bricks, as the camera saw it: drift correction's reference.
    assert color.background_rgb == pytest.approx((200, 40, 190), abs=0.5)
    assert color.mean_delta_e is not None and color.mean_delta_e < np.mean(
        [p.delta_e_before for p in color.patches]
    )
    correction = ColorCorrection.from_calibration(cal)
    white = correction.apply(brick_frame(seen(np.array([255, 255, 255]))))[60, 80]
    assert np.all(white >= 235) and np.ptp(white.astype(int)) <= 12
    # Relative calibration: a reference file of patches as another rig saw them.
    reference = tmp_path / "reference.json"
    assert main([*args, "--write-reference", str(reference)]) == 0
    assert json.loads(reference.read_text())["15"] == pytest.approx(seen(np.array([255, 255, 255])), abs=1)
    assert main([*args, "--reference", str(reference)]) == 0
    color = read_calibration(cal).color
    assert color is not None and max(p.delta_e for p in color.patches) < 0.5  # already looks like itself
    reference.write_text(json.dumps({"15": [255, 255, 255]}))
    assert main([*args, "--reference", str(reference)]) == 2


def test_clipped_bricks_are_measured_warned_about_and_flagged_by_check(
    tmp_path: Path, demo_library: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edge.calibration_file import check_calibration

    config = write_sim_setup(tmp_path, demo_library)
    bricks = tmp_path / "bricks"
    bricks.mkdir()
    over = 1.8  # an exposure far too high: white and yellow clip
    for color_id in DEFAULT_BRICKS:
        rgb = (
            linear_to_srgb(np.clip(srgb_to_linear(np.array(get_color(color_id).rgb) / 255) * over, 0, 1))
            * 255
        )
        cv2.imwrite(str(bricks / f"{color_id}.png"), cv2.cvtColor(brick_frame(rgb), cv2.COLOR_RGB2BGR))
    cal = tmp_path / "calibration.json"
    args = ["calibrate", "color", "--config", str(config), "--calibration", str(cal), "--from", str(bricks)]
    assert main(args) == 0  # the fit is written, with the warning beside it
    printed = capsys.readouterr().out
    assert "WARNING" in printed and "White (15) 100%" in printed and "lower the exposure" in printed
    color = read_calibration(cal).color
    assert color is not None
    clipped = {p.color_id: p.clipped for p in color.patches}
    assert clipped[15] == 1.0 and clipped[0] == 0.0 and clipped[1] == 0.0
    warned = [line for line in check_calibration(cal) if line[0] == "WARN" and line[1] == "calibration color"]
    assert len(warned) == 1 and "White (15)" in warned[0][2] and "Black" not in warned[0][2]

    for color_id in DEFAULT_BRICKS:  # the advice followed: nothing clips, nothing is flagged
        frame = brick_frame(seen(np.array(get_color(color_id).rgb)))
        cv2.imwrite(str(bricks / f"{color_id}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    assert main(args) == 0
    assert "WARNING" not in capsys.readouterr().out
    assert not [line for line in check_calibration(cal) if line[0] == "WARN"]


def test_command_captures_each_brick_when_placed(
    tmp_path: Path, demo_library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --from: one prompt and one capture per brick, in --bricks order (a folder camera here)."""
    captures = tmp_path / "captures"
    captures.mkdir()
    bricks = (15, 0, 1, 14)
    for n, color_id in enumerate(bricks):
        frame = brick_frame(seen(np.array(get_color(color_id).rgb)))
        cv2.imwrite(str(captures / f"frame_{n}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    config = write_sim_setup(tmp_path, demo_library, camera={"type": "folder", "path": str(captures)})
    prompts: list[str] = []
    monkeypatch.setattr("builtins.input", lambda text="": prompts.append(text) or "")
    cal = tmp_path / "calibration.json"
    args = [
        "calibrate",
        "color",
        "--config",
        str(config),
        "--calibration",
        str(cal),
        "--bricks",
        "White,0,1,Yellow",
    ]
    assert main(args) == 0
    assert [p.split(" brick")[0] for p in prompts] == [
        "place a White (15)",
        "place a Black (0)",
        "place a Blue (1)",
        "place a Yellow (14)",
    ]
    color = read_calibration(cal).color
    assert color is not None and [p.color_id for p in color.patches] == list(bricks)
    assert max(p.delta_e for p in color.patches) < max(p.delta_e_before for p in color.patches)


def test_the_model_sets_reference_is_the_default_and_the_table_can_be_asked_for(
    tmp_path: Path, demo_library: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """A model set's color_reference.json (its renders' look of the bricks) is what the camera is
    corrected towards by default; `--reference table` corrects towards the colour table."""
    from calibration.color import REFERENCE_FILE

    args, cal = brick_setup(tmp_path, demo_library)
    assert main(args) == 0
    assert f"the model set has no {REFERENCE_FILE}" in capsys.readouterr().out
    table_fit = read_calibration(cal).color
    # The model set's renders show the bricks as this camera does: nothing left to correct.
    looks = {str(c): seen(np.array(get_color(c).rgb)).round(2).tolist() for c in DEFAULT_BRICKS}
    (tmp_path / "models" / REFERENCE_FILE).write_text(json.dumps(looks))
    assert main(args) == 0
    assert "the model set's renders' look" in capsys.readouterr().out
    color = read_calibration(cal).color
    assert color is not None and table_fit is not None
    assert max(p.delta_e for p in color.patches) < 0.5 < max(p.delta_e_before for p in table_fit.patches)
    assert main([*args, "--reference", "table"]) == 0
    assert "--reference table" in capsys.readouterr().out
    again = read_calibration(cal).color
    assert again is not None and [p.delta_e for p in again.patches] == [p.delta_e for p in table_fit.patches]
    (tmp_path / "models" / REFERENCE_FILE).write_text('{"15": [255, 255]}')
    assert main(args) == 2
    assert "not three values 0..255" in caplog.text
    (tmp_path / "models" / REFERENCE_FILE).write_text("{not json")
    assert main(args) == 2
    assert "cannot be read" in caplog.text
