"""YAML configuration validated by pydantic.

Every config model derives from :class:`StrictModel`, which forbids unknown keys. Loading a file
turns pydantic's errors into one :class:`~edge.errors.ConfigError` whose message names the file,
the key path, the bad value and the fix (the field's description and bounds).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from edge.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors, values are checked on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


def _key_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _field_hint(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """The description of the field at ``loc``, following nested models, or ''."""
    current: Any = model
    info = None
    for part in loc:
        fields = getattr(current, "model_fields", None)
        if not fields or not isinstance(part, str) or part not in fields:
            return ""
        info = fields[part]
        annotation = info.annotation
        current = annotation if isinstance(annotation, type) else None
    return (info.description or "") if info is not None else ""


def format_validation_error(err: ValidationError, model: type[BaseModel], source: str) -> str:
    """Render pydantic's errors as lines a rig owner can act on."""
    lines = [f"{source}: {err.error_count()} bad setting(s)"]
    for e in err.errors():
        loc = tuple(e["loc"])
        where = _key_path(loc)
        value = e.get("input")
        if e["type"] == "extra_forbidden":
            known = sorted(_known_keys(model, loc[:-1]))
            fix = f"remove it or check its spelling; known keys here: {', '.join(known)}"
            lines.append(f"  {where}: unknown key (value {value!r}); {fix}")
            continue
        if e["type"] == "missing":
            hint = _field_hint(model, loc)
            lines.append(f"  {where}: required but missing; add it" + (f" ({hint})" if hint else ""))
            continue
        hint = _field_hint(model, loc)
        lines.append(
            f"  {where}: {value!r} is not valid: {e['msg']}" + (f"; expected: {hint}" if hint else "")
        )
    return "\n".join(lines)


def _known_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    current: Any = model
    for part in loc:
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return []
        current = fields[part].annotation
    fields = getattr(current, "model_fields", None)
    return list(fields) if fields else []


def validate_config(model: type[M], data: Any, source: str = "<config>") -> M:
    """Validate already-parsed data, raising :class:`ConfigError` with a readable message."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: expected a mapping of settings at the top level, got {type(data).__name__}"
        )
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, model, source)) from None


def load_config(model: type[M], path: str | Path) -> M:
    """Read a YAML file and validate it against ``model``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist; pass an existing file") from None
    except OSError as exc:
        raise ConfigError(f"config file {str(path)!r} cannot be read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    return validate_config(model, data, str(path))
