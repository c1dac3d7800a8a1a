"""Typed configs: YAML files mapped onto documented dataclasses (fields declared with :func:`option`), validated,
with dotted overrides: ``load_config(Cls, path, ["train.lr=1e-4"])``; an unknown key or a wrong type is a
ConfigError naming the key."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

from tdmr1.errors import ConfigError

T = TypeVar("T")


#: Integers must fit in 64 bits (torch and numpy seeds, tensor sizes).
INT64 = 2**63


def option(default: Any = dataclasses.MISSING, doc: str = "", *, factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field with a documentation string (shown by ``describe_config``)."""
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata={"doc": doc})
    return dataclasses.field(default=default, metadata={"doc": doc})


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against annotation ``tp`` (ints are accepted for floats); return the value."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value not in get_args(tp):
            choices = ", ".join(repr(a) for a in get_args(tp))
            raise ConfigError(f"{key}: expected one of {choices}, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} {value!r}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{key}: expected {len(args)} items, got {len(value)}")
            return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
        item_tp = args[0] if args else Any
        items = [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a section (mapping), got {type(value).__name__} {value!r}")
        return from_dict(tp, value, prefix=f"{key}.")
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {type(value).__name__} {value!r}")
        if isinstance(value, int) and not -INT64 <= value < INT64:
            raise ConfigError(f"{key}: {value} is too large")
        if not math.isfinite(value):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {type(value).__name__} {value!r}")
        if not -INT64 <= value < INT64:
            raise ConfigError(f"{key}: {value} is beyond the 64-bit integer range")
        if key.rsplit(".", 1)[-1] == "seed" and value < 0:
            raise ConfigError(f"{key} must be >= 0, got {value}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {type(value).__name__} {value!r}")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
    return value


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build dataclass ``cls`` from a mapping; unknown keys and wrong types raise ConfigError."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in known]
    if unknown:
        raise ConfigError(f"unknown key '{prefix}{unknown[0]}' (known: {', '.join(known)})")
    kwargs = {name: _coerce(value, hints[name], f"{prefix}{name}") for name, value in data.items()}
    try:
        obj = cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise ConfigError(f"{prefix.rstrip('.') or cls.__name__}: {exc}") from None
    validate = getattr(obj, "validate", None)
    if callable(validate):
        validate()
    return obj


def check_fields(obj: Any, keys: str, test: Any, what: str, prefix: str = "") -> None:
    """ConfigError unless ``test(value)`` holds for every field named in ``keys`` (space-separated;
    None values are skipped: optional fields are off). Used by the configs' ``validate()``."""
    for key in keys.split():
        value = getattr(obj, key)
        if value is not None and not test(value):
            raise ConfigError(f"{prefix}{key} must be {what}, got {value!r}")


def at_least(obj: Any, minimum: float, keys: str, prefix: str = "") -> None:
    """Every field in ``keys`` is >= ``minimum``."""
    check_fields(obj, keys, lambda v: v >= minimum, f">= {minimum}", prefix)


def positive(obj: Any, keys: str, prefix: str = "") -> None:
    """Every field in ``keys`` is > 0."""
    check_fields(obj, keys, lambda v: v > 0, "> 0", prefix)


def within(obj: Any, low: float, high: float, keys: str, prefix: str = "", *, high_open: bool = False) -> None:
    """Every field in ``keys`` is in [low, high] (or [low, high) with ``high_open``)."""
    closing = ")" if high_open else "]"
    check_fields(
        obj, keys, lambda v: low <= v < high if high_open else low <= v <= high, f"in [{low}, {high}{closing}", prefix
    )


def to_dict(obj: Any) -> dict[str, Any]:
    """Plain-dict (YAML/JSON-ready) form of a config dataclass."""
    out = dataclasses.asdict(obj)
    return _untuple(out)


def _untuple(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _untuple(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_untuple(v) for v in value]
    return value


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.lr=1e-4"`` -> (["train", "lr"], 1e-4); the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.sub=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    # YAML reads "1e-4" as a string (no dot); accept it as a number
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value for c in ".eE") else value
        except ValueError:
            pass
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with dotted ``key=value`` overrides applied."""
    data = _deep_copy(data)
    for text in overrides:
        path, value = parse_override(text)
        _set_dotted(data, path, value, text)
    return data


def apply_values(data: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of ``data`` with already-typed values set at dotted keys (nothing is parsed)."""
    data = _deep_copy(data)
    for key, value in values.items():
        _set_dotted(data, key.split("."), value, key)
    return data


def _set_dotted(data: dict[str, Any], path: list[str], value: Any, text: str) -> None:
    node = data
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {text!r}: '{part}' is not a section")
        node = child
    node[path[-1]] = value


def _deep_copy(data: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in data.items()}


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing file or bad YAML is a ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text (UTF-8) YAML file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return data


def load_config(
    cls: type[T],
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    values: dict[str, Any] | None = None,
) -> T:
    """Defaults of ``cls`` <- YAML file (optional) <- ``values`` <- dotted overrides; validated.

    ``values`` maps dotted keys to typed values (CLI options such as ``--init PATH``): they are set as
    given, never re-parsed as YAML (a folder named ``2024.10`` stays a string).
    """
    data = read_yaml(path) if path is not None else {}
    data = apply_values(data, values or {})
    data = apply_overrides(data, overrides or [])
    try:
        return from_dict(cls, data)
    except ConfigError as exc:
        where = f"{path}: " if path is not None else ""
        raise ConfigError(f"{where}{exc}") from None


def merge_into(obj: T, overrides: list[str]) -> T:
    """Apply dotted overrides to an existing config instance (validated again)."""
    return from_dict(type(obj), apply_overrides(to_dict(obj), overrides))


def describe_config(cls: type, prefix: str = "") -> list[tuple[str, str, str]]:
    """(key, default, doc) rows for every field, nested sections flattened with dots."""
    rows = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            rows.extend(describe_config(tp, prefix=f"{prefix}{f.name}."))
            continue
        if f.default is not dataclasses.MISSING:
            default = repr(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            default = repr(f.default_factory())
        else:
            default = "(required)"
        rows.append((f"{prefix}{f.name}", default, f.metadata.get("doc", "")))
    return rows
