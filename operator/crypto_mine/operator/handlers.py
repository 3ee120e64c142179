"""kopf handlers: one daemon per QueueAutoscaler reads the queue depth and scales its target."""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
import kopf

from . import metrics
from .conditions import (
    ABLE_TO_SCALE,
    SCALING_ACTIVE,
    SCALING_LIMITED,
    Condition,
    changed,
    merge,
)
from .decision import Decision, History, Limit, Observation, after, decide
from .kube import KubeApi, TargetError
from .kube_client import KubeClient
from .leader import LeaderElector
from .queue_depth import (
    MetricError,
    read_drain_rate,
    read_lag,
    read_queue_depth,
)
from .settings import OperatorSettings
from .spec import (
    FINALIZER,
    GROUP,
    PLURAL,
    VERSION,
    AutoscalerSpec,
    SpecError,
    parse_spec,
)

log = logging.getLogger(__name__)

# Poll interval while the spec is invalid (it has no valid interval of its own).
INVALID_SPEC_INTERVAL = 10.0


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """kopf's settings, the API and HTTP clients, and the metrics endpoint."""
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    # Log records become Events from WARNING up; the operator posts its own Events explicitly.
    settings.posting.level = logging.WARNING
    # No CRD or namespace watching: nothing beyond the QueueAutoscalers needs to be listed.
    settings.scanning.disabled = True
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = 60

    operator_settings: OperatorSettings = memo.settings
    memo.kube = KubeApi(KubeClient())
    memo.http = aiohttp.ClientSession()
    # (namespace, Deployment) -> the QueueAutoscaler scaling it: one each.
    memo.claims = {}
    log.info(
        "operator configured: namespaces=%s metrics_port=%s",
        ",".join(operator_settings.namespaces) or "*",
        operator_settings.metrics_port,
    )


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    http: aiohttp.ClientSession | None = memo.get("http")
    if http is not None:
        await http.close()


@kopf.daemon(
    GROUP, VERSION, PLURAL, backoff=5.0, cancellation_backoff=2.0, cancellation_timeout=5.0
)
async def autoscale(
    stopped: kopf.DaemonStopped,
    body: kopf.Body,
    namespace: str | None,
    name: str,
    memo: kopf.Memo,
    logger: logging.Logger | logging.LoggerAdapter[Any],
    **_: Any,
) -> None:
    """Poll every ``pollIntervalSeconds`` until the QueueAutoscaler or the operator goes.

    The spec is re-read on every poll (kopf keeps ``body`` fresh), so edits apply at once.
    The decision history lives in this object's memo, so it survives a daemon retry.
    """
    if namespace is None:
        raise kopf.PermanentError("QueueAutoscaler is namespaced; got one without a namespace")
    try:
        while not stopped:
            interval = await reconcile(body, namespace, name, memo, logger)
            await stopped.wait(interval)
    finally:
        claimed = memo.get("claimed")
        if claimed is not None and memo.claims.get(claimed) == name:
            del memo.claims[claimed]
        reason = stopped.reason
        if reason is not None and reason & kopf.DaemonStoppingReason.RESOURCE_DELETED:
            metrics.forget(namespace, name)


async def reconcile(
    body: kopf.Body,
    namespace: str,
    name: str,
    memo: kopf.Memo,
    logger: logging.Logger | logging.LoggerAdapter[Any],
) -> float:
    """One poll: read, decide, scale, report. Returns the seconds until the next poll."""
    elector: LeaderElector | None = memo.get("elector")
    if elector is not None and not elector.leading():
        # The Lease may be someone else's by now: act on nothing until kopf is stopped.
        return 1.0
    kube: KubeApi = memo.kube
    previous = _previous_status(body)
    try:
        spec = parse_spec(body.spec)
    except SpecError as error:
        failure = Condition(SCALING_ACTIVE, False, "InvalidSpec", str(error))
        await _report_failure(kube, body, namespace, name, previous, failure, logger)
        return INVALID_SPEC_INTERVAL
    refusal = _refuse_target(memo, namespace, name, spec.target_name)
    if refusal is not None:
        await _report_failure(kube, body, namespace, name, previous, refusal, logger)
        return float(spec.poll_interval)
    try:
        target = await kube.read_target(namespace, spec.target_name)
    except TargetError as error:
        metrics.scale_errors_total.labels(namespace, name).inc()
        failure = Condition(ABLE_TO_SCALE, False, "FailedGetScale", str(error))
        await _report_failure(kube, body, namespace, name, previous, failure, logger)
        return float(spec.poll_interval)
    current = target.replicas

    observed = Observation(None)
    metric_error: MetricError | None = None
    notes: list[str] = []
    if not spec.paused:
        observed, metric_error, notes = await _observe(spec, target.ready, memo, namespace, name)

    now = time.monotonic()
    history: History | None = memo.get("history")
    if history is None or memo.get("history_target") != spec.target_name:
        # New, restarted, or retargeted: start conservatively from the current size.
        history = History.starting(current, now)
        memo.history_target = spec.target_name
    decision = decide(spec.policy, current, observed, history, now)
    if elector is not None and not elector.leading():
        return 1.0  # the readings took longer than the Lease was renewed for
    scale_error = await _scale(kube, namespace, name, spec.target_name, decision)
    scaled = decision.desired != current and scale_error is None
    memo.history = after(decision, scaled=scaled)
    depth = observed.depth
    _record_metrics(namespace, name, decision, depth, scaled)

    conditions = _conditions(spec, decision, depth, metric_error, scale_error, scaled, notes)
    _post_events(body, previous, conditions, decision, scaled, scale_error, logger)
    fields: dict[str, Any] = {
        "currentReplicas": decision.desired if scaled else current,
        "desiredReplicas": decision.desired,
    }
    if depth is not None:
        fields["lastMetricValue"] = depth
    if scaled:
        fields["lastScaleTime"] = _now()
    await _write_status(kube, body, namespace, name, previous, fields, conditions)
    return float(spec.poll_interval)


async def _scale(
    kube: KubeApi, namespace: str, name: str, target: str, decision: Decision
) -> str | None:
    """Set the target's replicas to the decision's; why it failed, if it did."""
    if decision.desired == decision.current:
        return None
    try:
        await kube.scale(namespace, target, decision.desired)
    except TargetError as error:
        metrics.scale_errors_total.labels(namespace, name).inc()
        return str(error)
    return None


async def _observe(
    spec: AutoscalerSpec, ready: int, memo: kopf.Memo, namespace: str, name: str
) -> tuple[Observation, MetricError | None, list[str]]:
    """The readings of one poll; the optional ones (drain rate, lag) only when a target needs
    them, and their failure leaves a note instead of stopping the poll."""
    settings: OperatorSettings = memo.settings
    try:
        depth = await read_queue_depth(spec.metric, settings, memo.http)
    except MetricError as error:
        metrics.metric_errors_total.labels(namespace, name, spec.metric.source).inc()
        return Observation(None, ready), error, []
    notes: list[str] = []
    rate: float | None = None
    lag: float | None = None
    if spec.target_drain_seconds is not None:
        try:
            rate = await read_drain_rate(spec.metric, settings, memo.http)
        except MetricError as error:
            metrics.metric_errors_total.labels(namespace, name, "prometheus").inc()
            notes.append(f"drain rate unavailable: {error}")
    if spec.target_lag_seconds is not None:
        try:
            lag = await read_lag(spec.metric, settings, memo.http)
        except MetricError as error:
            metrics.metric_errors_total.labels(namespace, name, spec.metric.source).inc()
            notes.append(f"lag unavailable: {error}")
    return Observation(depth, ready, rate, lag), None, notes


def _refuse_target(memo: kopf.Memo, namespace: str, name: str, target: str) -> Condition | None:
    """A condition when this QueueAutoscaler may not scale ``target``: a name outside the
    operator's SCALE_TARGETS, or a Deployment another QueueAutoscaler already scales."""
    settings: OperatorSettings = memo.settings
    if settings.scale_targets and target not in settings.scale_targets:
        return Condition(
            ABLE_TO_SCALE,
            False,
            "TargetNotAllowed",
            f"Deployment {target} is not in the operator's SCALE_TARGETS",
        )
    claims: dict[tuple[str, str], str] = memo.claims
    owner = claims.setdefault((namespace, target), name)
    if owner != name:
        return Condition(
            ABLE_TO_SCALE,
            False,
            "AmbiguousTarget",
            f"Deployment {target} is scaled by QueueAutoscaler {owner} already",
        )
    previous = memo.get("claimed")
    if previous is not None and previous != (namespace, target):
        claims.pop(previous, None)
    memo.claimed = (namespace, target)
    return None


async def _report_failure(
    kube: KubeApi,
    body: kopf.Body,
    namespace: str,
    name: str,
    previous: Mapping[str, Any],
    failure: Condition,
    logger: logging.Logger | logging.LoggerAdapter[Any],
) -> None:
    """A condition that stops this poll: an Event when it is new, and the status."""
    if changed(previous.get("conditions") or [], failure):
        kopf.event(body, type="Warning", reason=failure.reason, message=failure.message)
        logger.warning("%s: %s", failure.reason, failure.message)
    await _write_status(kube, body, namespace, name, previous, {}, [failure])


def _post_events(
    body: kopf.Body,
    previous: Mapping[str, Any],
    conditions: list[Condition],
    decision: Decision,
    scaled: bool,
    scale_error: str | None,
    logger: logging.Logger | logging.LoggerAdapter[Any],
) -> None:
    """An Event for every rescale, failed rescale, and newly failing condition."""
    stored = previous.get("conditions") or []
    for condition in conditions:
        # Failures only: a rescale failure has its own Event below, pausing is no failure.
        failing = not condition.status and condition.type == SCALING_ACTIVE
        if failing and condition.reason != "ScalingDisabled" and changed(stored, condition):
            kopf.event(body, type="Warning", reason=condition.reason, message=condition.message)
            logger.warning("%s: %s", condition.reason, condition.message)
    if scaled:
        message = f"New size: {decision.desired}; reason: {decision.reason}"
        kopf.event(body, type="Normal", reason="SuccessfulRescale", message=message)
        logger.info("%s", message)
    elif scale_error is not None:
        kopf.event(body, type="Warning", reason="FailedRescale", message=scale_error)
        logger.warning("FailedRescale: %s", scale_error)


def _conditions(
    spec: AutoscalerSpec,
    decision: Decision,
    depth: float | None,
    metric_error: MetricError | None,
    scale_error: str | None,
    scaled: bool,
    notes: list[str],
) -> list[Condition]:
    target = f"Deployment {spec.target_name}"
    if scale_error is not None:
        able = Condition(ABLE_TO_SCALE, False, "FailedUpdateScale", scale_error)
    elif scaled:
        able = Condition(
            ABLE_TO_SCALE, True, "SucceededRescale", f"{target} scaled to {decision.desired}"
        )
    else:
        able = Condition(ABLE_TO_SCALE, True, "ReadyForNewScale", f"{target} can be scaled")
    if spec.paused:
        active = Condition(SCALING_ACTIVE, False, "ScalingDisabled", "spec.paused is true")
    elif metric_error is not None:
        message = str(metric_error)
        if decision.fallback:
            message += f"; running the fallback of {decision.desired} replicas"
        active = Condition(SCALING_ACTIVE, False, metric_error.reason, message)
    else:
        read = f"queue depth {depth:g} read from {spec.metric.source}"
        active = Condition(SCALING_ACTIVE, True, "ValidMetricFound", "; ".join([read, *notes]))
    result = [able, active]
    if decision.recommendation is not None:
        limited = decision.limit is not Limit.NONE
        result.append(Condition(SCALING_LIMITED, limited, decision.limit.value, decision.reason))
    return result


def _record_metrics(
    namespace: str, name: str, decision: Decision, depth: float | None, scaled: bool
) -> None:
    metrics.desired_replicas.labels(namespace, name).set(decision.desired)
    metrics.current_replicas.labels(namespace, name).set(
        decision.desired if scaled else decision.current
    )
    if depth is not None:
        metrics.metric_value.labels(namespace, name).set(depth)
    if scaled:
        direction = "up" if decision.desired > decision.current else "down"
        metrics.scale_total.labels(namespace, name, direction).inc()


async def _write_status(
    kube: KubeApi,
    body: kopf.Body,
    namespace: str,
    name: str,
    previous: Mapping[str, Any],
    fields: Mapping[str, Any],
    conditions: list[Condition],
) -> None:
    """Patch the status when it differs from the stored one (a no-op poll writes nothing)."""
    status = dict(fields)
    status["observedGeneration"] = body.metadata.get("generation")
    status["conditions"] = merge(previous.get("conditions") or [], conditions, _now())
    if all(previous.get(key) == value for key, value in status.items()):
        return
    await kube.patch_status(namespace, name, status)


def _previous_status(body: kopf.Body) -> dict[str, Any]:
    status = body.get("status")
    return dict(status) if isinstance(status, Mapping) else {}


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
