"""YAML configuration validated by pydantic.

Every config model derives from :class:`StrictModel`, which forbids unknown keys. Loading a file
turns pydantic's errors into one :class:`~edge.errors.ConfigError` whose message names the file,
the key path, the bad value and the fix (the field's description and bounds).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar, get_args

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from edge.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors, values are checked on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold: itself, a union's members, a list's items."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _tag(model: type[BaseModel]) -> tuple[Any, ...]:
    """The ``Literal`` values of a model's ``type`` field (a tagged union's discriminator)."""
    field = model.model_fields.get("type")
    return get_args(field.annotation) if field is not None else ()


def _walk(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[str, list[type[BaseModel]], Any]:
    """Follow pydantic's error location through nested models, lists and tagged unions.

    Returns the key path as the user wrote it (a union's tag, which pydantic puts in the location,
    is not a key in the file), the models that the location ends in, and the last field's info.
    """
    path = ""
    current: list[type[BaseModel]] = [model]
    info = None
    for part in loc:
        field_owner = next((m for m in current if isinstance(part, str) and part in m.model_fields), None)
        tagged = [
            m for m in current if get_args(getattr(m.model_fields.get("type"), "annotation", None)) == (part,)
        ]
        if field_owner is not None:
            info = field_owner.model_fields[part]
            current = _models_in(info.annotation)
        elif len(current) > 1 and tagged:
            current = tagged  # the discriminator's tag: choose the member, add nothing to the path
            continue
        elif isinstance(part, int):
            pass  # an index into a list: the item's models are already in ``current``
        else:
            current, info = [], None
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(top level)", current, info


def format_validation_error(err: ValidationError, model: type[BaseModel], source: str) -> str:
    """Render pydantic's errors as lines a rig owner can act on."""
    lines = [f"{source}: {err.error_count()} bad setting(s)"]
    for e in err.errors():
        loc = tuple(e["loc"])
        value = e.get("input")
        if e["type"] == "extra_forbidden":
            where, owners, _ = _walk(model, loc[:-1])
            where = f"{where}.{loc[-1]}" if loc[:-1] else str(loc[-1])
            known = sorted({k for m in owners for k in m.model_fields})
            fix = f"remove it or check its spelling; known keys here: {', '.join(known)}"
            lines.append(f"  {where}: unknown key (value {value!r}); {fix}")
            continue
        where, _, info = _walk(model, loc)
        hint = (info.description or "") if info is not None else ""
        if e["type"] == "missing":
            lines.append(f"  {where}: required but missing; add it" + (f" ({hint})" if hint else ""))
            continue
        lines.append(
            f"  {where}: {value!r} is not valid: {e['msg']}" + (f"; expected: {hint}" if hint else "")
        )
    return "\n".join(lines)


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
