"""The rows of a run, as a table, as JSON and as a chart."""

from __future__ import annotations

import re
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from crypto_mine.common.names import Ttl

from .options import Options


@dataclass(frozen=True)
class Row:
    key: str
    phase: int
    what: str
    value: float
    shown: str
    baseline: float | None
    baseline_shown: str
    ratio: float | None
    note: str


METHODS = {
    1: "wrk (Lua: POST with the bearer token of one of the users, a new Idempotency-Key per "
    "request) against each server in turn, the two alternating; both served by the api's own "
    "uvicorn options (bench/serve.py runs the api's entry point with the app swapped), each on "
    "CPUs of its own (as many as its uvicorn workers) while wrk and Redis run on the others "
    "(bench/cpus.py; on a machine without a CPU to spare, nothing is pinned). Rate = "
    "answers below 400 per second as wrk counts them; the api's 202 count at the server is "
    "checked against it. No worker runs; limits and MINING_QUEUE_MAX_DEPTH are 1e9, so every "
    "click is accepted and the queue never fills (Redis is emptied before each run).",
    2: "Counted at the Redis server: INFO commandstats (calls per command, Lua's calls "
    "included) and total_reads_processed, before and after each api run of phase 1, no other "
    "client. Round trips = commands sent by clients: a MONITOR sample (Lua's commands are "
    "marked there) gives each command's client share, applied to the counts of phase 1 (a "
    "pipeline of n commands would count n). The one-connection run shows a click that is "
    "never coalesced with others.",
    3: "tests/worker/bench_worker.py: clicks enqueued by the api's admission, one in-process "
    "ClickWorker drains the queue; baseline: insert_many(ordered=False) of the same documents "
    "in chunks of the same size, same unique index; its own Redis and MongoDB.",
    4: "wrk until the clicks got 2xx answers (requests still in flight reach the server too: "
    "the clicks counted are those in MongoDB), MongoDB polled every 20 ms; time from the first "
    "request to the first poll where the users' click totals hold every click. Ours: the api "
    "and the worker pod (default concurrency). Naive: a Starlette app doing one RQ enqueue per "
    "click (token verified each time), RQ's forking Worker in as many processes as the pod "
    "has (--naive-workers), job = insert_one + update_one($inc). A warm-up precedes both.",
    5: "tests/allocator/bench_ids.py: HTTP load from keep-alive asyncio connections in the "
    "harness process (not wrk); ratio to one find_one_and_update($inc) per id, 16 concurrent.",
    7: "After phase 4 (its clicks completed, still within their window): Redis used_memory "
    "before and after deleting each kind of key, over the number of click records (one per "
    "accepted request of one click); baseline: the same records rewritten with every field "
    "and the 24 h TTL of click records before the window (bench/memory.py).",
    6: "wrk with a Lua pacer (a fixed schedule per thread, fixed connections; a late request "
    "goes at once, coordinated omission is not corrected as wrk2 would); latency from the "
    "moment a request is written to its answer. The worker pod runs; worker lag = "
    "mining_worker_lag_seconds from the pod's /metrics every 0.5 s.",
    9: "The api of phase 1 twice, on one click shard and on two (REDIS_SHARD_URLS: a Redis "
    "server each), both running, wrk against each in turn (alternating, --repeats pairs), "
    "nothing pinned; users spread over the shards by crc32 of their ids. Commands per Redis "
    "server from INFO commandstats; CPU of each process group. No worker runs.",
    8: "bench/cost.py, over one stretch of load each: phase 4's measured clicks (from the first "
    "request until applied), then click-status reads of keys phase 6 left in Redis and balance "
    "reads of their users, each from keep-alive connections of the harness for --read-seconds. "
    "CPU time of each process group; Redis's own used_cpu_sys + used_cpu_user, commandstats "
    "and network bytes; the MongoDB commands the api and the worker counted (the driver's "
    "command histogram); documents added and bytes stored per collection (collStats).",
}


# Phase 8's kinds of request: the results' key and the row's words.
COSTS = {
    "click": "accepted click, end to end",
    "click_status": "click-status read",
    "balance": "balance read",
}


def _n(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def _ratio(value: float, baseline: float) -> float | None:
    return round(value / baseline, 3) if baseline else None


def _cpu(cpu: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.0f}%" for name, value in cpu.items())


def _jobs(jobs: dict[str, float]) -> str:
    return (
        f"{jobs['jobs']:.0f} jobs of {jobs['clicks_per_job']} clicks, "
        f"{1000 * jobs['seconds_per_job']:.1f} ms each"
    )


def _median_cpu(runs: list[dict[str, Any]]) -> dict[str, float]:
    names = runs[0]["cpu_percent"]
    return {
        name: sorted(run["cpu_percent"][name] for run in runs)[len(runs) // 2] for name in names
    }


def cpu_per_answer(runs: list[dict[str, Any]], group: str, answers: str) -> float:
    """Median over runs of a process group's CPU µs per answer (``answers``: a run's field)."""
    per = sorted(
        float(run["cpu_percent"][group]) / 100 * run["seconds"] * 1e6 / max(run[answers], 1)
        for run in runs
    )
    median: float = per[len(per) // 2]
    return round(median, 1)


def rows(results: dict[str, Any], options: Options) -> list[Row]:
    out: list[Row] = []
    http = results["1_http"]
    api, bare = http["api_accepted_per_second"], http["bare_requests_per_second"]
    api_runs, bare_runs = http["runs"]["api"], http["runs"]["bare"]
    rejected = sum(run["errors"]["status"] for run in api_runs)
    server = sum(run["accepted_at_server"] for run in api_runs)
    answered = sum(run["requests"] - run["errors"]["status"] for run in api_runs)
    out.append(
        Row(
            "http.click_vs_bare",
            1,
            "click endpoint: accepted clicks/s vs bare Starlette req/s",
            api,
            f"{_n(api)}/s",
            bare,
            f"{_n(bare)}/s",
            http["ratio"],
            f"median of {len(api_runs)} x {options.seconds:g} s, paired ratios "
            f"{http['paired_ratios']}; wrk -t{options.threads} -c{options.connections}; "
            f"{options.web_workers} uvicorn worker(s); {http['cpus']}; no worker running; "
            f"{rejected} answers >= 400; 202 at server {server} vs wrk {answered}; "
            f"CPU api: {_cpu(_median_cpu(api_runs))}; bare: {_cpu(_median_cpu(bare_runs))}",
        )
    )
    api_cpu = cpu_per_answer(api_runs, "api", "accepted_at_server")
    bare_cpu = cpu_per_answer(bare_runs, "bare", "requests")
    lookups = cpu_per_answer(api_runs, "mongodb", "accepted_at_server")
    script = cpu_per_answer(api_runs, "redis", "accepted_at_server")
    out.append(
        Row(
            "http.api_cpu_per_click",
            1,
            "api CPU per accepted click vs bare Starlette CPU per request (µs)",
            api_cpu,
            f"{api_cpu:.0f} µs",
            bare_cpu,
            f"{bare_cpu:.0f} µs",
            _ratio(api_cpu, bare_cpu),
            f"median of the phase 1 runs: the api process group's CPU time over the clicks "
            f"its server counted; MongoDB {lookups:.0f} µs and Redis {script:.0f} µs per click "
            "in the same runs (the key lookups beyond the window, the admission script)",
        )
    )
    redis = results["2_redis"]
    full, single, sample = redis["full_load"], redis["one_connection"], redis["monitor_sample"]
    for key, label, cost, extra in [
        ("redis.round_trips_full_load", "full load (phase 1)", full, ""),
        ("redis.round_trips_one_connection", "one connection", single, ""),
        (
            "redis.round_trips_monitor_sample",
            "MONITOR sample",
            sample,
            f"; client commands {sample['top_level_commands']}"
            + ("" if sample["complete"] else "; sample INCOMPLETE"),
        ),
    ]:
        out.append(
            Row(
                key,
                2,
                f"Redis round trips per accepted click, {label}",
                cost["round_trips_per_click"],
                f"{cost['round_trips_per_click']:.4f}",
                1.0,
                "1 (budget)",
                cost["round_trips_per_click"],
                f"{cost['clicks_per_script_call']} clicks per script call; "
                f"{cost['read_events_per_click']} read events/click; "
                f"{cost['accepted_clicks']} clicks{extra}",
            )
        )
    for key, label, cost in [
        ("redis.commands_full_load", "full load", full),
        ("redis.commands_one_connection", "one connection", single),
    ]:
        top = list(cost["calls_per_click"].items())[:6]
        out.append(
            Row(
                key,
                2,
                f"Redis commands per accepted click (Lua's included), {label}",
                cost["commands_per_click"],
                f"{cost['commands_per_click']:.3f}",
                None,
                "",
                None,
                "per click: " + ", ".join(f"{name} {calls:g}" for name, calls in top),
            )
        )
    worker = results["3_worker"]
    out.append(
        Row(
            "worker.apply_vs_insert_many",
            3,
            "one worker process: clicks applied/s vs raw insert_many docs/s",
            worker["worker_clicks_per_second"],
            f"{_n(worker['worker_clicks_per_second'])}/s",
            worker["raw_insert_many_docs_per_second"],
            f"{_n(worker['raw_insert_many_docs_per_second'])}/s",
            worker["ratio"],
            f"{worker['clicks']} clicks, {worker['users']} users, {worker['jobs']} jobs of "
            f"{worker['clicks_per_job']}; {worker['mongo_commands_per_job']} MongoDB commands "
            f"per job, {worker['mongo_documents_written_per_click']} documents written per click; "
            f"MongoDB server CPU {worker['mongo_server_cpu_seconds']['worker']} s vs raw "
            f"{worker['mongo_server_cpu_seconds']['raw']} s: {worker['server_bound_ratio']} "
            "if nothing but the server's own work took time",
        )
    )
    out.append(
        Row(
            "worker.apply_vs_two_write_floor",
            3,
            "one worker process vs the two-write floor (click + balance, no exactly-once guard)",
            worker["worker_clicks_per_second"],
            f"{_n(worker['worker_clicks_per_second'])}/s",
            worker["floor_clicks_per_second"],
            f"{_n(worker['floor_clicks_per_second'])}/s",
            worker["ratio_to_floor"],
            "same documents and chunks: insert_many of the clicks, one unguarded $inc upsert "
            "per user per chunk and a read of those balances: the fewest writes any design "
            "keeping a balance per user needs",
        )
    )
    e2e = results["4_e2e"]
    ours, naive = e2e["ours"], e2e["naive"]
    out.append(
        Row(
            "e2e.ours_vs_naive",
            4,
            "end to end, HTTP accept to applied in MongoDB: clicks/s, ours vs naive RQ",
            ours["clicks_per_second"],
            f"{_n(ours['clicks_per_second'])}/s",
            naive["clicks_per_second"],
            f"{_n(naive['clicks_per_second'])}/s",
            _ratio(ours["clicks_per_second"], naive["clicks_per_second"]),
            ("" if ours["exact"] and naive["exact"] else "CLICKS LOST OR DOUBLED (see JSON); ")
            + f"ours {ours['clicks']} clicks in {ours['seconds']} s (wrk done after "
            f"{ours['answered_seconds']} s), naive {naive['clicks']} in {naive['seconds']} s "
            f"(wrk done after {naive['answered_seconds']} s) with {naive['worker_processes']} "
            f"forking workers; ours {_jobs(ours['worker_jobs'])}; CPU ours: "
            f"{_cpu(ours['cpu_percent'])}; naive: "
            f"{_cpu(naive['cpu_percent'])}",
        )
    )
    ids = results["5_ids"]["rows"]
    baseline = next(row for row in ids if row["ratio"] == 1.0)
    for row in ids:
        requests = f", {_n(row['requests_per_s'])} requests/s" if row["requests_per_s"] else ""
        out.append(
            Row(
                "ids." + re.sub(r"[^a-z0-9]+", "_", row["name"].lower()).strip("_"),
                5,
                f"ids/s: {row['name']}",
                row["ids_per_s"],
                f"{_n(row['ids_per_s'])}/s",
                baseline["ids_per_s"],
                f"{_n(baseline['ids_per_s'])}/s",
                round(row["ratio"], 3),
                f"vs {baseline['name']}{requests}" + (f"; {row['note']}" if row["note"] else ""),
            )
        )
    held = results["7_memory"]
    per_click, kinds = held["per_click"], held["kinds"]
    window = 10_000 * Ttl.window * held["record_bytes"] / 2**20
    out.append(
        Row(
            "redis.bytes_per_click_record",
            7,
            "Redis bytes per accepted click's record, completed (kept for the window)",
            held["record_bytes"],
            f"{held['record_bytes']:.0f} B",
            held["record_bytes_before"],
            f"{held['record_bytes_before']:.0f} B",
            _ratio(held["record_bytes"], held["record_bytes_before"]),
            f"{held['clicks']} records of phase 4, used_memory freed by deleting them; baseline: "
            "the same records with every field, as before the window; at 10k clicks/s the "
            f"records of a {Ttl.window} s window hold {window:,.0f} MiB (before: the 24 h TTL, "
            f"{10_000 * Ttl.idempotency * held['record_bytes_before'] / 2**30:,.0f} GiB)",
        )
    )
    out.append(
        Row(
            "redis.bytes_per_click_all",
            7,
            "Redis bytes per accepted click, all its keys (records, events, status, buckets)",
            round(sum(per_click.values()), 1),
            f"{sum(per_click.values()):.0f} B",
            None,
            "",
            None,
            "; ".join(
                f"{kind} {per_click[kind]:.0f} B/click ({values['keys']} keys)"
                for kind, values in kinds.items()
            )
            + " (events live MINING_EVENTS_TTL, at most MINING_EVENTS_MAXLEN per user; status "
            "and buckets one per user)",
        )
    )
    for name, what in COSTS.items():
        cost = results["8_cost"][name]
        cpu, kv, mongo = cost["cpu_us"], cost["redis"], cost["mongodb"]
        parts = ", ".join(f"{group} {us:.0f}" for group, us in cpu.items() if group != "all")
        commands = ", ".join(
            f"{command} {count:g}"
            for command, count in mongo["commands"].items()
            if command != "all"
        )
        out.append(
            Row(
                f"cost.{name}",
                8,
                f"CPU per {what}, every process (µs)",
                cpu["all"],
                f"{cpu['all']:.0f} µs",
                None,
                "",
                None,
                f"{cost['requests']} answers; CPU µs: {parts}; Redis: {kv['commands']:g} "
                f"commands, {kv['bytes_in']:.0f} B in, {kv['bytes_out']:.0f} B out, server CPU "
                f"{kv['cpu_us']:.0f} µs; MongoDB: {mongo['commands']['all']:g} commands"
                + (f" ({commands})" if commands else "")
                + f", {mongo['documents']['all']:g} documents added, "
                f"{mongo['stored_bytes']['all']:.0f} B stored",
            )
        )
    if "9_shards" in results:
        out.append(shards_row(results["9_shards"]))
    latency = results["6_latency"]
    ms = latency["latency_ms"]
    out.append(
        Row(
            "latency.click",
            6,
            f"click latency p50 / p95 / p99 at {latency['fraction_of_max']:.0%} of the maximum",
            ms["p99"],
            f"{ms['p50']:.1f} / {ms['p95']:.1f} / {ms['p99']:.1f} ms",
            None,
            "",
            None,
            f"paced at {_n(latency['target_per_second'])}/s, got "
            f"{_n(latency['achieved_per_second'])}/s; max {ms['max']:.1f} ms; "
            f"{latency['failed']} failed; CPU {_cpu(latency['cpu_percent'])}",
        )
    )
    lag = latency["worker_lag_seconds"]
    out.append(
        Row(
            "latency.worker_lag",
            6,
            "worker lag during that run (mining_worker_lag_seconds), max",
            lag["max"],
            f"{lag['max']:.2f} s",
            None,
            "",
            None,
            f"mean {lag['mean']} s over {lag['samples']} samples; queue depth max "
            f"{latency['queue_depth_max']:.0f} clicks; drained {latency['drain_seconds_after']} s "
            f"after the load stopped; {_jobs(latency['worker_jobs'])}",
        )
    )
    return out


def shards_row(shards: dict[str, Any]) -> Row:
    """Phase 9: accepted clicks/s on two shards next to one, and how the Redis work split."""
    two = shards["runs"]["2"]
    split = [
        statistics.median(
            run["redis_commands"][n] / max(1, sum(run["redis_commands"])) for run in two
        )
        for n in (0, 1)
    ]
    return Row(
        "shards.two_vs_one",
        9,
        "accepted clicks/s, the api on two click shards vs one (a Redis server each)",
        shards["two_shards_per_second"],
        f"{_n(shards['two_shards_per_second'])}/s",
        shards["one_shard_per_second"],
        f"{_n(shards['one_shard_per_second'])}/s",
        shards["ratio"],
        f"Redis commands split {split[0]:.0%} / {split[1]:.0%} between the two servers; CPU "
        f"two shards: {_cpu(_median_cpu(two))}; one shard: "
        f"{_cpu(_median_cpu(shards['runs']['1']))}; pairs "
        + ", ".join(f"{r:.2f}" for r in shards["paired_ratios"]),
    )


def header(results: dict[str, Any], options: Options) -> str:
    machine = results["machine"]
    return (
        f"crypto-mine benchmark ({'quick' if options.quick else 'full'} run, "
        f"{results['elapsed_seconds']} s)\n"
        f"machine: {machine['cpus']} CPUs ({machine['cpu_model']}), "
        f"{machine['memory_mib']} MiB, Linux {machine['kernel']}, Python {machine['python']}, "
        f"Redis {machine['redis']}, wrk {machine['wrk']}; load average "
        f"{machine['load_average']} before, {machine['load_average_after']} after "
        "(load generator and servers share these CPUs)"
    )


def table(results: dict[str, Any], options: Options, found: list[Row]) -> str:
    lines = [header(results, options), ""]
    lines.append(f"{'#':<2} {'what':<78} {'ours':>22} {'baseline':>14} {'ratio':>8}  note")
    for row in found:
        ratio = "" if row.ratio is None else f"{row.ratio:.3f}x"
        lines.append(
            f"{row.phase:<2} {row.what:<78} {row.shown:>22} {row.baseline_shown:>14} "
            f"{ratio:>8}  {row.note}"
        )
    lines.append("")
    lines.append("How each row is measured:")
    lines += [f"  {phase}. {text}" for phase, text in METHODS.items()]
    return "\n".join(lines)


def to_json(results: dict[str, Any], options: Options, found: list[Row]) -> dict[str, Any]:
    settings = {
        key: str(value) if isinstance(value, Path) else value
        for key, value in asdict(options).items()
    }
    return {
        "rows": [asdict(row) for row in found],
        "methods": {str(phase): text for phase, text in METHODS.items()},
        "options": settings,
        "results": results,
    }


def chart(results: dict[str, Any], found: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 3, figsize=(16, 9))
    machine = results["machine"]
    figure.suptitle(
        f"crypto-mine benchmark: {machine['cpus']} CPUs ({machine['cpu_model']}), "
        "ours vs baseline measured side by side"
    )

    def bars(ax: Any, title: str, labels: list[str], values: list[float], unit: str) -> None:
        drawn = ax.bar(labels, values, color=["#3b7dd8", "#9aa5b1", "#d87a3b", "#5aa469"])
        ax.bar_label(drawn, labels=[f"{v:,.0f}" if v >= 10 else f"{v:.3g}" for v in values])
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(unit)

    by_key = {row.key: row for row in found}
    http = by_key["http.click_vs_bare"]
    bars(
        axes[0][0],
        f"1. click endpoint vs bare Starlette ({http.ratio:.2f}x)",
        ["click accepted/s", "bare req/s"],
        [http.value, http.baseline or 0.0],
        "per second",
    )
    bars(
        axes[0][1],
        "2. Redis per accepted click",
        ["round trips\nfull load", "round trips\n1 connection", "commands\nfull load"],
        [
            by_key["redis.round_trips_full_load"].value,
            by_key["redis.round_trips_one_connection"].value,
            by_key["redis.commands_full_load"].value,
        ],
        "per click",
    )
    worker = by_key["worker.apply_vs_insert_many"]
    bars(
        axes[0][2],
        f"3. one worker process vs raw insert_many ({worker.ratio:.2f}x)",
        ["worker clicks/s", "insert_many docs/s"],
        [worker.value, worker.baseline or 0.0],
        "per second",
    )
    e2e = by_key["e2e.ours_vs_naive"]
    bars(
        axes[1][0],
        f"4. end to end, accept to MongoDB ({e2e.ratio or 0:.1f}x)",
        ["ours clicks/s", "naive RQ clicks/s"],
        [e2e.value, e2e.baseline or 0.0],
        "per second",
    )
    ax = axes[1][1]
    ids = [row for row in found if row.phase == 5]
    ax.barh([row.what.removeprefix("ids/s: ") for row in ids], [row.value for row in ids])
    ax.set_xscale("log")
    ax.set_title("5. ids/s (log scale)", fontsize=10)
    ax.tick_params(axis="y", labelsize=7)
    ax = axes[1][2]
    latency = results["6_latency"]
    timeline = latency["timeline"]
    ms = latency["latency_ms"]
    ax.plot([s["at"] for s in timeline], [s["lag_seconds"] for s in timeline], label="lag (s)")
    ax.set_xlabel("seconds into the run")
    ax.set_ylabel("worker lag, s")
    ax.set_title(
        f"6. at {latency['achieved_per_second']:,.0f}/s: p50 {ms['p50']:.1f}, p95 "
        f"{ms['p95']:.1f}, p99 {ms['p99']:.1f} ms",
        fontsize=10,
    )
    ax.axvline(latency["load_seconds"], color="#9aa5b1", ls=":", label="load stops")
    ax.legend(loc="upper left", fontsize=8)
    depth = ax.twinx()
    depth.plot(
        [s["at"] for s in timeline], [s["depth"] for s in timeline], color="#d87a3b", ls="--"
    )
    depth.set_ylabel("queue depth, clicks (dashed)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
