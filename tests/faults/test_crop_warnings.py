"""Crops that cannot be written give one warning, not one per part.

Found by the hostile probe: with an unwritable crops folder every part logged a warning and wrote
an event row, flooding the journal and the record. The decisions are still recorded, without crops.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from edge.daemon import Daemon
from edge.part import PartRecord, ViewRecord
from edge.record import DecisionRecord
from edge.record_crops import CROP_WARNING_INTERVAL_S
from edge.settings import load_edge_config
from tests.edge.test_settings import write_sim_setup


def test_unwritable_crops_warn_once_not_once_per_part(
    tmp_path: Path, demo_library: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = write_sim_setup(tmp_path, demo_library)
    cfg = load_edge_config(config)
    blocker = cfg.data.crops_dir.parent / "not-a-folder"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("a file where the crops folder's parent should be")
    cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"crops_dir": blocker / "crops"})})
    with caplog.at_level(logging.WARNING, "edge.record"):
        stats = Daemon(cfg, sim=True, parts=4).run()
    assert stats.parts == 4
    warnings = [r for r in caplog.records if "crops not saved" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    with DecisionRecord(cfg.data.db, cfg.data.crops_dir) as record:
        events = [e for e in record.recent_events(100) if e["kind"] == "crop_write_failed"]
        parts = record.recent(10)
    assert len(events) == 1 and "further failures are counted" in events[0]["message"]
    assert len(parts) == 4 and all(v["crop_path"] is None for p in parts for v in p["views"])


def test_the_warning_repeats_with_a_count_and_recovery_is_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    clock = [1000.0]
    monkeypatch.setattr("edge.record_crops.time.monotonic", lambda: clock[0])
    crop = np.zeros((8, 8, 3), np.uint8)
    with (
        caplog.at_level(logging.INFO, "edge.record"),
        DecisionRecord(tmp_path / "r.db", blocker / "crops", keep_crops="all") as record,
    ):

        def part() -> list[dict]:
            pid = record.begin_part()
            record.finish_part(
                PartRecord(None, [ViewRecord(None, [], crop)], {}, status="sorted", part_id=pid)
            )
            return record.recent(1)[0]["views"]

        for _ in range(3):
            part()
        clock[0] += CROP_WARNING_INTERVAL_S + 1
        part()
        blocker.unlink()
        assert part()[0]["crop_path"] is not None
        kinds = [e["kind"] for e in record.recent_events(10)]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and "2 more part(s) without crops" in warnings[1]
    assert kinds.count("crop_write_failed") == 2
    assert "crops are saved again, after 4 part(s) without" in caplog.text
