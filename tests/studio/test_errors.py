"""The studio's exception tree: under StudioError, under edge's EdgeError, and the matching builtin."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge import errors as edge_errors
from studio import errors
from studio.ldraw import LDrawLibrary


@pytest.mark.parametrize(
    ("error", "builtin"),
    [
        (errors.LDrawError, ValueError),
        (errors.MissingPartError, FileNotFoundError),
        (errors.RenderError, RuntimeError),
        (errors.DataFileError, FileNotFoundError),
        (errors.ImageError, ValueError),
    ],
)
def test_each_error_is_a_studio_error_an_edge_error_and_a_builtin(error: type, builtin: type) -> None:
    assert issubclass(error, errors.StudioError) and issubclass(error, builtin)
    assert issubclass(errors.StudioError, edge_errors.EdgeError)


def test_the_studio_errors_left_edge() -> None:
    for name in ("LDrawError", "MissingPartError", "RenderError"):
        assert not hasattr(edge_errors, name)


def test_a_missing_library_is_caught_as_either_packages_data_file_error(tmp_path: Path) -> None:
    with pytest.raises(edge_errors.DataFileError, match="no parts/ folder") as info:
        LDrawLibrary(tmp_path)
    assert isinstance(info.value, errors.DataFileError) and isinstance(info.value, errors.StudioError)
