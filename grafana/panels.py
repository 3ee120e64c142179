"""The project's conventions over Grafana's foundation SDK: the data source variable on every
panel and query, the namespace and release variables, panel sizes, legends as tables."""

from __future__ import annotations

from typing import TypeVar

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard, prometheus, stat, table, timeseries
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
Thresholds = tuple[tuple[str, float | None], ...]
P = TypeVar("P", timeseries.Panel, stat.Panel, table.Panel)


def series(component: str, *matchers: str) -> str:
    """Matchers of one component's series of the chosen release: its namespace and job (the
    chart's ServiceMonitors name the job "<release full name>-<component>")."""
    return ",".join(('namespace="$namespace"', f'job="$release-{component}"', *matchers))


def query(
    expr: str, legend: str = "__auto", ref: str = "A", instant: bool = False
) -> prometheus.Dataquery:
    built = (
        prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DATASOURCE)
    )
    if instant:
        return built.instant().format(PromQueryFormat.TABLE)
    return built.range()


def _with_queries(panel: timeseries.Panel | stat.Panel, exprs: tuple[tuple[str, str], ...]) -> None:
    for index, (expr, legend) in enumerate(exprs):
        panel.with_target(query(expr, legend, chr(ord("A") + index)))


def framed(panel: P, title: str, description: str, width: int, unit: str = "short") -> P:
    """A panel's title, description, data source, unit and size (8 rows high)."""
    return (
        panel.title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(width)
        .height(8)
    )


def thresholds(steps: Thresholds) -> dashboard.ThresholdsConfig:
    built = dashboard.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE)
    return built.steps([model.Threshold(color=color, value=value) for color, value in steps])


def timeseries_panel(
    title: str,
    description: str,
    *exprs: tuple[str, str],
    unit: str = "short",
    width: int = 8,
    stacked: bool = False,
    bars: bool = False,
    steps: Thresholds = (("green", None),),
) -> timeseries.Panel:
    panel = (
        framed(timeseries.Panel(), title, description, width, unit)
        .line_width(1)
        .fill_opacity(60 if bars else 10)
        .draw_style(common.GraphDrawStyle.BARS if bars else common.GraphDrawStyle.LINE)
        .show_points(common.VisibilityMode.NEVER)
        .stacking(
            common_builders.StackingConfig().mode(
                common.StackingMode.NORMAL if stacked else common.StackingMode.NONE
            )
        )
        .thresholds(thresholds(steps))
        .thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(
                common.GraphThresholdsStyleMode.LINE
                if len(steps) > 1
                else common.GraphThresholdsStyleMode.OFF
            )
        )
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["lastNotNull", "max"])
        )
        .tooltip(
            common_builders.VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.DESCENDING)
        )
    )
    _with_queries(panel, exprs)
    return panel


def stat_panel(
    title: str,
    description: str,
    *exprs: tuple[str, str],
    unit: str,
    steps: Thresholds,
    width: int = 6,
) -> stat.Panel:
    panel = (
        framed(stat.Panel(), title, description, width, unit)
        .thresholds(thresholds(steps))
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.AREA)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    _with_queries(panel, exprs)
    return panel


def table_panel(title: str, description: str, expr: str, width: int = 12) -> table.Panel:
    return (
        framed(table.Panel(), title, description, width)
        .with_target(query(expr, ref="A", instant=True))
        .sort_by([common_builders.TableSortByFieldState().display_name("Value").desc(True)])
        .with_transformation(
            model.DataTransformerConfig(
                id_val="organize", options={"excludeByName": {"Time": True}}
            )
        )
    )


def release_variables(
    metric: str, component: str, matcher: str = ""
) -> list[dashboard.QueryVariable | dashboard.CustomVariable]:
    """``namespace`` and ``release`` (the release's full name) from the jobs of ``metric``
    (its series matching ``matcher``)."""
    scoped = f"{matcher}," if matcher else ""
    selector = f"{metric}{{{matcher}}}" if matcher else metric
    namespace = (
        dashboard.QueryVariable("namespace")
        .label("Namespace")
        .datasource(DATASOURCE)
        .query(f"label_values({selector}, namespace)")
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
    )
    release = (
        dashboard.QueryVariable("release")
        .label("Release")
        .description(f'The release\'s full name: its jobs are "<release>-{component}".')
        .datasource(DATASOURCE)
        .query(f'label_values({metric}{{{scoped}namespace="$namespace"}}, job)')
        .regex(f"/^(.*)-{component}$/")
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
    )
    return [namespace, release]


def new_dashboard(
    uid: str,
    title: str,
    description: str,
    variables: list[dashboard.QueryVariable | dashboard.CustomVariable],
) -> dashboard.Dashboard:
    built = (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["crypto-mine"])
        .readonly()
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("utc")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .with_variable(
            dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus")
        )
    )
    for variable in variables:
        built.with_variable(variable)
    return built
