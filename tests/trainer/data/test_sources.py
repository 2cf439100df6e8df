"""Data sources: layout detection, capture grouping, masks and errors, on tiny data sets in tmp_path.

The ``trainer render`` layouts are written by the renderer's own pipeline (names, manifests, report)
with a stand-in scene that paints flat images, so these tests do not wait for real rendering; one
test renders the demo library for real when the scene renderer is available.
"""

from __future__ import annotations

import csv
import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge.errors import ConfigError, DataFileError
from trainer import render, render_worker
from trainer.data.labels import NO_COLOR, build_label_map
from trainer.data.sources import Sample, detect_kind, load_source

# ---- writing data sets -----------------------------------------------------------------------------


@dataclass
class _View:
    image: np.ndarray
    mask: np.ndarray
    angle_deg: float


class _FakeScene:
    """Paints each view a flat colour with a square mask; same call signature as the scene renderer."""

    def render_views(
        self,
        mesh: Any,
        color: Any,
        angles: list[float],
        seed: int,
        frame: str,
        size: Any = None,
        name: str = "part",
    ) -> list[_View]:
        h, w = (48, 64) if frame == "full" else size
        views = []
        for a in angles:
            image = np.full((h, w, 3), color.rgb, np.uint8)
            mask = np.zeros((h, w), np.uint8)
            mask[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = 255
            views.append(_View(image, mask, float(a)))
        return views


class _FakeLibrary:
    def part_mesh(self, part: str) -> object:
        return object()

    def part_title(self, part: str) -> str:
        return f"Fake part {part}"


@pytest.fixture
def fake_render(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """``run(layout, ...)`` renders with trainer.render's pipeline and a stand-in scene."""
    monkeypatch.setattr(render_worker, "_STATE", {})

    def init(job: render_worker.RenderJob) -> None:
        render_worker._STATE.update(job=job, library=_FakeLibrary(), scene=_FakeScene())

    monkeypatch.setattr(render_worker, "_worker_init", init)

    def run(
        layout: str, parts=("3001", "3003"), per_part: int = 3, views: int = 4, colors=(4, 15)
    ) -> tuple[Path, list[render_worker.PartResult]]:
        job = render_worker.RenderJob(
            ldraw="unused",
            layout=layout,
            out=str(tmp_path / layout),
            per_part=per_part,
            views=views,
            color_ids=tuple(colors),
            seed=3,
            randomization="off",
            supersample=1,
            size=None if layout == "real" else 16,
        )
        return Path(job.out), render.run_render(job, list(parts), workers=1)

    return run


def _png(path: Path, size: tuple[int, int] = (8, 8)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.zeros((*size, 3), np.uint8))


def _write_manifest(root: Path, columns: list[str], rows: list[dict[str, Any]]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "manifest.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def _real_row(root: Path, part: str, color: int, angle: int, suffix: str = "", ts: str = "", **kw: Any):
    rel = f"raw/{part}/{color}/{part}_{color}_{angle}{suffix}.jpg"
    _png(root / rel)
    row = {"image_path": rel, "part_num": part, "color_id": color, "color_name": "", "part_name": ""}
    return {**row, "angle": angle, "timestamp": ts or "2026-01-01T10:00:00", **kw}


def _by_capture(samples: list[Sample]) -> dict[str, list[Sample]]:
    groups: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        groups[s.capture_id].append(s)
    return groups


# ---- trainer render output ----------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["b200c", "legacy", "real"])
def test_render_output_is_detected_and_grouped_by_capture(fake_render, layout: str) -> None:
    out, results = fake_render(layout)
    records = [r for res in results for r in res.records]
    assert len(records) == 2 * 3 * 4

    assert detect_kind(out) == layout
    samples = load_source(out)
    assert len(samples) == len(records)
    by_image = {s.image_path: s for s in samples}
    assert {s.source for s in samples} == {layout}
    # Each (part, capture) of the render is exactly one capture id, and its views are 0..3.
    ids: dict[tuple[str, int], set[str]] = defaultdict(set)
    for rec in records:
        s = by_image[(out / rec["image_path"]).resolve()]
        assert s.part_num == rec["part_num"]
        assert s.mask_path == (out / rec["mask_path"]).resolve() and s.mask_path.is_file()
        assert s.color_id == (None if layout == "b200c" else rec["color_id"])
        ids[(rec["part_num"], rec["capture"])].add(s.capture_id)
    assert all(len(v) == 1 for v in ids.values())
    assert len({next(iter(v)) for v in ids.values()}) == len(ids) == 6
    for group in _by_capture(samples).values():
        assert sorted(s.view for s in group) == [0, 1, 2, 3]
    # Masks are never samples.
    assert not any(s.image_path.stem.endswith("_mask") for s in samples)


def test_real_layout_repeat_suffix_separates_captures_of_one_colour(fake_render) -> None:
    out, results = fake_render("real", parts=("3001",), per_part=3, colors=(4,))
    names = sorted(Path(r["image_path"]).stem for res in results for r in res.records)
    assert any(n.endswith("_1") for n in names) and any(n.endswith("_2") for n in names)
    groups = _by_capture(load_source(out, "real"))
    assert sorted(groups) == ["3001/4/0", "3001/4/1", "3001/4/2"]
    assert all(s.angle is not None and 0 <= s.angle < 360 for g in groups.values() for s in g)


def test_layout_is_detected_without_the_render_report(fake_render) -> None:
    for layout in ("b200c", "legacy", "real"):
        out, _ = fake_render(layout, parts=("3001",), per_part=1, views=2)
        (out / "render_report.json").unlink()
        assert detect_kind(out) == layout
        assert len(load_source(out)) == 2


def test_b200c_samples_train_the_part_head_only(fake_render) -> None:
    out, _ = fake_render("b200c")
    samples = load_source(out)
    labels = build_label_map(samples)
    assert labels.parts == ["3001", "3003"] and labels.colors == []
    assert {labels.encode(s) for s in samples} == {(0, NO_COLOR), (1, NO_COLOR)}


def test_name_sets_the_source_field(fake_render) -> None:
    out, _ = fake_render("legacy", parts=("3001",), per_part=1, views=2)
    assert {s.source for s in load_source(out, name="renders-v2")} == {"renders-v2"}


def test_renderer_output_loads(demo_library: Path, tmp_path: Path) -> None:
    """The real scene renderer, when present, writes a folder this module reads."""
    pytest.importorskip("studio.scene", reason="the scene renderer is not in this tree yet")
    for layout in ("b200c", "real"):
        job = render_worker.RenderJob(
            ldraw=str(demo_library),
            layout=layout,
            out=str(tmp_path / layout),
            per_part=2,
            views=2,
            color_ids=(4,),
            seed=0,
            randomization="off",
            supersample=1,
            size=32 if layout == "b200c" else None,
        )
        results = render.run_render(job, ["demo-3001"], workers=1)
        assert not any(r.error for r in results), [r.error for r in results]
        samples = load_source(tmp_path / layout)
        assert len(samples) == 4 and len(_by_capture(samples)) == 2
        assert all(s.mask_path is not None for s in samples)


# ---- B200C and rig folders written by hand --------------------------------------------------------


def test_b200c_foreign_names_are_one_capture_each_and_masks_are_not_samples(tmp_path: Path) -> None:
    for part in ("3001", "3004"):
        for i in range(3):
            _png(tmp_path / part / f"{i:04d}.jpg", (64, 64))
        _png(tmp_path / part / "0000_mask.png", (64, 64))
    (tmp_path / "README.txt").write_text("not an image")
    (tmp_path / "3001" / "notes.txt").write_text("not an image")

    assert detect_kind(tmp_path) == "b200c"
    samples = load_source(tmp_path)
    assert len(samples) == 6
    assert {s.part_num for s in samples} == {"3001", "3004"}
    assert all(s.color_id is None and s.angle is None and s.view == 0 for s in samples)
    assert len(_by_capture(samples)) == 6
    with_mask = [s for s in samples if s.mask_path is not None]
    assert [s.image_path.name for s in with_mask] == ["0000.jpg", "0000.jpg"]


def test_b200c_folder_mixing_namings_is_not_grouped(tmp_path: Path) -> None:
    _png(tmp_path / "3001" / "3001_0000_0.png")
    _png(tmp_path / "3001" / "3001_0000_1.png")
    _png(tmp_path / "3001" / "photo.png")
    _png(tmp_path / "3002" / "3002_0007_0.png")
    _png(tmp_path / "3002" / "3002_0007_1.png")
    groups = _by_capture(load_source(tmp_path, "b200c"))
    assert sorted(groups) == ["3001/3001_0000_0", "3001/3001_0000_1", "3001/photo", "3002/3002_0007"]
    assert [s.view for s in groups["3002/3002_0007"]] == [0, 1]


def test_real_rig_manifest_groups_by_part_colour_and_suffix(tmp_path: Path) -> None:
    rows = [
        _real_row(tmp_path, "3001", 4, 0),
        _real_row(tmp_path, "3001", 4, 90),
        _real_row(tmp_path, "3001", 4, 0, "_1"),
        _real_row(tmp_path, "3001", 4, 90, "_1"),
        _real_row(tmp_path, "3001", 15, 0),
        _real_row(tmp_path, "3022", 15, 45),
    ]
    _png(tmp_path / "raw/3001/4/3001_4_90_mask.png")
    _write_manifest(tmp_path, render.REAL_COLUMNS, rows)
    samples = load_source(tmp_path)
    groups = _by_capture(samples)
    assert sorted(groups) == ["3001/15/0", "3001/4/0", "3001/4/1", "3022/15/0"]
    assert [s.view for s in groups["3001/4/1"]] == [0, 1]
    assert {s.color_id for s in samples} == {4, 15}
    masked = [s for s in samples if s.mask_path is not None]
    assert [s.image_path.name for s in masked] == ["3001_4_90.jpg"]


def test_real_capture_spanning_minutes_is_warned_about(tmp_path: Path, caplog) -> None:
    rows = [
        _real_row(tmp_path, "3001", 4, 0, ts="2026-01-01T10:00:00"),
        _real_row(tmp_path, "3001", 4, 90, ts="2026-01-01T10:05:00"),
    ]
    _write_manifest(tmp_path, render.REAL_COLUMNS, rows)
    with caplog.at_level(logging.WARNING, logger="trainer.data.sources"):
        load_source(tmp_path, "real")
    assert "'3001/4/0'" in caplog.text and "300 s" in caplog.text


def test_blank_colour_means_no_colour_label(tmp_path: Path) -> None:
    row = _real_row(tmp_path, "3001", 4, 0)
    _write_manifest(tmp_path, render.REAL_COLUMNS, [{**row, "color_id": ""}])
    (sample,) = load_source(tmp_path, "real")
    assert sample.color_id is None


# ---- errors ------------------------------------------------------------------------------------------


def test_missing_or_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match=r"'.*nowhere' does not exist"):
        load_source(tmp_path / "nowhere")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(DataFileError, match="is a file, not a folder"):
        load_source(tmp_path / "file.txt")
    (tmp_path / "empty" / ".progress").mkdir(parents=True)
    with pytest.raises(DataFileError, match="render may be unfinished"):
        load_source(tmp_path / "empty")
    (tmp_path / "b" / "3001").mkdir(parents=True)
    with pytest.raises(DataFileError, match="holds no images"):
        load_source(tmp_path / "b", "b200c")


def test_unknown_kind(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"kind 'b200' is unknown.*b200c, legacy, real"):
        load_source(tmp_path, "b200")  # type: ignore[arg-type]


def test_interrupted_render_without_manifest(fake_render) -> None:
    out, _ = fake_render("legacy", parts=("3001",), per_part=1, views=1)
    (out / "manifest.csv").unlink()
    with pytest.raises(DataFileError, match="re-run an interrupted render"):
        load_source(out)


def test_bad_render_report(tmp_path: Path) -> None:
    (tmp_path / "render_report.json").write_text(json.dumps({"job": {"layout": "fancy"}}))
    with pytest.raises(ConfigError, match="names layout 'fancy'"):
        load_source(tmp_path)
    (tmp_path / "render_report.json").write_text("{not json")
    with pytest.raises(ConfigError, match="is unreadable"):
        load_source(tmp_path)


def test_manifest_missing_columns_are_named(tmp_path: Path) -> None:
    _write_manifest(tmp_path, ["image_path", "part_num", "capture", "view"], [])
    with pytest.raises(ConfigError, match=r"lacks the column\(s\) color_id;"):
        load_source(tmp_path, "legacy")
    _write_manifest(tmp_path, ["image_path", "angle"], [])
    with pytest.raises(ConfigError, match=r"lacks the column\(s\) part_num, color_id;"):
        load_source(tmp_path, "real")
    _write_manifest(tmp_path, ["image_path", "part_num"], [])
    with pytest.raises(ConfigError, match="neither the legacy columns"):
        load_source(tmp_path)


def test_rows_with_missing_files(tmp_path: Path, caplog) -> None:
    rows = [_real_row(tmp_path, "3001", 4, a) for a in (0, 45, 90)]
    gone = [{**rows[0], "image_path": f"raw/3001/4/gone_{i}.jpg"} for i in range(7)]
    _write_manifest(tmp_path, render.REAL_COLUMNS, rows + gone)
    with pytest.raises(DataFileError, match=r"7 row\(s\) name missing files") as err:
        load_source(tmp_path)
    text = str(err.value)
    assert "line 5: " in text and "gone_0.jpg" in text and "gone_4.jpg" in text
    assert "gone_5.jpg" not in text and "and 2 more" in text and "strict=False" in text
    with caplog.at_level(logging.WARNING, logger="trainer.data.sources"):
        samples = load_source(tmp_path, strict=False)
    assert len(samples) == 3 and "skipping" in caplog.text


def test_legacy_missing_mask_is_a_missing_file(tmp_path: Path) -> None:
    _png(tmp_path / "images/3001/a.png")
    row = {"image_path": "images/3001/a.png", "mask_path": "images/3001/a_mask.png", "part_num": "3001"}
    _write_manifest(tmp_path, render.LEGACY_COLUMNS, [{**row, "color_id": 4, "capture": 0, "view": 0}])
    with pytest.raises(DataFileError, match=r"line 2: '.*a_mask.png' not found"):
        load_source(tmp_path, "legacy")


def test_bad_values_and_unknown_colours_are_reported_with_line_numbers(tmp_path: Path) -> None:
    rows = [
        _real_row(tmp_path, "3001", 4, 0),
        _real_row(tmp_path, "3001", 4, 90, color_id=9999),
        _real_row(tmp_path, "3001", 4, 180, color_id="red"),
        {**_real_row(tmp_path, "3001", 4, 270), "angle": "east"},
    ]
    rows.append(dict(rows[0]))
    _write_manifest(tmp_path, render.REAL_COLUMNS, rows)
    with pytest.raises(ConfigError) as err:
        load_source(tmp_path)
    text = str(err.value)
    assert "4 bad row(s)" in text
    assert "line 3: colour id 9999 is not in the colour table" in text
    assert "line 4: color_id 'red' is not a whole number" in text
    assert "line 5: angle 'east' is not a number" in text
    assert "line 6: repeats image_path 'raw/3001/4/3001_4_0.jpg' of line 2" in text
