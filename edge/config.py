"""YAML configuration validated by pydantic.

Every config model derives from :class:`StrictModel`, which forbids unknown keys. Loading a file
turns pydantic's errors into one :class:`~edge.errors.ConfigError` whose message names the file,
the key path, the bad value and the fix (the field's description and bounds).

Config files are read by :func:`read_text_file` (at most :data:`MAX_CONFIG_BYTES`, UTF-8) and parsed
by :func:`parse_yaml`, a safe loader that refuses YAML anchors and aliases (a few hundred bytes of
nested aliases expand to gigabytes once validated) and nesting deeper than :data:`MAX_DEPTH`; any
file that cannot be read is a :class:`~edge.errors.ConfigError` naming it. Messages quote values
and keys as short previews (:func:`preview`) and list at most :data:`MAX_ERRORS_SHOWN` errors, so
a huge bad value gives a short message.
"""

from __future__ import annotations

import reprlib
from pathlib import Path
from typing import Any, TypeVar, cast, get_args

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from edge.errors import ConfigError, EdgeError

M = TypeVar("M", bound=BaseModel)

#: Errors listed in one message; the rest are counted.
MAX_ERRORS_SHOWN = 20
#: Largest config or calibration file read (the shipped configs are a few kB).
MAX_CONFIG_BYTES = 1 << 20
#: Deepest nesting of mappings and lists in a config file (the settings nest about 5 deep).
MAX_DEPTH = 50
_MAX_MSG_CHARS = 300  # of one pydantic error text (a validator's message may quote the value)

_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 60
_repr.maxlist = _repr.maxtuple = _repr.maxset = _repr.maxdict = 6
_repr.maxlevel = 3


def preview(value: Any, limit: int = 80) -> str:
    """A short ``repr`` of ``value`` for messages: long strings and big containers are cut.

    reprlib stops early, so even a huge value costs little; the result is at most ``limit``
    characters plus a note of how long the text or how many items there were.
    """
    text = _repr.repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    if isinstance(value, str | bytes) and len(value) > 40:
        text += f" ({len(value)} characters)"
    elif isinstance(value, list | tuple | dict | set) and len(value) > 6:
        text += f" ({len(value)} items)"
    return text


def _short(text: str, limit: int = _MAX_MSG_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Refused(yaml.MarkedYAMLError):
    """A YAML construct config files may not use (carries the position and the fix for the message)."""

    def __init__(self, problem: str, mark: Any, fix: str) -> None:
        super().__init__(problem=problem, problem_mark=mark)
        self.fix = fix


_NO_ALIASES = "anchors and aliases (&name, *name) are not allowed in config files; write the values out"


class StrictLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader without anchors, aliases or duplicate keys, and no deeper than :data:`MAX_DEPTH`.

    An alias (``*name``) is a reference to an anchored node (``&name``); nested aliases make a
    "billion laughs": 342 bytes that become 9 GB once something walks the data. Configs never need
    them, so both are refused with the line, before anything is built. The composer recurses once
    per level, so deep nesting (``[[[[...``) would end in a RecursionError. A key given twice in
    one mapping is refused too (PyYAML would keep the last one silently).
    """

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        anchor = getattr(event, "anchor", None)
        if anchor is not None:  # an alias event's anchor is the name it refers to
            kind = "alias '*" if isinstance(event, yaml.AliasEvent) else "anchor '&"
            raise _Refused(f"{kind}{short_name(anchor)}'", event.start_mark, _NO_ALIASES)
        if self._depth >= MAX_DEPTH:
            too_deep = f"nested deeper than {MAX_DEPTH} levels"
            raise _Refused(too_deep, event.start_mark, "no setting needs that: check the file")
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, int] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    continue  # unhashable keys are refused by SafeLoader itself
                key = self.construct_object(key_node)
                if key in first:
                    raise _Refused(
                        f"duplicate key {preview(key, 60)}",
                        key_node.start_mark,
                        f"first at line {first[key]}; keep one of them",
                    )
                first[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


def read_text_file(
    path: str | Path,
    what: str = "config file",
    *,
    missing: type[EdgeError] = ConfigError,
    fix: str = "pass an existing file",
    limit: int = MAX_CONFIG_BYTES,
) -> str:
    """The UTF-8 text of a config-like file of at most ``limit`` bytes (:data:`MAX_CONFIG_BYTES`).

    Anything else is a :class:`ConfigError` naming the file (``missing`` for a file that does not
    exist, followed by ``fix``): a folder, an unreadable file, a larger one (``/dev/zero`` too: the
    read stops after the limit), or bytes that are not UTF-8 (with the line and the byte).
    """
    path = Path(path)
    name = f"{what} {str(path)!r}"
    try:
        with path.open("rb") as fh:
            data = fh.read(limit + 1)
    except FileNotFoundError:
        raise missing(f"{name} does not exist; {fix}") from None
    except IsADirectoryError:
        raise ConfigError(f"{name} is a directory; pass the file in it") from None
    except OSError as exc:
        raise ConfigError(f"{name} cannot be read: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise ConfigError(f"{name} is larger than {limit / 2**20:g} MB: pass the right file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{name} is not UTF-8 text (byte 0x{data[exc.start]:02x} at line {line}); save it as UTF-8"
        ) from None


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML with :class:`StrictLoader`; every problem is a :class:`ConfigError` naming ``source``."""
    loader = None
    try:
        loader = StrictLoader(text)  # its reader already refuses control characters
        return loader.get_single_data()
    except _Refused as exc:
        mark = cast(Any, exc.problem_mark)
        raise ConfigError(
            f"{source}: YAML {exc.problem} at line {mark.line + 1}, column {mark.column + 1}: {exc.fix}"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = _short(str(getattr(exc, "problem", None) or exc), 200)
        raise ConfigError(f"{source}: not valid YAML{where}: {problem}") from None
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. a 5000-digit number, 2024-13-45
        raise ConfigError(f"{source}: a value cannot be read as YAML: {_short(str(exc), 200)}") from None
    except (AttributeError, KeyError, IndexError) as exc:  # PyYAML's own slips on explicit tags
        raise ConfigError(
            f"{source}: a tagged value cannot be read as YAML (e.g. '!!timestamp x', '!!bool maybe'): "
            f"{type(exc).__name__} {_short(str(exc), 100)}; drop the '!!' tag"
        ) from None
    except RecursionError:  # MAX_DEPTH keeps the composer shallow; this is the last guard
        raise ConfigError(f"{source}: nested deeper than {MAX_DEPTH} levels; flatten the file") from None
    finally:
        if loader is not None:
            loader.dispose()


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
        part = part if isinstance(part, int) else short_name(part)
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(top level)", current, info


def short_name(part: Any) -> str:
    """A key or name as a message shows it: unquoted, long ones cut."""
    if isinstance(part, str):
        return part if len(part) <= 40 else f"{part[:30]}...({len(part)} characters)"
    return preview(part, 40)


def format_validation_error(err: ValidationError, model: type[BaseModel], source: str) -> str:
    """Render pydantic's errors as lines a rig owner can act on (values as short previews)."""
    count = err.error_count()
    lines = [f"{source}: {count} bad setting(s)"]
    for e in err.errors(include_url=False)[:MAX_ERRORS_SHOWN]:
        loc = tuple(e["loc"])
        value = e.get("input")
        if e["type"] == "extra_forbidden":
            where, owners, _ = _walk(model, loc[:-1])
            where = f"{where}.{short_name(loc[-1])}" if loc[:-1] else short_name(loc[-1])
            known = sorted({k for m in owners for k in m.model_fields})
            fix = f"remove it or check its spelling; known keys here: {', '.join(known)}"
            lines.append(f"  {where}: unknown key (value {preview(value)}); {fix}")
            continue
        where, _, info = _walk(model, loc)
        hint = (info.description or "") if info is not None else ""
        if e["type"] == "missing":
            lines.append(f"  {where}: required but missing; add it" + (f" ({hint})" if hint else ""))
            continue
        lines.append(
            f"  {where}: {preview(value)} is not valid: {_short(e['msg'])}"
            + (f"; expected: {hint}" if hint else "")
        )
    if count > MAX_ERRORS_SHOWN:
        lines.append(f"  ... and {count - MAX_ERRORS_SHOWN} more")
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
    text = read_text_file(path)
    return validate_config(model, parse_yaml(text, str(path)), str(path))
