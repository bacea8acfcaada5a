"""Load a TOML file into a pydantic model, or fail with an error an operator can act on.

Every message names the file, the key (as a dotted path, list items by index) and what
would be valid, so that a bad configuration stops before anything starts, and says how.
"""

from __future__ import annotations

import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class ConfigError(Exception):
    """A configuration that cannot be used. ``str()`` is the full, multi-line explanation."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        lines = [f"{path}: invalid configuration"] + [f"  - {p}" for p in problems]
        super().__init__("\n".join(lines))


def load_toml(path: Path | str, model: type[M]) -> M:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            path, ["file not found; pass the path of an existing TOML file"]
        ) from None
    except OSError as exc:
        raise ConfigError(path, [f"cannot read the file: {exc.strerror}"]) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(path, [f"not valid TOML: {exc}"]) from None
    return validate_mapping(data, model, path)


def validate_mapping(data: dict[str, Any], model: type[M], path: Path) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(path, explain(exc, model)) from None


def explain(exc: ValidationError, model: type[BaseModel]) -> list[str]:
    """One line per problem: the key, what is wrong, what was given."""
    return [_explain(err, model) for err in exc.errors()]


def _explain(err: Any, model: type[BaseModel]) -> str:
    loc = tuple(err["loc"])
    key = _dotted(loc) or "(top level)"
    message = err["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if err["type"] == "extra_forbidden":
        parent = _model_at(model, loc[:-1])
        if parent is not None:
            valid = ", ".join(sorted(parent.model_fields))
            return f"{key}: unknown key; valid keys here are: {valid}"
        return f"{key}: unknown key"
    if err["type"] == "missing":
        return f"{key}: required key is missing; add it"
    got = err.get("input")
    shown = "" if isinstance(got, dict | list) or got is None else f" (got {got!r})"
    return f"{key}: {message}{shown}"


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class that sits at ``loc`` inside ``model``, following lists and options."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        current = field.annotation
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """Strip Optional, list[...] and dict[str, ...] down to the item type."""
    while True:
        origin = get_origin(annotation)
        if origin in (list, tuple, set, frozenset):
            annotation = get_args(annotation)[0]
        elif origin is dict:
            annotation = get_args(annotation)[1]
        elif origin in (typing.Union, types.UnionType):
            options = [a for a in get_args(annotation) if a is not type(None)]
            models = [a for a in options if isinstance(a, type) and issubclass(a, BaseModel)]
            annotation = models[0] if models else options[0]
        elif origin is typing.Annotated:
            annotation = get_args(annotation)[0]
        else:
            return annotation
