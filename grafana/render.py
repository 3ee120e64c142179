"""A dashboard's panels drawn as Grafana lays them out, with data from a real Prometheus.

No Grafana server runs here, so this draws the generated JSON itself: the 24-column grid of
``gridPos``, rows as headings, time series as lines (stacked bars where the panel stacks
them), stats as their last value coloured by the panel's thresholds, tables as their rows.
Every query is the panel's own ``expr``, run on Prometheus's HTTP API.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

GRID_COLUMNS = 24
COLORS = {"green": "#56a64b", "orange": "#ff9830", "red": "#e02f44", "yellow": "#f2cc0c"}
PALETTE = ("#7eb26d", "#eab839", "#6ed0e0", "#ef843c", "#e24d42", "#1f78c1", "#ba43a9")
LEGEND = re.compile(r"\{\{\s*(\w+)\s*\}\}")

Series = tuple[str, list[float], list[float]]  # legend, unix times, values


@dataclass(frozen=True)
class Prometheus:
    """Queries a Prometheus server's HTTP API."""

    url: str

    def _get(self, path: str, **params: str) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.url}{path}", params=params, timeout=10, trust_env=False)
        body = answer.json()
        if body.get("status") != "success":
            raise RuntimeError(f"Prometheus refused {params.get('query')!r}: {body}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        return self._get(
            "/api/v1/query_range", query=expr, start=str(start), end=str(end), step=str(step)
        )

    def instant(self, expr: str, at: float) -> list[dict[str, Any]]:
        return self._get("/api/v1/query", query=expr, time=str(at))


def legend(template: str, labels: dict[str, str], expr: str) -> str:
    if not template:
        return expr if len(expr) < 40 else expr[:37] + "..."
    return LEGEND.sub(lambda m: labels.get(m[1], ""), template)


def scale(unit: str) -> tuple[float, str]:
    """Factor and axis label of a Grafana unit (seconds are drawn in milliseconds)."""
    return {
        "s": (1000.0, "ms"),
        "reqps": (1.0, "req/s"),
        "ops": (1.0, "per s"),
        "percentunit": (100.0, "%"),
        "ms": (1.0, "ms"),
    }.get(unit, (1.0, ""))


def threshold_color(steps: list[dict[str, Any]], value: float) -> str:
    color = "green"
    for step in steps:
        if step.get("value") is None or value >= float(step["value"]):
            color = str(step["color"])
    return COLORS.get(color, color)


def number(value: float, unit: str) -> str:
    if math.isnan(value):
        return "no data"
    factor, label = scale(unit)
    shown = value * factor
    text = f"{shown:,.0f}" if abs(shown) >= 100 else f"{shown:,.2f}".rstrip("0").rstrip(".")
    return f"{text} {label}".strip() if label != "%" else f"{text}%"


# The dashboards' variables as one release named crypto-mine in its namespace shows them.
RELEASE = {"namespace": "crypto-mine", "release": "crypto-mine"}
VARIABLE = re.compile(r"\$\{?(\w+)\}?")


class Renderer:
    def __init__(
        self,
        prometheus: Prometheus,
        start: float,
        end: float,
        step: float,
        variables: dict[str, str] | None = None,
    ) -> None:
        self.prometheus = prometheus
        self.start, self.end, self.step = start, end, step
        # Grafana's $__rate_interval: four scrape intervals at least, here four steps.
        self.variables = {"__rate_interval": f"{max(4 * step, 4):.0f}s", **RELEASE}
        self.variables.update(variables or {})

    def expr(self, text: str) -> str:
        """A query with the dashboard's variables (``$name``, ``${name}``) filled in."""
        return VARIABLE.sub(lambda m: self.variables.get(m.group(1), m.group(0)), text)

    def series(self, panel: dict[str, Any]) -> list[Series]:
        found: list[Series] = []
        for target in panel.get("targets", []):
            expr = self.expr(target["expr"])
            for result in self.prometheus.range(expr, self.start, self.end, self.step):
                times = [float(t) for t, _ in result["values"]]
                values = [float(v) for _, v in result["values"]]
                name = legend(target.get("legendFormat", ""), result["metric"], expr)
                found.append((name, times, values))
        return found

    def timeseries(self, axes: Any, panel: dict[str, Any]) -> None:
        defaults = panel.get("fieldConfig", {}).get("defaults", {})
        factor, label = scale(defaults.get("unit", ""))
        custom = defaults.get("custom", {})
        stacked = custom.get("stacking", {}).get("mode", "none") != "none"
        series = self.series(panel)
        base: dict[float, float] = {}
        for index, (name, times, values) in enumerate(series):
            minutes = [(t - self.end) / 60 for t in times]
            shown = [v * factor if not math.isnan(v) else math.nan for v in values]
            color = PALETTE[index % len(PALETTE)]
            if stacked:
                bottoms = [base.get(t, 0.0) for t in times]
                width = self.step / 60 * 0.9
                axes.bar(minutes, shown, width, bottom=bottoms, color=color, label=name)
                for t, v in zip(times, shown, strict=True):
                    base[t] = base.get(t, 0.0) + (0.0 if math.isnan(v) else v)
            else:
                axes.plot(minutes, shown, color=color, linewidth=1.2, label=name)
        for step in defaults.get("thresholds", {}).get("steps", []):
            if step.get("value") is not None:
                color = COLORS.get(step["color"], step["color"])
                axes.axhline(float(step["value"]) * factor, color=color, linestyle="--", lw=1)
        axes.set_ylabel(label, fontsize=7)
        axes.set_xlabel("minutes", fontsize=7)
        axes.set_xlim((self.start - self.end) / 60, 0)
        axes.tick_params(labelsize=7)
        axes.grid(alpha=0.25)
        if series:
            axes.legend(fontsize=6, loc="upper left", ncol=2, framealpha=0.6)
        else:
            axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes)

    def stat(self, axes: Any, panel: dict[str, Any]) -> None:
        defaults = panel.get("fieldConfig", {}).get("defaults", {})
        [target] = panel["targets"]
        results = self.prometheus.instant(self.expr(target["expr"]), self.end)
        value = float(results[0]["value"][1]) if results else math.nan
        steps = defaults.get("thresholds", {}).get("steps", [])
        color = threshold_color(steps, value) if not math.isnan(value) else "#888888"
        axes.set_facecolor(color)
        axes.text(
            0.5,
            0.5,
            number(value, defaults.get("unit", "")),
            ha="center",
            va="center",
            fontsize=22,
            color="white",
            weight="bold",
            transform=axes.transAxes,
        )
        axes.set_xticks([])
        axes.set_yticks([])

    def table(self, axes: Any, panel: dict[str, Any]) -> None:
        rows: list[tuple[str, str]] = []
        for target in panel["targets"]:
            for result in self.prometheus.instant(self.expr(target["expr"]), self.end):
                labels = ", ".join(f"{k}={v}" for k, v in sorted(result["metric"].items()))
                rows.append((labels or "{}", f"{float(result['value'][1]):g}"))
        axes.axis("off")
        if not rows:
            axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes)
            return
        table = axes.table(
            cellText=rows, colLabels=("series", "value"), loc="upper center", cellLoc="left"
        )
        table.auto_set_font_size(False)
        table.set_fontsize(8)
        table.scale(1, 1.3)


def render(dashboard: dict[str, Any], renderer: Renderer, out: Path) -> None:
    """Draws ``dashboard`` into the PNG ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Variables with a value of their own (a custom list's current one, e.g. the SLO period)
    # as the dashboard opens; those the renderer was given win.
    for variable in dashboard.get("templating", {}).get("list", []):
        current = (variable.get("current") or {}).get("value")
        if isinstance(current, str) and current:
            renderer.variables.setdefault(variable["name"], current)
    panels = dashboard["panels"]
    height = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    figure = plt.figure(figsize=(18, height * 0.42))
    grid = figure.add_gridspec(
        height, GRID_COLUMNS, hspace=1.6, wspace=1.2, top=0.96, bottom=0.02, left=0.04, right=0.99
    )
    minutes = round((renderer.end - renderer.start) / 60)
    figure.suptitle(f"{dashboard['title']} (last {minutes} min)", fontsize=14, y=0.995)
    for panel in panels:
        box = panel["gridPos"]
        y, x, h, w = box["y"], box["x"], box["h"], box["w"]
        if panel["type"] == "row":
            axes = figure.add_subplot(grid[y : y + h, :])
            axes.axis("off")
            axes.text(0, 0, panel["title"], fontsize=12, weight="bold", va="bottom")
            continue
        # The title takes the panel's first grid unit, as in Grafana, the time axis its last.
        axes = figure.add_subplot(grid[y + 1 : y + h - 1, x : x + w])
        axes.set_title(panel["title"], fontsize=9, loc="left")
        draw = {"timeseries": renderer.timeseries, "stat": renderer.stat, "table": renderer.table}
        draw[panel["type"]](axes, panel)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=90, bbox_inches="tight")
    plt.close(figure)
