"""Every subclass of the library's error root, in every module, pickles intact.

The classes are found by importing every module of the package and walking
``OrchestrationError.__subclasses__()``, so an error added anywhere later is
covered without editing this file: each attrs field gets a sample value from
its annotation (an unknown annotation fails here, naming what to add).
"""

from __future__ import annotations

import importlib
import pickle
import pkgutil
from pathlib import Path
from typing import Any

import attrs
import pytest

import prefect_dbt_orchestrator
from prefect_dbt_orchestrator.domain.errors import OrchestrationError

SAMPLES: dict[str, object] = {
    "str": "model.proj.a",
    "Path": Path("/projects/proj"),
    "tuple[str, ...]": ("model.proj.a", "model.proj.b"),
    "int": 3,
    "dict[str, dict[str, object]]": {"model.proj.a": {"status": "error"}},
}


def _every_module() -> list[str]:
    root = prefect_dbt_orchestrator
    return [m.name for m in pkgutil.walk_packages(root.__path__, f"{root.__name__}.")]


def _every_error_class() -> list[type[OrchestrationError]]:
    for name in _every_module():
        importlib.import_module(name)
    found: set[type[OrchestrationError]] = set()
    todo: list[type[OrchestrationError]] = [OrchestrationError]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in found:
                found.add(sub)
                todo.append(sub)
    return sorted(found, key=lambda c: f"{c.__module__}.{c.__qualname__}")


CONCRETE = [c for c in _every_error_class() if attrs.has(c) and attrs.fields(c)]


def _example(kind: type[Any]) -> OrchestrationError:
    values = []
    for field in attrs.fields(kind):
        annotation = str(field.type)
        assert annotation in SAMPLES, f"add a sample value for {annotation!r} ({kind})"
        values.append(SAMPLES[annotation])
    error: OrchestrationError = kind(*values)
    return error


def test_the_walk_finds_errors_of_the_domain_ports_and_adapters() -> None:
    modules = {c.__module__.split(".")[1] for c in CONCRETE}

    assert modules == {"domain", "ports", "adapters"}
    assert len(CONCRETE) >= 20


@pytest.mark.parametrize("kind", CONCRETE, ids=[c.__qualname__ for c in CONCRETE])
def test_every_error_subclass_pickles_to_an_equal_error_with_the_same_message(
    kind: type[OrchestrationError],
) -> None:
    error = _example(kind)

    copy = pickle.loads(pickle.dumps(error))

    assert type(copy) is kind
    assert copy == error
    assert str(copy) == str(error)
    assert str(error).strip()
