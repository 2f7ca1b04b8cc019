"""The hand-read subset of MLflow's meta.yaml always gives what the YAML parser gives (or defers to it)."""

from pathlib import Path

import pytest
import yaml
from mlrepo.repo_index.readers.mlflow_meta import load_meta, parse_flat

FIXTURES = Path(__file__).parent / "fixtures"


def test_real_store_files_read_by_hand_as_yaml_reads_them():
    files = sorted((FIXTURES / "mlflow_file").rglob("meta.yaml"))
    assert len(files) >= 10
    for path in files:
        text = path.read_text()
        flat = parse_flat(text)
        assert flat is not None, f"{path} left the fast path"
        assert flat == yaml.safe_load(text), path


@pytest.mark.parametrize("text", [
    "status: 3\nname: run\n", "tags: []\nx: ''\n", "a: 'it''s'\n", "a: yes\n", "a: No\n", "a: null\n", "a: ~\n",
    "a: 1.5\n", "a: 1e3\n", "a: 0123\n", "a: 0x1A\n", "a: 2026-01-02\n", "a: 12:30:00\n", "a: -7\n",
    "a: file:///tmp/x y\n", "a: on\n", "a: OFF\n", "a: b: c\n", "a: 'x\n", "a: x # c\n", "a: {b: 1}\n",
    "a: [1]\n", "a: 1\na: 2\n", "a:\n  b: 1\n", "- a\n", "a: .inf\n", "a: b:\n", "a: x'y\n", "a: 1_000\n",
    "a: s3://bucket/key\n", "run_id: 294eeae7e22b434ca1857286056fc824\n", "a: 0b101\n", "a: 0x1f2e\n", "a: 1e5\n",
    "a: 1e5.0\n", "a: 12e\n", "a: 0abc\n", "a: 0071c5b97ce8\n", "a: 0777\n", "a: 0B1\n", "a: 0X1f\n", "a: 00\n", "artifact_uri: mlflow-artifacts:/1/abc/artifacts\n", "a: True\n", "a: =\n",
])
def test_tricky_values_read_as_yaml_or_left_to_it(text):
    flat = parse_flat(text)
    if flat is not None:
        assert flat == yaml.safe_load(text)


def test_load_meta_falls_back_to_yaml(tmp_path: Path):
    path = tmp_path / "meta.yaml"
    path.write_text("name: x\nwhen: 2026-01-02\n")
    assert load_meta(str(path)) == yaml.safe_load(path.read_text())
