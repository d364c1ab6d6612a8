"""How a build's nodes map onto a scheduler's tasks; pure."""

from __future__ import annotations

import enum


class ExecutionMode(enum.Enum):
    """PER_NODE: one task per node. PER_WAVE: one task per batch of ready nodes."""

    PER_NODE = "per_node"
    PER_WAVE = "per_wave"
