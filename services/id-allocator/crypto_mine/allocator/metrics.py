"""The allocator's Prometheus metrics: ``id_allocator_*``, and two under the user-id guide's
names (``user_id_generation_total``, ``user_id_generation_errors_total``) so that its alerts
read them."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ids_issued = Counter("id_allocator_ids_issued", "Ids handed out to clients.", ["mode"])
requests = Counter(
    "id_allocator_requests",
    "POST /v1/ids requests by outcome (ok, bad_request, unauthorized, unavailable, error).",
    ["outcome"],
)
segment_fetches = Counter(
    "id_allocator_segment_fetches",
    "Ranges reserved in MongoDB by what triggered them (prefetch, demand, strict).",
    ["trigger"],
)
fetch_duration = Histogram(
    "id_allocator_fetch_duration_seconds",
    "Time to reserve one range in MongoDB, retries included.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
allocate_wait = Histogram(
    "id_allocator_allocate_wait_seconds",
    "Time a request waited for MongoDB before getting its ids (0 when served from the buffer).",
    buckets=(0.0, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0),
)
waits = Counter(
    "id_allocator_buffer_waits",
    "Segment-mode requests that found the buffer too small and waited for a fetch.",
)
buffer_remaining = Gauge(
    "id_allocator_buffer_remaining_ids",
    "Ids reserved by this replica and not yet handed out (current + prefetched segments).",
    multiprocess_mode="livesum",
)
segment_size = Gauge(
    "id_allocator_segment_size",
    "Size of the next segment this replica will reserve.",
    multiprocess_mode="livemax",
)
conflicts = Counter(
    "id_allocator_strict_conflicts",
    "Strict-mode compare-and-set writes that found the counter moved by another replica.",
)
errors = Counter(
    "id_allocator_errors",
    "Failed MongoDB attempts, given-up reservations and possibly lost ranges by kind.",
    ["kind"],
)

# The user-id guide's names. Generated: every id handed out (POST /v1/ids and the /health test
# id); errors: every generation that failed (its caller got no id).
generated = Counter("user_id_generation", "User ids generated (the user-id guide's name).")
generation_errors = Counter(
    "user_id_generation_errors",
    "User id generations that failed: the caller got no id (the user-id guide's name).",
)
