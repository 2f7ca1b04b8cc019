"""Prune and archive from the keyboard: the plan and the bytes it frees in a dialog, then the CLI's own
operations in a worker, with a progress bar."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mlrepo.commands.operations import How, Progress, Report, remove_models
from mlrepo.commands.operations.plan import Plan
from mlrepo.commands.views.plan import groups_table, plan_table
from mlrepo.repo_index.units import human_size
from rich.console import Group
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, ProgressBar, RadioButton, RadioSet, Static

Per = Literal["line", "repo", "all"]
PER: tuple[Per, ...] = ("line", "repo", "all")
PER_TEXT = {"line": "each line", "repo": "each repo", "all": "all models at once"}
VERBS = {"trash": ("Trash", "to the trash (mlrepo restore brings them back)"),
         "archive": ("Archive", "into compressed archives (mlrepo restore brings them back)")}


class PlanScreen(ModalScreen[Report | None]):
    """Shows what goes, what stays and why; acting needs the button (or enter on it)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="plan.cancel")]

    def __init__(self, plan: Plan, how: How) -> None:
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
                yield Static(Group(*parts, *self.plan.notes))
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


@dataclass(frozen=True)
class KeepTop:
    k: int
    per: Per


class KeepTopScreen(ModalScreen[KeepTop | None]):
    """Asks for K (3 unless changed) and the groups it applies to, for a keep-top rule on the metric under the
    cursor; enter goes on to the plan, which still has to be confirmed."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="keeptop.cancel")]

    def __init__(self, metric: str, k: int = 3, per: Per = "line") -> None:
        super().__init__()
        self.metric, self.k, self.per = metric, k, per

    def compose(self) -> ComposeResult:
        with Vertical(id="keeptop-dialog"):
            yield Static(f"Keep the top K models by {self.metric}; trash the rest (a plan comes first).")
            with Horizontal(id="keeptop-row"):
                yield Static("K ", classes="keeptop-label")
                yield Input(str(self.k), placeholder="K", id="keeptop-k", type="integer")
            yield Static("per", classes="keeptop-label")
            with RadioSet(id="keeptop-per"):
                for per in PER:
                    yield RadioButton(PER_TEXT[per], value=per == self.per, id=f"per-{per}")
            yield Static("enter: show the plan · esc: cancel", classes="keeptop-label")

    def on_mount(self) -> None:
        self.query_one("#keeptop-k", Input).focus()

    def choice(self) -> KeepTop | None:
        value = self.query_one("#keeptop-k", Input).value.strip()
        pressed = self.query_one(RadioSet).pressed_button
        per: Per = pressed.id.removeprefix("per-") if pressed and pressed.id else "line"  # type: ignore[assignment]
        return KeepTop(int(value), per) if value.isdigit() else None

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(self.choice())

    def key_enter(self) -> None:  # enter on the radio buttons too
        self.dismiss(self.choice())

    def action_cancel(self) -> None:
        self.dismiss(None)
