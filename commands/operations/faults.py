"""Fault points for the crash tests: ``fault(name)`` marks each point between the writes of a journaled step.

It does nothing unless the test-only environment variables below are set; then it can record the points, slow them
down, or stop at the N-th one and wait there for the test to SIGKILL the process.
"""

from __future__ import annotations

import os
import time

# Test-only hooks (never set in normal use):
# MLREPO_FAULT_AT=N (or =NAME): at the N-th fault point (or the first one called NAME), write "N name" to
#   MLREPO_FAULT_FILE and wait there to be killed.
# MLREPO_FAULT_LOG=FILE: append every point's number and name (to count them).
# MLREPO_FAULT_DELAY=SECONDS: sleep at every point (widens the windows for kills at random times).
_fault_count = 0


def fault(name: str) -> None:
    global _fault_count
    env = os.environ
    if "MLREPO_FAULT_AT" not in env and "MLREPO_FAULT_LOG" not in env and "MLREPO_FAULT_DELAY" not in env:
        return
    _fault_count += 1
    if env.get("MLREPO_FAULT_LOG"):
        with open(env["MLREPO_FAULT_LOG"], "a", encoding="utf-8") as fh:
            fh.write(f"{_fault_count} {name}\n")
    if env.get("MLREPO_FAULT_DELAY"):
        time.sleep(float(env["MLREPO_FAULT_DELAY"]))
    at = env.get("MLREPO_FAULT_AT", "")
    if at and (at == name if not at.isdigit() else int(at) == _fault_count):
        marker = env.get("MLREPO_FAULT_FILE")
        if marker:
            with open(marker, "w", encoding="utf-8") as fh:
                fh.write(f"{_fault_count} {name}\n")
                fh.flush()
                os.fsync(fh.fileno())
        while True:  # the test kills us here
            time.sleep(1)
