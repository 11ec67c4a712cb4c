"""Typed configs: pydantic models loaded from YAML, with dotted command-line overrides.

Every recipe declares its config as a subclass of :class:`Config`. Loading is always
``defaults  <-  YAML file  <-  key.sub=value overrides`` and the result is validated once,
so a typo or a bad value fails before any work starts, with a message that names the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = ["Config", "ConfigError", "load_config", "apply_overrides", "dump_config"]


class ConfigError(ValueError):
    """A config file or override is invalid. The message names the key and the value."""


class Config(BaseModel):
    """Base for every config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


C = TypeVar("C", bound=Config)


def _parse_value(text: str) -> Any:
    """Parse an override value the way YAML would (``3`` -> int, ``[1,2]`` -> list, ``null`` -> None)."""
    if text == "":
        return ""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        try:  # YAML 1.1 reads "1e-4" as a string; users mean a number
            return float(value) if value.strip().lower() not in {"nan", "inf", "-inf"} else value
        except ValueError:
            return value
    return value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides to a nested dict (in place) and return it."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key.sub=value")
        key, _, raw = item.partition("=")
        key = key.strip()
        if not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override {item!r} has an empty key")
        node = data
        parts = key.split(".")
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                where = ".".join(parts[: depth + 1])
                raise ConfigError(f"override {item!r}: {where} is a value ({child!r}), not a section")
            node = child
        node[parts[-1]] = _parse_value(raw)
    return data


def _format_errors(err: ValidationError, data: dict[str, Any]) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            lines.append(f"unknown config key {key!r}")
        elif not key:  # a cross-field check on the whole config: its message names the keys
            lines.append(str(e["msg"]).removeprefix("Value error, "))
        elif e["type"] == "missing":
            lines.append(f"missing required config key {key!r}")
        else:
            msg = str(e["msg"]).removeprefix("Value error, ")
            lines.append(f"config key {key!r}: {msg} (got {e.get('input')!r})")
    return "invalid config:\n  " + "\n  ".join(lines)


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in top.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _defaults(cls: type[Config]) -> dict[str, Any]:
    """The class defaults as a nested dict, so a partial section in YAML (``optim: {lr: 1e-3}``) keeps
    the section's other defaults instead of replacing the whole section."""
    try:
        return cls().model_dump()
    except ValidationError:  # a class with required keys: nothing to merge onto
        return {}


def load_config(cls: type[C], path: str | Path | None = None, overrides: list[str] | None = None) -> C:
    """Build ``cls`` from its defaults <- optional YAML ``path`` <- dotted ``overrides`` (deep merge);
    raise ConfigError naming the key if the result is invalid."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {str(p)!r} does not exist")
        try:
            loaded = yaml.safe_load(p.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {str(p)!r} is not valid YAML: {exc}") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {str(p)!r} must hold a mapping at top level")
        data = loaded
    apply_overrides(data, list(overrides or []))
    try:
        return cls.model_validate(_deep_merge(_defaults(cls), data))
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, data)) from None


def dump_config(cfg: Config, path: str | Path) -> None:
    """Write the fully resolved config next to a run so it can be reproduced."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
