"""Messages the loading and live-update workers post to the app (message classes apart, as toolong keeps them)."""

from __future__ import annotations

from mlrepo.repo_index import Index
from mlrepo.repo_index.live import ChangeBatch
from textual.message import Message


class IndexChanged(Message):
    """Models saved, changed or removed on disk while the app is open. Each carries the whole index after the
    change, so a burst collapses into its latest message (``can_replace``), as toolong does with file events."""

    def __init__(self, batch: ChangeBatch) -> None:
        super().__init__()
        self.batch = batch

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, IndexChanged)


class IndexLoaded(Message):
    def __init__(self, index: Index, checked: bool = True) -> None:
        super().__init__()
        self.index = index
        self.checked = checked  # False: straight from the cache, the disk not yet looked at
