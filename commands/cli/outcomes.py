"""What a removal or restore did, model by model, on stderr: the one report of ``prune``, ``archive`` and
``restore``, for a folder and for a bucket alike (a bucket's run also says the requests it made)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlrepo.commands.cli.common import visible
from mlrepo.commands.cli.console import err
from mlrepo.errors import FailedError

if TYPE_CHECKING:
    from mlrepo.commands.operations.execute import Report


def report_outcomes(report: Report, verb: str) -> None:
    """Each model's outcome and the total; exit 1 (FailedError) when any model was not moved."""
    from mlrepo.repo_index.units import human_size

    for line in report.recovered:
        err.print(visible(f"recovered: {line}"), markup=False)
    for o in report.outcomes:
        if o.ok:
            where = f" -> {o.where}" if o.where and o.action != "restored" else ""
            err.print(visible(f"{o.action} {o.label or o.path}{where}"), markup=False)
        else:
            err.print(visible(f"not {verb}: {o.label or o.path}: {o.message}"), markup=False, style="yellow")
    freed = f", freed {human_size(report.bytes_freed)}" if report.bytes_freed > 0 else ""
    if freed and verb == "trashed":
        freed += " once the trash is emptied"
    cost = getattr(report, "cost", None)  # a bucket's run: RemoteReport.cost
    requests = f" ({cost.total} requests: {cost.text()})" if cost is not None and cost.total else ""
    err.print(f"{verb} {len(report.succeeded)} of {len(report.outcomes)} models{freed}{requests}", markup=False)
    if report.failed:
        raise FailedError(f"{len(report.failed)} model(s) were not {verb}; see above")
