"""Prune and archive from the keyboard: the plan and the bytes it frees in a dialog, then the CLI's own
operations in a worker, with a progress bar."""

from __future__ import annotations

from mlrepo.commands.operations import Progress, Report, remove_models
from mlrepo.commands.operations.plan import Plan
from mlrepo.commands.views.plan import groups_table, plan_table
from mlrepo.repo_index.units import human_size
from rich.console import Group
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, ProgressBar, Static
from mlrepo.commands.views.text import plain

VERBS = {"trash": ("Trash", "to the trash (mlrepo restore brings them back)"),
         "archive": ("Archive", "into compressed archives (mlrepo restore brings them back)")}


class PlanScreen(ModalScreen[Report | None]):
    """Shows what goes, what stays and why; acting needs the button (or enter on it)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="plan.cancel")]

    def __init__(self, plan: Plan, how: str) -> None:
        super().__init__()
        self.plan, self.how = plan, how

    def compose(self) -> ComposeResult:
        verb, where = VERBS[self.how]
        n = len(self.plan.removed)
        with Vertical(id="plan-dialog"):
            yield Static(f"{verb} {n} of {len(self.plan.decisions)} models, freeing "
                         f"{human_size(self.plan.bytes_freed)} {where}?", id="plan-title")
            with VerticalScroll(id="plan-body"):
                parts = [plan_table(self.plan)]
                if self.plan.kind == "prune":
                    parts.append(groups_table(self.plan))
                yield Static(Group(*parts, *map(plain, self.plan.notes)))
            yield ProgressBar(total=max(self.plan.bytes_freed, 1), id="plan-progress", show_eta=False)
            with Horizontal(id="plan-buttons"):
                yield Button(f"{verb} {n}", variant="error", id="plan-go", disabled=n == 0)
                yield Button("Cancel", id="plan-cancel")

    def on_mount(self) -> None:
        self.query_one("#plan-progress").display = False
        self.query_one("#plan-cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "plan-cancel":
            self.dismiss(None)
        elif event.button.id == "plan-go":
            for button in self.query(Button):
                button.disabled = True
            self.query_one("#plan-progress").display = True
            self.run_plan()

    def action_cancel(self) -> None:
        if not self.query_one("#plan-progress").display:  # once started, the operation finishes
            self.dismiss(None)

    @work(thread=True, exclusive=True, group="prune")
    def run_plan(self) -> None:
        def progress(p: Progress) -> None:
            self.app.call_from_thread(self.query_one(ProgressBar).update, progress=p.bytes_done)

        report = remove_models(self.plan.root, self.plan.decisions, how=self.how, progress=progress)
        self.app.call_from_thread(self.dismiss, report)


class KeepTopScreen(ModalScreen[int | None]):
    """Asks for K of a keep-top rule on the metric under the cursor."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="keeptop.cancel")]

    def __init__(self, metric: str, per: str) -> None:
        super().__init__()
        self.metric, self.per = metric, per

    def compose(self) -> ComposeResult:
        with Vertical(id="keeptop-dialog"):
            yield Static(plain(f"Keep the top K models by {self.metric} per {self.per}; trash the rest (a plan "
                               "comes first)."))
            yield Input(placeholder="K", id="keeptop-k", type="integer")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        self.dismiss(int(value) if value.isdigit() else None)

    def action_cancel(self) -> None:
        self.dismiss(None)
