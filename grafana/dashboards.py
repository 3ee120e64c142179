"""The dashboards, built with Grafana's foundation SDK, one function per panel. The mining
dashboard's rows: overview, queue health, success vs failure, Redis performance, then the SLO,
workers and data store rows.

Every query selects the release chosen by the ``namespace`` and ``release`` variables (the
release's full name: its jobs are ``<release>-api``, ``-worker``, ...) and uses
``$__rate_interval``. Queries name only metrics the services export, the chart's recording
rules, and, for replicas and pod resources, kube-state-metrics and cAdvisor (the kubelet's);
the tests parse each one and run it on a Prometheus scraping the real processes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import yaml
from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.builders.stat import Panel as Stat
from grafana_foundation_sdk.builders.table import Panel as Table
from grafana_foundation_sdk.builders.timeseries import Panel as Timeseries
from grafana_foundation_sdk.models.dashboard import VariableOption

from .panels import (
    DATASOURCE,
    new_dashboard,
    release_variables,
    series,
    stat_panel,
    table_panel,
    timeseries_panel,
)

API = series("api")
# The workers of every click shard: "<release>-worker", "<release>-worker-1", ...
WORKER = 'namespace="$namespace",job=~"$release-worker(-[0-9]+)?"'
IDS = series("id-allocator")
OPERATOR = series("operator")
SERVICES = 'namespace="$namespace",job=~"$release-(api|worker(-[0-9]+)?|id-allocator)"'
# The queue-wide gauges come from whichever api or worker pod holds the reporter lease; with
# click shards, one series per shard's queue (label queue).
QUEUE = 'namespace="$namespace",job=~"$release-(api|worker(-[0-9]+)?)"'
CLICK_ROUTES = f'{API},route=~"/api/mining/.*"'
CHART_VALUES = Path(__file__).resolve().parent.parent / "charts" / "crypto-mine" / "values.yaml"
RATE = "[$__rate_interval]"
Panel = Timeseries | Stat | Table


def queue_alert_depth(values: Path = CHART_VALUES) -> int:
    """MiningQueueBackpressure's threshold with the chart's default values, computed as
    files/prometheus/queue.yaml computes it: api.queueMaxDepth times
    monitoring.prometheusRule.thresholds.queueDepthRatio, rounded down."""
    loaded = yaml.safe_load(values.read_text())
    ratio = loaded["monitoring"]["prometheusRule"]["thresholds"]["queueDepthRatio"]
    return math.floor(float(loaded["api"]["queueMaxDepth"]) * float(ratio))


def period_variable() -> dashboard.CustomVariable:
    """The SLO period the error budget is counted over (monitoring.slo.period)."""
    return (
        dashboard.CustomVariable("period")
        .label("SLO period")
        .values("30d,28d,7d")
        .current(VariableOption(selected=True, text="30d", value="30d"))
    )


# SLO


def slo_budget_left() -> Panel:
    return stat_panel(
        "Error budget left",
        "Share of each objective's error budget not yet spent over the SLO period (averaged "
        "5-minute error ratios, crypto_mine_slo:* recording rules of the chart). Below 0: the "
        "objective is missed.",
        (
            f"1 - avg_over_time(crypto_mine_slo:sli_error:ratio_rate5m{{{API}}}[$period]) "
            f"/ crypto_mine_slo:error_budget:ratio{{{API}}}",
            "{{slo}}",
        ),
        unit="percentunit",
        steps=(("red", None), ("orange", 0.0), ("green", 0.25)),
        width=10,
    )


def slo_burn_rate() -> Panel:
    return timeseries_panel(
        "Burn rate",
        "How many times faster than the objective allows each error budget is spent, over 1 h "
        "and 5 min; the page alerts fire above 14.4 on both.",
        (
            f"crypto_mine_slo:sli_error:ratio_rate1h{{{API}}} "
            f"/ crypto_mine_slo:error_budget:ratio{{{API}}}",
            "{{slo}} 1h",
        ),
        (
            f"crypto_mine_slo:sli_error:ratio_rate5m{{{API}}} "
            f"/ crypto_mine_slo:error_budget:ratio{{{API}}}",
            "{{slo}} 5m",
        ),
        steps=(("green", None), ("red", 14.4)),
        width=14,
    )


# Overview


def click_requests_by_status() -> Panel:
    return timeseries_panel(
        "Click requests by status",
        "POST /api/mining/click answers per second, stacked by HTTP status (202 queued, "
        "200 replay, 429 throttled, 503 backpressure).",
        (f"sum by (status) (rate(mining_click_requests_total{{{API}}}{RATE}))", "{{status}}"),
        unit="reqps",
        stacked=True,
        bars=True,
    )


def mining_latency_p95() -> Panel:
    return timeseries_panel(
        "Mining API latency p95",
        "95th percentile of the /api/mining/* routes, all together and by route.",
        (
            "histogram_quantile(0.95, sum by (le) "
            f"(rate(http_request_duration_seconds_bucket{{{CLICK_ROUTES}}}{RATE})))",
            "all mining routes",
        ),
        (
            "histogram_quantile(0.95, sum by (le, route) "
            f"(rate(http_request_duration_seconds_bucket{{{CLICK_ROUTES}}}{RATE})))",
            "{{route}}",
        ),
        unit="s",
    )


def throttled_share() -> Panel:
    return stat_panel(
        "Throttled clicks",
        "Share of click requests answered 429; MiningApi429Spike fires above 5 %.",
        (
            f'sum(rate(mining_click_requests_total{{{API},status="429"}}{RATE}) or vector(0)) '
            f"/ sum(rate(mining_click_requests_total{{{API}}}{RATE}))",
            "throttled",
        ),
        unit="percentunit",
        steps=(("green", None), ("orange", 0.02), ("red", 0.05)),
        width=8,
    )


def answers_by_route() -> Panel:
    return timeseries_panel(
        "Answers by route and status",
        "Every api answer per second (http_requests_total), by route and status.",
        (
            f"sum by (route, status) (rate(http_requests_total{{{API}}}{RATE}))",
            "{{route}} {{status}}",
        ),
        unit="reqps",
        width=24,
    )


# Queue health


def queue_depth() -> Panel:
    depth = queue_alert_depth()
    return timeseries_panel(
        "Queue depth (clicks)",
        "Clicks accepted and not yet applied, one line per click shard's queue. The red line "
        f"marks {depth:,}, where MiningQueueBackpressure fires with the chart's default values "
        "(thresholds.queueDepthRatio of api.queueMaxDepth, where the api answers 503).",
        (f"max by (queue) (mining_click_queue_depth{{{QUEUE}}})", "clicks waiting"),
        steps=(("green", None), ("red", float(depth))),
    )


def worker_lag() -> Panel:
    return timeseries_panel(
        "Worker lag",
        "Age of the oldest job waiting in the queue (mining_worker_lag_seconds).",
        (f"max by (queue) (mining_worker_lag_seconds{{{QUEUE}}})", "oldest job"),
        unit="s",
        steps=(("green", None), ("red", 60.0)),
    )


def batch_timing() -> Panel:
    return timeseries_panel(
        "Batch wait and duration p95",
        "Time from enqueue to the start of a batch, and time to apply it.",
        (
            "histogram_quantile(0.95, sum by (le) "
            f"(rate(mining_worker_job_lag_seconds_bucket{{{WORKER}}}{RATE})))",
            "wait p95",
        ),
        (
            "histogram_quantile(0.95, sum by (le) "
            f"(rate(mining_worker_batch_duration_seconds_bucket{{{WORKER}}}{RATE})))",
            "apply p95",
        ),
        unit="s",
    )


# Success vs failure


def worker_success_rate() -> Panel:
    return stat_panel(
        "Worker success rate",
        "Applied clicks over applied plus failed clicks.",
        (
            f"sum(rate(mining_worker_processed_total{{{WORKER}}}{RATE})) / "
            f"(sum(rate(mining_worker_processed_total{{{WORKER}}}{RATE})) + "
            f"(sum(rate(mining_worker_failed_total{{{WORKER}}}{RATE})) or vector(0)))",
            "success",
        ),
        unit="percentunit",
        steps=(("red", None), ("orange", 0.95), ("green", 0.99)),
    )


def applied_vs_failed() -> Panel:
    return timeseries_panel(
        "Clicks applied, duplicate and failed",
        "Worker outcomes per second; duplicates were applied by an earlier batch.",
        (f"sum(rate(mining_worker_processed_total{{{WORKER}}}{RATE}))", "applied"),
        (f"sum(rate(mining_worker_duplicates_total{{{WORKER}}}{RATE}))", "duplicate"),
        (f"sum(rate(mining_worker_failed_total{{{WORKER}}}{RATE})) or vector(0)", "failed"),
        unit="ops",
        width=10,
    )


def failure_reasons() -> Panel:
    return table_panel(
        "Top failure reasons (1h)",
        "Failed clicks of the last hour by error code; dead letters: crypto-mine-queue.",
        f"topk(10, sum by (error_code) (increase(mining_worker_failed_total{{{WORKER}}}[1h])))",
        width=8,
    )


def dead_letters() -> Panel:
    return timeseries_panel(
        "Dead letters",
        "Jobs in the dead-letter registry (MiningDeadLettersGrowing when it grows).",
        (f"max by (queue) (mining_queue_dead_letters{{{QUEUE}}})", "dead letters"),
        width=24,
    )


# Redis and MongoDB


def redis_latency_p95() -> Panel:
    return timeseries_panel(
        "Redis latency p95 by operation",
        "redis_latency_ms: admit = the api's admission script, complete = the worker's outcome "
        "script.",
        (
            "histogram_quantile(0.95, sum by (le, operation) "
            f"(rate(redis_latency_ms_bucket{{{SERVICES}}}{RATE})))",
            "{{operation}}",
        ),
        unit="ms",
    )


def redis_calls() -> Panel:
    return timeseries_panel(
        "Redis script calls",
        "Calls per second by operation; one admission call carries many clicks.",
        (
            f"sum by (operation) (rate(redis_latency_ms_count{{{SERVICES}}}{RATE}))",
            "{{operation}}",
        ),
        unit="ops",
    )


def status_cache_hits() -> Panel:
    return timeseries_panel(
        "Status cache hit rate",
        "Balance reads answered from Redis; MiningStatusCacheHitRateLow fires below 70 %.",
        (
            f'sum(rate(mining_status_cache_requests_total{{{API},result="hit"}}{RATE})) '
            f"/ sum(rate(mining_status_cache_requests_total{{{API}}}{RATE}))",
            "hits",
        ),
        unit="percentunit",
        steps=(("red", None), ("green", 0.7)),
    )


def mongo_latency_p99() -> Panel:
    return timeseries_panel(
        "MongoDB commands p99",
        "The driver's command timings (pymongo's monitoring hooks), by service and command.",
        (
            "histogram_quantile(0.99, sum by (le, job, command) "
            f"(rate(mongodb_client_command_duration_seconds_bucket{{{SERVICES}}}{RATE})))",
            "{{job}} {{command}}",
        ),
        unit="s",
    )


def mongo_pool() -> Panel:
    return timeseries_panel(
        "MongoDB pool use",
        "Pooled connections in use over the pool's size (DB_MAX_POOL_SIZE), per process "
        "group; MiningMongoPoolExhausted fires at 90 %.",
        (
            f"sum by (job) (mongodb_client_pool_connections_in_use{{{SERVICES}}}) "
            f"/ sum by (job) (mongodb_client_pool_max_connections{{{SERVICES}}})",
            "{{job}}",
        ),
        unit="percentunit",
        steps=(("green", None), ("red", 0.9)),
    )


def mongo_writable() -> Panel:
    return timeseries_panel(
        "MongoDB writable (workers)",
        "1 while every worker process finds a writable MongoDB server; 0 while clicks cannot "
        "be applied (MiningMongoUnreachable when clicks wait).",
        (f"min(mongodb_client_writable{{{WORKER}}})", "writable"),
        steps=(("red", None), ("green", 1.0)),
    )


# Workers: replicas and resources


def worker_replicas() -> Panel:
    worker = 'namespace="$namespace",name="$release-worker"'
    return timeseries_panel(
        "Worker replicas: desired and current",
        "What the autoscaler wants (the QueueAutoscaler's decision, or the HPA's from "
        "kube-state-metrics) and what runs (the operator's last reading, the Deployment's "
        "available replicas from kube-state-metrics).",
        (
            f'max(crypto_mine_operator_desired_replicas{{{OPERATOR},name="$release-worker"}})',
            "desired (operator)",
        ),
        (
            f'max(crypto_mine_operator_current_replicas{{{OPERATOR},name="$release-worker"}})',
            "current (operator)",
        ),
        (
            "max(kube_horizontalpodautoscaler_status_desired_replicas"
            f"{{{worker.replace('name=', 'horizontalpodautoscaler=')}}})",
            "desired (HPA)",
        ),
        (
            "max(kube_deployment_status_replicas_available"
            f"{{{worker.replace('name=', 'deployment=')}}})",
            "available",
        ),
    )


def pod_cpu() -> Panel:
    return timeseries_panel(
        "Pod CPU",
        "CPU cores used per pod of the release (cAdvisor, through the kubelet).",
        (
            "sum by (pod) (rate(container_cpu_usage_seconds_total"
            f'{{namespace="$namespace",pod=~"$release-.*",container!="",container!="POD"}}{RATE}))',
            "{{pod}}",
        ),
    )


def pod_memory() -> Panel:
    return timeseries_panel(
        "Pod memory",
        "Working set per pod of the release (cAdvisor), what the memory limit is checked against.",
        (
            "sum by (pod) (container_memory_working_set_bytes"
            '{namespace="$namespace",pod=~"$release-.*",container!="",container!="POD"})',
            "{{pod}}",
        ),
        unit="bytes",
    )


# id-allocator


def ids_issued() -> Panel:
    return timeseries_panel(
        "Ids issued",
        "User ids handed out per second, by mode.",
        (f"sum by (mode) (rate(id_allocator_ids_issued_total{{{IDS}}}{RATE}))", "{{mode}}"),
        unit="ops",
    )


def allocator_requests() -> Panel:
    return timeseries_panel(
        "Requests by outcome",
        "POST /v1/ids per second: ok, bad_request, unavailable, error.",
        (f"sum by (outcome) (rate(id_allocator_requests_total{{{IDS}}}{RATE}))", "{{outcome}}"),
        unit="reqps",
        stacked=True,
    )


def allocator_errors() -> Panel:
    return timeseries_panel(
        "Errors by kind",
        "Failed MongoDB attempts, given-up reservations and possibly lost ranges per second.",
        (
            f"sum by (kind) (rate(id_allocator_errors_total{{{IDS}}}{RATE})) or vector(0)",
            "{{kind}}",
        ),
        unit="ops",
    )


def segment_fetches() -> Panel:
    return timeseries_panel(
        "Segment fetches",
        "Ranges reserved in MongoDB per second, by trigger (prefetch, demand, strict).",
        (
            f"sum by (trigger) (rate(id_allocator_segment_fetches_total{{{IDS}}}{RATE}))",
            "{{trigger}}",
        ),
        unit="ops",
    )


def fetch_latency() -> Panel:
    return timeseries_panel(
        "Reservation and wait p95",
        "Time to reserve a range in MongoDB, and time a request waited for one.",
        (
            "histogram_quantile(0.95, sum by (le) "
            f"(rate(id_allocator_fetch_duration_seconds_bucket{{{IDS}}}{RATE})))",
            "reserve p95",
        ),
        (
            "histogram_quantile(0.95, sum by (le) "
            f"(rate(id_allocator_allocate_wait_seconds_bucket{{{IDS}}}{RATE})))",
            "wait p95",
        ),
        unit="s",
    )


def buffered_ids() -> Panel:
    return timeseries_panel(
        "Buffered ids and segment size",
        "Ids reserved and not yet handed out (all replicas), and the next segment's size.",
        (f"sum(id_allocator_buffer_remaining_ids{{{IDS}}})", "buffered"),
        (f"max(id_allocator_segment_size{{{IDS}}})", "segment size"),
    )


def signup_burn_rate() -> Panel:
    return timeseries_panel(
        "Sign-up burn rate",
        "How fast the sign-up objectives spend their budgets (1 h), measured on the api's "
        "POST /api/auth/register, which asks the id-allocator for each new id.",
        (
            f'crypto_mine_slo:sli_error:ratio_rate1h{{{API},slo=~"signup-.*"}} '
            f'/ crypto_mine_slo:error_budget:ratio{{{API},slo=~"signup-.*"}}',
            "{{slo}}",
        ),
        steps=(("green", None), ("red", 14.4)),
        width=24,
    )


# operator


def operator_replicas() -> Panel:
    return timeseries_panel(
        "Desired and current replicas",
        "What each QueueAutoscaler decided, and what its target had when last read.",
        (
            "max by (exported_namespace, name) "
            f"(crypto_mine_operator_desired_replicas{{{OPERATOR}}})",
            "desired {{name}}",
        ),
        (
            "max by (exported_namespace, name) "
            f"(crypto_mine_operator_current_replicas{{{OPERATOR}}})",
            "current {{name}}",
        ),
        width=12,
    )


def operator_metric_value() -> Panel:
    return timeseries_panel(
        "Queue depth read",
        "The queue depth each QueueAutoscaler last read.",
        (
            f"max by (exported_namespace, name) (crypto_mine_operator_metric_value{{{OPERATOR}}})",
            "{{name}}",
        ),
        width=12,
    )


def operator_rescales() -> Panel:
    return timeseries_panel(
        "Rescales",
        "Rescales of the targets per hour, by direction.",
        (
            "sum by (exported_namespace, name, direction) "
            f"(increase(crypto_mine_operator_scale_total{{{OPERATOR}}}[1h]))",
            "{{name}} {{direction}}",
        ),
    )


def operator_metric_errors() -> Panel:
    return timeseries_panel(
        "Metric read errors",
        "Failed readings of the queue depth per second (MiningOperatorMetricErrors).",
        (
            "sum by (exported_namespace, name, source) "
            f"(rate(crypto_mine_operator_metric_errors_total{{{OPERATOR}}}{RATE}))",
            "{{name}} {{source}}",
        ),
        unit="ops",
    )


def operator_scale_errors() -> Panel:
    return timeseries_panel(
        "Scale errors",
        "Failed reads or writes of the target's scale per second (MiningOperatorScaleErrors).",
        (
            "sum by (exported_namespace, name) "
            f"(rate(crypto_mine_operator_scale_errors_total{{{OPERATOR}}}{RATE}))",
            "{{name}}",
        ),
        unit="ops",
    )


def with_rows(
    board: dashboard.Dashboard, rows: list[tuple[str, list[Panel]]]
) -> dashboard.Dashboard:
    for title, panels in rows:
        board.with_row(dashboard.Row(title).datasource(DATASOURCE))
        for panel in panels:
            board.with_panel(panel)
    return board


def mining() -> dashboard.Dashboard:
    board = new_dashboard(
        "crypto-mine-mining",
        "crypto-mine / Mining clicks",
        "Service level objectives, click API, queue, worker outcomes, workers' replicas and "
        "resources, Redis and MongoDB.",
        [*release_variables("mining_status_cache_requests_total", "api"), period_variable()],
    )
    return with_rows(
        board,
        [
            ("SLO", [slo_budget_left(), slo_burn_rate()]),
            ("Overview", [click_requests_by_status(), mining_latency_p95(), throttled_share(),
                          answers_by_route()]),
            ("Queue health", [queue_depth(), worker_lag(), batch_timing()]),
            ("Success vs failure", [worker_success_rate(), applied_vs_failed(),
                                    failure_reasons(), dead_letters()]),
            ("Workers", [worker_replicas(), pod_cpu(), pod_memory()]),
            ("Redis performance", [redis_latency_p95(), redis_calls(), status_cache_hits()]),
            ("MongoDB", [mongo_latency_p99(), mongo_pool(), mongo_writable()]),
        ],
    )  # fmt: skip


def id_allocator() -> dashboard.Dashboard:
    board = new_dashboard(
        "crypto-mine-id-allocator",
        "crypto-mine / id-allocator",
        "User ids handed out, MongoDB reservations and errors, the sign-up objectives.",
        release_variables("id_allocator_segment_size", "id-allocator"),
    )
    return with_rows(
        board,
        [
            ("Requests", [ids_issued(), allocator_requests(), allocator_errors()]),
            ("Segments", [segment_fetches(), fetch_latency(), buffered_ids()]),
            ("Sign-up SLO", [signup_burn_rate()]),
        ],
    )


def operator() -> dashboard.Dashboard:
    board = new_dashboard(
        "crypto-mine-operator",
        "crypto-mine / QueueAutoscaler operator",
        "Decisions, readings and errors of the QueueAutoscalers.",
        release_variables("up", "operator", 'job=~".+-operator"'),
    )
    return with_rows(
        board,
        [
            ("Scaling", [operator_replicas(), operator_metric_value()]),
            ("Errors", [operator_rescales(), operator_metric_errors(), operator_scale_errors()]),
        ],
    )


DASHBOARDS: dict[str, Callable[[], dashboard.Dashboard]] = {
    "mining": mining,
    "id-allocator": id_allocator,
    "operator": operator,
}
