"""A plan as tables: what goes, what stays and why, per group; and what a restore brings back. Names, paths and
reasons go in as ``Text`` (``views.text.plain``): a model named ``[link=…]`` cannot restyle or hide a row."""

from __future__ import annotations

from collections.abc import Sequence

from mlrepo.commands.operations.plan import Plan, RestoreItem
from mlrepo.commands.views.text import plain
from mlrepo.repo_index.units import human_size
from rich.console import RenderableType
from rich.table import Table


def plan_table(plan: Plan) -> Table:
    metric = plan.keys[0].column.removeprefix("metrics.") if plan.keys else None
    title = {"prune": "prune plan", "archive": "archive plan"}.get(plan.kind, plan.kind)
    table = Table(title=title, header_style="bold", show_edge=False, pad_edge=False, title_justify="left")
    table.add_column("action")
    table.add_column("model", overflow="fold")
    table.add_column("id")
    table.add_column("size", justify="right")
    if metric:
        table.add_column(plain(metric), justify="right")
    table.add_column("why", overflow="fold")
    verb = "archive" if plan.kind == "archive" else "remove"
    for d in sorted(plan.decisions, key=lambda d: (not d.remove, d.group, d.path)):
        action = f"[red]{verb}[/]" if d.remove else ("[yellow]keep[/]" if d.protected else "[green]keep[/]")
        cells: list[RenderableType] = [action, plain(d.label or d.path), plain(d.id), human_size(d.size_bytes)]
        if metric:
            cells.append("" if d.value is None else f"{d.value:.4g}")
        cells.append(plain("; ".join(d.reasons)))
        table.add_row(*cells)
    return table


def groups_table(plan: Plan) -> Table:
    table = Table(title=f"per {plan.per}", header_style="bold", show_edge=False, pad_edge=False,
                  title_justify="left")
    for name, justify in (("group", "left"), ("models", "right"), ("keep", "right"), ("remove", "right"),
                          ("frees", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for g in plan.groups():
        table.add_row(plain(g.group), str(g.models), str(g.kept), str(g.removed), human_size(g.bytes_freed))
    return table


def restore_table(items: Sequence[RestoreItem]) -> Table:
    table = Table(title="restore plan", header_style="bold", show_edge=False, pad_edge=False, title_justify="left")
    for name in ("model", "id", "from", "size", "to", "problem"):
        table.add_column(name, overflow="fold", justify="right" if name == "size" else "left")
    for item in items:
        table.add_row(plain(item.label), plain(item.id), plain(f"{item.kind}: {item.source}"),
                      human_size(item.size_bytes), plain(item.path), plain(item.problem or ""))
    return table
