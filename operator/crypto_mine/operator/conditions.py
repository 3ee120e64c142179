"""Status conditions in the HorizontalPodAutoscaler's vocabulary.

- ``AbleToScale``: the target's scale can be read and written.
- ``ScalingActive``: the spec is valid, not paused, and the metric can be read.
- ``ScalingLimited``: the desired count was held back by [min, max] or by maxStepPods.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ABLE_TO_SCALE = "AbleToScale"
SCALING_ACTIVE = "ScalingActive"
SCALING_LIMITED = "ScalingLimited"
ORDER = (ABLE_TO_SCALE, SCALING_ACTIVE, SCALING_LIMITED)


@dataclass(frozen=True)
class Condition:
    type: str
    status: bool
    reason: str
    message: str


def merge(
    previous: Iterable[Mapping[str, Any]], current: Sequence[Condition], now: str
) -> list[dict[str, Any]]:
    """The conditions to store: ``lastTransitionTime`` moves only when a status flips.

    Condition types not in ``current`` keep their previous entry.
    """
    old = {str(c.get("type")): dict(c) for c in previous if isinstance(c, Mapping)}
    for condition in current:
        status = "True" if condition.status else "False"
        before = old.get(condition.type, {})
        since = before.get("lastTransitionTime") if before.get("status") == status else None
        old[condition.type] = {
            "type": condition.type,
            "status": status,
            "reason": condition.reason,
            "message": condition.message,
            "lastTransitionTime": since or now,
        }
    return [old[t] for t in ORDER if t in old]


def changed(previous: Iterable[Mapping[str, Any]], condition: Condition) -> bool:
    """Whether ``condition`` differs in status or reason from the stored one."""
    status = "True" if condition.status else "False"
    for stored in previous:
        if isinstance(stored, Mapping) and stored.get("type") == condition.type:
            return bool(stored.get("status") != status or stored.get("reason") != condition.reason)
    return True
