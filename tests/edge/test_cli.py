"""The ``edge`` command line: run, classify, check (exit codes), config selection, errors."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge import checks, cli
from edge.camera import create_camera
from edge.errors import ConfigError
from edge.index import EmbeddingIndex
from edge.manifest import sha256_file
from edge.manifest_entries import IndexEntry
from edge.settings import load_edge_config
from tests.edge.test_settings import SIM_PARTS, write_sim_setup


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = cli.main(list(argv))
    return code, capsys.readouterr().out


def test_run_sim_prints_each_decision_and_a_summary(
    tmp_path: Path, demo_library: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_sim_setup(tmp_path, demo_library)
    code, out = _run(capsys, "run", "--sim", "--config", str(config), "--parts", "3")
    assert code == 0
    lines = out.splitlines()
    decisions = [line for line in lines if line.startswith("part ")]
    assert len(decisions) == 3
    for line, truth in zip(decisions, SIM_PARTS, strict=True):
        assert "conf " in line and "-> bin '" in line
        assert f"| truth {truth} " in line and ("correct" in line or "incorrect" in line)
        assert "right bin" in line or "wrong bin" in line
    summary = lines[len(decisions) :]
    assert summary[0].startswith("summary: 3 part(s) decided:") and summary[0].endswith("0 abandoned")
    exact = [i for i, line in enumerate(summary) if line.startswith("recognised exactly (part and colour): ")]
    right = [i for i, line in enumerate(summary) if line.startswith("routed to the right bin: ")]
    assert exact and right and exact[0] + 1 == right[0]  # the exact share leads, the right bin follows
    assert "/3 (" in summary[right[0]] and "every part to the most common bin '" in summary[right[0]]
    stages = [line.split()[0] for line in summary[summary.index("latency per part, ms (p50 / p95):") + 1 :]]
    assert stages == ["capture", "segment", "preprocess", "infer", "search", "fuse", "total"]


def test_bad_config_exits_2_with_the_readable_error(
    tmp_path: Path, demo_library: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = write_sim_setup(tmp_path, demo_library, capture={"views": 40})
    with caplog.at_level(logging.ERROR, "edge"):
        assert cli.main(["run", "--config", str(config)]) == 2
    assert "capture.views: 40 is not valid" in caplog.text and "1..16" in caplog.text


def test_sim_flag_needs_a_sim_camera(
    tmp_path: Path, demo_library: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = write_sim_setup(tmp_path, demo_library, camera={"type": "folder", "path": "frames"})
    with caplog.at_level(logging.ERROR, "edge"):
        assert cli.main(["run", "--sim", "--config", str(config)]) == 2
    assert "--sim needs camera type 'sim'" in caplog.text


def test_parts_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["run", "--sim", "--parts", "0"])
    assert info.value.code == 2 and "at least 1" in capsys.readouterr().err


def test_config_selection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parser = cli.build_parser()
    assert cli.config_path(parser.parse_args(["run", "--sim"])) == cli.SIM_CONFIG
    assert cli.config_path(parser.parse_args(["run", "--sim", "--config", "x.yaml"])) == Path("x.yaml")
    assert cli.config_path(parser.parse_args(["bench"]), sim_default=True) == cli.SIM_CONFIG
    mine = tmp_path / "mine.yaml"
    mine.write_text("{}", encoding="utf-8")
    monkeypatch.setenv("EDGE_CONFIG", str(mine))
    assert cli.config_path(parser.parse_args(["check"])) == mine
    monkeypatch.setattr(cli, "SYSTEM_CONFIG", tmp_path / "etc" / "edge.yaml")
    monkeypatch.delenv("EDGE_CONFIG")
    with pytest.raises(ConfigError, match=r"no --config given.*etc/edge\.yaml.*--sim"):
        cli.config_path(parser.parse_args(["run"]))


def _frames(config: Path, tmp_path: Path, views: int = 2) -> list[Path]:
    cfg = load_edge_config(config)
    camera: Any = create_camera(cfg.camera)
    paths = []
    with camera:
        camera.next_part()
        for i in range(views):
            camera.set_angle(i * 90)
            paths.append(tmp_path / f"view{i}.png")
            cv2.imwrite(str(paths[-1]), cv2.cvtColor(camera.capture().image, cv2.COLOR_RGB2BGR))
    return paths


def test_classify_text_and_json(
    tmp_path: Path, demo_library: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_sim_setup(tmp_path, demo_library)
    images = _frames(config, tmp_path)
    code, out = _run(capsys, "classify", *map(str, images), "--config", str(config))
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"{images[0]}: ") and "-> bin '" in lines[0]
    code, out = _run(capsys, "classify", *map(str, images), "--config", str(config), "--json", "--fuse")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 1 and rows[0]["images"] == [str(p) for p in images]
    row = rows[0]
    assert row["status"] in ("sorted", "unknown", "low_confidence") and 0 <= row["confidence"] <= 1
    assert row["topk"][0][0] in SIM_PARTS and row["objects"] == [1, 1]
    assert row["bin"] in ("reject", "red", "blue", "other")
    assert set(row["timings_ms"]) >= {"segment", "preprocess", "infer", "fuse", "total"}


def test_classify_a_missing_image_exits_1(
    tmp_path: Path, demo_library: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    config = write_sim_setup(tmp_path, demo_library)
    with caplog.at_level(logging.ERROR, "edge"):
        code, out = _run(capsys, "classify", str(tmp_path / "nope.png"), "--config", str(config))
    assert code == 1  # per-image failures (tests/faults/test_classify_errors.py); 2 is for bad configs
    assert "nope.png: error: " in out and "does not exist" in out
    assert "1 of 1 image(s) could not be classified" in caplog.text


# --- edge check ---------------------------------------------------------------------------------


def _check(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, list[str]]]:
    code, out = _run(capsys, "check", *argv)
    levels: dict[str, list[str]] = {}
    for line in out.splitlines()[:-1]:
        level, rest = line.split(None, 1)
        levels.setdefault(level, []).append(rest)
    assert out.splitlines()[-1] == ("OK: all checks passed" if code == 0 else out.splitlines()[-1])
    return code, levels


def test_check_passes_on_a_working_setup(
    tmp_path: Path, demo_library: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_sim_setup(tmp_path, demo_library)
    code, levels = _check(capsys, "--config", str(config))
    assert code == 0 and "FAIL" not in levels
    checked = [line.split(":", 1)[0] for line in levels["OK"]]
    for what in ("config", "model file", "model load", "sorting", "segmenter", "camera", "pins"):
        assert what in checked
    assert "memory estimate" in checked and "memory resident" in checked and "record" in checked
    assert any("160x120 frame" in line for line in levels["OK"])


def test_check_names_a_shipped_segmenter_and_fails_when_it_changed(
    tmp_path: Path, demo_library: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edge.manifest import load_manifest, write_manifest
    from edge.manifest_entries import SegmenterEntry
    from tests.edge.segment.seg_models import make_mobileseg

    write_sim_setup(tmp_path, demo_library)  # the model set first, then the segmenter shipped in it
    models = tmp_path / "models"
    model = make_mobileseg(models / "seg_int8.onnx")
    sidecar = models / "seg_int8.json"
    sidecar.write_text(json.dumps({"input_size": [64, 96], "mean": [0, 0, 0], "std": [1, 1, 1]}))
    entry = SegmenterEntry(
        path=model.name,
        sidecar=sidecar.name,
        precision="int8",
        sha256=sha256_file(model),
        sidecar_sha256=sha256_file(sidecar),
        bytes=model.stat().st_size,
    )
    write_manifest(models, load_manifest(models).model_copy(update={"segmenters": [entry]}))
    config = write_sim_setup(
        tmp_path, demo_library, segmenter={"type": "mobileseg", "model": "models/seg_int8.onnx"}
    )
    code, levels = _check(capsys, "--config", str(config))
    assert code == 0, levels
    assert "segmenter: mobileseg (seg_int8.onnx, int8, sha256 matches the manifest)" in levels["OK"]
    model.write_bytes(model.read_bytes() + b"\0")
    code, levels = _check(capsys, "--config", str(config))
    assert code == 1
    assert any(line.startswith("segmenter:") and "corrupt or was replaced" in line for line in levels["FAIL"])


def test_check_fails_clearly_without_the_model_set(
    tmp_path: Path, demo_library: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_sim_setup(tmp_path, demo_library, engine={"model_set": "models/default"})
    code, levels = _check(capsys, "--config", str(config))
    assert code == 1
    fail = " ".join(levels["FAIL"])
    assert "model set:" in fail and str(tmp_path / "models" / "default" / "manifest.json") in fail
    assert "does not exist" in fail
    assert any(line.startswith("camera:") for line in levels["OK"])  # the other checks still ran


def test_check_fails_on_a_tampered_model_and_real_pins_off_a_pi(
    tmp_path: Path, demo_library: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_sim_setup(tmp_path, demo_library, rig={"pins": "auto"})
    model = tmp_path / "models" / "classifier.onnx"
    model.write_bytes(model.read_bytes() + b"\0")
    code, levels = _check(capsys, "--config", str(config))
    assert code == 1
    fail = "\n".join(levels["FAIL"])
    assert "model file:" in fail and "manifest expects" in fail
    assert "pins:" in fail and "--sim" in fail  # not a Raspberry Pi: use simulated pins
    code, levels = _check(capsys, "--config", str(config), "--sim")  # --sim forces mock pins
    assert not any(line.startswith("pins:") for line in levels["FAIL"])


def test_check_warns_about_a_pin_with_a_second_job(
    tmp_path: Path, demo_library: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_sim_setup(tmp_path, demo_library, rig={"pins": "mock", "panel": {"ready_pin": 14}})
    code, levels = _check(capsys, "--config", str(config))
    assert code == 0  # a warning, not a failure: the console may be off
    assert any(w.startswith("pins: BCM 14 (header pin 8, panel.ready_pin): UART TX") for w in levels["WARN"])


def test_check_warns_about_category_rules_without_categories(
    tmp_path: Path, demo_library: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = [{"category": ["Bricks"], "bin": "red"}]
    config = write_sim_setup(tmp_path, demo_library, sorting={"rules": rules})
    code, levels = _check(capsys, "--config", str(config))
    assert code == 0 and any("match by category" in w for w in levels["WARN"])


def test_check_loads_the_corrections_and_names_the_turntable_steps(
    tmp_path: Path, demo_library: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edge.calibration_file import update_calibration

    cal = tmp_path / "cal.json"
    identity = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    update_calibration(
        cal, color={"white_balance": [1, 1, 1], "matrix": identity}, turntable={"steps_per_turn": 80}
    )
    on = {"calibration": "cal.json", "color_correction": True, "drift_correction": True}
    code, levels = _check(capsys, "--config", str(write_sim_setup(tmp_path, demo_library, **on)))
    assert code == 1 and any(line.startswith("color_correction: from") for line in levels["OK"])
    assert any("drift_correction:" in f and "no background_rgb" in f for f in levels["FAIL"])
    assert any(line.startswith("pins:") and "turntable 80 steps per turn" in line for line in levels["OK"])
    update_calibration(
        cal, color={"white_balance": [1, 1, 1], "matrix": identity, "background_rgb": [200, 40, 190]}
    )
    code, levels = _check(capsys, "--config", str(write_sim_setup(tmp_path, demo_library, **on)))
    assert code == 0 and any(line.startswith("drift_correction: from") for line in levels["OK"])


def test_check_a_calibration_file_not_written_yet_fails_only_what_needs_it(
    tmp_path: Path, demo_library: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = write_sim_setup(tmp_path / "plain", demo_library, calibration="cal.json")
    code, levels = _check(capsys, "--config", str(plain))
    assert code == 0 and any(
        line.startswith("calibration:") and "not written yet" in line for line in levels["WARN"]
    )
    needs = write_sim_setup(tmp_path / "needs", demo_library, calibration="cal.json", color_correction=True)
    code, levels = _check(capsys, "--config", str(needs))
    assert code == 1 and any(line.startswith("color_correction:") for line in levels["FAIL"])


def test_check_reports_a_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, levels = _check(capsys, "--config", str(tmp_path / "missing.yaml"))
    assert code == 1 and levels["FAIL"][0].startswith("config:") and "does not exist" in levels["FAIL"][0]


def test_check_lines_for_the_index_graph(tmp_path: Path) -> None:
    index = EmbeddingIndex(4, threads=1)
    index.add(np.eye(4, dtype=np.float32), ["a", "b", "c", "d"])
    index.save(tmp_path / "index.npz", graph=tmp_path / "index.hnsw")
    plain = IndexEntry(
        path="index.npz", sha256=sha256_file(tmp_path / "index.npz"), dim=4, count=4, labels="index.npz"
    )
    listed = plain.model_copy(
        update={"graph": "index.hnsw", "graph_sha256": sha256_file(tmp_path / "index.hnsw")}
    )

    def lines(entry: IndexEntry) -> list[tuple[str, str, str]]:
        out: list[tuple[str, str, str]] = []
        checks._check_index_graph(out, tmp_path, entry)
        return out

    [(level, what, detail)] = lines(plain)
    assert (level, what) == ("WARN", "index graph") and "trainer index --graph-only" in detail
    assert lines(listed)[0][0] == "OK"
    (tmp_path / "index.hnsw").write_bytes(b"tampered")
    assert lines(listed)[0][0] == "FAIL" and "sha256" in lines(listed)[0][2]
    (tmp_path / "index.hnsw").unlink()
    assert lines(listed)[0][0] == "FAIL" and "missing" in lines(listed)[0][2]


def test_majority_bin_is_the_share_of_the_most_common_true_bin() -> None:
    assert cli.majority_bin([]) is None
    assert cli.majority_bin(["plates", "red", "plates", "other"]) == ("plates", 2)


def test_summary_prints_the_majority_baseline_beside_the_right_bin_share() -> None:
    from edge.part import RunStats

    stats = RunStats(parts=4, with_truth=4, right_bin=3, correct=2)
    stats.by_status.update(sorted=4)
    lines = cli.format_summary(stats, ["plates", "plates", "plates", "red"]).splitlines()
    assert lines[1] == "recognised exactly (part and colour): 2/4 (50%)"
    assert lines[2] == (
        "routed to the right bin: 3/4 (75%); every part to the most common bin 'plates' would score 3/4 (75%)"
    )
