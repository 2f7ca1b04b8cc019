"""The CLI as DESIGN.md writes it, run as a subprocess on real Cascade output."""

from __future__ import annotations

import io
import json
import os
import sqlite3

import polars as pl
import pytest
from treeutil import CASCADE_012, CASCADE_018, FIXTURES, du_bytes


@pytest.fixture
def ws(copy_fixture):
    return copy_fixture(CASCADE_018)


def _names(out: str) -> set[str]:
    return {"/".join(p.rstrip("/").split("/")[-3:]) for p in out.split()}


def test_best_minimises_direction_down_from_metadata(ws, cli):
    """score_d is not loss-like by name; only its metadata says lower is better."""
    r = cli("best", ws, "--metric", "score_d")
    assert r.code == 0, r.err
    assert r.out.strip() == str(ws / "tabular" / "sgd_sweep" / "00003")
    assert "minimised (from metadata)" in r.err
    r = cli("best", ws, "--metric", "score_d", "--mode", "max")
    assert r.out.strip().endswith("sgd_sweep/00001") and "--mode" in r.err


def test_best_loss_without_being_told(ws, cli):
    r = cli("best", ws / "vision" / "cnn_small", "--metric", "loss")
    assert r.code == 0, r.err
    assert r.out.strip().endswith("cnn_small/00001")  # 0.9 < 0.95; 00002's NaN is no candidate


def test_ambiguous_and_unknown_metric_are_usage_errors(ws, cli):
    r = cli("best", ws, "--metric", "loss")
    assert r.code == 2 and "ambiguous" in r.err and "metrics.loss.train" in r.err
    assert "Traceback" not in r.err
    r = cli("best", ws, "--metric", "nope")
    assert r.code == 2 and "unknown metric" in r.err and "metrics.score_d" in r.err


def test_best_per_line_and_tie_break(ws, cli):
    r = cli("best", ws, "--metric", "f1.digits.val", "--per", "line")
    assert r.code == 0 and _names(r.out) == {"tabular/rf_baseline/00002"}
    r = cli("best", ws, "--metric", "metrics.accuracy", "--per", "line", "--format", "json")
    rows = json.loads(r.out)
    assert {(x["line"], x["name"]) for x in rows} == {("rf_baseline", "00002"), ("cnn_small", "00001")}
    # tie-break: every sgd_sweep model has optimizer.momentum 0.9; rank by loss.val then score_d
    r = cli("best", ws / "tabular" / "sgd_sweep", "--metric", "loss.val", "--metric", "score_d")
    assert r.out.strip().endswith("00003")


def test_where_selects_exactly(ws, cli):
    r = cli("ls", ws, "--where", "metrics.accuracy > 0.8 and params.lr = 0.01", "--format", "json")
    assert r.code == 0, r.err
    assert {(x["line"], x["name"]) for x in json.loads(r.out)} == {("rf_baseline", "00001"),
                                                                  ("rf_baseline", "00002")}
    r = cli("ls", ws, "--where", "params.optimizer.name = 'sgd' OR params.epochs >= 30", "--format", "jsonl")
    got = {(x["line"], x["name"]) for x in map(json.loads, r.out.splitlines())}
    expected = {("rf_baseline", f"0000{i}") for i in range(4)} | {("sgd_sweep", f"0000{i}") for i in range(4)} \
        | {("00000", "00002")} | {("cnn_small", f"0000{i}") for i in range(3)}
    assert got == expected
    r = cli("ls", ws, "--where", "tags contains 'best'", "--format", "csv")
    assert len(pl.read_csv(io.StringIO(r.out))) == 2
    r = cli("ls", ws, "--where", "NOT (params.optimizer.name = 'sgd') and epochs < 30", "--format", "json")
    assert {x["name"] for x in json.loads(r.out)} == {"00000", "00001"}  # vision/00000 line


def test_where_forms_users_type(ws):
    """Double quotes around a value, dates as strings, BETWEEN over times: read as the user meant them."""
    import mlrepo
    from mlrepo.repo_index.filtering import where

    idx = mlrepo.open_index(ws)
    df = idx.df

    def names(expr: str) -> set[tuple[str, str]]:
        return {(r["line"], r["name"]) for r in where(df, expr, idx.metrics).iter_rows(named=True)}

    assert names('params.model = "rf"') == names("params.model = 'rf'") != set()
    assert names('tags contains "best"') == names("tags contains 'best'") == names("'best' in tags") != set()
    assert names("not 'best' in tags") == names("not tags contains 'best'")
    cut = df["created_at"].sort()[df.height // 2]
    later = {(r["line"], r["name"]) for r in df.filter(df["created_at"] > cut).iter_rows(named=True)}
    assert names(f"created_at > '{cut.isoformat()}'") == later != set()
    assert names(f"created_at > '{cut.isoformat()}' and params.model = 'rf'") == later & names("params.model = 'rf'")
    assert names("created_at between '2000-01-01' and '2100-01-01' or params.model = 'rf'") == set(
        zip(df["line"], df["name"], strict=True))


@pytest.mark.parametrize("expr, why", [("metrics.f1.digits.val >", "bad --where 'metrics.f1.digits.val >': "),
                                       ("nosuch > 1", "unknown column"), ("f1 > 0.5", "ambiguous"),
                                       ("", "empty")])
def test_bad_where_is_usage_error(ws, cli, expr, why):
    r = cli("ls", ws, "--where", expr)
    assert r.code == 2 and why in r.err and "Traceback" not in r.err


def test_ls_sort_limit_columns_formats(ws, cli):
    r = cli("ls", ws, "--sort", "score_d", "--limit", "2", "--columns", "name,score_d", "--format", "csv")
    assert r.out.splitlines() == ["name,metrics.score_d", "00003,8.0", "00002,9.75"]
    assert "best first: metrics.score_d minimised (from metadata)" in r.err  # it says which way it sorted
    r = cli("ls", ws, "--sort", "score_d", "--desc", "--limit", "1", "--columns", "score_d", "--format", "csv")
    assert r.out.splitlines()[1] == "15.25"
    r = cli("ls", ws, "--format", "md", "--columns", "name", "--limit", "1")
    assert r.out.startswith("| name") and "|---" in r.out.replace(" ", "")
    r = cli("ls", ws)
    assert r.code == 0 and "14 models" in r.err and "rf_baseline" in r.out


def test_index_counts(ws, cli):
    r = cli("index", ws)
    assert r.code == 0 and "14 models (cascade 14)" in r.out and "1 could not be read fully" in r.out
    assert "cnn_small/00002" in r.err
    r = cli("index", ws, "--rebuild")
    assert "read 14" in r.out


def test_show_and_diff(ws, cli):
    r = cli("show", "tabular/rf_baseline/00002", "--root", ws)
    assert r.code == 0 and "labrador" not in r.out and "0.87" in r.out and "optimizer.lr" in r.out
    r = cli("show", ws, ws / "tabular" / "rf_baseline" / "00002", "--format", "json")
    row = json.loads(r.out)
    assert row["metrics.accuracy"] == 0.87 and row["tags"] == ["best", "candidate"]
    r = cli("show", row["id"][:6], "--root", ws)
    assert r.code == 0 and row["id"] in r.out
    r = cli("show", "00002", "--root", ws)
    assert r.code == 2 and "matches" in r.err
    r = cli("diff", "rf_baseline/00001", "rf_baseline/00002", "--root", ws)
    rows = {ln.split("│")[1].strip(): ln for ln in r.out.splitlines() if ln.count("│") == 3}
    assert r.code == 0 and rows["params.epochs"].startswith(" *") and not rows["params.model"].startswith(" *")
    assert "rf" in rows["params.model"] and "differ (*)" in r.out
    r = cli("diff", "rf_baseline/00001", "rf_baseline/00002", "--root", ws, "--changed")
    assert r.code == 0 and "params.epochs" in r.out and "params.model" not in r.out


def test_show_takes_root_as_every_command_does(ws, cli, tmp_path):
    """``show [ROOT] MODEL``: ROOT is the argument, ``--root``, MLREPO_ROOT or the current folder, never guessed
    from the model's path; a path outside ROOT is a usage error before anything is indexed."""
    listed = {r["path"]: r["id"] for r in json.loads(cli("ls", ws, "--format", "json").out)}
    model = ws / "tabular" / "rf_baseline" / "00002"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = cli("show", model, "--format", "json", cwd=elsewhere)
    assert r.code == 2 and "not under ROOT" in r.err and "--root" in r.err
    assert not (elsewhere / ".mlrepo").exists()
    for args in ((ws, model), (model, "--root", ws)):
        r = cli("show", *args, "--format", "json", cwd=elsewhere)
        assert r.code == 0, r.err
        assert json.loads(r.out)["id"] == listed[str(model)]
    # from inside a folder, that folder is ROOT (ids are relative to it)
    import mlrepo

    under_cwd = mlrepo.open_index(ws / "tabular", use_cache=False).df
    expected = under_cwd.filter(under_cwd["path"] == str(model))["id"].item()
    r = cli("show", model, "--format", "json", cwd=ws / "tabular")
    assert r.code == 0 and json.loads(r.out)["id"] == expected


def test_mlflow_models_by_label_and_run_id(copy_fixture, cli):
    """An MLflow run is named as the listings print it, store/experiment/run (a tail is enough), or by its run id."""
    root = copy_fixture(FIXTURES / "mlflow_file", "m")
    rows = json.loads(cli("ls", root, "--format", "json").out)
    (run,) = [r for r in rows if r["name"] == "lr-small"]
    assert (run["repo"], run["line"]) == ("mlruns", "vision-cls")  # the store, then the experiment
    for ref in (f"{run['repo']}/{run['line']}/lr-small", f"{run['line']}/lr-small", "lr-small",
                os.path.basename(run["path"])):
        r = cli("show", ref, "--root", root, "--format", "json")
        assert r.code == 0, (ref, r.err)
        assert json.loads(r.out)["id"] == run["id"]
    store = copy_fixture(FIXTURES / "mlflow_sqlite", "s")
    with sqlite3.connect(store / "mlflow.db") as con:
        (run_id,) = con.execute("SELECT run_uuid FROM runs WHERE name = 'lr-small'").fetchone()
    for ref in (run_id, "vision-cls/lr-small"):
        r = cli("show", ref, "--root", store, "--format", "json")
        assert r.code == 0 and json.loads(r.out)["name"] == "lr-small", (ref, r.err)


def test_history_tree(ws, cli):
    r = cli("history", ws, "--line", "tabular/rf_baseline", "--metric", "metrics.accuracy")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0] == "tabular/rf_baseline"
    # 00001 changed lr from 00000; 00002 changed epochs from 00001; 00003 changed two keys from 00002
    assert "optimizer.lr: 0.1 → 0.01" in r.out and "epochs: 10 → 30" in r.out
    depth = {ln.split()[-1] if False else ln.lstrip("│├└─ "): len(ln) - len(ln.lstrip("│├└─ ")) for ln in lines[1:]}
    ordered = sorted(depth.items(), key=lambda kv: kv[1])
    assert [k[:5] for k, _ in ordered] == ["00000", "00001", "00002", "00003"]
    r = cli("history", ws, "--line", "nope")
    assert r.code == 2 and "rf_baseline" in r.err


def test_du_and_export(ws, cli, tmp_path):
    r = cli("du", ws, "--by", "line", "--format", "json")
    rows = json.loads(r.out)
    assert rows == sorted(rows, key=lambda x: -x["size_bytes"]) and len(rows) == 4
    assert sum(x["models"] for x in rows) == 14
    models = [p for p in (ws / "tabular" / "rf_baseline").iterdir() if p.is_dir()]
    total = sum(du_bytes(m) for m in models)  # allocated blocks, as du -sB1
    assert next(x for x in rows if x["line"] == "rf_baseline")["size_bytes"] == total
    r = cli("du", ws, "--by", "model", "--top", "3")
    assert r.code == 0 and "█" in r.out
    for fmt in ("csv", "json", "jsonl", "parquet", "md"):
        out = tmp_path / f"index.{fmt}"
        r = cli("export", ws, "--format", fmt, "-o", out)
        assert r.code == 0 and out.stat().st_size > 0, r.err
    back = pl.read_parquet(tmp_path / "index.parquet")
    assert back.height == 14 and "metrics.score_d" in back.columns
    assert pl.read_csv(tmp_path / "index.csv").height == 14
    assert len(json.loads((tmp_path / "index.json").read_text())) == 14


def test_usage_errors_and_placeholders(cli, tmp_path):
    r = cli("ls", tmp_path / "missing")
    assert r.code == 2 and "no such folder" in r.err
    for args in (["ls", tmp_path, "--bogus"], ["ls", tmp_path, "--format", "xml"], ["best", tmp_path],
                 ["du", tmp_path, "--top", "0"]):
        r = cli(*args)
        assert r.code == 2 and r.out == "", args
        assert len(r.err.strip().splitlines()) == 1 and r.err.startswith("mlrepo: error: "), r.err
    r = cli("--help")
    for command in ("tui", "index", "ls", "best", "show", "diff", "history", "du", "prune", "archive", "restore",
                    "export", "watch", "demo"):
        assert command in r.out


def test_012_best_and_python_api():
    import mlrepo
    from mlrepo.repo_index.ranking import best, rank_keys

    idx = mlrepo.open_index(CASCADE_012, use_cache=False)
    keys = rank_keys(["loss"], [], idx.df.columns, idx.metrics)
    assert keys[0].mode == "min" and keys[0].source == "name"
    assert best(idx.df, keys)["name"].to_list() == ["00002"]
    pdf = idx.to_pandas()
    assert len(pdf) == 6 and "metrics.loss" in pdf.columns


def test_tui_without_a_terminal_lists_instead(ws, cli):
    r = cli("tui", ws, stdin="")
    assert r.code == 0 and "needs a terminal" in r.err and "rf_baseline" in r.out


def test_show_and_diff_piped_have_sane_line_lengths(ws, cli):
    """Piped output never wraps tables, but a panel must not stretch to the unbounded width either."""
    for args in (("show", "tabular/rf_baseline/00002", "--root", ws),
                 ("diff", "rf_baseline/00001", "rf_baseline/00002", "--root", ws)):
        r = cli(*args)
        assert r.code == 0 and max(len(line) for line in r.out.splitlines()) < 300


def test_demo_cache_follows_the_writer(tmp_path):
    """``tui --demo`` writes the demo once per version of its writer and clears the older ones."""
    from mlrepo.commands.operations.demo import cached_demo

    (tmp_path / "demo").mkdir()  # as earlier versions left it
    (tmp_path / "demo-0123456789").mkdir()
    first = cached_demo(str(tmp_path))
    stamp = os.stat(first).st_mtime_ns
    assert cached_demo(str(tmp_path)) == first and os.stat(first).st_mtime_ns == stamp  # not written again
    assert sorted(os.listdir(tmp_path)) == [os.path.basename(first)]
    import mlrepo

    assert len(mlrepo.open_index(first, use_cache=False)) > 50


def test_pin_root_lists_the_pins_of_that_root_and_a_model_folder_is_still_pinned(ws, cli, tmp_path):
    """``mlrepo pin ROOT`` lists ROOT's pins from anywhere; a folder is taken as a model only when a model of the
    root in force (MLREPO_ROOT, the current folder) lives exactly there."""
    first, second = ws / "tabular" / "rf_baseline" / "00001", ws / "tabular" / "rf_baseline" / "00002"
    r = cli("pin", ws, second, "--note", "deployed")
    assert r.code == 0 and "pinned" in r.err, r.err
    pins_file = ws / ".mlrepo" / "pins.json"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for cwd in (elsewhere, ws.parent, ws):  # outside ROOT; above it (a folder of models, none of them ROOT); in it
        before = pins_file.read_bytes()
        r = cli("pin", ws, cwd=cwd)
        assert r.code == 0, (cwd, r.err)
        assert [line.split("\t")[1:] for line in r.out.splitlines()] == [[str(second), "deployed"]], (cwd, r.out)
        assert "1 pinned under" in r.err and pins_file.read_bytes() == before
    assert not (elsewhere / ".mlrepo").exists()  # the current folder was not indexed to decide
    (listed,) = json.loads(cli("pin", ".", "--format", "json", cwd=ws).out)
    assert listed["path"] == str(second)
    r = cli("pin", first, cwd=ws)  # a model's folder, inside the root in force: pinned, not listed as a root
    assert r.code == 0 and "pinned" in r.err and r.out == "" and not (first / ".mlrepo").exists()
    r = cli("unpin", first, cwd=ws)
    assert r.code == 0 and "unpinned" in r.err
    r = cli("pin", first, cwd=elsewhere, env={**os.environ, "MLREPO_ROOT": str(ws)})
    assert r.code == 0 and "pinned" in r.err and r.out == ""
    assert sorted(p["path"] for p in json.loads(cli("pin", ws, "--format", "json").out)) == [str(first), str(second)]


def test_pin_of_a_lone_model_folder_outside_any_root_is_refused_not_listed(ws, cli, tmp_path):
    """A model folder named alone, with no root in force around it: the user meant to pin it, so an empty listing
    (exit 0) would look like success; it is refused with the command that pins it."""
    model = ws / "tabular" / "rf_baseline" / "00001"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = cli("pin", model, cwd=elsewhere)
    assert r.code == 2 and r.out == "", (r.code, r.out, r.err)
    assert "is a model folder (cascade), not a root" in r.err and f"mlrepo pin ROOT {model}" in r.err
    assert not (ws / ".mlrepo" / "pins.json").exists() and not (model / ".mlrepo").exists()


def test_a_model_folder_given_as_root_says_so(ws, cli):
    """A model folder named as ROOT holds no models of its own: the empty listing says why, on stderr."""
    model = ws / "tabular" / "rf_baseline" / "00001"
    r = cli("ls", model)
    assert r.code == 0, r.err
    assert f"{model} is itself a model folder (cascade), not a root of models" in r.err
    r = cli("ls", ws / "tabular")  # a folder of models: no such note
    assert r.code == 0 and "is itself a model folder" not in r.err
