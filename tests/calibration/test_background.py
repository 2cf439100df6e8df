"""`edge calibrate background`: HSV range and background model from frames of the empty stage."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from calibration.background import fit_hsv_range, keyed_share, shortest_hue_arc
from edge.calibration_file import read_calibration
from edge.camera import create_camera
from edge.cli import main
from edge.segment import create_segmenter
from edge.segment.bgdiff import BackgroundModel

SHIPPED = {
    "type": "hsv",
    "background_lower": [142, 90, 60],
    "background_upper": [170, 255, 255],
    "min_area_px": 60,
}


def noisy_stage(rgb: tuple[int, int, int], seed: int, n: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = np.full((60, 80, 3), rgb, np.float32)
    base *= np.linspace(0.8, 1.0, 80, dtype=np.float32)[None, :, None]  # uneven light
    return [np.clip(base + rng.normal(0, 3, base.shape), 0, 255).astype(np.uint8) for _ in range(n)]


def test_hue_arc_wraps_around_red() -> None:
    hues = np.array([176, 177, 178, 179, 0, 1, 2] * 10 + [90])
    assert shortest_hue_arc(hues, 0.95) == (176, 2)
    assert shortest_hue_arc(np.array([30, 31, 32]), 1.0) == (30, 32)


def test_fitted_range_keys_the_stage_not_the_parts() -> None:
    for rgb in ((200, 40, 190), (210, 40, 50), (40, 60, 200)):  # magenta, red (hue wraps), blue
        frames = noisy_stage(rgb, seed=sum(rgb))
        hsv = fit_hsv_range(frames)
        assert keyed_share(frames, hsv) > 0.99
        shadow = [(f * 0.7).astype(np.uint8) for f in frames]  # a part's shadow is still background
        assert keyed_share(shadow, hsv) > 0.99
        for part in ((250, 250, 250), (20, 20, 20), (240, 200, 30), (90, 90, 90)):
            assert keyed_share([np.full((4, 4, 3), part, np.uint8)], hsv) == 0.0


def test_command_on_the_sim_rig(tmp_path: Path) -> None:
    cal = tmp_path / "rig" / "calibration.json"
    assert main(["calibrate", "background", "--sim", "--calibration", str(cal), "--frames", "3"]) == 0
    data = read_calibration(cal)
    assert data.background is not None and data.background.frames == 3
    assert data.background.keyed_share is not None and data.background.keyed_share > 0.99
    assert BackgroundModel.load(cal.parent / "background.npz").shape == (480, 640)
    picture = cv2.imread(str(cal.parent / "calibration-report" / "background_mask.png"))
    assert picture is not None and picture.shape == (480, 640, 3)
    # The fitted range cuts the sim rig's parts out like the hand-tuned range of config/sim.yaml.
    fitted = create_segmenter({"type": "hsv", "calibration": True, "min_area_px": 60}, calibration=cal)
    bgdiff = create_segmenter({"type": "bgdiff", "calibration": True}, calibration=cal)
    shipped = create_segmenter(SHIPPED)
    ious = []
    with create_camera({"type": "sim"}) as camera:
        for _ in range(8):
            camera.next_part()  # type: ignore[attr-defined]
            image = camera.capture().image
            a, b = shipped.mask(image) > 0, fitted.mask(image) > 0
            ious.append((a & b).sum() / (a | b).sum())
            assert np.count_nonzero(bgdiff.mask(image)) > 0.5 * a.sum()
    assert np.mean(ious) > 0.9


def test_command_from_a_folder(tmp_path: Path) -> None:
    frames = tmp_path / "empty"
    frames.mkdir()
    for i, frame in enumerate(noisy_stage((40, 60, 200), seed=4)):
        cv2.imwrite(str(frames / f"empty_{i}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    cal = tmp_path / "cal.yaml"
    report = tmp_path / "report"
    args = ["calibrate", "background", "--sim", "--from", str(frames), "--calibration", str(cal)]
    assert main([*args, "--report", str(report)]) == 0
    assert (report / "background_mask.png").is_file()
    background = read_calibration(cal).background
    assert background is not None and background.hsv is not None and background.frames == 3
    assert 100 <= background.hsv.lower[0] <= 117 <= background.hsv.upper[0] <= 130
    assert (
        main(
            [
                "calibrate",
                "background",
                "--sim",
                "--from",
                str(tmp_path / "nothing"),
                "--calibration",
                str(cal),
            ]
        )
        == 2
    )
