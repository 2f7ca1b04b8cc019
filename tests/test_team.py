"""The team index: roots published from several "machines" at once to one Delta table on a real S3 server
(SeaweedFS on 127.0.0.1) or a local folder, then queried as one."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from treeutil import FIXTURES, Result

pytest.importorskip("deltalake")


def mlrepo(*args: str, env: dict[str, str] | None = None) -> Result:
    proc = subprocess.run([sys.executable, "-m", "mlrepo", *map(str, args)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})
    return Result(proc.returncode, proc.stdout, proc.stderr)


def start(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mlrepo", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **env})


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    """Two machines' roots whose params and metrics differ: the demo repository and real Lightning logs."""
    from mlrepo.commands.operations.demo import write_demo

    a = tmp_path / "machine-a" / "models"
    write_demo(str(a))
    b = tmp_path / "machine-b" / "runs"
    shutil.copytree(FIXTURES / "lightning", b, symlinks=True)
    return a, b


def exported(*args: str, env: dict[str, str] | None = None) -> pl.DataFrame:
    res = mlrepo("export", *args, "--format", "json", env=env)
    assert res.code == 0, res.err
    return pl.DataFrame(json.loads(res.out), infer_schema_length=None)


def same_rows(team: pl.DataFrame, local: pl.DataFrame) -> None:
    """The team rows of one root hold what its own index holds: same models, same metric values."""
    assert sorted(team["path"]) == sorted(local["path"])
    metrics = [c for c in local.columns if c.startswith("metrics.")]
    assert metrics and set(metrics) <= set(team.columns)
    left = team.select("path", "id", "name", "status", *metrics).sort("path")
    right = local.select("path", "id", "name", "status", *metrics).sort("path")
    assert left.equals(right)


@pytest.fixture
def s3_env(s3, monkeypatch) -> dict[str, str]:
    for key, value in s3.env.items():
        monkeypatch.setenv(key, value)
    return s3.env


def test_two_machines_race_to_one_s3_table_and_the_union_is_exact(s3_env, bucket, roots):
    from mlrepo.repo_index import open_index
    from mlrepo.repo_index.disk import usage
    from mlrepo.repo_index.team import open_team

    url = f"s3://{bucket}/models"
    a, b = roots
    racers = [start("index", a, "--publish", url, env={**s3_env, "MLREPO_HOST": "machine-a"}),
              start("index", b, "--publish", url, env={**s3_env, "MLREPO_HOST": "machine-b"})]
    for p in racers:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert "published" in out

    local = {"machine-a": open_index(a).df, "machine-b": open_index(b).df}
    team = open_team(url)
    assert len(team) == team.df.height == sum(df.height for df in local.values())
    for host, df in local.items():
        same_rows(team.df.filter(pl.col("host") == host), df)
    assert set(team.df["root"]) == {os.path.realpath(a), os.path.realpath(b)}
    by_repo = usage(team.df, "repo")  # du: each machine's repos sum as on that machine
    for host, df in local.items():
        mine = by_repo.filter(pl.col("host") == host).select("repo", "size_bytes", "models").sort("repo")
        assert mine.equals(usage(df, "repo").select("repo", "size_bytes", "models").sort("repo"))

    listed = mlrepo("ls", "--index", url, "--format", "jsonl", env=s3_env)
    assert listed.code == 0, listed.err
    assert sorted(json.loads(line)["path"] for line in listed.out.splitlines()) == sorted(team.df["path"])

    picks = mlrepo("best", "--index", url, "--metric", "val_loss", "--per", "line", env=s3_env)
    assert picks.code == 0, picks.err
    own = [mlrepo("best", root, "--metric", "val_loss", "--per", "line") for root in (a, b)]
    assert all(r.code == 0 for r in own)
    assert sorted(picks.out.split()) == sorted(p for r in own for p in r.out.split())
    assert len(picks.out.split()) > 2
    assert "metrics.val_loss minimised" in picks.err

    filtered = exported("--index", url, "--where", "metrics.val_loss < 0.5 and format = 'lightning'", env=s3_env)
    expected = team.df.filter((pl.col("metrics.val_loss") < 0.5) & (pl.col("format") == "lightning"))
    assert 0 < filtered.height < team.df.height
    assert sorted(filtered["path"]) == sorted(expected["path"])


def test_republishing_a_root_replaces_only_its_partition(s3_env, bucket, roots):
    from mlrepo.repo_index import open_index
    from mlrepo.repo_index.team import open_team, publish

    url = f"s3://{bucket}/models"
    a, b = roots
    for root, host in ((a, "machine-a"), (b, "machine-b")):
        idx = open_index(root)
        publish(idx.df, idx.metrics, idx.root, url, host=host)
    before = open_team(url).df

    gone = sorted((b / "lightning_logs").iterdir())[0]
    shutil.rmtree(gone)
    idx = open_index(b)
    done = publish(idx.df, idx.metrics, idx.root, url, host="machine-b")
    assert done.rows == idx.df.height == 2

    after = open_team(url).df
    kept = ["path", "published_at", "metrics.f1"]
    on_a = pl.col("host") == "machine-a"
    assert after.filter(on_a).select(kept).equals(before.filter(on_a).select(kept))
    same_rows(after.filter(pl.col("host") == "machine-b"), idx.df)
    assert str(gone) not in after["path"].to_list() and str(gone) in before["path"].to_list()
    assert after.height == before.height - 1


def test_many_publishers_at_once_lose_no_partition(tmp_path, roots):
    """Four processes commit to one new local table at once: every partition is there, exactly once."""
    from mlrepo.repo_index import open_index
    from mlrepo.repo_index.team import open_team

    url = str(tmp_path / "table")
    a, b = roots
    hosts = {"m0": a, "m1": b, "m2": a, "m3": b}  # two schemas, so racing writers also merge columns
    racers = [start("index", root, "--publish", url, env={"MLREPO_HOST": host}) for host, root in hosts.items()]
    for p in racers:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    team = open_team(url).df
    for host, root in hosts.items():
        same_rows(team.filter(pl.col("host") == host), open_index(root).df)
    assert team.height == sum(open_index(root).df.height for root in hosts.values())


def test_a_value_the_table_column_cannot_hold_is_refused_by_name(tmp_path):
    from mlrepo.errors import FailedError
    from mlrepo.repo_index.table import BASE_SCHEMA
    from mlrepo.repo_index.team import open_team, publish

    def frame(values: list[object]) -> pl.DataFrame:
        base = pl.DataFrame({c: pl.Series(c, [None] * len(values), dtype=t) for c, t in BASE_SCHEMA.items()})
        return base.with_columns(pl.Series("path", [f"/m/{i}" for i in range(len(values))]),
                                 pl.Series("params.lr", values))

    url = str(tmp_path / "table")
    publish(frame([1, 2]), {}, "/roots/ints", url, host="h")
    publish(frame([0.5]), {}, "/roots/floats", url, host="h")
    publish(frame(["1e-3"]), {}, "/roots/yaml", url, host="h")  # YAML 1.1 reads 1e-3 as text
    with pytest.raises(FailedError, match="params.lr is numbers in the team index but text here"):
        publish(frame(["adam"]), {}, "/roots/text", url, host="h")
    team = open_team(url).df.sort("root", "path")
    assert team.select("root", "params.lr").rows() == [
        ("/roots/floats", 0.5), ("/roots/ints", 1.0), ("/roots/ints", 2.0), ("/roots/yaml", 0.001)]


def test_team_index_on_a_local_folder_and_usage_errors(tmp_path, roots):
    from mlrepo.repo_index import open_index
    from mlrepo.repo_index.team import publish

    a, _ = roots
    res = mlrepo("ls", "--index", str(tmp_path / "nothing"))
    assert res.code == 2 and "no team index there" in res.err and "Traceback" not in res.err
    res = mlrepo("ls", str(a), "--index", str(tmp_path / "t"))
    assert res.code == 2 and "give ROOT or --index URL, not both" in res.err
    idx = open_index(a)
    publish(idx.df, idx.metrics, idx.root, str(tmp_path / "t"))
    res = mlrepo("ls", "--index", f"file://{tmp_path / 't'}", "--where", "format = 'mlflow'", "--limit", "2",
                 "--columns", "path,host,root")
    lines = res.out.splitlines()
    assert res.code == 0 and "2 of 71 models" in res.err  # the limit read in the scan, the count of every row
    assert sum(os.path.join(str(a), "mlruns") in line for line in lines) == 2
    res = mlrepo("best", "--index", f"file://{tmp_path / 't'}", "--metric", "nope")
    assert res.code == 2 and "unknown metric 'nope'" in res.err
    res = mlrepo("ls", "--index", "http://example.com/t")
    assert res.code == 2 and "not a table location" in res.err


def test_without_deltalake_the_message_names_the_extra(tmp_path):
    """An install without the ``team`` extra: deltalake cannot be imported (blocked in sys.modules)."""
    code = ("import sys; sys.modules['deltalake'] = None; from mlrepo.commands.cli import main; "
            f"main(['ls', '--index', {str(tmp_path)!r}])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "mlrepo: error: the team index needs the deltalake package: pip install 'mlrepo[team]'"
