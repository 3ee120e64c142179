"""How the collections split across a sharded MongoDB cluster (README, "Capacity").

One replica set carries the clicks of one Redis primary and more (README's table); at 100k
clicks/s MongoDB is a sharded cluster, and each collection that grows with clicks or users has
a shard key that every query of the click path names, so that ``mongos`` sends it to the shards
holding its documents instead of to all of them:

- ``clicks``: ranged on ``(user, key)``. The unique index of (user, key) that the ledger
  creates is this key's own index, so it stays unique across the cluster (a unique index must
  have the shard key as its prefix). Every read of clicks names its users (``user: {$in}``)
  beside the ``_id``s it wants.
- ``balances`` and ``batches``: hashed on ``_id`` (the user id; the job id), which every read
  and write names. The marks' sweep (``Ledger.sweep``) reads balances in ``_id`` order and goes
  to every shard: a background read of ``limit`` documents a period, not on the click path.
- ``users`` and ``counters`` stay unsharded on the primary shard: one document per user (and
  a unique index of usernames, which a sharded collection could keep only with the username as
  its shard key) and one per counter; sign-ups are rare next to clicks.

``python -m crypto_mine.pipeline.mongo_shards DB`` prints the ``mongosh`` commands.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

from crypto_mine.common.names import Collections


@dataclass(frozen=True)
class ShardKey:
    collection: str
    key: dict[str, Any]  # {"field": 1} (ranged) or {"field": "hashed"}

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(self.key)

    def command(self, database: str) -> str:
        return f'sh.shardCollection("{database}.{self.collection}", {json.dumps(self.key)})'


SHARD_KEYS = (
    ShardKey(Collections.clicks, {"user": 1, "key": 1}),
    ShardKey(Collections.balances, {"_id": "hashed"}),
    ShardKey(Collections.batches, {"_id": "hashed"}),
)
UNSHARDED = (Collections.users, Collections.counters)


def commands(database: str) -> list[str]:
    return [f'sh.enableSharding("{database}")'] + [key.command(database) for key in SHARD_KEYS]


if __name__ == "__main__":
    print("\n".join(commands(sys.argv[1] if len(sys.argv) > 1 else "crypto_mine")))
