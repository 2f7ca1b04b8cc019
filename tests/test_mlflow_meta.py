"""The hand-read subset of MLflow's meta.yaml always gives what the YAML parser gives (or defers to it)."""

import itertools
from pathlib import Path

import pytest
import yaml
from mlrepo.errors import ReadError
from mlrepo.repo_index.readers.mlflow_meta import load_meta, parse_flat

FIXTURES = Path(__file__).parent / "fixtures"
# the benchmark's store of 2,000 runs made by mlflow (benchmarks/datasets.py), when this clone has it
BENCH_STORE = Path(__file__).parent.parent / "benchmarks" / "data" / "mlflow-2000"
C_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's safe loader: the 2,000 files in 1 s, not 5


def _same_as_yaml(text: str, loader: type = yaml.SafeLoader) -> dict | None:
    """parse_flat's answer, checked: YAML's own result, or None (left to YAML), and None whenever YAML refuses."""
    flat = parse_flat(text)
    try:
        expected = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    except (yaml.YAMLError, ValueError):  # PyYAML raises ValueError on "0b_"
        assert flat is None, repr(text)
        return None
    if flat is not None:
        assert flat == expected, repr(text)
        assert [type(v) for v in flat.values()] == [type(v) for v in expected.values()], repr(text)
    return flat


@pytest.mark.parametrize("store", [FIXTURES / "mlflow_file", FIXTURES / "mlflow3", BENCH_STORE],
                         ids=["mlflow_file", "mlflow3", "bench-2000"])
def test_real_store_files_read_by_hand_as_yaml_reads_them(store: Path):
    if not store.exists():
        pytest.skip(f"{store} is not in this clone (benchmarks/run.py makes it)")
    files = sorted(store.rglob("meta.yaml"))
    assert len(files) >= 10
    for path in files:
        text = path.read_text()
        assert _same_as_yaml(text, C_LOADER if store == BENCH_STORE else yaml.SafeLoader) is not None, \
            f"{path} left the fast path"


TRICKY = [
    "status: 3\nname: run\n", "tags: []\nx: ''\n", "a: 'it''s'\n", "a: yes\n", "a: No\n", "a: null\n", "a: ~\n",
    "a: 1.5\n", "a: 1e3\n", "a: 0123\n", "a: 0x1A\n", "a: 2026-01-02\n", "a: 12:30:00\n", "a: -7\n",
    "a: file:///tmp/x y\n", "a: on\n", "a: OFF\n", "a: b: c\n", "a: 'x\n", "a: x # c\n", "a: {b: 1}\n",
    "a: [1]\n", "a: 1\na: 2\n", "a:\n  b: 1\n", "- a\n", "a: .inf\n", "a: b:\n", "a: x'y\n", "a: 1_000\n",
    "a: s3://bucket/key\n", "run_id: 294eeae7e22b434ca1857286056fc824\n", "a: 0b101\n", "a: 0x1f2e\n", "a: 1e5\n",
    "a: 1e5.0\n", "a: 12e\n", "a: 0abc\n", "a: 0071c5b97ce8\n", "a: 0777\n", "a: 0B1\n", "a: 0X1f\n", "a: 00\n",
    "artifact_uri: mlflow-artifacts:/1/abc/artifacts\n", "a: True\n", "a: =\n",
    # run ids that begin like YAML 1.1 binary or hex numbers
    "run_id: 0bde451c8d764d18acc0581575d8780a\n", "run_id: 0b01101\n", "run_id: 0x1234abcd\n", "a: 0b\n",
    # keys YAML reads as a bool or null
    "on: 1\n", "yes: x\n", "null: 1\n", "Off: 2\n", "y: 1\n", "n: 2\n", "_: 3\n",
    # plain scalars with spaces, signs and dots
    "name: my experiment 2\n", "name: a  b\n", "name: a b:\n", "name: a :b\n", "name: a - b\n", "a: +1\n",
    "a: +\n", "a: -\n", "a: -x\n", "a: ...\n", "a: .5\n", "a: ._x\n", "a: ~x\n", "a: x~\n", "a: 2001-12-14 21:59:43.10 -5\n",
    "a: 1:20\n", "a: 190:20:30\n", "a: -0\n", "a: +0\n", "a: 12345678901234567890123\n", "a: /Users/x/exp one\n",
    # quotes, escapes and empty values
    "a: ''''\n", "a: '''\n", "a: 'a'' #x'\n", "a: 'x' #c\n", "a: '  sp  '\n", "a: \"x\"\n", "a: \"\\u00e9\"\n",
    "a: \n", "a:\n", "a: ''\nb: \n", "a: 'é ü'\n", "a: '日本'\n", "a: '\U0001f600'\n",
    # line breaks and characters YAML refuses or reads its own way
    "a: x\r\nb: y\r\n", "a: x\rb: y\n", "a: x\x85b: y\n", "a: x\u2028b: y\n", "a: 'x\x0cy'\n", "a: x\x0cb: y\n",
    "a: 'x\x07'\n", "a: 'x\ty'\n", "a: x\tb\n", "\ufeffa: 1\n", "a: '\ufeff'\n", "a: '\x7f'\n", "a: '\x9f'\n",
    "", "\n", "a: 1\n\nb: 2\n", "# c\na: 1\n", "---\na: 1\n", "a: 1\n...\n", "a: &x 1\nb: *x\n", "a: !!str 1\n",
    "a: |\n  x\n", "a: >\n  x\n", "a: x\n  y\n", " a: 1\n", "a : 1\n", "a:  1\n", "a: 1 \n", "'a': 1\n",
]


@pytest.mark.parametrize("text", TRICKY)
def test_tricky_values_read_as_yaml_or_left_to_it(text: str):
    _same_as_yaml(text)


def test_every_word_and_number_shape_reads_as_yaml_or_is_left_to_it():
    """Values built from pieces YAML gives meaning to (signs, digits, 0x/0b/0o prefixes, dots, exponents, colons,
    dashes, bool and null words), each typed as YAML types it or handed to YAML."""
    pieces = ["", "0", "1", "7", "9", "a", "b", "e", "x", "E", "_", ".", ":", "-", "+", "~", "/", " ", "yes", "NULL"]
    fast = 0
    for parts in itertools.product(pieces, repeat=3):
        value = "".join(parts)
        if _same_as_yaml(f"k: {value}\n") is not None:
            fast += 1
    assert fast > 1000  # most shapes are typed by hand, not all handed over


def test_load_meta_falls_back_to_yaml(tmp_path: Path):
    path = tmp_path / "meta.yaml"
    path.write_text("name: x\nwhen: 2026-01-02\n")
    assert load_meta(str(path)) == yaml.safe_load(path.read_text())


def test_load_meta_refuses_what_yaml_refuses(tmp_path: Path):
    path = tmp_path / "meta.yaml"
    path.write_bytes(b"name: x\x0cstatus: 3\n")  # a form feed: YAML refuses it, splitting lines there would not
    with pytest.raises(ReadError, match="invalid YAML"):
        load_meta(str(path))


def test_load_meta_refuses_a_number_yaml_cannot_build(tmp_path: Path):
    path = tmp_path / "meta.yaml"
    path.write_text("run_id: 0b_\n")  # YAML 1.1 types it a binary int, then PyYAML fails to build it
    with pytest.raises(ReadError, match="invalid YAML"):
        load_meta(str(path))
