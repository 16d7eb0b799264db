"""Sweep grids over the keys of a config schema (the toy's or the bridge's): specs
`section.key=start:stop:num` (num values from start to stop inclusive, evenly spaced) or
`section.key=v1,v2,...`, their Cartesian product (the first spec varies slowest) and an
innermost axis of seeds; every point a validated config.

A schema is what `cpi.sims.schema.Schema` provides: `keys`, `field_type`, `key_range`,
`check_value`, `unknown_key` and `with_values`; this module imports no layer's config.
"""

from __future__ import annotations

import itertools
import math
import tomllib
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .errors import ConfigError

SIGNIFICANT_DIGITS = 12
"""Range values of float keys are rounded to this many significant digits, so that
`0:1:41` gives 0.025, 0.05, ... exactly as one would type them (and as `cpi run --set`
reads them): round(ρ·n_train) must not depend on the last bit of a linspace."""


@dataclass(frozen=True)
class Axis:
    """One swept key: its values (already of the key's type) and the spec they came from."""

    key: str
    values: tuple
    spec: str


@dataclass(frozen=True)
class Grid:
    """The expanded grid: axes, and per point its swept values and its validated config."""

    axes: tuple[Axis, ...]
    seeds: int
    points: tuple[dict[str, Any], ...]  # swept key -> value, in axis order
    configs: tuple  # one validated config per point

    @property
    def keys(self) -> list[str]:
        return [a.key for a in self.axes]

    def __len__(self) -> int:
        return len(self.configs)


def _parse_scalar(raw: str) -> Any:
    """An int, a float, a TOML value (a quoted string) or the bare string."""
    raw = raw.strip()
    for parse in (int, float):
        try:
            return parse(raw)
        except ValueError:
            pass
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _integral(key: str, value: Any, spec: str) -> Any:
    """Integral floats become ints for an integer key; other floats are an error."""
    if isinstance(value, float) and not isinstance(value, bool):
        if not math.isfinite(value) or abs(value - round(value)) > 1e-9 * max(1.0, abs(value)):
            raise ConfigError(
                f"--grid {spec!r}: {key} takes integers, but the grid has {value!r}"
            )
        return int(round(value))
    return value


def _range_values(key: str, text: str, spec: str, kind: type) -> list:
    parts = text.split(":")
    if len(parts) != 3:
        raise ConfigError(
            f"--grid {spec!r}: a range is start:stop:num (num values from start to stop "
            f"inclusive), got {text!r}"
        )
    if kind is str:
        raise ConfigError(
            f"--grid {spec!r}: {key} is not numeric, so it takes a list v1,v2,... not a range"
        )
    bounds = []
    for name, part in zip(("start", "stop"), parts[:2]):
        try:
            bound = float(part)
        except ValueError:
            bound = math.nan
        if not math.isfinite(bound):
            raise ConfigError(f"--grid {spec!r}: range {name} {part.strip()!r} is not a finite number")
        bounds.append(bound)
    try:
        num = int(parts[2])
    except ValueError:
        num = 0
    if num < 1:
        raise ConfigError(
            f"--grid {spec!r}: range num {parts[2].strip()!r} must be an integer >= 1"
        )
    start, stop = bounds
    if num == 1:
        raw = [start]
    else:
        raw = [start + (stop - start) * i / (num - 1) for i in range(num - 1)] + [stop]
    if kind is int:
        return [_integral(key, v, spec) for v in raw]
    return [float(f"{v:.{SIGNIFICANT_DIGITS}g}") for v in raw]


def parse_spec(spec: str, schema) -> Axis:
    """One `section.key=start:stop:num` or `section.key=v1,v2,...` spec over the keys of
    `schema`, each value checked on its own for its type and range (the consistency of the
    whole config is checked per point); raises ConfigError naming the spec."""
    if "=" not in spec:
        raise ConfigError(
            f"--grid {spec!r}: expected section.key=start:stop:num or section.key=v1,v2,..."
        )
    key, text = (part.strip() for part in spec.split("=", 1))
    if key not in schema.keys:
        raise ConfigError(f"--grid {spec!r}: {schema.unknown_key(key)}")
    kind = schema.field_type(key)
    if ":" in text:
        values = _range_values(key, text, spec, kind)
    else:
        items = [item.strip() for item in text.split(",")]
        if not text or any(not item for item in items):
            raise ConfigError(f"--grid {spec!r}: empty value in the list {text!r}")
        values = [_parse_scalar(item) for item in items]
        if kind is int:
            values = [_integral(key, v, spec) for v in values]
    try:
        values = [schema.check_value(key, v) for v in values]
    except ConfigError as err:
        raise ConfigError(f"--grid {spec!r}: {err}") from None
    return Axis(key, tuple(values), spec)


def expand_grid(base, grid: list[str] | tuple[str, ...] = (), seeds: int = 1, *, schema,
                check_point: Callable[[Any], None] | None = None) -> Grid:
    """Every point of the grid over `schema`'s keys (Cartesian product of the specs, then
    `seeds` consecutive train.seed values from base's), each a config validated by the schema
    and by `check_point` (which raises ConfigError); raises ConfigError naming the spec (or
    the point) that is bad."""
    if isinstance(grid, str):
        grid = [grid]
    if isinstance(seeds, bool) or not isinstance(seeds, (int, np.integer)) or seeds < 1:
        raise ConfigError(f"--seeds must be an integer >= 1, got {seeds!r}")
    seeds = int(seeds)
    axes: list[Axis] = []
    for spec in grid:
        axis = parse_spec(spec, schema)
        for other in axes:
            if other.key == axis.key:
                raise ConfigError(
                    f"--grid {spec!r}: {axis.key} is already swept by --grid {other.spec!r}"
                )
        axes.append(axis)
    if seeds > 1 and any(a.key == "train.seed" for a in axes):
        raise ConfigError(
            f"--seeds {seeds} cannot be combined with a grid over train.seed; use one of them"
        )
    last_seed, max_seed = base.train.seed + seeds - 1, int(schema.key_range("train.seed")[1])
    if seeds > 1 and last_seed > max_seed:
        raise ConfigError(
            f"--seeds {seeds} from train.seed = {base.train.seed} reaches train.seed = {last_seed}, "
            f"out of range; train.seed is an integer in [0, {max_seed}]"
        )
    sources = ", ".join([f"--grid {a.spec!r}" for a in axes] + ([f"--seeds {seeds}"] if seeds > 1 else []))
    points, configs = [], []
    for values in itertools.product(*(a.values for a in axes)):
        point = dict(zip((a.key for a in axes), values))
        for offset in range(seeds):
            overrides = dict(point)
            if seeds > 1:
                overrides["train.seed"] = base.train.seed + offset
            try:
                config = schema.with_values(base, overrides, checked=True)  # parse_spec checked each value
                if check_point is not None:
                    check_point(config)
            except ConfigError as err:
                where = ", ".join(f"{k}={v!r}" for k, v in overrides.items()) or "the base config"
                raise ConfigError(f"grid point {where} (from {sources or 'the base config'}): {err}") from None
            points.append(dict(point))
            configs.append(config)
    return Grid(tuple(axes), seeds, tuple(points), tuple(configs))
