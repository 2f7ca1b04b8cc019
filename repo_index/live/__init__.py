"""A live index: watchdog events under a root become index changes, applied to the polars table one model at a
time, the way toolong splits its watchers: each part in a module named for what it holds.

* ``events``: what is reported (``ChangeEvent``, ``ChangeBatch``);
* ``watchers``: the observer: inotify where it can follow the tree, polling where it cannot;
* ``routing``: a file-system path becomes a key, held until quiet (on the observer thread);
* ``reconcile``: due keys become re-read models and one ``ChangeBatch``, against the ``modelmap``;
* ``live_index``: ``LiveIndex``, which starts and stops the threads and saves the cache.
"""

from mlrepo.repo_index.live.events import ChangeBatch, ChangeEvent
from mlrepo.repo_index.live.live_index import LiveIndex
from mlrepo.repo_index.live.routing import COOKIE_PREFIX, LEDGER_REL
from mlrepo.repo_index.live.watchers import (
           POLL_FOLDERS_PER_SECOND,
           filesystem_type,
           max_user_watches,
)

__all__ = ["COOKIE_PREFIX", "LEDGER_REL", "POLL_FOLDERS_PER_SECOND", "ChangeBatch", "ChangeEvent", "LiveIndex", "filesystem_type",
           "max_user_watches"]
