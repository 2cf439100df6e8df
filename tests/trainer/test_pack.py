"""`trainer pack-frames`: windows over one empty frame, replayed by the sim camera as full frames."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from edge.camera import create_camera
from edge.errors import DataFileError, ImageError
from edge.imagefile import read_image
from trainer.cli import main


@pytest.fixture(scope="module")
def real_render(demo_library: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("pack")
    parts = tmp / "parts.txt"
    parts.write_text("demo-3001\ndemo-3023\ndemo-3039\n")
    out = tmp / "real"
    code = main(
        [
            "-q", "render", "--ldraw", str(demo_library), "--parts", str(parts), "--layout", "real",
            "--out", str(out), "--per-part", "2", "--views", "2", "--colors", "Red,Blue",
            "--supersample", "1", "--workers", "1", "--seed", "4", "--sheet", "0",
        ]
    )  # fmt: skip
    assert code == 0
    return out


def test_packed_frames_replay_the_rendered_part_pixels(real_render: Path, tmp_path: Path) -> None:
    packed = tmp_path / "packed"
    assert (
        main(["-q", "pack-frames", "--from", str(real_render), "--out", str(packed), "--captures", "3"]) == 0
    )
    with (packed / "manifest.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    # One capture per part first: three captures of three different parts, two views each.
    assert len(rows) == 6 and len({r["part_num"] for r in rows}) == 3
    full_bytes = sum((real_render / r["image_path"]).stat().st_size for r in rows)
    packed_bytes = sum((packed / r["image_path"]).stat().st_size for r in rows)
    assert packed_bytes < full_bytes / 2

    cam = create_camera({"type": "sim", "frames": str(packed), "order": "cycle"})
    with cam:
        seen = []
        for _ in range(3):
            cam.next_part()
            cam.set_angle(float(rows[len(seen) * 2]["angle"]))
            frame = cam.capture()
            row = rows[len(seen) * 2]
            original = read_image(real_render / row["image_path"])
            mask = read_image(real_render / row["image_path"].replace(".jpg", "_mask.png"))[..., 0] > 127
            assert frame.image.shape == original.shape
            # The part's pixels are the rendered ones (up to the window's JPEG re-encoding).
            diff = np.abs(frame.image[mask].astype(int) - original[mask].astype(int))
            assert diff.mean() < 6
            assert frame.meta["part_num"] == row["part_num"]
            seen.append(row["part_num"])
            cam.remove_part()
        empty = cam.capture().image
    assert len(set(seen)) == 3
    np.testing.assert_array_equal(empty, read_image(packed / "empty.png"))


def test_packed_frames_need_their_empty_frame(real_render: Path, tmp_path: Path) -> None:
    packed = tmp_path / "packed"
    assert (
        main(["-q", "pack-frames", "--from", str(real_render), "--out", str(packed), "--captures", "1"]) == 0
    )
    (packed / "empty.png").unlink()
    cam = create_camera({"type": "sim", "frames": str(packed)})
    with cam, pytest.raises(DataFileError, match=r"empty\.png is missing"):
        cam.next_part()
        cam.capture()


def test_a_window_past_the_frame_is_named(real_render: Path, tmp_path: Path) -> None:
    packed = tmp_path / "packed"
    assert (
        main(["-q", "pack-frames", "--from", str(real_render), "--out", str(packed), "--captures", "1"]) == 0
    )
    manifest = packed / "manifest.csv"
    with manifest.open() as fh:
        reader = csv.DictReader(fh)
        columns, rows = reader.fieldnames, list(reader)
    rows[0].update(window_x="630", window_y="470")  # would reach past the 640x480 empty frame
    with manifest.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns or [])
        writer.writeheader()
        writer.writerows(rows)
    cam = create_camera({"type": "sim", "frames": str(packed)})
    with cam, pytest.raises(ImageError, match="reaches past the 640x480 empty frame"):
        cam.next_part()
        cam.set_angle(float(rows[0]["angle"]))
        cam.capture()
