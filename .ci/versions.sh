#!/usr/bin/env bash
# The version floors, tested: for each Python (3.10 and 3.13 by default), install the built wheel with the LOWEST
# versions pyproject.toml allows for every direct dependency (uv's --resolution lowest-direct, wheels only), then
# with the NEWEST, and run the suite against each. Prints a table of what was installed and how the suite went;
# exits non-zero when any combination fails.
#
#   .ci/versions.sh                      # 3.10 and 3.13, lowest and newest
#   MLREPO_VERSIONS_PYTHONS="3.12" .ci/versions.sh
#   MLREPO_VERSIONS_RESOLUTIONS=highest .ci/versions.sh      # only the newest (or only lowest-direct)
#
# Pythons are found as pythonX.Y on PATH or under ~/.pyenv/versions/X.Y.*; uv comes from PyPI into a scratch venv.
set -euo pipefail
cd "$(dirname "$0")/.."
pythons=${MLREPO_VERSIONS_PYTHONS:-"3.10 3.13"}
resolutions=${MLREPO_VERSIONS_RESOLUTIONS:-"lowest-direct highest"}
work=${MLREPO_VERSIONS_DIR:-$(mktemp -d /tmp/mlrepo-versions.XXXXXX)}
mkdir -p "$work"

find_python() {
    local v=$1 p
    for p in "$HOME"/.pyenv/versions/"$v".*/bin/python"$v" /root/.pyenv/versions/"$v".*/bin/python"$v"; do
        [ -x "$p" ] && { echo "$p"; return; }
    done
    command -v "python$v" || { echo "no python$v (PATH or ~/.pyenv/versions)" >&2; return 1; }
}

[ -x "$work/uv/bin/uv" ] || { python3 -m venv "$work/uv" && "$work/uv/bin/pip" install --quiet uv; }
uv=$work/uv/bin/uv
rm -rf "$work/dist"
"$uv" build --quiet --wheel --out-dir "$work/dist" . 2>/dev/null || python3 -m pip wheel --quiet --no-deps -w "$work/dist" .
wheel=$(ls "$work"/dist/mlrepo-*.whl)
# mlrepo's own requirements (base, pandas, team, test) as direct ones, so that lowest-direct takes each at its floor
reqs="$work/requirements.txt"
python3 - >"$reqs" <<'PY'
import tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
extras = project["optional-dependencies"]
for req in [*project["dependencies"], *extras["pandas"], *extras["team"], *extras["test"]]:
    if not req.startswith("mlrepo"):
        print(req)
PY

shown="polars textual rich click pandas numpy pyarrow watchdog orjson zstandard pytest pytest-asyncio"
table="$work/table.md"
{
    printf '| python | versions |'; for p in $shown; do printf ' %s |' "$p"; done; printf ' suite | minutes |\n'
    printf '|---|---|'; for _ in $shown; do printf -- '---|'; done; printf -- '---|---|\n'
} >"$table"

status=0
for v in $pythons; do
    py=$(find_python "$v")
    for resolution in $resolutions; do
        venv="$work/py$v-$resolution"
        rm -rf "$venv"
        "$uv" venv --quiet --python "$py" "$venv"
        "$uv" pip install --quiet --python "$venv/bin/python" --resolution "$resolution" --only-binary :all: \
            -r "$reqs" "$wheel[test]"
        log="$work/py$v-$resolution.log"
        # the venv's bin first: the tests run `mlrepo` and `python -m mlrepo` as a user would
        started=$SECONDS
        if PATH="$venv/bin:$PATH" "$venv/bin/python" -m pytest -q -n 2 -p no:cacheprovider >"$log" 2>&1; then
            result=$(tail -n 1 "$log")
        else
            result="FAILED: $(tail -n 1 "$log")"
            status=1
        fi
        installed=$("$uv" pip list --python "$venv/bin/python" --format json 2>/dev/null)
        {
            printf '| %s | %s |' "$("$venv/bin/python" -c 'import platform; print(platform.python_version())')" \
                "${resolution%-direct}"
            for p in $shown; do
                printf ' %s |' "$(echo "$installed" | python3 -c "import json,sys
v=[d['version'] for d in json.load(sys.stdin) if d['name'].lower()=='$p']; print(v[0] if v else '-')")"
            done
            printf ' %s | %s |\n' "${result//|/\/}" "$(( (SECONDS - started + 30) / 60 ))"
        } >>"$table"
        echo "python $v $resolution: $result (log: $log)" >&2
    done
done
cat "$table"
exit $status
