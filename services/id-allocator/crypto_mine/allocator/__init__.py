"""crypto-mine id-allocator: unique numeric user ids from one MongoDB counter document.

Guarantees
----------
Unique, always: every id handed out lies in a range that one atomic ``$inc`` on the counter
document reserved (``find_one_and_update`` returning the document after the update). MongoDB
applies single-document updates atomically, so no two reservations, by any replica, before or
after any restart, ever overlap; the counter only grows (as long as nobody deletes or lowers
the counter document by hand).

Segment mode (default): each replica reserves segments ahead and refills in the background.
Ids are unique but neither gap-free nor ordered across replicas (each replica's ids increase).
Whatever a replica has reserved and not handed out when it stops or dies -- the rest of its
current segment and any prefetched one, less than (1 + ID_PREFETCH_THRESHOLD) segments plus one
segment of slack after a large request -- is never handed out: a gap.

Strict mode: each request reserves exactly its ``count`` ids with one ``$inc`` of ``count``;
nothing is reserved ahead, so the ids form one sequence ordered by MongoDB's commit order across
all replicas, without gaps, except for a reservation that committed while its reply was lost
(the replica died mid-request, or a timed-out try was retried): its range is never handed out.
"""
