"""The simulated rig's camera: live rendering with the demo library, then replay of what it rendered."""

from __future__ import annotations

import csv
import logging
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge.camera import EndOfStream, create_camera
from edge.camera.sim import DEFAULT_FRAMES, SimConfig, SimSource, mean_background
from edge.errors import ConfigError, DataFileError, HardwareError, MissingDependencyError

PARTS = ["demo-3001", "demo-3023"]
SMALL = {"width": 160, "height": 120}  # a small frame keeps the renders fast
ANGLES = [0, 120, 240]


def _live(library: Path, **kw: Any) -> SimSource:
    cfg = {"type": "sim", "ldraw": str(library), "parts": PARTS, "colors": "4,1", "rig": SMALL, **kw}
    cam = create_camera(cfg)
    assert isinstance(cam, SimSource)
    return cam


def _differs(a: np.ndarray, b: np.ndarray, level: int = 30) -> np.ndarray:
    """Pixels whose colour differs by more than ``level`` in some channel."""
    return np.abs(a.astype(int) - b.astype(int)).max(axis=2) > level


def test_live_rig_empty_then_part_at_each_angle(demo_library: Path) -> None:
    with _live(demo_library) as cam:
        empty = cam.capture()
        assert empty.meta["part_present"] is False and "part_num" not in empty.meta
        assert empty.image.shape == (120, 160, 3) and empty.image.dtype == np.uint8
        truth = cam.next_part()
        assert truth["part_num"] == "demo-3001" and truth["color_id"] == 4 and cam.part == truth
        frames = []
        for angle in (0, 90):
            cam.set_angle(angle)
            frames.append(cam.capture())
        cam.remove_part()
        again = cam.capture()
    for frame, angle in zip(frames, (0, 90), strict=True):
        assert frame.meta["part_present"] is True
        assert frame.meta["part_num"] == "demo-3001" and frame.meta["color_id"] == 4
        assert frame.meta["turntable_angle"] == angle and frame.meta["angle"] == angle
        changed = _differs(frame.image, empty.image)
        assert changed.sum() > 50  # the part is there ...
        x0, y0, x1, y1 = frame.meta["bbox"]
        inside = np.zeros_like(changed)
        inside[y0:y1, x0:x1] = True
        assert changed[inside].mean() > 0.5  # ... where its bounding box says
        # Away from the part (and its shadow) the frame is the empty turntable.
        near = cv2.dilate(inside.astype(np.uint8), np.ones((31, 31), np.uint8)).astype(bool)
        assert np.abs(frame.image.astype(int) - empty.image.astype(int))[~near].max() <= 2
    # The brick turned with the turntable: a 2x4 brick's box changes shape by a quarter turn.
    assert frames[0].meta["bbox"] != frames[1].meta["bbox"]
    # Red brick: red dominates inside its box.
    x0, y0, x1, y1 = frames[0].meta["bbox"]
    r, g, b = frames[0].image[y0:y1, x0:x1].reshape(-1, 3).mean(axis=0)
    assert r > g + 40 and r > b + 40
    np.testing.assert_array_equal(again.image, empty.image)
    assert again.meta["part_present"] is False


def test_live_empty_turntable_has_no_speck(demo_library: Path) -> None:
    with _live(demo_library) as cam:
        image = cam.capture().image
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    local = np.abs(grey.astype(int) - cv2.medianBlur(grey, 7).astype(int))
    # With randomisation off the disc is smooth shading: no dot left from the stand-in speck.
    h, w = grey.shape  # the speck sits at the disc's centre, the middle of the frame
    assert local[h // 2 - 20 : h // 2 + 20, w // 2 - 25 : w // 2 + 25].max() <= 3


def test_live_parts_and_colours_cycle_and_runs_repeat(demo_library: Path) -> None:
    def run() -> tuple[list[tuple[str, int]], np.ndarray]:
        with _live(demo_library, randomization="train", seed=5) as cam:
            seen = [(t["part_num"], t["color_id"]) for t in (cam.next_part() for _ in range(4))]
            cam.set_angle(33)
            return seen, cam.capture().image

    seen, image = run()
    # Every part comes in every colour: the second round shifts the colours by one.
    assert seen == [("demo-3001", 4), ("demo-3023", 1), ("demo-3001", 1), ("demo-3023", 4)]
    seen2, image2 = run()
    assert seen2 == seen
    np.testing.assert_array_equal(image, image2)  # seeded: a run is repeatable


def test_live_follows_a_turntable(demo_library: Path) -> None:
    class Turntable:
        angle = 0.0

    table = Turntable()
    with _live(demo_library) as cam:
        cam.follow(table)
        cam.next_part()
        first = cam.capture()
        table.angle = 450.0  # one and a quarter turns
        second = cam.capture()
        cam.follow(lambda: 30.0)
        assert cam.capture().meta["turntable_angle"] == 30.0
    assert first.meta["turntable_angle"] == 0.0 and second.meta["turntable_angle"] == 90.0
    assert second.meta["bbox"] != first.meta["bbox"]
    with pytest.raises(TypeError, match=r"callable or an object with \.angle"):
        cam.follow(42)


def test_live_errors(demo_library: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\['demo-9999'\] not found in the LDraw library"):
        _live(demo_library, parts=["demo-3001", "demo-9999"]).open()
    with pytest.raises(ConfigError, match=r"camera\.parts is empty"):
        _live(demo_library, parts=[]).open()
    with pytest.raises(DataFileError, match="no parts/ folder"):
        _live(tmp_path).open()
    with pytest.raises(ConfigError, match=r"unknown colour name 'Plaid'"):
        _live(demo_library, colors="4,Plaid")
    with pytest.raises(ConfigError, match=r"widht: unknown key"):
        _live(demo_library, rig={"widht": 100})
    with pytest.raises(HardwareError, match="not open"):
        _live(demo_library).next_part()


def test_live_mode_without_the_studio_names_it(demo_library: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "studio", None)  # `import studio` now fails as if not installed
    with pytest.raises(MissingDependencyError, match=r"'studio' is needed for live simulation") as info:
        create_camera({"type": "sim", "ldraw": str(demo_library), "parts": PARTS}).open()
    assert "install the whole lego-edge distribution" in str(info.value) and info.value.extra is None
    with pytest.raises(MissingDependencyError, match="rig settings"):
        create_camera({"type": "sim", "rig": SMALL})
    with create_camera({"type": "sim"}) as cam:  # replay needs no studio
        cam.next_part()
        assert cam.capture().meta["part_present"] is True


def test_live_parts_file(demo_library: Path, tmp_path: Path) -> None:
    listing = tmp_path / "parts.txt"
    listing.write_text("# popular parts\ndemo-3023\n\ndemo-3068b  # tile\ndemo-3023\n")
    with _live(demo_library, parts=[], parts_file=str(listing)) as cam:
        assert [cam.next_part()["part_num"] for _ in range(3)] == ["demo-3023", "demo-3068b", "demo-3023"]


# --- replay of frames the live mode rendered --------------------------------------------------


@pytest.fixture(scope="module")
def rendered(demo_library: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A folder in the rig's capture layout, rendered by the live sim camera."""
    out = tmp_path_factory.mktemp("sim_frames")
    rows: list[dict[str, Any]] = []
    with _live(demo_library) as cam:
        empty = cam.capture().image
        for _ in PARTS:
            truth = cam.next_part()
            for angle in ANGLES:
                cam.set_angle(angle)
                image = cam.capture().image
                part, color = truth["part_num"], truth["color_id"]
                rel = f"raw/{part}/{color}/{part}_{color}_{angle}"
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(out / f"{rel}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
                # The rig's own masks come from background subtraction against the empty disc.
                mask = _differs(image, empty, 12).astype(np.uint8) * 255
                cv2.imwrite(str(out / f"{rel}_mask.png"), mask)
                rows.append({"image_path": f"{rel}.png", **truth, "angle": angle,
                             "timestamp": f"2026-01-01T00:00:{len(rows):02d}+00:00"})  # fmt: skip
    with (out / "manifest.csv").open("w", newline="") as fh:
        cols = ["image_path", "part_num", "color_id", "color_name", "part_name", "angle", "timestamp"]
        writer = csv.DictWriter(fh, cols)
        writer.writeheader()
        writer.writerows(rows)
    return {"folder": out, "empty": empty}


def _replay(folder: Path, **kw: Any) -> SimSource:
    cam = create_camera({"type": "sim", "frames": str(folder), **kw})
    assert isinstance(cam, SimSource)
    return cam


def test_replay_shows_the_view_nearest_the_turntable_angle(rendered: dict[str, Any]) -> None:
    folder = rendered["folder"]
    with _replay(folder) as cam:
        assert cam.capture().meta["part_present"] is False
        truth = cam.next_part()
        assert truth["part_num"] == "demo-3001" and truth["color_id"] == 4 and truth["color_name"] == "Red"
        assert truth["part_name"].startswith("Brick")
        cam.set_angle(100)  # nearest stored view: 120
        frame = cam.capture()
        cam.set_angle(350)  # nearest around the circle: 0
        wrapped = cam.capture()
        assert cam.next_part()["part_num"] == "demo-3023"
        assert cam.next_part()["part_num"] == "demo-3001"  # loops by default
    assert frame.meta["angle"] == 120.0 and frame.meta["turntable_angle"] == 100.0
    assert frame.meta["part_num"] == "demo-3001" and frame.meta["color_id"] == 4
    stored = cv2.cvtColor(cv2.imread(frame.meta["path"]), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(frame.image, stored)
    assert frame.meta["path"].endswith("demo-3001_4_120.png") and wrapped.meta["angle"] == 0.0


def test_replay_empty_is_the_mean_background(rendered: dict[str, Any]) -> None:
    with _replay(rendered["folder"]) as cam:
        empty = cam.capture().image
    truth = rendered["empty"].astype(int)
    diff = np.abs(empty.astype(int) - truth)
    # Where no part ever stood the mean is the disc itself; where parts always stood (the disc's
    # centre) the hole is inpainted from the disc around it: close, not exact.
    assert np.median(diff) <= 1 and diff.mean() < 2.0 and diff.max() <= 40


def test_replay_uses_a_stored_empty_frame(rendered: dict[str, Any], tmp_path: Path) -> None:
    folder = rendered["folder"]
    marker = np.full((120, 160, 3), (10, 200, 30), np.uint8)
    link = tmp_path / "frames"
    link.mkdir()
    (link / "manifest.csv").write_bytes((folder / "manifest.csv").read_bytes())
    (link / "raw").symlink_to(folder / "raw")
    cv2.imwrite(str(link / "empty.png"), cv2.cvtColor(marker, cv2.COLOR_RGB2BGR))
    with _replay(link) as cam:
        np.testing.assert_array_equal(cam.capture().image, marker)


def test_replay_stops_when_not_looping(rendered: dict[str, Any]) -> None:
    with _replay(rendered["folder"], loop=False) as cam:
        cam.next_part()
        cam.next_part()
        with pytest.raises(EndOfStream, match="all 2 captures replayed"):
            cam.next_part()


def test_mean_background_without_masks_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    a = np.full((8, 8, 3), 100, np.uint8)
    b = np.full((8, 8, 3), 120, np.uint8)
    for name, img in (("x_0.png", a), ("x_90.png", b)):
        cv2.imwrite(str(tmp_path / name), img)
    np.testing.assert_array_equal(mean_background([tmp_path / "x_0.png", tmp_path / "x_90.png"]), 110)
    (tmp_path / "manifest.csv").write_text(
        "image_path,part_num,color_id,angle\nx_0.png,3001,4,0\nx_90.png,3001,4,90\n"
    )
    with caplog.at_level(logging.WARNING), _replay(tmp_path) as cam:
        cam.capture()
    assert "shows ghosts of the parts" in caplog.text


def test_replay_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match=r"no manifest\.csv here"):
        _replay(tmp_path).open()
    default = create_camera({"type": "sim"})
    assert isinstance(default.config, SimConfig) and str(DEFAULT_FRAMES) in default.name
    if (DEFAULT_FRAMES / "manifest.csv").is_file():  # the shipped frames, once the project has them
        with default:
            assert default.capture().meta["part_present"] is False
            default.next_part()
            assert "part_num" in default.capture().meta
    else:
        with pytest.raises(DataFileError, match="trainer render --layout real"):
            default.open()


def test_replay_random_order_is_seeded(rendered: dict[str, Any]) -> None:
    def order(seed: int) -> list[str]:
        with _replay(rendered["folder"], order="random", seed=seed) as cam:
            return [cam.next_part()["part_num"] for _ in range(12)]

    first = order(3)
    assert first == order(3) and set(first) == set(PARTS)  # repeatable, and draws both parts
