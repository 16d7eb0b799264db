"""The toy's sweep grids: `cpi.core.grid` over the toy's config schema, every point's
vocabulary checked (`cpi.sims.world.check_vocabulary`)."""

from __future__ import annotations

from cpi.core import grid as core_grid
from cpi.core.grid import SIGNIFICANT_DIGITS, Axis, Grid  # noqa: F401  (the toy's grid API)

from . import config as cfg
from .config import Config
from .schema import Schema
from .world import check_vocabulary


def parse_spec(spec: str, schema: Schema = cfg.SCHEMA) -> Axis:
    """One `section.key=start:stop:num` or `section.key=v1,v2,...` spec over the keys of
    `schema` (the toy's config unless given); ConfigError naming the spec otherwise."""
    return core_grid.parse_spec(spec, schema)


def expand_grid(base: Config, grid: list[str] | tuple[str, ...] = (), seeds: int = 1) -> Grid:
    """Every point of the grid over the toy's keys (Cartesian product of the specs, then the
    seeds), each a validated config; raises ConfigError naming the spec (or the point) that
    is bad."""
    return core_grid.expand_grid(base, grid, seeds, schema=cfg.SCHEMA, check_point=check_vocabulary)
