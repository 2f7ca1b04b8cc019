"""Every key of the app, in the order ``?`` and the command palette list them, each with an id (for keymaps).

The models table's keys are bound on the main screen, the keys that act anywhere (help, reload, quit) on the app.
All are priority bindings: every key of the table is handled there, in the order typed, before Textual hands keys
to the focused widget (a key queued behind "/", or behind enter in the filter box, while the app was busy went to
the widget that had the focus when it was queued, and a mark queued behind an arrow acted before the arrow)."""

from __future__ import annotations

from textual.binding import Binding, BindingType

_KEYS = [
    Binding("slash", "focus_filter", "Filter", id="filter"),
    Binding("s", "sort", "Sort", id="sort"),
    Binding("b", "best", "Best", id="best"),
    Binding("m", "mark", "Mark", id="mark"),
    Binding("c", "compare", "Compare", id="compare"),
    Binding("h", "history", "History", id="history"),
    Binding("d", "disk", "Disk", id="disk"),
    Binding("g", "curves", "Curves", id="curves"),
    Binding("o", "choose_columns", "Choose columns", show=False, id="columns"),
    Binding("less_than_sign", "move_column(-1)", "Move column left", show=False, id="column_left"),
    Binding("greater_than_sign", "move_column(1)", "Move column right", show=False, id="column_right"),
    Binding("x", "remove('trash')", "Trash", id="trash"),
    Binding("a", "remove('archive')", "Archive", id="archive"),
    Binding("k", "keep_top", "Keep top K by this metric", show=False, id="keep_top"),
    Binding("y", "copy_path", "Copy path", show=False, id="copy_path"),
    Binding("i", "toggle_detail", "Detail pane", show=False, id="detail"),
    Binding("p", "pick", "Pick", id="pick"),
    Binding("r", "reload", "Reload", show=False, id="reload"),
    Binding("escape", "clear_filter", "Clear filter", show=False, id="clear_filter"),
    Binding("enter", "submit_filter", "Apply filter", id="submit_filter"),
    Binding("escape", "cancel_filter", "Clear filter", id="cancel_filter"),
    Binding("question_mark", "help", "Keys", id="help"),
    Binding("q", "quit", "Quit", id="quit"),
    *(Binding(key, f"table_{action}", "", show=False, system=True) for key, action in [
        ("up", "move(-1, 0)"), ("down", "move(1, 0)"), ("left", "move(0, -1)"), ("right", "move(0, 1)"),
        ("pageup", "page(-1)"), ("pagedown", "page(1)"), ("home", "edge(-1)"), ("end", "edge(1)")]),
]
#: the keys that act on any screen, bound on the app; the rest are bound on the main screen
ON_APP = frozenset({"reload", "help", "quit"})
#: table keys whose actions the app carries out: they open other screens, move models or quit
CARRIED_BY_APP = frozenset({"compare", "history", "disk", "curves", "remove", "keep_top", "pick"})


def action_name(binding: Binding) -> str:
    """``app.remove('trash')`` -> ``remove``: the name KEY_HELP and TABLE_ACTIONS know an action by."""
    return binding.action.removeprefix("app.").split("(")[0]


ALL = [Binding(b.key, f"app.{b.action}" if action_name(b) in CARRIED_BY_APP else b.action, b.description,
               show=b.show, id=b.id, system=b.system, priority=True) for b in _KEYS]
APP: list[BindingType] = [b for b in ALL if action_name(b) in ON_APP]
MAIN: list[BindingType] = [b for b in ALL if action_name(b) not in ON_APP]

KEY_HELP = {"focus_filter": "filter with the --where language; enter applies, esc clears",
            "sort": "sort by the column under the cursor (again: reverse); the old sort breaks ties",
            "best": "sort so the best model by the metric under the cursor is on top",
            "mark": "mark or unmark the model, then c, x or a act on the marked ones",
            "compare": "marked models side by side, differences highlighted",
            "history": "parameter history of the lines shown: each model under its closest ancestor",
            "disk": "disk usage, repo → line → model → files, largest first",
            "curves": "the metrics the model logged over steps",
            "choose_columns": "choose the columns shown", "move_column": "move the column under the cursor",
            "remove": "trash (x) or archive (a) the marked models, after a plan you confirm",
            "keep_top": "keep the top K by the metric under the cursor per line, repo or all; trash the rest",
            "copy_path": "copy the model's path to the clipboard",
            "toggle_detail": "show or hide the detail pane (hidden by default below 120 columns)",
            "pick": "quit, printing the model's path (cp -r \"$(mlrepo tui)\" deploy/)",
            "reload": "read the disk again", "clear_filter": "clear the filter",
            "submit_filter": "in the filter box: apply it, back to the table",
            "cancel_filter": "in the filter box: clear it, back to the table", "help": "this help",
            "quit": "quit"}
#: actions of the models table; other screens have their own keys and do not show these
TABLE_ACTIONS = frozenset({"focus_filter", "sort", "best", "mark", "compare", "history", "disk", "curves",
                           "choose_columns", "move_column", "pick", "clear_filter", "remove", "keep_top",
                           "copy_path", "toggle_detail"})

TABLE_KEYS = [("/", "Filter"), ("s", "Sort"), ("b", "Best"), ("m", "Mark"), ("c", "Compare"), ("h", "History"),
              ("d", "Disk"), ("g", "Curves"), ("x", "Trash"), ("a", "Archive"), ("p", "Pick"), ("?", "Keys"),
              ("q", "Quit")]
FILTER_KEYS = [("⏎", "Apply filter"), ("esc", "Clear filter"), ("tab", "Back to the table")]
