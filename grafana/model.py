"""The few pieces of Grafana's dashboard JSON model the dashboards use."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SCHEMA_VERSION = 39
WIDTH = 24

Json = dict[str, Any]


@dataclass(frozen=True)
class Target:
    """One PromQL query of a panel."""

    expr: str
    legend: str = "__auto"
    instant: bool = False

    def json(self, ref: str) -> Json:
        return {
            "datasource": DATASOURCE,
            "expr": self.expr,
            "format": "table" if self.instant else "time_series",
            "instant": self.instant,
            "legendFormat": self.legend,
            "range": not self.instant,
            "refId": ref,
        }


@dataclass(frozen=True)
class Panel:
    """A panel: its type, title, queries, size and field options."""

    kind: str
    title: str
    description: str
    targets: tuple[Target, ...]
    unit: str = "short"
    width: int = 8
    height: int = 8
    options: Json = field(default_factory=dict)
    custom: Json = field(default_factory=dict)
    thresholds: tuple[tuple[str, float | None], ...] = (("green", None),)
    transformations: tuple[Json, ...] = ()

    def json(self, panel_id: int, x: int, y: int) -> Json:
        return {
            "datasource": DATASOURCE,
            "description": self.description,
            "fieldConfig": {
                "defaults": {
                    "custom": self.custom,
                    "thresholds": {
                        "mode": "absolute",
                        "steps": [{"color": c, "value": v} for c, v in self.thresholds],
                    },
                    "unit": self.unit,
                },
                "overrides": [],
            },
            "gridPos": {"h": self.height, "w": self.width, "x": x, "y": y},
            "id": panel_id,
            "options": self.options,
            "targets": [t.json(chr(ord("A") + i)) for i, t in enumerate(self.targets)],
            "title": self.title,
            "transformations": list(self.transformations),
            "type": self.kind,
        }


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    rows: tuple[Row, ...]
    tags: tuple[str, ...] = ("crypto-mine",)

    def panels(self) -> list[Panel]:
        return [panel for row in self.rows for panel in row.panels]

    def json(self) -> Json:
        panels: list[Json] = []
        next_id = 1
        y = 0
        for row in self.rows:
            panels.append(
                {
                    "collapsed": False,
                    "gridPos": {"h": 1, "w": WIDTH, "x": 0, "y": y},
                    "id": next_id,
                    "panels": [],
                    "title": row.title,
                    "type": "row",
                }
            )
            next_id += 1
            y += 1
            x = 0
            line_height = 0
            for panel in row.panels:
                if x + panel.width > WIDTH:
                    x, y, line_height = 0, y + line_height, 0
                panels.append(panel.json(next_id, x, y))
                next_id += 1
                x += panel.width
                line_height = max(line_height, panel.height)
            y += line_height
        return {
            "annotations": {"list": []},
            "description": self.description,
            "editable": False,
            "graphTooltip": 1,
            "links": [],
            "panels": panels,
            "refresh": "30s",
            "schemaVersion": SCHEMA_VERSION,
            "tags": list(self.tags),
            "templating": {
                "list": [
                    {
                        "current": {},
                        "hide": 0,
                        "label": "Data source",
                        "name": "datasource",
                        "query": "prometheus",
                        "refresh": 1,
                        "type": "datasource",
                    }
                ]
            },
            "time": {"from": "now-1h", "to": "now"},
            "timezone": "utc",
            "title": self.title,
            "uid": self.uid,
            "version": 1,
        }


def timeseries(
    title: str,
    description: str,
    *targets: Target,
    unit: str = "short",
    width: int = 8,
    stacked: bool = False,
    bars: bool = False,
    thresholds: tuple[tuple[str, float | None], ...] = (("green", None),),
) -> Panel:
    custom: Json = {
        "drawStyle": "bars" if bars else "line",
        "fillOpacity": 60 if bars else 10,
        "lineWidth": 1,
        "showPoints": "never",
        "stacking": {"group": "A", "mode": "normal" if stacked else "none"},
        "thresholdsStyle": {"mode": "line" if len(thresholds) > 1 else "off"},
    }
    return Panel(
        "timeseries",
        title,
        description,
        targets,
        unit=unit,
        width=width,
        custom=custom,
        thresholds=thresholds,
        options={
            "legend": {
                "calcs": ["lastNotNull", "max"],
                "displayMode": "table",
                "placement": "bottom",
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    )


def stat(
    title: str,
    description: str,
    target: Target,
    unit: str,
    thresholds: tuple[tuple[str, float | None], ...],
    width: int = 6,
) -> Panel:
    return Panel(
        "stat",
        title,
        description,
        (target,),
        unit=unit,
        width=width,
        thresholds=thresholds,
        options={
            "colorMode": "background",
            "graphMode": "area",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        },
    )


def table(title: str, description: str, target: Target, width: int = 12) -> Panel:
    return Panel(
        "table",
        title,
        description,
        (target,),
        width=width,
        options={"showHeader": True, "sortBy": [{"desc": True, "displayName": "Value"}]},
        transformations=({"id": "organize", "options": {"excludeByName": {"Time": True}}},),
    )
