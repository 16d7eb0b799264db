"""A config schema: what every config of the project does the same way, whatever its keys.

A config is a frozen dataclass of sections, each a frozen dataclass of keys with defaults;
`KEYS` maps every `section.key` to a `KeySpec` (its allowed values and meaning). A `Schema`
holds the sections, the table and the checks of the whole config that only that config knows
(mixture fractions summing to at most 1, and the like), and does the rest: defaults, then a TOML
file, then `--set section.key=value` overrides, validated once; type and range checks that name
the key, the bad value and what is allowed (`ConfigError`, exit status 2 in the CLI); the
closest valid key for a typo; the key table that `cpi config` and docs/guide.md print; TOML out.
The toy's config (`cpi.sims.config`) and the bridge's (`cpi.bridge.config`) are two schemas.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import tomli_w

from cpi.core.errors import ConfigError


@dataclass(frozen=True)
class KeySpec:
    """What one config key allows and means: `allowed` is (low, high, low_inclusive,
    high_inclusive) for a number, the tuple of allowed strings for a string, and ignored for a
    boolean."""

    allowed: tuple
    meaning: str


def _replaced(record, name: str, value):
    """A copy of the frozen dataclass `record` with field `name` set to `value`: what
    `dataclasses.replace` returns (no field here has an initialiser to rerun), ten times
    faster, which counts when a grid expands to 10^4 configs."""
    copy = object.__new__(type(record))
    copy.__dict__.update(record.__dict__)
    object.__setattr__(copy, name, value)
    return copy


class Schema:
    """The keys of one kind of config and everything done with them.

    `config_class()` gives the defaults; `sections` maps each section name to its dataclass;
    `keys` is the KEYS table; `check_config(config)` raises ConfigError where values that are
    each in range do not fit together; `label` names the config in errors ("config",
    "bridge config")."""

    def __init__(self, config_class: type, sections: dict[str, type], keys: dict[str, KeySpec],
                 check_config: Callable[[Any], None], label: str = "config"):
        self.config_class = config_class
        self.sections = sections
        self.keys = keys
        self.check_config = check_config
        self.label = label
        self._defaults = {name: cls() for name, cls in sections.items()}
        self._types = {key: type(self.default_value(key)) for key in keys}

    # ------------------------------------------------------------------ the table of keys
    def all_keys(self) -> list[str]:
        """Every valid `section.key` path."""
        return list(self.keys)

    def default_value(self, key: str) -> Any:
        """The default value of `section.key`."""
        section, name = key.split(".")
        return getattr(self._defaults[section], name)

    def field_type(self, key: str) -> type:
        return self._types[key]

    def key_range(self, key: str) -> tuple:
        """(low, high, low_inclusive, high_inclusive) of a numeric key, or its allowed strings."""
        return self.keys[key].allowed

    def allowed_text(self, key: str) -> str:
        """The allowed values of `key` in words, e.g. 'a number in [0, 1]'."""
        want = self.field_type(key)
        if want is bool:
            return "true or false"
        spec = self.keys[key].allowed
        if isinstance(spec[0], str):
            return "one of " + ", ".join(repr(s) for s in spec)
        lo, hi, lo_in, hi_in = spec
        kind = "an integer" if want is int else "a number"
        fmt = (lambda x: str(int(x))) if want is int else (lambda x: f"{x:g}")
        if hi == math.inf:
            return f"{kind} {'>=' if lo_in else '>'} {fmt(lo)}"
        return f"{kind} in {'[' if lo_in else '('}{fmt(lo)}, {fmt(hi)}{']' if hi_in else ')'}"

    def keys_table(self) -> list[tuple[str, str, str, str]]:
        """(key, default as TOML would write it, allowed values, meaning) of every key."""
        rows = []
        for key, spec in self.keys.items():
            d = self.default_value(key)
            shown = (f'"{d}"' if isinstance(d, str) else str(d).lower() if isinstance(d, bool)
                     else f"{d:g}" if isinstance(d, float) else str(d))
            rows.append((key, shown, self.allowed_text(key), spec.meaning))
        return rows

    def keys_markdown(self) -> str:
        """The Markdown table of config keys (one row per key), as docs/guide.md shows it."""
        lines = ["| key | default | allowed | meaning |", "|---|---|---|---|"]
        lines += [f"| `{key}` | {default} | {allowed} | {meaning} |"
                  for key, default, allowed, meaning in self.keys_table()]
        return "\n".join(lines)

    # ------------------------------------------------------------------ checking values
    def unknown_key(self, key: str) -> ConfigError:
        """An error for an unknown key that suggests the closest valid one."""
        keys = self.all_keys()
        close = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
        if not close:  # a known key name in the wrong section, or a typo in the name alone
            by_leaf = {k.split(".")[1]: k for k in keys}
            near = difflib.get_close_matches(key.rsplit(".", 1)[-1], list(by_leaf), n=1, cutoff=0.6)
            close = [by_leaf[near[0]]] if near else []
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return ConfigError(f"unknown {self.label} key '{key}'{hint} (valid keys: {', '.join(keys)})")

    def check_value(self, key: str, value: Any) -> Any:
        """The value of `key` with its type checked (ints accepted as floats) and in range."""
        value = self.coerce(key, value)
        self.check_range(key, value)
        return value

    def coerce(self, key: str, value: Any) -> Any:
        """The value of `key` with its type checked; ints are accepted where floats are, and
        floats with no fractional part (1e3, 100.0) where ints are."""
        want = self.field_type(key)
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if want is int and isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)
        if want is float and isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{key} = {value!r} is not finite; expected {self.allowed_text(key)}")
        if want is int and isinstance(value, float):
            raise ConfigError(f"{key} = {value!r} is not a whole number; expected {self.allowed_text(key)}")
        if not isinstance(value, want) or isinstance(value, bool) != (want is bool):
            raise ConfigError(f"{key} = {value!r} has the wrong type ({type(value).__name__}); "
                              f"expected {self.allowed_text(key)}")
        return value

    def check_range(self, key: str, value: Any) -> None:
        """ConfigError unless the (type-checked) value of `key` is allowed."""
        if self.field_type(key) is bool:
            return
        spec = self.keys[key].allowed
        if isinstance(spec[0], str):
            ok = value in spec
        else:
            lo, hi, lo_in, hi_in = spec
            ok = (value >= lo if lo_in else value > lo) and (value <= hi if hi_in else value < hi)
        if not ok:
            raise ConfigError(f"{key} = {value!r} is out of range; expected {self.allowed_text(key)}")

    def validate(self, config, keys=None):
        """Check the type and range of every value (or of the values of `keys` only, when the
        rest are known to be valid) and the consistency of the whole config; return it."""
        for key in self.all_keys() if keys is None else keys:
            section, name = key.split(".")
            self.check_value(key, getattr(getattr(config, section), name))
        self.check_config(config)
        return config

    # ------------------------------------------------------------------ building configs
    def apply(self, config, key: str, value: Any):
        """`config` with `key` set to `value`, its type checked (its range, and the whole
        config, are checked by `validate`)."""
        if key.count(".") != 1 or key not in self.keys:
            raise self.unknown_key(key)
        return self._set(config, key, self.coerce(key, value))

    @staticmethod
    def _set(config, key: str, value):
        """`config` with `section.key` set to `value` as it is."""
        section, name = key.split(".")
        return _replaced(config, section, _replaced(getattr(config, section), name, value))

    def from_dict(self, data: dict[str, Any], base=None):
        """Apply a nested {section: {key: value}} mapping (a parsed TOML file) to `base`."""
        config = base or self.config_class()
        for section, entries in data.items():
            if not isinstance(entries, dict):
                raise self.unknown_key(section)
            for name, value in entries.items():
                config = self.apply(config, f"{section}.{name}", value)
        return config

    def parse_override(self, text: str) -> tuple[str, Any]:
        """Parse 'section.key=value'; the value is read as a TOML value, else as a bare string."""
        if "=" not in text:
            raise ConfigError(f"--set expects section.key=value, got {text!r}")
        key, raw = (part.strip() for part in text.split("=", 1))
        if key not in self.keys:
            raise self.unknown_key(key)
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        return key, value

    def load_text(self, text: str, overrides=(), source: str = "config"):
        """Defaults, then the TOML `text`, then `overrides`; validated."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{source} is not valid TOML: {err}") from None
        config = self.from_dict(data)
        for override in overrides:
            config = self.apply(config, *self.parse_override(override))
        return self.validate(config)

    def load(self, path: str | Path | None = None, overrides=()):
        """Defaults, then the TOML file at `path` (if any), then `overrides`; validated."""
        if path is None:
            return self.load_text("", overrides)
        try:
            text = Path(path).read_text()
        except FileNotFoundError:
            raise ConfigError(f"config file {str(path)!r} does not exist") from None
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"config file {str(path)!r} cannot be read: {err}") from None
        return self.load_text(text, overrides, source=f"config file {str(path)!r}")

    def with_values(self, config, values: dict[str, Any], checked: bool = False):
        """A validated copy of the validated `config` with some `section.key` values replaced
        (only the replaced values and the whole-config constraints are checked again; with
        `checked`, the values have passed `check_value` already and only the whole config is)."""
        if not checked:
            for key, value in values.items():
                config = self.apply(config, key, value)
            return self.validate(config, keys=values)
        for key, value in values.items():
            config = self._set(config, key, value)
        self.check_config(config)
        return config

    @staticmethod
    def to_dict(config) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(config)

    def to_toml(self, config) -> str:
        """The fully resolved config as TOML; `load_text` of it gives `config` back exactly."""
        return tomli_w.dumps(self.to_dict(config))
