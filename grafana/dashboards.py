"""The dashboards: one function per panel, rows as in the mining observability guide.

Every query names only metrics the services export (``crypto_mine.common.names.Metrics`` and
the id-allocator's and operator's own); the tests parse each one and run it on a Prometheus
scraping the real processes.
"""

from __future__ import annotations

from .model import Dashboard, Panel, Row, Target, stat, table, timeseries

CLICK_ROUTES = 'route=~"/api/mining/.*"'
QUEUE_ALERT_DEPTH = 4000.0


# Mining: overview


def click_requests_by_status() -> Panel:
    return timeseries(
        "Click requests by status",
        "POST /api/mining/click answers per second, stacked by HTTP status (202 queued, "
        "200 replay, 429 throttled, 503 backpressure).",
        Target("sum by (status) (rate(mining_click_requests_total[5m]))", "{{status}}"),
        unit="reqps",
        stacked=True,
        bars=True,
    )


def mining_latency_p95() -> Panel:
    return timeseries(
        "Mining API latency p95",
        "95th percentile of the /api/mining/* routes, all together and by route.",
        Target(
            "histogram_quantile(0.95, sum by (le) "
            f"(rate(http_request_duration_seconds_bucket{{{CLICK_ROUTES}}}[5m])))",
            "all mining routes",
        ),
        Target(
            "histogram_quantile(0.95, sum by (le, route) "
            f"(rate(http_request_duration_seconds_bucket{{{CLICK_ROUTES}}}[5m])))",
            "{{route}}",
        ),
        unit="s",
    )


def throttled_share() -> Panel:
    return stat(
        "Throttled clicks (5m)",
        "Share of click requests answered 429; MiningApi429Spike fires above 5 %.",
        Target(
            'sum(rate(mining_click_requests_total{status="429"}[5m]) or vector(0)) '
            "/ sum(rate(mining_click_requests_total[5m]))"
        ),
        unit="percentunit",
        thresholds=(("green", None), ("orange", 0.02), ("red", 0.05)),
        width=8,
    )


# Mining: queue health


def queue_depth() -> Panel:
    return timeseries(
        "Queue depth (clicks)",
        "Clicks accepted and not yet applied. The line marks 4,000; MiningQueueBackpressure "
        "fires above 4,500 and the api answers 503 at MINING_QUEUE_MAX_DEPTH.",
        Target("sum(mining_click_queue_depth)", "clicks waiting"),
        thresholds=(("green", None), ("red", QUEUE_ALERT_DEPTH)),
    )


def worker_lag() -> Panel:
    return timeseries(
        "Worker lag",
        "Age of the oldest job waiting in the queue (mining_worker_lag_seconds).",
        Target("max(mining_worker_lag_seconds)", "oldest job"),
        unit="s",
        thresholds=(("green", None), ("red", 60.0)),
    )


def batch_timing() -> Panel:
    return timeseries(
        "Batch wait and duration p95",
        "Time from enqueue to the start of a batch, and time to apply it.",
        Target(
            "histogram_quantile(0.95, sum by (le) "
            "(rate(mining_worker_job_lag_seconds_bucket[5m])))",
            "wait p95",
        ),
        Target(
            "histogram_quantile(0.95, sum by (le) "
            "(rate(mining_worker_batch_duration_seconds_bucket[5m])))",
            "apply p95",
        ),
        unit="s",
    )


# Mining: success vs failure


def worker_success_rate() -> Panel:
    return stat(
        "Worker success rate (5m)",
        "Applied clicks over applied plus failed clicks.",
        Target(
            "sum(rate(mining_worker_processed_total[5m])) / (sum(rate(mining_worker_processed_total"
            "[5m])) + (sum(rate(mining_worker_failed_total[5m])) or vector(0)))"
        ),
        unit="percentunit",
        thresholds=(("red", None), ("orange", 0.95), ("green", 0.99)),
    )


def applied_vs_failed() -> Panel:
    return timeseries(
        "Clicks applied, duplicate and failed",
        "Worker outcomes per second; duplicates were applied by an earlier batch.",
        Target("sum(rate(mining_worker_processed_total[5m]))", "applied"),
        Target("sum(rate(mining_worker_duplicates_total[5m]))", "duplicate"),
        Target("sum(rate(mining_worker_failed_total[5m])) or vector(0)", "failed"),
        unit="ops",
        width=10,
    )


def failure_reasons() -> Panel:
    return table(
        "Top failure reasons (1h)",
        "Failed clicks of the last hour by error code; dead letters: make queue.",
        Target(
            "topk(10, sum by (error_code) (increase(mining_worker_failed_total[1h])))",
            instant=True,
        ),
        width=8,
    )


# Mining: Redis performance


def redis_latency_p95() -> Panel:
    return timeseries(
        "Redis latency p95 by operation",
        "redis_latency_ms: admit = the api's admission script, complete = the worker's outcome "
        "script.",
        Target(
            "histogram_quantile(0.95, sum by (le, operation) (rate(redis_latency_ms_bucket[5m])))",
            "{{operation}}",
        ),
        unit="ms",
        width=12,
    )


def redis_calls() -> Panel:
    return timeseries(
        "Redis script calls",
        "Calls per second by operation; one admission call carries many clicks.",
        Target("sum by (operation) (rate(redis_latency_ms_count[5m]))", "{{operation}}"),
        unit="ops",
        width=12,
    )


# id-allocator


def ids_issued() -> Panel:
    return timeseries(
        "Ids issued",
        "User ids handed out per second, by mode.",
        Target("sum by (mode) (rate(id_allocator_ids_issued_total[5m]))", "{{mode}}"),
        unit="ops",
    )


def allocator_requests() -> Panel:
    return timeseries(
        "Requests by outcome",
        "POST /v1/ids per second: ok, bad_request, unavailable, error.",
        Target("sum by (outcome) (rate(id_allocator_requests_total[5m]))", "{{outcome}}"),
        unit="reqps",
        stacked=True,
    )


def allocator_errors() -> Panel:
    return timeseries(
        "MongoDB errors by kind",
        "Failed MongoDB attempts and given-up reservations.",
        Target("sum by (kind) (rate(id_allocator_errors_total[5m])) or vector(0)", "{{kind}}"),
        unit="ops",
    )


def segment_fetches() -> Panel:
    return timeseries(
        "Segment fetches",
        "Ranges reserved in MongoDB per second, by trigger (prefetch, demand, strict).",
        Target("sum by (trigger) (rate(id_allocator_segment_fetches_total[5m]))", "{{trigger}}"),
        unit="ops",
    )


def fetch_latency() -> Panel:
    return timeseries(
        "Reservation and wait p95",
        "Time to reserve a range in MongoDB, and time a request waited for one.",
        Target(
            "histogram_quantile(0.95, sum by (le) "
            "(rate(id_allocator_fetch_duration_seconds_bucket[5m])))",
            "reserve p95",
        ),
        Target(
            "histogram_quantile(0.95, sum by (le) "
            "(rate(id_allocator_allocate_wait_seconds_bucket[5m])))",
            "wait p95",
        ),
        unit="s",
    )


def buffered_ids() -> Panel:
    return timeseries(
        "Buffered ids and segment size",
        "Ids reserved and not yet handed out (all replicas), and the next segment's size.",
        Target("sum(id_allocator_buffer_remaining_ids)", "buffered"),
        Target("max(id_allocator_segment_size)", "segment size"),
    )


# operator


def operator_replicas() -> Panel:
    return timeseries(
        "Desired and current replicas",
        "What each QueueAutoscaler decided, and what its target had when last read.",
        Target(
            "max by (namespace, name) (crypto_mine_operator_desired_replicas)", "desired {{name}}"
        ),
        Target(
            "max by (namespace, name) (crypto_mine_operator_current_replicas)", "current {{name}}"
        ),
        width=12,
    )


def operator_metric_value() -> Panel:
    return timeseries(
        "Queue depth read",
        "The queue depth each QueueAutoscaler last read.",
        Target("max by (namespace, name) (crypto_mine_operator_metric_value)", "{{name}}"),
        width=12,
    )


def operator_rescales() -> Panel:
    return timeseries(
        "Rescales",
        "Rescales of the targets per hour, by direction.",
        Target(
            "sum by (namespace, name, direction) (increase(crypto_mine_operator_scale_total[1h]))",
            "{{name}} {{direction}}",
        ),
    )


def operator_metric_errors() -> Panel:
    return timeseries(
        "Metric read errors",
        "Failed readings of the queue depth per second (MiningOperatorMetricErrors).",
        Target(
            "sum by (namespace, name, source) (rate(crypto_mine_operator_metric_errors_total[5m]))",
            "{{name}} {{source}}",
        ),
        unit="ops",
    )


def operator_scale_errors() -> Panel:
    return timeseries(
        "Scale errors",
        "Failed reads or writes of the target's scale per second (MiningOperatorScaleErrors).",
        Target(
            "sum by (namespace, name) (rate(crypto_mine_operator_scale_errors_total[5m]))",
            "{{name}}",
        ),
        unit="ops",
    )


def mining() -> Dashboard:
    return Dashboard(
        uid="crypto-mine-mining",
        title="crypto-mine / Mining clicks",
        description="Click API, queue, worker outcomes and Redis latency.",
        rows=(
            Row("Overview", (click_requests_by_status(), mining_latency_p95(), throttled_share())),
            Row("Queue health", (queue_depth(), worker_lag(), batch_timing())),
            Row(
                "Success vs failure",
                (worker_success_rate(), applied_vs_failed(), failure_reasons()),
            ),
            Row("Redis performance", (redis_latency_p95(), redis_calls())),
        ),
    )


def id_allocator() -> Dashboard:
    return Dashboard(
        uid="crypto-mine-id-allocator",
        title="crypto-mine / id-allocator",
        description="User ids handed out, MongoDB reservations and errors.",
        rows=(
            Row("Requests", (ids_issued(), allocator_requests(), allocator_errors())),
            Row("Segments", (segment_fetches(), fetch_latency(), buffered_ids())),
        ),
    )


def operator() -> Dashboard:
    return Dashboard(
        uid="crypto-mine-operator",
        title="crypto-mine / QueueAutoscaler operator",
        description="Decisions, readings and errors of the QueueAutoscalers.",
        rows=(
            Row("Scaling", (operator_replicas(), operator_metric_value())),
            Row("Errors", (operator_rescales(), operator_metric_errors(), operator_scale_errors())),
        ),
    )


DASHBOARDS = {"mining": mining, "id-allocator": id_allocator, "operator": operator}
