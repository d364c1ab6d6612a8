"""The library's error hierarchy; pure, no I/O.

Every error is an ``attrs`` frozen class with positional fields and a
``__str__`` that names the problem and the fix, so errors pickle cleanly
across process pools and never repeat their own text.

::

    OrchestrationError                      root of everything we raise
    ├── PlanError (ValueError)              bad input, raised before anything runs
    │   ├── ManifestError                   manifest.json cannot be used
    │   │   ├── ManifestMalformedError      not JSON / wrong shape
    │   │   ├── ManifestKeyError            a required key is missing
    │   │   └── ManifestVersionError        schema version unsupported
    │   ├── CycleError                      nodes depend on each other in a loop
    │   ├── OptionsConflictError            options that cannot go together
    │   └── UnknownNodeError                a unique_id that is not in the manifest/plan
    ├── ScheduleError (RuntimeError)        a driver fed the schedule out of order
    ├── DbtBuildFailed (RuntimeError)       nodes failed; carries every result
    ├── BuildInterrupted (RuntimeError)     stopped before every node ran; carries every result
    └── SchedulerUnavailable (RuntimeError) the scheduler's API (Prefect) does not answer

Port-specific errors (``ExecutorUnavailable``...) live beside their port.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

SUPPORTED_SCHEMA_VERSIONS = (10, 11, 12)


class OrchestrationError(Exception):
    """Root of every error this library raises.

    attrs gives exception classes identity equality; errors here compare by
    type and fields instead, so one that crossed a process boundary (pickled)
    still equals the original.
    """

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.args == getattr(other, "args", None)

    def __hash__(self) -> int:
        return hash((type(self), self.args))

    def __reduce__(self) -> tuple[Any, ...]:
        """Rebuilt from its fields (``args``): never by setting attributes on a
        frozen instance, which is how a generic exception pickler (tblib, used
        by Dask and Prefect's process pool) would rebuild it otherwise."""
        return (type(self), self.args)


class PlanError(OrchestrationError, ValueError):
    """The request cannot be planned; the message says how to fix it."""


class ManifestError(PlanError):
    """The manifest cannot be used."""


@attrs.frozen
class ManifestMalformedError(ManifestError):
    """The manifest is not a JSON object of the expected shape."""

    source: str
    problem: str

    def __str__(self) -> str:
        return (
            f"{self.source} is not a valid dbt manifest: {self.problem}; "
            "regenerate it with `dbt parse`"
        )


@attrs.frozen
class ManifestKeyError(ManifestError):
    """A key dbt always writes is missing from the manifest."""

    source: str
    key: str

    def __str__(self) -> str:
        return (
            f"{self.source} is missing the required key {self.key}; the file is truncated "
            "or was not written by dbt: regenerate it with `dbt parse`"
        )


@attrs.frozen
class ManifestVersionError(ManifestError):
    """The manifest's schema version is outside what this library reads."""

    source: str
    version: str

    def __str__(self) -> str:
        supported = ", ".join(f"v{v}" for v in SUPPORTED_SCHEMA_VERSIONS)
        return (
            f"{self.source} has manifest schema {self.version}; this library reads "
            f"{supported} (dbt 1.6 to 1.11): regenerate it with a dbt-core between 1.6 "
            "and 1.11 (`pip install 'dbt-core>=1.6,<1.12'` then `dbt parse`)"
        )


@attrs.frozen
class CycleError(PlanError):
    """The selected nodes depend on each other in a loop."""

    stuck: tuple[str, ...]

    def __str__(self) -> str:
        return (
            f"dependency cycle among {', '.join(self.stuck)}; "
            "remove one ref between them so the graph is acyclic"
        )


@attrs.frozen
class UnknownNodeError(PlanError):
    """A unique_id that the manifest (or the plan) does not hold."""

    unique_id: str
    where: str
    hint: str = "check the id with `dbt ls --output json`"

    def __str__(self) -> str:
        text = f"unknown node {self.unique_id!r}: it is not in the {self.where}"
        if self.hint:
            text += f"; {self.hint}"
        return text


@attrs.frozen
class ScheduleError(OrchestrationError, RuntimeError):
    """A driver completed a node that was not running, or completed it twice."""

    unique_id: str
    problem: str

    def __str__(self) -> str:
        return (
            f"cannot complete {self.unique_id}: {self.problem}; complete each node once, "
            "after ready() or a Progress returned it"
        )


def closest(name: str, candidates: Iterable[str], limit: int = 3) -> tuple[str, ...]:
    """Candidates that contain ``name``'s last dotted part, for "did you mean" hints."""
    tail = name.rsplit(".", 1)[-1].lower()
    if not tail:
        return ()
    hits = sorted(c for c in candidates if tail in c.lower())
    return tuple(hits[:limit])


@attrs.frozen(repr=False)
class DbtBuildFailed(OrchestrationError, RuntimeError):
    """Some nodes ended in error; ``results`` is the full result dict of the build."""

    results: dict[str, dict[str, object]]

    @property
    def failed(self) -> tuple[str, ...]:
        return tuple(uid for uid, r in sorted(self.results.items()) if r.get("status") == "error")

    def __str__(self) -> str:
        shown = ", ".join(self.failed[:5]) + (" ..." if len(self.failed) > 5 else "")
        return (
            f"{len(self.failed)} dbt node(s) failed: {shown}; see .results for every node, "
            "or pass raise_on_failure=False to get the results without raising"
        )

    def __repr__(self) -> str:
        # Prefect writes the repr of a flow's exception into its log: the
        # message, not the whole result dict.
        return f"DbtBuildFailed({str(self)!r})"


@attrs.frozen(repr=False)
class BuildInterrupted(OrchestrationError, RuntimeError):
    """The build was stopped (a signal, ``stop()``, its timeout) before every
    node ran; ``results`` holds every planned node, those that did not finish
    skipped with ``reason``. Raised after the summary and results were written.
    """

    results: dict[str, dict[str, object]]
    reason: str
    signal_number: int = 0

    @property
    def unfinished(self) -> tuple[str, ...]:
        return tuple(
            uid for uid, r in sorted(self.results.items()) if r.get("reason") == self.reason
        )

    def __str__(self) -> str:
        return (
            f"{self.reason}: {len(self.unfinished)} node(s) did not finish and are skipped; "
            "see .results for every node, and run the build again to finish it"
        )

    def __repr__(self) -> str:
        return f"BuildInterrupted({str(self)!r})"


@attrs.frozen
class SchedulerUnavailable(OrchestrationError, RuntimeError):
    """The scheduler's API (Prefect's) does not answer: ``where`` names it."""

    where: str
    problem: str

    def __str__(self) -> str:
        return (
            f"{self.where} {self.problem}; start it (`prefect server start`) or set "
            "PREFECT_API_URL to the /api URL of a server that runs (`prefect config view` "
            "shows the current one)"
        )


@attrs.frozen
class OptionsConflictError(PlanError):
    """Two orchestrator options that cannot be used together, or a bad value."""

    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.problem}; {self.fix}"
