"""Config loading: unknown keys and bad values give errors naming the file, key path, value and fix."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import pytest
from pydantic import Field

from edge.config import StrictModel, load_config, validate_config
from edge.errors import ConfigError


class Camera(StrictModel):
    width: int = Field(640, ge=64, le=4096, description="frame width in pixels, 64..4096")
    exposure_us: int = Field(8000, ge=10, description="exposure time in microseconds")


class Settings(StrictModel):
    camera: Camera = Field(default_factory=Camera, description="camera settings")
    views: int = Field(4, ge=1, le=16, description="views per part, 1..16")


def test_valid_file_loads(tmp_path: Path) -> None:
    f = tmp_path / "ok.yaml"
    f.write_text("camera:\n  width: 800\nviews: 6\n")
    cfg = load_config(Settings, f)
    assert cfg.camera.width == 800 and cfg.views == 6 and cfg.camera.exposure_us == 8000


def test_unknown_key_names_file_path_and_known_keys(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("camera:\n  widht: 800\n")
    with pytest.raises(ConfigError) as info:
        load_config(Settings, f)
    msg = str(info.value)
    assert str(f) in msg and "camera.widht" in msg and "unknown key" in msg
    assert "width" in msg and "exposure_us" in msg  # the known keys are offered


def test_bad_value_names_value_and_bounds(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("views: 40\n")
    with pytest.raises(ConfigError) as info:
        load_config(Settings, f)
    msg = str(info.value)
    assert "views" in msg and "40" in msg and "1..16" in msg


def test_config_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        validate_config(Settings, {"views": "many"}, "inline")


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    f = tmp_path / "broken.yaml"
    f.write_text("camera:\n  width: [800\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+"):
        load_config(Settings, f)


def test_missing_file_and_non_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(Settings, tmp_path / "nope.yaml")
    f = tmp_path / "list.yaml"
    f.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(Settings, f)


class Disc(StrictModel):
    type: Literal["disc"] = "disc"
    radius_mm: float = Field(60, gt=0, le=500, description="disc radius in mm, 0..500")


class Belt(StrictModel):
    type: Literal["belt"] = "belt"
    speed: float = Field(1.0, gt=0, description="belt speed in m/s")


class Rig(StrictModel):
    stages: list[Annotated[Disc | Belt, Field(discriminator="type")]] = Field(default_factory=list)


def test_errors_inside_tagged_unions_name_the_key_as_written() -> None:
    with pytest.raises(ConfigError) as info:
        stages = [{"type": "belt", "speed": 1}, {"type": "disc", "radius": 3}]
        validate_config(Rig, {"stages": stages}, "rig.yaml")
    msg = str(info.value)
    # pydantic puts the union's tag in the location; the message must not ("stages[1].disc.radius")
    assert "stages[1].radius: unknown key" in msg and "known keys here: radius_mm, type" in msg
    with pytest.raises(ConfigError) as info:
        validate_config(Rig, {"stages": [{"type": "disc", "radius_mm": -1}]}, "rig.yaml")
    assert "stages[0].radius_mm: -1 is not valid" in str(info.value) and "0..500" in str(info.value)
