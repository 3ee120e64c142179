"""crypto-mine id-allocator: unique numeric user ids from one MongoDB counter document.

Guarantees
----------
Unique, always: every id handed out lies in a range ``[L + 1, L + n]`` that one atomic
single-document write moved the counter's ``last_id`` across, from ``L`` to ``L + n`` (see
:mod:`.counter`). ``last_id`` only grows, so no two reservations, by any replica, before or after
any restart, ever overlap (as long as nobody deletes or lowers the counter document by hand).

Segment mode (default): each replica reserves segments ahead with ``$inc`` and refills in the
background. Ids are unique but neither gap-free nor ordered across replicas (each replica's ids
increase). Whatever a replica has reserved and not handed out when it stops or dies -- the rest
of its current segment and any prefetched one, less than (1 + ID_PREFETCH_THRESHOLD) segments
plus one segment of slack after a large request -- is never handed out: a gap. So is the first
range of a retried ``$inc`` whose answer was lost.

Strict mode: nothing is reserved ahead; each claim reserves exactly the ids of the requests
waiting for it with a compare-and-set that also records, under the process's own key in the
counter document, which claim it is -- so that a try whose answer was lost is confirmed, not
repeated. The ids of all replicas form one sequence in MongoDB's commit order without gaps,
except (see :mod:`.strict`) the ids of requests in flight in a process that dies, and of a claim
that gave up after a lost answer (logged and counted as
``id_allocator_errors_total{kind="unresolved"}``).
"""
