"""Metric curves of one model, for metrics logged over steps (MLflow, Lightning, HF Trainer)."""

from __future__ import annotations

from mlrepo.commands.views.text import visible
from mlrepo.repo_index.curves import metric_curves
from mlrepo.tui.bars import BACK, KeyBar
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Static
from textual_plotext import PlotextPlot


class CurvesScreen(Screen[None]):
    BINDINGS = [Binding("escape,g", "app.pop_screen", "Back", id="curves.back")]

    def __init__(self, row: dict) -> None:
        super().__init__()
        self.row = row

    def compose(self) -> ComposeResult:
        title = "/".join(visible(str(p)) for p in (self.row["repo"], self.row["line"], self.row["name"]) if p)
        yield Static(f"Metric curves · {title}", id="screen-title")
        yield Static(Text("reading the metric files …", style="dim italic"), id="curves-note")
        plot = PlotextPlot(id="curves-plot")
        plot.display = False
        yield plot
        yield KeyBar(BACK)

    def on_mount(self) -> None:
        self.load()

    @work(thread=True, exclusive=True)
    def load(self) -> None:
        curves = metric_curves(self.row["path"], self.row["format"])
        self.app.call_from_thread(self.draw, curves)

    def draw(self, curves: dict[str, list[tuple[int, float]]]) -> None:
        note = self.query_one("#curves-note", Static)
        curves = {name: points for name, points in curves.items() if points}
        if not curves:
            note.update(Text("This model logged no metric over steps: its metrics are single values "
                             "(the detail pane shows them). Curves come from MLflow, Lightning and HF Trainer "
                             "runs.  esc goes back.", style="italic"))
            return
        note.display = False
        widget = self.query_one(PlotextPlot)
        widget.display = True
        plt = widget.plt
        plt.clear_figure()
        steps = sorted({step for points in curves.values() for step, _ in points})
        for name, points in sorted(curves.items()):
            xs, values = zip(*points, strict=True)
            plt.plot(list(xs), list(values), label=visible(name), marker="braille")
        plt.xticks([float(t) for t in step_ticks(steps[0], steps[-1])])
        plt.xlabel("step")
        widget.refresh()


def step_ticks(first: int, last: int, most: int = 8) -> list[int]:
    """Whole-number steps for the x axis (plotext would put ticks at fractional steps)."""
    span = max(last - first, 1)
    stride = max(1, -(-span // (most - 1)))
    return list(range(first, last + 1, stride))
