"""`trainer render`: the three layouts, resuming, per-part failures and the exit code, on the demo library."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import pytest

from edge.errors import ConfigError
from trainer.cli import main
from trainer.render import REAL_COLUMNS, read_parts_list
from trainer.render_worker import RenderJob, job_randomization


def _parts_file(tmp_path: Path, *parts: str) -> Path:
    f = tmp_path / "parts.txt"
    f.write_text("# demo parts\n" + "\n".join(parts) + "\n\n")
    return f


def _render(demo_library: Path, parts: Path, out: Path, layout: str, *extra: str) -> int:
    return main(
        [
            "-q", "render", "--ldraw", str(demo_library), "--parts", str(parts), "--layout", layout,
            "--out", str(out), "--per-part", "1", "--views", "2", "--colors", "Red,Blue",
            "--supersample", "1", "--workers", "1", "--seed", "3", *extra,
        ]
    )  # fmt: skip


def test_real_layout_matches_the_rig(demo_library: Path, tmp_path: Path) -> None:
    parts = _parts_file(tmp_path, "demo-3001", "demo-3023")
    out = tmp_path / "real"
    assert _render(demo_library, parts, out, "real") == 0
    with (out / "manifest.csv").open() as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == REAL_COLUMNS
        rows = list(reader)
    assert len(rows) == 4 and {r["part_num"] for r in rows} == {"demo-3001", "demo-3023"}
    for row in rows:
        path = row["image_path"]
        m = re.fullmatch(r"raw/([^/]+)/(\d+)/([^/]+)_(\d+)_(\d+)\.jpg", path)
        assert m, path
        assert m.group(1) == m.group(3) == row["part_num"] and m.group(2) == m.group(4) == row["color_id"]
        assert m.group(5) == row["angle"]
        assert row["color_name"] in ("Red", "Blue") and "simplified" in row["part_name"]
        image = cv2.imread(str(out / path))
        mask = cv2.imread(str(out / path.replace(".jpg", "_mask.png")), cv2.IMREAD_GRAYSCALE)
        assert image.shape == (480, 640, 3) and mask.shape == (480, 640)
        assert 50 < (mask > 0).sum() < 0.5 * mask.size  # the part is there, the turntable too
    report = json.loads((out / "render_report.json").read_text())
    assert report["parts_failed"] == 0 and report["images"] == 4
    assert (out / "contact_sheet.png").is_file()


def test_b200c_and_legacy_layouts(demo_library: Path, tmp_path: Path) -> None:
    parts = _parts_file(tmp_path, "demo-3039")
    b200c = tmp_path / "b200c"
    assert _render(demo_library, parts, b200c, "b200c") == 0
    images = sorted(p for p in (b200c / "demo-3039").glob("*.png") if not p.name.endswith("_mask.png"))
    assert len(images) == 2 and not (b200c / "manifest.csv").exists()
    assert cv2.imread(str(images[0])).shape == (64, 64, 3)

    legacy = tmp_path / "legacy"
    assert _render(demo_library, parts, legacy, "legacy") == 0
    with (legacy / "manifest.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["view"] for r in rows] == ["0", "1"] and rows[0]["capture"] == rows[1]["capture"] == "0"
    assert cv2.imread(str(legacy / rows[0]["image_path"])).shape == (224, 224, 3)
    assert cv2.imread(str(legacy / rows[0]["mask_path"]), cv2.IMREAD_GRAYSCALE).shape == (224, 224)


def test_rerun_skips_finished_parts_and_redoes_damaged_ones(demo_library: Path, tmp_path: Path) -> None:
    parts = _parts_file(tmp_path, "demo-3001", "demo-3068b")
    out = tmp_path / "b200c"
    assert _render(demo_library, parts, out, "b200c") == 0
    first = {p: p.read_bytes() for p in out.rglob("*.png") if p.name != "contact_sheet.png"}
    assert _render(demo_library, parts, out, "b200c") == 0
    assert json.loads((out / "render_report.json").read_text())["parts_skipped_as_done"] == 2

    victim = next(p for p in first if p.parent.name == "demo-3068b" and not p.name.endswith("_mask.png"))
    victim.unlink()
    assert _render(demo_library, parts, out, "b200c") == 0
    report = json.loads((out / "render_report.json").read_text())
    assert report["parts_skipped_as_done"] == 1 and report["parts_rendered"] == 1
    assert victim.read_bytes() == first[victim]  # same seed, same image


def test_more_captures_per_part_extends_a_finished_render(demo_library: Path, tmp_path: Path) -> None:
    parts = _parts_file(tmp_path, "demo-3001")
    grown, direct = tmp_path / "grown", tmp_path / "direct"
    assert _render(demo_library, parts, grown, "b200c") == 0
    first = {p: p.stat().st_mtime_ns for p in grown.rglob("demo-3001/*.png")}
    assert len(first) == 4  # 1 capture x 2 views, images and masks
    assert _render(demo_library, parts, grown, "b200c", "--per-part", "3") == 0
    assert _render(demo_library, parts, direct, "b200c", "--per-part", "3") == 0

    grown_files = {p.relative_to(grown): p.read_bytes() for p in grown.rglob("demo-3001/*.png")}
    direct_files = {p.relative_to(direct): p.read_bytes() for p in direct.rglob("demo-3001/*.png")}
    assert len(grown_files) == 12 and grown_files == direct_files  # same captures, bit for bit
    assert all(p.stat().st_mtime_ns == t for p, t in first.items())  # the first capture kept, not redone
    record = json.loads((grown / ".progress" / "demo-3001.json").read_text())
    assert sorted({r["capture"] for r in record["records"]}) == [0, 1, 2]

    # Back to fewer captures: nothing rendered, the report lists only those asked for.
    assert _render(demo_library, parts, grown, "b200c", "--per-part", "2") == 0
    report = json.loads((grown / "render_report.json").read_text())
    assert report["parts_skipped_as_done"] == 1 and report["images"] == 4


def test_a_render_with_other_settings_is_not_mistaken_for_done(demo_library: Path, tmp_path: Path) -> None:
    parts = _parts_file(tmp_path, "demo-3001")
    out = tmp_path / "out"
    assert _render(demo_library, parts, out, "b200c") == 0
    image = next(p for p in out.rglob("demo-3001/*.png") if not p.name.endswith("_mask.png"))
    before = image.read_bytes()
    assert _render(demo_library, parts, out, "b200c", "--seed", "4") == 0
    report = json.loads((out / "render_report.json").read_text())
    assert report["parts_skipped_as_done"] == 0 and report["parts_rendered"] == 1
    assert image.read_bytes() != before  # another seed, other poses


def test_bad_parts_are_reported_and_do_not_stop_the_run(demo_library: Path, tmp_path: Path) -> None:
    bad = demo_library.parent / "broken-lib"
    if not bad.exists():
        import shutil

        shutil.copytree(demo_library, bad)
        (bad / "parts" / "demo-bad.dat").write_text("0 Broken\n0 BFC CERTIFY CCW\n3 16 0 0 0 1 1\n")
    parts = _parts_file(tmp_path, "demo-3005", "no-such-part", "demo-bad")
    out = tmp_path / "out"
    assert _render(bad, parts, out, "b200c") == 1
    report = json.loads((out / "render_report.json").read_text())
    assert report["parts_failed"] == 2 and report["parts_rendered"] == 1
    assert "no-such-part" in report["failures"]["no-such-part"]
    assert "demo-bad" in report["failures"]["demo-bad"] and ":3" in report["failures"]["demo-bad"]


def test_bad_arguments_give_clear_errors(demo_library: Path, tmp_path: Path, caplog) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n")
    with pytest.raises(ValueError, match="holds no part numbers"):
        read_parts_list(empty)
    assert _render(demo_library, empty, tmp_path / "o", "real") == 2
    assert _render(tmp_path, _parts_file(tmp_path, "demo-3001"), tmp_path / "o", "real") == 2
    assert "not an LDraw library" in caplog.text


def test_factors_from_another_preset_make_a_one_factor_study(demo_library: Path, tmp_path: Path) -> None:
    from studio.scene_config import Randomization

    job = RenderJob(
        str(demo_library), "real", str(tmp_path), 1, 2, (4,), 3, "train", 1, factors=("defocus", "jpeg")
    )
    with pytest.raises(ValueError, match="--factors-from"):
        job_randomization(job)
    job = replace(job, factors_from="test")
    got, train, test = job_randomization(job), Randomization.train(), Randomization.test()
    assert got.defocus == test.defocus != train.defocus and got.jpeg == test.jpeg != train.jpeg
    assert got.exposure == train.exposure != test.exposure  # every other factor stays 'train'
    with pytest.raises(ValueError, match="unknown; the factors are"):
        job_randomization(replace(job, factors=("defocus", "bokeh")))

    # Through the command line: the study's renders differ from plain 'train' ones and say why.
    parts = _parts_file(tmp_path, "demo-3001")
    plain, blurred = tmp_path / "plain", tmp_path / "blurred"
    assert _render(demo_library, parts, plain, "real") == 0
    assert (
        _render(demo_library, parts, blurred, "real", "--factors", "defocus", "--factors-from", "test") == 0
    )
    report = json.loads((blurred / "render_report.json").read_text())
    assert report["job"]["factors"] == ["defocus"] and report["job"]["factors_from"] == "test"
    rows = list(csv.DictReader((blurred / "manifest.csv").open()))
    a = cv2.imread(str(plain / rows[0]["image_path"])).astype(int)
    b = cv2.imread(str(blurred / rows[0]["image_path"])).astype(int)
    assert a.shape == b.shape and (a != b).any()
    assert (
        _render(demo_library, parts, tmp_path / "bad", "real", "--factors", "bokeh", "--factors-from", "test")
        == 2
    )


def _render_again(library: Path, parts: Path, out: Path, *flags: str) -> dict[str, Any]:
    """Render ``out`` again with ``flags``; returns the job recorded. A job with other settings must
    render every part again, not take the earlier run's images as done."""
    assert _render(library, parts, out, "real", *flags) == 0
    report = json.loads((out / "render_report.json").read_text())
    assert report["parts_skipped_as_done"] == 0
    return report["job"]


def test_camera_tilt_renders_from_other_heights_and_is_not_mistaken_for_done(
    demo_library: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    parts = _parts_file(tmp_path, "demo-3001")
    out = tmp_path / "out"
    assert _render(demo_library, parts, out, "real") == 0
    image = next(p for p in out.rglob("*.jpg"))
    before = image.read_bytes()
    assert _render(demo_library, parts, out, "real") == 0  # the rig's own tilt: an old render resumes
    assert json.loads((out / "render_report.json").read_text())["parts_skipped_as_done"] == 1
    assert _render_again(demo_library, parts, out, "--camera-tilt", "0,0")["camera_tilt"] == [0.0, 0.0]
    assert image.read_bytes() != before
    job = RenderJob(str(demo_library), "real", str(tmp_path), 1, 2, (4,), 3, "train", 1, camera_tilt=(0, 45))
    tilt = job_randomization(job).camera_tilt
    assert tilt.enabled and tilt.tilt_deg == (0, 45)
    with pytest.raises(ValueError, match=r"within 0\.\.70"):
        job_randomization(replace(job, camera_tilt=(10, 90)))
    assert _render(demo_library, parts, out, "real", "--camera-tilt", "steep") == 2
    assert "--camera-tilt 'steep' must be two numbers" in caplog.text


def test_contact_shading_darkens_the_renders_and_is_not_mistaken_for_done(
    demo_library: Path, tmp_path: Path
) -> None:
    parts = _parts_file(tmp_path, "demo-3001")
    out = tmp_path / "out"
    assert _render(demo_library, parts, out, "real") == 0
    rows = list(csv.DictReader((out / "manifest.csv").open()))
    before = [cv2.imread(str(out / r["image_path"])).astype(int) for r in rows]
    assert _render_again(demo_library, parts, out, "--contact-shading")["contact_shading"] is True
    after = [cv2.imread(str(out / r["image_path"])).astype(int) for r in rows]
    # shading only takes light away: no pixel brighter beyond JPEG noise, some visibly darker
    assert all((b - a).max() <= 24 for a, b in zip(before, after, strict=True))
    assert any((a - b).max() >= 24 for a, b in zip(before, after, strict=True))
    job = RenderJob(str(demo_library), "real", str(tmp_path), 1, 2, (4,), 3, "train", 1, contact_shading=True)
    assert job_randomization(job).contact_shading.enabled
    assert not job_randomization(replace(job, contact_shading=False)).contact_shading.enabled
    with pytest.raises(ConfigError, match="--contact-shading is for the rasteriser"):
        job_randomization(replace(job, renderer="pathtrace"))


def test_worker_renders_run_twice_in_one_process_after_images_were_read(
    demo_library: Path, tmp_path: Path
) -> None:
    """Two parallel renders in one process, images read between them (OpenCV's threads started):
    forked workers used to wait forever on a lock copied from the parent; they start afresh now."""
    import subprocess
    import sys

    script = f"""
from trainer.color_reference import measure_patches
from trainer.render import run_render
from trainer.render_worker import RenderJob
if __name__ == "__main__":
    for n in (1, 2):
        out = {str(tmp_path)!r} + f"/r{{n}}"
        job = RenderJob(ldraw={str(demo_library)!r}, layout="real", out=out, per_part=2, views=2,
                        color_ids=(4,), seed=n, randomization="train", supersample=1)
        results = run_render(job, ["demo-3001", "demo-3023"], workers=2)
        assert not any(r.error for r in results), [r.error for r in results]
        measure_patches(out)  # reads the frames with OpenCV, whose thread pool starts
    print("both rendered")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "both rendered" in done.stdout
