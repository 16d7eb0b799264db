"""The data groups are named once (`cpi.theory.groups`): theory, the simulator, the
transformer bridge and the experiments read them from there."""

import ast
import pathlib

import numpy as np
import pytest

import cpi.bridge.corpus
import cpi.sims.world
from cpi.sims.config import load, with_values
from cpi.sims.metrics import group_metric_names, metric_names
from cpi.sims.train import absent_metrics
from cpi.sims.world import build_world
from cpi.theory.groups import (
    CONTEXT_GROUPS,
    CONTEXT_INDICES,
    CONTEXT_MASK,
    GROUPS,
    TRAINING_GROUPS,
    has_context,
    theory_indices,
    training_index,
)

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_one_enumeration():
    assert cpi.sims.world.GROUPS is TRAINING_GROUPS  # the name cpi imports is the same tuple
    assert cpi.bridge.corpus.GROUPS is TRAINING_GROUPS  # the transformer's finetuning groups too
    assert [GROUPS[i] for i in CONTEXT_INDICES] == list(CONTEXT_GROUPS)
    assert CONTEXT_MASK.tolist() == [True, True, True, False, False]
    assert [has_context(g) for g in TRAINING_GROUPS] == [True, True, True, False]
    with pytest.raises(ValueError, match="unknown group 'X'"):
        has_context("X")


LIBRARY = ("core", "theory", "sims", "bridge", "experiments", "figures", "cpi")
"""Every folder of the installed package `cpi`."""


def test_no_module_defines_the_group_names_again():
    """No tuple or list literal of the group names in any module of the package but
    theory/groups.py: the toy, the transformer and the experiments read them from there."""
    definitions = {GROUPS, TRAINING_GROUPS, CONTEXT_GROUPS}
    found, scanned = [], set()
    for folder in LIBRARY:
        for path in (ROOT / folder).rglob("*.py"):
            scanned.add(path.relative_to(ROOT).as_posix())
            if path == ROOT / "theory" / "groups.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.Tuple, ast.List)) and all(isinstance(e, ast.Constant) for e in node.elts) \
                        and tuple(e.value for e in node.elts) in definitions:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert {"bridge/corpus.py", "core/store.py", "cpi/commands/sweep.py", "sims/world.py"} <= scanned
    assert not found


def test_theory_groups_of_training_points():
    config = with_values(load(), {"mixture.context_critical": 0.3, "mixture.counterfactual": 0.1,
                                  "mixture.fact_recall": 0.2, "mixture.fact_recall_seen": 0.5})
    train = build_world(config).train
    kind = theory_indices(train.group, train.fact)
    names = [GROUPS[k] for k in kind]
    for name, group, fact in zip(names, train.group, train.fact):
        if TRAINING_GROUPS[group] == "S":
            assert name == ("S_seen" if fact >= 0 else "S_unseen")
        else:
            assert name == TRAINING_GROUPS[group]
    assert set(names) == set(GROUPS)


def test_absent_groups_drop_exactly_their_metrics():
    config = with_values(load(), {"mixture.context_critical": 1.0})
    world = build_world(config)
    assert set(np.unique(world.train.group)) == {training_index("C")}
    absent = absent_metrics(world)
    expected = {name for g in ("CS", "CF", "S") for name in group_metric_names(g)}
    assert expected <= absent and not absent - expected - {k for k in metric_names(1) if k.startswith("aligned_")}
    assert "attention_context_S" not in metric_names(1) and "neg_grad_theta_c_S" in absent
