"""Every fault the daemon must survive or refuse, each on the simulated rig.

Camera gone (backoff, error LED, events, recovery), corrupt frames, two parts at once, a part that
will not leave, model or index files that do not match the manifest, missing files, a power cut,
and SIGTERM in a real subprocess (READY=1, STOPPING=1, exit 0, nothing left in progress).
"""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from edge.camera import create_camera
from edge.camera.sim import SimSource
from edge.daemon import Daemon
from edge.errors import DataFileError, HardwareError, ImageError, ModelError
from edge.pipeline import Pipeline
from edge.record import DecisionRecord
from edge.settings import load_edge_config
from tests.edge.test_settings import add_index, write_sim_setup

REPO = Path(__file__).resolve().parents[2]


class Wrapped:
    """A sim camera whose ``capture`` can be interfered with; everything else is the real camera's."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def capture(self) -> Any:
        self.calls += 1
        return self.inner.capture()


def _events(cfg: Any) -> list[dict[str, Any]]:
    with DecisionRecord(cfg.data.db, cfg.data.crops_dir) as record:
        return list(reversed(record.recent_events(100)))


def _parts(cfg: Any) -> list[dict[str, Any]]:
    with DecisionRecord(cfg.data.db, cfg.data.crops_dir) as record:
        return list(reversed(record.recent(100)))


def test_camera_gone_backs_off_shows_error_and_recovers(
    tmp_path: Path, demo_library: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = load_edge_config(write_sim_setup(tmp_path, demo_library))

    class Unplugged(Wrapped):
        """Gone from the 5th capture (the second view of part 1) until the 4th reconnection."""

        def __init__(self, inner: Any) -> None:
            super().__init__(inner)
            self.gone, self.reconnects = False, 0

        def capture(self) -> Any:
            self.calls += 1
            if self.calls == 5:
                self.gone = True
            if self.gone:
                raise HardwareError("sim camera unplugged")
            return self.inner.capture()

        def reconnect(self) -> None:
            self.reconnects += 1
            if self.reconnects < 4:
                raise HardwareError("sim camera still unplugged")
            self.gone = False
            self.inner.reconnect()

    camera = Unplugged(create_camera(cfg.camera))
    factory = MockFactory(pin_class=MockPWMPin)
    caplog.set_level(logging.WARNING, "edge.daemon")
    daemon = Daemon(cfg, sim=True, parts=2, camera=camera, pin_factory=factory)
    stats = daemon.run()

    assert stats.parts == 2 and stats.camera_faults == 1 and camera.reconnects == 4
    assert daemon.state_history == ["idle", "running", "error", "running", "idle"]
    # Exponential backoff from camera_retry_s 0.01, doubling, capped at camera_retry_max_s 0.05.
    waits = [float(m) for m in re.findall(r"next try in ([\d.]+) s", caplog.text)]
    assert waits == [0.02, 0.04, 0.05]
    kinds = [e["kind"] for e in _events(cfg)]
    assert kinds[:3] == ["camera_lost", "part_abandoned", "camera_recovered"]
    parts = _parts(cfg)
    assert parts[0]["status"] == "abandoned" and "camera lost" in parts[0]["note"]
    assert [p["status"] != "abandoned" for p in parts[1:]] == [True, True]  # the same part, then the next
    assert 1 in [s.state for s in factory.pin(26).states]  # the red ERROR LED blinked


def test_corrupt_frames_are_skipped_counted_and_logged(tmp_path: Path, demo_library: Path) -> None:
    cfg = load_edge_config(write_sim_setup(tmp_path, demo_library))

    class Glitchy(SimSource):
        """Returns an empty image on some grabs; the camera base turns it into an ImageError."""

        grabs = 0

        def _grab(self) -> tuple[np.ndarray, dict[str, Any]]:
            Glitchy.grabs += 1
            if Glitchy.grabs in (3, 6, 7):
                return np.zeros((0, 0, 3), np.uint8), {}
            return super()._grab()

    stats = Daemon(cfg, sim=True, parts=2, camera=Glitchy(cfg.camera)).run()
    assert stats.parts == 2 and stats.bad_frames == 3
    assert sum(stats.by_status.values()) == 2  # nothing abandoned: each bad view was captured again
    bad = [e for e in _events(cfg) if e["kind"] == "bad_frame"]
    assert len(bad) == 2  # one event per streak (frames 6 and 7 are one streak)
    assert "empty" in bad[0]["message"]


def test_too_many_corrupt_frames_abandon_the_part(tmp_path: Path, demo_library: Path) -> None:
    cfg = load_edge_config(write_sim_setup(tmp_path, demo_library, timeouts={"bad_frame_retries": 1}))

    class Broken(Wrapped):
        def capture(self) -> Any:
            self.calls += 1
            if self.calls in (4, 5):  # view 0 of the first part, twice (1: empty, 2-3: presence)
                raise ImageError("sim camera returned a truncated frame")
            return self.inner.capture()

    stats = Daemon(cfg, sim=True, parts=1, camera=Broken(create_camera(cfg.camera))).run()
    assert stats.by_status["abandoned"] == 1 and stats.parts == 1
    parts = _parts(cfg)
    assert (
        parts[0]["status"] == "abandoned" and "2 corrupt frames in a row at view 1 of 4" in parts[0]["note"]
    )


def test_two_parts_go_to_the_reject_bin(tmp_path: Path, demo_library: Path) -> None:
    cfg = load_edge_config(write_sim_setup(tmp_path, demo_library))

    class Twins(Wrapped):
        """A second copy of the part lies beside it (8 px apart), to its right or left."""

        def capture(self) -> Any:
            frame = self.inner.capture()
            if frame.meta.get("part_present"):
                x0, y0, x1, y1 = frame.meta["bbox"]
                dx = x1 - x0 + 8
                dx = dx if x1 + dx <= frame.image.shape[1] else -dx
                frame.image[y0:y1, x0 + dx : x1 + dx] = frame.image[y0:y1, x0:x1].copy()
            return frame

    stats = Daemon(cfg, sim=True, parts=2, camera=Twins(create_camera(cfg.camera))).run()
    assert stats.two_parts == 2 and stats.by_status["error"] == 2
    for part in _parts(cfg):
        assert part["status"] == "error" and part["bin"] == 0  # 'reject', the first chute bin
        assert "two parts at once" in part["note"]
    assert [e["kind"] for e in _events(cfg)].count("two_parts") == 2


def test_a_part_that_does_not_leave_is_an_error_until_removed(tmp_path: Path, demo_library: Path) -> None:
    config = write_sim_setup(tmp_path, demo_library, timeouts={"clear_s": 0.3}, clearing={"sweep_deg": 90})
    cfg = load_edge_config(config)

    class Jammed(Wrapped):
        """The rig's mode (no sim feeder): a part appears after start-up and stays put when swept."""

        daemon: Any = None

        def capture(self) -> Any:
            self.calls += 1
            if self.calls == 2:
                self.inner.next_part()
            if self.daemon.state == "error" and self.inner.part is not None:
                self.inner.remove_part()  # someone lifts it off by hand
            return self.inner.capture()

    camera = Jammed(create_camera(cfg.camera))
    daemon = Daemon(cfg.model_copy(update={"autostart": True}), parts=1, camera=camera)
    camera.daemon = daemon
    stats = daemon.run()
    assert stats.parts == 1
    assert daemon.state_history == ["idle", "running", "error", "running", "idle"]
    kinds = [e["kind"] for e in _events(cfg)]
    assert kinds == ["part_stuck", "turntable_cleared"]


def test_a_part_the_frames_do_not_show_is_reported_missed(tmp_path: Path, demo_library: Path) -> None:
    cfg = load_edge_config(write_sim_setup(tmp_path, demo_library, presence={"min_area_px": 100_000}))

    class Watched(Wrapped):
        daemon: Any = None

        def capture(self) -> Any:
            self.calls += 1
            if self.calls == 12:
                self.daemon.request_stop()  # no part is ever seen: stop the endless feeding
            return self.inner.capture()

    camera = Watched(create_camera(cfg.camera))
    camera.daemon = daemon = Daemon(cfg, sim=True, parts=1, camera=camera)
    stats = daemon.run()
    assert stats.parts == 0 and stats.missed >= 3
    missed = [e for e in _events(cfg) if e["kind"] == "part_missed"]
    assert len(missed) == stats.missed and "demo-3001" in missed[0]["message"]
    assert "presence.min_area_px 100000" in missed[0]["message"]


def test_a_failing_recognition_rejects_the_part(
    tmp_path: Path, demo_library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = load_edge_config(write_sim_setup(tmp_path, demo_library))
    real = Pipeline.process
    calls = []

    def flaky(self: Pipeline, frames: Any, capture_ms: float = 0.0) -> Any:
        calls.append(len(frames))
        if len(calls) == 1:
            raise ModelError("model file 'x.onnx' failed to run: out of memory")
        return real(self, frames, capture_ms)

    monkeypatch.setattr(Pipeline, "process", flaky)
    stats = Daemon(cfg, sim=True, parts=2).run()
    assert stats.by_status["error"] == 1 and stats.parts == 2
    first = _parts(cfg)[0]
    assert first["status"] == "error" and first["bin"] == 0 and "recognition failed" in first["note"]
    assert "recognition_failed" in [e["kind"] for e in _events(cfg)]


def test_a_stop_while_capturing_abandons_the_part(tmp_path: Path, demo_library: Path) -> None:
    cfg = load_edge_config(write_sim_setup(tmp_path, demo_library))

    class Stopper(Wrapped):
        daemon: Any = None

        def capture(self) -> Any:
            self.calls += 1
            if self.calls == 5:  # the second view of the first part: SIGTERM arrives
                self.daemon.request_stop()
            return self.inner.capture()

    camera = Stopper(create_camera(cfg.camera))
    camera.daemon = daemon = Daemon(cfg, sim=True, camera=camera)
    stats = daemon.run()
    assert stats.parts == 0 and stats.by_status["abandoned"] == 1
    (part,) = _parts(cfg)
    assert part["status"] == "abandoned" and "stopped while capturing (2 of 4 views taken)" in part["note"]


def test_a_model_file_that_does_not_match_refuses_to_start(tmp_path: Path, demo_library: Path) -> None:
    cfg = load_edge_config(write_sim_setup(tmp_path, demo_library))
    model = tmp_path / "models" / "classifier.onnx"
    model.write_bytes(model.read_bytes()[:-8] + b"tampered")  # same size, other bytes
    with pytest.raises(ModelError) as info:
        Daemon(cfg, sim=True, parts=1).run()
    text = str(info.value)
    assert str(model) in text and "sha256 expected" in text and "trainer export" in text


def test_an_index_that_does_not_match_refuses_to_start(tmp_path: Path, demo_library: Path) -> None:
    cfg = load_edge_config(write_sim_setup(tmp_path, demo_library, recognition={"mode": "hybrid"}))
    add_index(tmp_path / "models")
    index = tmp_path / "models" / "index.npz"
    saved = index.read_bytes()
    add_index(tmp_path / "models", count=9)  # a rebuilt index...
    index.write_bytes(saved)  # ...whose file was then replaced by the old one
    with pytest.raises(ModelError) as info:
        Daemon(cfg, sim=True, parts=1).run()
    assert str(index) in str(info.value) and "trainer index" in str(info.value)


def test_missing_files_are_named(tmp_path: Path, demo_library: Path) -> None:
    gone = load_edge_config(write_sim_setup(tmp_path / "a", demo_library, engine={"model_set": "nowhere"}))
    with pytest.raises(ModelError, match=r"nowhere/manifest\.json.*does not exist"):
        Daemon(gone, sim=True, parts=1).run()
    no_cal = write_sim_setup(
        tmp_path / "b",
        demo_library,
        calibration="cal.json",
        segmenter={"background_lower": None, "background_upper": None, "calibration": True},
    )
    with pytest.raises(DataFileError, match=r"cal\.json.*does not exist; run the rig calibration"):
        Daemon(load_edge_config(no_cal), sim=True, parts=1).run()
    no_lib = load_edge_config(write_sim_setup(tmp_path / "c", tmp_path / "no-ldraw"))
    with pytest.raises(DataFileError, match=r"no-ldraw.*no parts/ folder"):
        Daemon(no_lib, sim=True, parts=1).run()


def test_power_cut_leaves_an_in_progress_part_that_start_up_abandons(
    tmp_path: Path, demo_library: Path
) -> None:
    cfg = load_edge_config(write_sim_setup(tmp_path, demo_library))
    record = DecisionRecord(cfg.data.db, cfg.data.crops_dir)
    record.begin_part()  # the power went before finish_part
    record.close()
    stats = Daemon(cfg, sim=True, parts=1).run()
    assert stats.parts == 1
    parts = _parts(cfg)
    assert parts[0]["status"] == "abandoned" and "power cut" in parts[0]["note"]
    assert parts[1]["status"] != "in_progress"
    assert "recovered" in [e["kind"] for e in _events(cfg)]


def test_sigterm_stops_cleanly(tmp_path: Path, demo_library: Path) -> None:
    config = write_sim_setup(tmp_path, demo_library)
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(60)
    # A 0.2 s watchdog: the loop must ping WATCHDOG=1 (at most every 0.1 s) while it runs.
    env = {**os.environ, "NOTIFY_SOCKET": str(sock_path), "PYTHONPATH": str(REPO), "WATCHDOG_USEC": "200000"}
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "run", "--sim", "--config", str(config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        messages = []
        while not any(m.startswith("STATUS=running: 1 parts") for m in messages):
            messages.append(sock.recv(4096).decode())  # runs forever: no --parts
        assert "READY=1" in messages and "WATCHDOG=1" in messages
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        while "STOPPING=1" not in messages:
            messages.append(sock.recv(4096).decode())
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()
    assert proc.returncode == 0, err
    assert "summary:" in out and "latency per part" in out
    cfg = load_edge_config(config)
    with DecisionRecord(cfg.data.db, cfg.data.crops_dir) as record:
        assert record.summary()["by_status"]["in_progress"] == 0  # finished or abandoned, never left open
        assert record.summary()["total"] >= 1
