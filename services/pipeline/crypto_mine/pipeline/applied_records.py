"""Applied clicks as MongoDB keeps them, answered like their Redis records once those are gone.

Redis keeps a click's record while the click waits and for the window after it completed
(``records.py``); MongoDB keeps every applied click for good (``ledger.py``): its document,
whose ``_id`` is :func:`~crypto_mine.pipeline.ledger.click_id` of (user, key), and its batch's
marker, with the user's balance right after the batch. Beyond the window these two reads give
the same record the worker wrote: ``completed``, the clicks, the reward, the accepted and
applied times, and the balance (``None`` once the marker expired, ``JOB_FAILURE_TTL`` + 1 day
after the batch, or for a batch applied by an earlier version, which kept no balances).

The api runs these queries (``crypto_mine.api.admission.applied``); both read by ``_id``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .ledger import Pair, stored_ms
from .records import COMPLETED, ClickRecord

Document = dict[str, Any]

CLICK_FIELDS = {
    "user": 1,
    "key": 1,
    "clicks": 1,
    "reward": 1,
    "batch": 1,
    "acceptedAt": 1,
    "appliedAt": 1,
}
MARKER_FIELDS = {"balances": 1}


def markers_filter(clicks: Iterable[Document]) -> Document:
    """The markers of the batches that applied ``clicks``, by ``_id``."""
    return {"_id": {"$in": sorted({str(doc["batch"]) for doc in clicks})}}


def records(clicks: Iterable[Document], markers: Iterable[Document]) -> dict[Pair, ClickRecord]:
    """The completed record of every click document, by (user, key)."""
    balances: dict[tuple[str, str], int] = {}
    for marker in markers:
        for user, balance in marker.get("balances") or []:
            balances[(str(marker["_id"]), str(user))] = int(balance)
    found = {}
    for doc in clicks:
        user, key = str(doc["user"]), str(doc["key"])
        found[(user, key)] = ClickRecord(
            key=key,
            state=COMPLETED,
            clicks=int(doc["clicks"]),
            accepted_ms=stored_ms(doc.get("acceptedAt")),
            reward=int(doc["reward"]),
            balance=balances.get((str(doc["batch"]), user)),
            applied_ms=stored_ms(doc.get("appliedAt")) or None,
        )
    return found
