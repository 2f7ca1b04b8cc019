"""What a move of one model did (``Moved``), or why it was refused (``Refused``): the outcome every kind of move
(``moves``, ``mlflow_moves``) returns or raises, and ``execute`` reports."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlrepo.errors import FailedError


class Refused(FailedError):
    """This model may not be moved (outside the root, a symlink, a folder already in the way...)."""


@dataclass(slots=True)
class Moved:
    """What happened to one model."""

    id: str
    path: str
    action: str  # archived | trashed | deleted | restored
    where: str | None = None  # the archive, the trash entry, or (restored) the source
    size_before: int = 0
    size_after: int = 0  # the archive's size (archived), else 0
    extra: dict = field(default_factory=dict)
