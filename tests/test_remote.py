"""Remote roots (``s3://bucket/prefix``) against a real S3 server (SeaweedFS on 127.0.0.1): the formats' real
fixtures uploaded to a bucket give the same index as the local copy, a warm run GETs only what changed, hostile
keys never escape the metadata mirror, and every failure is one line. gs:// and az:// go through the same code
(obstore's GCSStore and AzureStore) and are not tested against a server here."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl
import pytest
import s3raw
from treeutil import FIXTURES, mlrepo

obstore = pytest.importorskip("obstore")
from obstore.store import S3Store  # noqa: E402

#: sizes and dates are the listing's on a bucket (object bytes, upload times), a folder's blocks and mtimes on disk
FROM_THE_STORE = ("size_bytes", "n_files", "created_at", "updated_at")


def store_of(s3, bucket: str) -> S3Store:
    return S3Store(bucket, config={"endpoint": s3.endpoint, "access_key_id": s3.env["AWS_ACCESS_KEY_ID"],
                                   "secret_access_key": s3.env["AWS_SECRET_ACCESS_KEY"], "region": "us-east-1"},
                   client_options={"allow_http": True})


def upload(store: S3Store, folder: Path, prefix: str) -> dict[str, int]:
    """Every file under ``folder`` as an object under ``prefix``; returns key -> size."""
    files = {os.path.join(prefix, os.path.relpath(os.path.join(d, f), folder)): os.path.join(d, f)
             for d, _, names in os.walk(folder) for f in names}

    def put(item: tuple[str, str]) -> None:
        obstore.put(store, item[0], Path(item[1]).read_bytes())

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, files.items()))
    return {key: os.path.getsize(path) for key, path in files.items()}


def export(root: str, env: dict[str, str] | None = None) -> pl.DataFrame:
    res = mlrepo("export", root, "--format", "json", env=env)
    assert res.code == 0, res.err
    return pl.DataFrame(json.loads(res.out), infer_schema_length=None).sort("id")


def index_json(url: str) -> dict:
    res = mlrepo("index", url, "--format", "json")
    assert res.code == 0, res.err
    return json.loads(res.out)


@pytest.fixture(scope="module")
def uploaded(s3, tmp_path_factory) -> tuple[str, Path, dict[str, int]]:
    """Every format's real fixtures, once as a local folder ``models/`` and once under ``s3://BUCKET/models``."""
    bucket = "remote-fixtures"
    s3.create_bucket(bucket)
    local = tmp_path_factory.mktemp("local") / "models"
    shutil.copytree(FIXTURES, local, symlinks=True, ignore=shutil.ignore_patterns("make_*", "*.sh"))
    for path in local.rglob("*"):  # written now, as the uploads are: a run's status may depend on its log's age
        os.utime(path, follow_symlinks=False)
    sizes = upload(store_of(s3, bucket), local, "models")
    return f"s3://{bucket}/models", local, sizes


def test_a_bucket_indexes_as_its_local_copy_does(s3_env, uploaded):
    url, local, sizes = uploaded
    remote, here = export(url), export(str(local))
    assert remote.height == here.height > 60
    assert set(remote["format"]) == set(here["format"]) >= {"cascade", "mlflow", "lightning", "hf-trainer", "wandb",
                                                            "tensorboard", "hydra", "dvc"}
    # a checkpoint's ModelCheckpoint state is read from its bytes, which a bucket's index never fetches: there the
    # version says so (and prune keeps it), on disk it names its best and last checkpoints
    unread = remote.filter(pl.col("tags").list.contains("checkpoint_state=unread"))["path"].to_list()
    assert unread and all("/version_" in p for p in unread)
    state_columns = ("tags.best_checkpoint", "tags.last_checkpoint", "tags.checkpoint_state")
    remote, here = (df.drop(c for c in df.columns if c in state_columns).with_columns(
        pl.col("tags").list.eval(pl.element().filter(~pl.element().str.contains("checkpoint(_state)?=")))
    ) for df in (remote, here))
    assert remote.columns == here.columns
    here = here.with_columns(pl.col("path").str.replace(str(local), url, literal=True))
    same = [c for c in here.columns if c not in FROM_THE_STORE]
    differ = [c for c in same if not remote[c].equals(here[c])]
    assert differ == [], remote.select("path", *differ).with_columns(here.select(differ).to_struct().alias("disk"))
    assert remote["n_files"].to_list() == here["n_files"].to_list()
    # a model's size is its objects' bytes; models nested in it (HF checkpoints) count on their own
    hf_root = remote.filter(pl.col("path") == f"{url}/hf_trainer/run1").row(0, named=True)
    prefix = "models/hf_trainer/run1/"
    own = sum(size for key, size in sizes.items() if key.startswith(prefix)
              and not key[len(prefix):].startswith("checkpoint-"))
    assert hf_root["size_bytes"] == own > 0

    picks = mlrepo("best", url, "--metric", "val_loss", "--per", "line")
    own_picks = mlrepo("best", local, "--metric", "val_loss", "--per", "line")
    assert picks.code == own_picks.code == 0, picks.err
    assert picks.out.split() == [p.replace(str(local), url) for p in own_picks.out.split()]
    assert len(picks.out.split()) >= 2 and all(p.startswith(url + "/") for p in picks.out.split())


def test_show_diff_ls_history_du_and_tui_read_a_bucket(s3_env, uploaded, tmp_path):
    url, local, _ = uploaded
    rows = export(url)
    a, b = rows.filter(pl.col("format") == "lightning").head(2).iter_rows(named=True)
    shown = mlrepo("show", url, a["path"], "--format", "json")
    assert shown.code == 0, shown.err
    assert json.loads(shown.out)["id"] == a["id"]
    by_id = mlrepo("diff", url, a["id"], b["id"], "--format", "json")
    assert by_id.code == 0, by_id.err
    assert any(k["differs"] for k in json.loads(by_id.out)["keys"])
    history = mlrepo("history", url, "--format", "json")
    assert history.code == 0  # same models per line (ties between parents go to the latest: dates differ)

    def nodes(doc: object) -> list[tuple[str, str]]:
        if isinstance(doc, dict):
            here = [(doc["id"], doc["path"])] if "id" in doc and "path" in doc else []
            return here + [n for v in doc.values() for n in nodes(v)]
        return [n for v in doc for n in nodes(v)] if isinstance(doc, list) else []

    from mlrepo.repo_index import open_index
    from mlrepo.repo_index.lineage import build_history
    from mlrepo.repo_index.schema import history_document

    on_disk = json.loads(json.dumps(history_document(build_history(open_index(local).df, None), None), default=str)
                         .replace(str(local), url))
    assert sorted(nodes(json.loads(history.out))) == sorted(nodes(on_disk)) != []
    du = mlrepo("du", url, "--by", "model", "--format", "json")
    assert du.code == 0
    assert sum(r["size_bytes"] for r in json.loads(du.out)) == rows["size_bytes"].sum()
    published = mlrepo("index", url, "--publish", tmp_path / "team")  # the team index names the root by its URL
    assert published.code == 0, published.err
    assert f"published {rows.height} models as" in published.out and f":{url} to " in published.out
    tui = mlrepo("tui", url)  # no terminal: the listing instead of the app
    assert tui.code == 0 and all(i in tui.out for i in rows["id"].head(5))


def test_a_warm_run_gets_only_what_changed(s3_env, s3, bucket, tmp_path):
    store = store_of(s3, bucket)
    folder = tmp_path / "runs"
    shutil.copytree(FIXTURES / "lightning", folder)
    upload(store, folder, "runs")
    url = f"s3://{bucket}/runs"

    cold = index_json(url)
    assert cold["models"] == 3 and cold["requests"]["get"] > 0 and cold["requests"]["list"] >= 1
    weights = [k for k in (str(m["path"]) for c in obstore.list(store, "runs") for m in c) if k.endswith(".ckpt")]
    assert weights and cold["requests"]["bytes_read"] < sum(
        os.path.getsize(p) for p in folder.rglob("*") if p.is_file())  # the checkpoints were never downloaded
    warm = index_json(url)
    assert warm["requests"]["get"] == 0 and warm["read"] == 0 and warm["unchanged"] == 3
    assert warm["requests"]["list"] == cold["requests"]["list"]

    run = sorted(p.name for p in (folder / "lightning_logs").iterdir())[0]
    key = f"runs/lightning_logs/{run}/metrics.csv"
    text = (folder / "lightning_logs" / run / "metrics.csv").read_text().splitlines()
    header = text[0].split(",")
    row = ["" for _ in header]
    row[header.index("val_loss")], row[header.index("step")] = "0.0123", "99999"
    obstore.put(store, key, "\n".join([*text, ",".join(row)]).encode() + b"\n")
    changed = index_json(url)
    assert changed["requests"]["get"] == 1 and changed["read"] == 1
    assert export(url).filter(pl.col("path") == f"{url}/lightning_logs/{run}")["metrics.val_loss"].to_list() == \
        [0.0123]

    gone = [str(m["path"]) for c in obstore.list(store, f"runs/lightning_logs/{run}") for m in c]
    obstore.delete(store, gone)
    after = index_json(url)
    assert after["models"] == 2 and after["requests"]["get"] == 0


def test_hostile_keys_are_text_and_stay_inside_the_mirror(s3_env, s3, bucket, tmp_path, cache_home):
    store = store_of(s3, bucket)
    folder = tmp_path / "runs"
    shutil.copytree(FIXTURES / "lightning", folder)
    upload(store, folder, "runs")
    long_name = "L" * 240
    odd = {  # S3 stores these; obstore refuses to list control characters, so their prefix is reported
        "runs/hostile/evil\x1b[31m\nname/metrics.json": b'{"f1": 0.5}',
        "runs/hostile/fine/metrics.json": b'{"f1": 0.6}',  # beside it: its folder cannot be listed, and says so
        f"runs/{long_name}/metrics.json": b'{"f1": 0.7}',
        "runs/caf\u00e9 \u202eevil/metrics.json": b'{"f1": 0.9}',
    }
    for key, body in odd.items():
        assert s3raw.request(s3.endpoint, "PUT", bucket, key, body)[0] == 200
    url = f"s3://{bucket}/runs"
    res = mlrepo("index", url)
    assert res.code == 0, res.err
    assert "Traceback" not in res.err and "\x1b" not in res.out + res.err
    assert f"skipped {url}/hostile: holds a name object_store refuses" in res.err
    rows = export(url)
    assert f"{url}/{long_name}" in rows["path"].to_list()
    assert f"{url}/caf\u00e9 \u202eevil" in rows["path"].to_list()
    assert rows.filter(pl.col("format") == "lightning").height == 3  # the rest of the root is indexed
    ls = mlrepo("ls", url, "--columns", "path")
    assert ls.code == 0 and "\u202e" not in ls.out and "\x1b" not in ls.out  # shown as text

    # keys that AWS stores but SeaweedFS refuses (`..`, `//`, a segment past 255 bytes) never become paths: the
    # mirror is handed a listing that holds them, as S3 would list them
    from mlrepo.repo_index.remote import open_remote
    from mlrepo.repo_index.remote.listing import RemoteObject, list_root
    from mlrepo.repo_index.remote.mirror import Mirror

    remote = open_remote(url)
    listing = list_root(remote)
    bad = ["../../escaped.json", "a/../../escaped.json", "a//metrics.json", "./metrics.json", "x" * 300 + "/m.json",
           "folder/..", "nul\x00/metrics.json"]
    listing.objects.extend(RemoteObject(rel, 10, '"e"', 0) for rel in bad)
    mirror = Mirror(remote.url)
    with mirror.locked():
        synced = mirror.sync(remote, listing)
    assert sorted(why[0] for why in synced.skipped) == sorted(remote.location.url_of(rel) for rel in bad)
    base = Path(mirror.base).resolve()
    for path in cache_home.rglob("*"):  # nothing written outside the mirror but the caches of other tests' roots
        assert not path.name.startswith("escaped")
    assert all(Path(p).resolve().is_relative_to(base) for p in (mirror.tree, mirror.manifest_path))


def test_the_seam_for_removal_opens_the_store_and_counts(s3_env, s3, bucket):
    from mlrepo.repo_index.remote import open_remote

    obstore.put(store_of(s3, bucket), "team/models/a/metrics.json", b'{"f1": 1}')
    root = open_remote(f"s3://{bucket}/team/models/")
    assert (root.url, root.prefix) == (f"s3://{bucket}/team/models", "team/models")
    keys = [str(m["path"]) for chunk in obstore.list(root.store, root.prefix) for m in chunk]
    assert keys == ["team/models/a/metrics.json"]
    assert root.get("team/models/a/metrics.json") == b'{"f1": 1}'
    assert root.list_all(root.prefix)[0]["size"] == 9
    assert (root.requests.gets, root.requests.lists, root.requests.bytes_read) == (1, 1, 9)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("case", ["bad-credentials", "unreachable", "no-bucket"])
def test_failures_are_one_line(s3_env, s3, case):
    env = {**os.environ}
    expect = {"bad-credentials": "access denied", "unreachable": "cannot be reached", "no-bucket": "not found"}[case]
    url = "s3://remote-fixtures/models"
    if case == "bad-credentials":
        env["AWS_SECRET_ACCESS_KEY"] = "wrong"
    elif case == "unreachable":
        env["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{_closed_port()}"
    else:
        url = "s3://no-such-bucket-here/models"
    res = mlrepo("ls", url, env=env, timeout=60)
    assert res.code == 1
    assert res.err.count("\n") == 1 and expect in res.err and "Traceback" not in res.err, res.err


def test_usage_errors_and_commands_not_on_remote_roots_yet(s3_env):
    for args in (["ls", "s3://"], ["ls", "s3://bucket/a//b"]):
        res = mlrepo(*args)
        assert res.code == 2 and res.err.count("\n") == 1 and "Traceback" not in res.err, res.err
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_")}
    res = mlrepo("ls", "az://container/models", env=env)  # routed to obstore's Azure store, which needs an account
    assert res.code == 1 and res.err.count("\n") == 1 and "az://container/models: cannot set up the az client" in \
        res.err and "AZURE_STORAGE_ACCOUNT_NAME" in res.err, res.err
    for args in (["watch", "s3://b/models"], ["pin", "s3://b/models", "x"]):
        res = mlrepo(*args)
        assert res.code == 2 and "does not work on remote roots yet" in res.err, (args, res.err)


def test_without_obstore_the_message_names_the_extra(tmp_path):
    code = ("import sys; sys.modules['obstore'] = None; from mlrepo.commands.cli import main; "
            "main(['ls', 's3://bucket/models'])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("mlrepo: error: remote roots need the obstore package: pip install 'mlrepo[s3]' "
                                   "(or mlrepo[gcs], mlrepo[azure])")


async def _until(pilot, condition, what: str) -> None:
    for _ in range(3000):  # a bound for a stuck app, polled between the app's message rounds
        if condition():
            return
        await pilot.pause(0.01)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("kind", ["remote-root", "team-index"])
async def test_the_tui_opens_a_bucket_or_a_team_index_read_only(kind, s3_env, uploaded, tmp_path):
    from mlrepo.repo_index.remote import open_remote_index
    from mlrepo.tui.app import MlrepoApp

    url, local, _ = uploaded
    if kind == "remote-root":
        source, where = (lambda: open_remote_index(url)), url
    else:
        pytest.importorskip("deltalake")
        from mlrepo.repo_index import open_index
        from mlrepo.repo_index.team import open_team, publish

        idx = open_index(local)
        where = str(tmp_path / "team")
        publish(idx.df, idx.metrics, idx.root, where, host="m1")
        source = lambda: open_team(where)  # noqa: E731
    app = MlrepoApp(where, source=source)
    async with app.run_test(size=(160, 40)) as pilot:
        await _until(pilot, lambda: app.checked and app.frame is not None, "the index loaded")
        assert str(app.query_one("#status").render()).startswith(f"{len(app.index)} models")
        assert len(app.index) > 60 and app.live is None
        shown = app.index.df.height
        await pilot.press("space", "x")  # mark, then trash: refused, the index is as it was
        await _until(pilot, lambda: any("read-only" in str(n.message) for n in app._notifications),
                     "the read-only notice")
        assert app.index.df.height == shown and len(app.screen_stack) == 1
        await pilot.press("p")
    picked = app.return_value
    assert picked is not None and (picked.startswith(url + "/") if kind == "remote-root"
                                   else picked.startswith(str(local)))
