"""The calibration file: schema, migration of the old layout, atomic writes, ages, and `edge check`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from edge.calibration_file import (
    CALIBRATION_FORMAT_VERSION,
    CalibrationFile,
    HsvThresholds,
    check_calibration,
    describe_age,
    load_calibration,
    read_calibration,
    update_calibration,
)
from edge.errors import ConfigError, DataFileError
from edge.segment import create_segmenter
from edge.segment.bgdiff import BackgroundModel

HSV = {"lower": [142, 90, 60], "upper": [170, 255, 255]}


def test_old_layout_is_migrated() -> None:
    cal, _, _ = load_calibration(
        {
            "background_hsv": HSV,
            "background_model": "bg.npz",
            "camera": {"exposure_us": 9, "gain": 1, "colour_gains": [1, 2]},
        }
    )
    assert cal.format_version == CALIBRATION_FORMAT_VERSION
    assert cal.background is not None and cal.background.model == "bg.npz"
    assert cal.background.hsv == HsvThresholds(lower=(142, 90, 60), upper=(170, 255, 255))
    assert cal.camera is not None and cal.camera.colour_gains == (1.0, 2.0)
    assert cal.ages() == {"background": None, "camera": None}


def test_update_writes_atomically_and_keeps_other_sections(tmp_path: Path) -> None:
    path = tmp_path / "rig" / "calibration.json"
    path.parent.mkdir()
    update_calibration(path, background={"hsv": HSV, "frames": 8})
    written = update_calibration(path, turntable={"steps_per_turn": 4096, "zero_offset_steps": 12})
    assert written.background is not None and written.background.frames == 8
    data = json.loads(path.read_text())
    assert data["format_version"] == 1 and data["turntable"]["steps_per_turn"] == 4096
    assert set(data) == {"format_version", "background", "turntable"}
    ages = read_calibration(path).ages()
    assert all(age is not None and 0 <= age < 60 for age in ages.values())
    assert [p.name for p in path.parent.iterdir()] == ["calibration.json"]  # no temp file left
    # YAML by suffix, same content.
    yaml_path = tmp_path / "cal.yaml"
    update_calibration(yaml_path, background={"hsv": HSV})
    from_yaml = read_calibration(yaml_path).background
    assert from_yaml is not None and from_yaml.hsv == HsvThresholds.model_validate(HSV)
    assert yaml_path.read_text().startswith("format_version: 1\n")


def test_errors_name_the_file_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match=r"nope\.json.*does not exist.*edge calibrate background"):
        read_calibration(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match=r"bad\.json.*not valid JSON.*calibrate again"):
        read_calibration(bad)
    bad.write_text(json.dumps({"format_version": 7}))
    with pytest.raises(ConfigError, match=r"bad\.json.*format_version 7 is not 1; calibrate again"):
        read_calibration(bad)
    bad.write_text(json.dumps({"format_version": 1, "turntable": {"steps_per_turn": 2}}))
    with pytest.raises(ConfigError, match=r"(?s)bad\.json.*turntable\.steps_per_turn"):
        read_calibration(bad)
    with pytest.raises(ConfigError, match="hsv and/or model"):
        load_calibration({"format_version": 1, "background": {}})


def test_segmenters_read_the_versioned_file(tmp_path: Path) -> None:
    model = BackgroundModel.constant((200, 30, 200), shape=(48, 64))
    model.save(tmp_path / "bg" / "background.npz")
    path = tmp_path / "calibration.json"
    update_calibration(path, background={"hsv": HSV, "model": "bg/background.npz"})
    hsv = create_segmenter({"type": "hsv", "calibration": True}, calibration=path)
    bgdiff = create_segmenter({"type": "bgdiff", "calibration": True}, calibration=str(path))
    frame = np.full((48, 64, 3), (200, 30, 200), np.uint8)
    frame[10:30, 20:40] = (250, 250, 40)
    for seg in (hsv, bgdiff):
        mask = seg.mask(frame)
        assert mask[20, 30] == 255 and mask[2, 2] == 0


def test_check_reports_validity_and_age(tmp_path: Path) -> None:
    path = tmp_path / "calibration.json"
    old = (datetime.now(UTC) - timedelta(days=200)).isoformat()
    update_calibration(path, background={"hsv": HSV}, turntable={"steps_per_turn": 4096, "timestamp": old})
    lines = check_calibration(path)
    assert lines[0][0] == "OK" and "background, turntable" in lines[0][2]
    by_name = {what: (level, text) for level, what, text in lines[1:]}
    assert by_name["calibration background"][0] == "OK"
    assert by_name["calibration turntable"] == (
        "WARN",
        "200 days old; re-run: run `edge calibrate turntable`",
    )
    # The rig turns by the measured value (edge.rig.turntable_geometry): said, not warned about.
    assert ("OK", "calibration turntable") in [
        (lvl, what)
        for lvl, what, text in check_calibration(path, steps_per_turn=4000)
        if "4096 steps per turn measured" in text
    ]
    assert all("measured" not in text for _, _, text in check_calibration(path, steps_per_turn=4096))
    update_calibration(path, background={"hsv": HSV, "model": "missing.npz"})
    assert ("FAIL", "calibration") in [(lvl, what) for lvl, what, _ in check_calibration(path)]
    missing = check_calibration(tmp_path / "none.json")  # what needs a section fails its own check
    assert missing[0][0] == "WARN" and "not written yet" in missing[0][2]
    (tmp_path / "bad.json").write_text("{", encoding="utf-8")
    assert check_calibration(tmp_path / "bad.json")[0][0] == "FAIL"
    assert describe_age(90) == "2 min old" and describe_age(None).startswith("age unknown")


def test_empty_file_model_round_trip() -> None:
    assert CalibrationFile().to_data() == {"format_version": 1}
