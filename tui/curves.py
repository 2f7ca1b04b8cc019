"""Metric curves of one model, for metrics logged over steps (MLflow, Lightning, HF Trainer)."""

from __future__ import annotations

from mlrepo.repo_index.curves import metric_curves
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual_plotext import PlotextPlot


class CurvesScreen(Screen[None]):
    BINDINGS = [Binding("escape,g", "app.pop_screen", "Back", id="curves.back")]

    def __init__(self, row: dict) -> None:
        super().__init__()
        self.row = row

    def compose(self) -> ComposeResult:
        title = "/".join(str(p) for p in (self.row["repo"], self.row["line"], self.row["name"]) if p)
        yield Static(f"Metric curves · {title}", id="screen-title")
        yield PlotextPlot(id="curves-plot")
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    @work(thread=True, exclusive=True)
    def load(self) -> None:
        curves = metric_curves(self.row["path"], self.row["format"])
        self.app.call_from_thread(self.draw, curves)

    def draw(self, curves: dict[str, list[tuple[int, float]]]) -> None:
        widget = self.query_one(PlotextPlot)
        plt = widget.plt
        plt.clear_figure()
        if not curves:
            plt.title("no metric of this model was logged over steps")
        for name, points in sorted(curves.items()):
            steps, values = zip(*points, strict=True)
            plt.plot(list(steps), list(values), label=name, marker="braille")
        plt.xlabel("step")
        widget.refresh()
