"""The regression check: fails when a result is more than 20% worse than the last recorded one.

    python benchmarks/regression.py NEW.json [--against OLD.json] [--tolerance 0.2]

Without ``--against`` the newest other full run in ``benchmarks/results/`` (``YYYY-MM-DD-host.json``) is the
reference. Results are compared target by target (the ``verdicts`` of ``run.py``: ratios against the baseline of
the same run, so a busier machine moves both sides); a ``>=`` target is better higher, every other lower. Exit 1
when any target regressed, listing them; ``run.py`` runs this after each full run.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
TOLERANCE = 0.2


def previous_run(new_path: str) -> str | None:
    """The newest recorded full run other than ``new_path`` (quick runs and experiments are not references)."""
    here = os.path.abspath(new_path)
    runs = [p for p in glob.glob(os.path.join(RESULTS, "????-??-??-*.json"))
            if os.path.abspath(p) != here and not p.endswith("-quick.json") and "-at-" not in p]
    return max(runs, key=os.path.getmtime, default=None)


def regressions(new: dict, old: dict, tolerance: float = TOLERANCE) -> list[str]:
    before = {v["target"]: v["measured"] for v in old.get("verdicts", []) if v.get("measured") is not None}
    found = []
    for v in new.get("verdicts", []):
        was, now = before.get(v["target"]), v.get("measured")
        if was is None or now is None or was <= 0 or now <= 0:
            continue
        higher_is_better = ">=" in v["target"]
        worse = was / now if higher_is_better else now / was
        if worse > 1 + tolerance:
            found.append(f"{v['target']}: {was:.3g} -> {now:.3g} ({(worse - 1) * 100:.0f}% worse)")
    return found


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("new")
    parser.add_argument("--against")
    parser.add_argument("--tolerance", type=float, default=TOLERANCE)
    args = parser.parse_args(argv)
    against = args.against or previous_run(args.new)
    if against is None:
        print("no earlier recorded run to compare with")
        return 0
    with open(args.new, encoding="utf-8") as fh:
        new = json.load(fh)
    with open(against, encoding="utf-8") as fh:
        old = json.load(fh)
    found = regressions(new, old, args.tolerance)
    print(f"compared with {os.path.relpath(against)}: " + ("no regression" if not found else "REGRESSED"))
    for line in found:
        print(f"  {line}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
