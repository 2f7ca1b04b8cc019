"""Pins: models a user protects (deployed, resumed from), so that ``prune`` and ``archive`` never remove them.

Pins are mlrepo's own state, ``pins.json`` in the root's state folder (``state_dir``), never a tracker's files, and
not part of the index cache, so a rebuilt cache keeps them. A pin is keyed by the model's id (derived from its path
relative to the root): a model restored to its folder is still pinned. A pins file that cannot be read is an
error, never "nothing is pinned": a plan made without knowing the pins could remove a pinned model.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

from mlrepo.errors import FailedError
from mlrepo.repo_index.state import StateError, read_json, state_dir, write_json

PINS = "pins.json"
VERSION = 1
TAG = "pinned"  # the tag pinned models carry in the index (the TUI and listings show it)


class PinsError(FailedError):
    """The pins file exists but cannot be used."""


@dataclass(frozen=True, slots=True)
class Pin:
    id: str
    path: str
    note: str = ""
    pinned_at: str = ""


def pins_path(root: str) -> str:
    return os.path.join(state_dir(root), PINS)


def load_pins(root: str) -> dict[str, Pin]:
    """id -> Pin; {} when nothing was ever pinned. Raises PinsError when the file is damaged."""
    path = pins_path(root)
    try:
        data = read_json(root, PINS)
    except StateError as exc:
        raise PinsError(f"cannot read the pins: {exc}") from None
    if data is None:
        return {}
    pins = data.get("pins") if isinstance(data, dict) else None
    if not isinstance(pins, list):
        raise PinsError(f"{path}: not a pins file (no list of pins)")
    out: dict[str, Pin] = {}
    for item in pins:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise PinsError(f"{path}: a pin without an id")
        out[item["id"]] = Pin(item["id"], str(item.get("path") or ""), str(item.get("note") or ""),
                              str(item.get("pinned_at") or ""))
    return out


def save_pins(root: str, pins: dict[str, Pin]) -> None:
    write_json(root, PINS, {"version": VERSION,
                            "pins": [asdict(p) for p in sorted(pins.values(), key=lambda p: p.id)]})


def pin(root: str, models: list[tuple[str, str]], note: str = "") -> list[Pin]:
    """Pin (id, path) pairs; a pinned model gets the new note. Returns the pins written."""
    pins = load_pins(root)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    made = [Pin(mid, path, note or (pins[mid].note if mid in pins else ""), now) for mid, path in models]
    pins.update((p.id, p) for p in made)
    save_pins(root, pins)
    return made


def unpin(root: str, ids: list[str]) -> list[str]:
    """Remove the pins of ``ids``; returns those that were pinned."""
    pins = load_pins(root)
    gone = [i for i in ids if i in pins]
    for i in gone:
        del pins[i]
    if gone:
        save_pins(root, pins)
    return gone


def pinned_ids(root: str) -> set[str]:
    """The pinned ids, for showing them; a damaged pins file shows none (acting on pins uses ``load_pins``)."""
    try:
        return set(load_pins(root))
    except PinsError:
        return set()
