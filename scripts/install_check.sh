#!/usr/bin/env bash
# The product as users install it, away from the checkout and without the dev tools (CI runs this):
#   1. the wheel, built from the checkout's files (tracked and new, nothing git ignores): its file list
#      must be those files under mixpanel_alerts/ (links followed); installed into a fresh venv without
#      extras, `mixpanel-alerts --version` and `mixpanel-alerts demo` (its alert shown) run from a
#      directory outside the checkout with HOME a temp dir;
#   2. the Dockerfile without a Docker engine: what its COPY lines copy (less .dockerignore) goes into a
#      fresh folder, its RUN lines run there in a fresh venv, then, from another directory: --version,
#      demo, `check` with WAREHOUSE=bigquery (it must fail on Google credentials, not on a missing
#      module), the extra's other modules imported, and the image's CMD with --help.
# pip uses its index and cache as configured (the Dockerfile's --no-cache-dir is left out here: it
# only keeps the image small).
# PYTHON=python3.X picks the venvs' interpreter; KEEP=1 keeps the scratch folder to look into.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
scratch=$(mktemp -d "${TMPDIR:-/tmp}/install-check.XXXXXX")
cleanup() {
    local before=$SECONDS
    if [ "${KEEP:-}" = 1 ]; then echo "install-check: kept $scratch" >&2; else rm -rf "$scratch"; echo "install-check: scratch removed in $((SECONDS - before)) s"; fi
}
trap cleanup EXIT
began=$SECONDS
say() { echo "install-check [$((SECONDS - began)) s]: $*"; }
fail() {
    echo "install-check FAILED: $*" >&2
    exit 1
}
# pip as the caller has it (index, cache); no .pyc compiled at install: a third of the time, and
# the runs below compile what they import
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_COMPILE=1

# run NAME DIR VENV [VAR=VALUE...] -- COMMAND...: in DIR, an environment of only these (no MIXPANEL_*,
# no BIGQUERY_EMULATOR_HOST from the caller's shell), HOME a fresh temp dir; output in $scratch/NAME.log
run() {
    local name=$1 dir=$2 venv=$3
    shift 3
    local vars=()
    while [ "$1" != -- ]; do vars+=("$1"); shift; done
    shift
    mkdir -p "$dir" "$scratch/home-$name"
    local status=0
    (cd "$dir" && env -i PATH="$venv/bin:/usr/local/bin:/usr/bin:/bin" HOME="$scratch/home-$name" LANG=C.UTF-8 \
        "${vars[@]}" "$@") > "$scratch/$name.log" 2>&1 || status=$?
    echo "$status"
}
show_log() { sed 's/^/    /' "$scratch/$1.log" >&2; }
# expect_ok NAME ...: the command ran with exit code 0
expect_ok() {
    local name=$1 status
    status=$(run "$@")
    if [ "$status" != 0 ]; then show_log "$name"; fail "$name exited $status"; fi
}
# the demo: exit 0 and its alert shown in the terminal
expect_demo() {
    local name=$1
    expect_ok "$@"
    if ! grep -q "🚨" "$scratch/$name.log" || ! grep -Eq "alerts: [1-9][0-9]* sent" "$scratch/$name.log"; then
        show_log "$name"
        fail "$name showed no alert"
    fi
}

# --- the checkout's files, as a fresh clone would have them ---------------------------------------
src=$scratch/checkout
mkdir -p "$src"
(
    cd "$repo"
    git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' path; do
        if [ -e "$path" ] || [ -L "$path" ]; then printf '%s\0' "$path"; fi
    done | tar --null -T - -cf -
) | tar -xf - -C "$src"

# --- 1. the wheel -----------------------------------------------------------------------------------
"$python" -m venv "$scratch/user"
"$scratch/user/bin/pip" wheel --quiet --no-deps -w "$scratch/dist" "$src" > "$scratch/wheel.log" 2>&1 ||
    { show_log wheel; fail "the wheel did not build"; }
wheel=$(ls "$scratch"/dist/*.whl)
say "built $(basename "$wheel")"
"$python" - "$wheel" "$src" <<'PY' || fail "the wheel's files are not the package's (above)"
"""The wheel holds exactly the files under mixpanel_alerts/ (links followed), dotfiles (linters'
settings, dbt's .user.yml) left out."""
import os
import sys
import zipfile
from pathlib import Path

wheel, src = sys.argv[1], Path(sys.argv[2])
shipped = {name for name in zipfile.ZipFile(wheel).namelist() if ".dist-info/" not in name}
expected = set()
for folder, dirs, files in os.walk(src / "mixpanel_alerts", followlinks=True):
    dirs[:] = [name for name in dirs if not name.startswith(".")]
    for name in files:
        if not name.startswith("."):
            expected.add((Path(folder) / name).relative_to(src).as_posix())
missing, extra = sorted(expected - shipped), sorted(shipped - expected)
for name in missing:
    where = "packages.find" if name.endswith(".py") else "package-data"
    print(f"  missing from the wheel: {name} (see pyproject.toml's [tool.setuptools.{where}])")
for name in extra:
    print(f"  in the wheel, not in the checkout: {name}")
print(f"  the wheel: {len(shipped)} files, {sum(n.endswith('.py') for n in shipped)} Python modules")
sys.exit(1 if missing or extra else 0)
PY
"$scratch/user/bin/pip" install --quiet "$wheel" > "$scratch/install.log" 2>&1 ||
    { show_log install; fail "pip install of the wheel failed"; }
say "installed into a fresh venv, no extras"
if "$scratch/user/bin/python" -c "import pytest" 2> /dev/null; then fail "the wheel's venv has pytest: not a user's install"; fi
expect_ok wheel-version "$scratch/elsewhere" "$scratch/user" -- mixpanel-alerts --version
say "wheel: $(head -1 "$scratch/wheel-version.log")"
expect_demo wheel-demo "$scratch/elsewhere" "$scratch/user" -- mixpanel-alerts demo
say "wheel: demo ran and showed its alert"

# --- 2. the Dockerfile, replayed --------------------------------------------------------------------
"$python" - "$repo/Dockerfile" "$src" "$scratch/image" "$scratch/image-steps.sh" "$scratch/image-facts.sh" <<'PY' ||
"""Turn the Dockerfile into the same steps on this machine: COPY copies from the checkout's files
(less .dockerignore) into a fresh folder standing for the image's root, RUN runs there with the venv
first on PATH, ENV is exported. An instruction this does not know stops the check."""
import fnmatch
import glob
import json
import os
import re
import shlex
import shutil
import sys
from pathlib import Path

dockerfile, context, root, steps_file, facts_file = map(Path, sys.argv[1:])
lines, pending = [], ""
for raw in dockerfile.read_text().splitlines():
    if not pending and (not raw.strip() or raw.lstrip().startswith("#")):
        continue
    if raw.rstrip().endswith("\\"):
        pending += raw.rstrip()[:-1] + " "
        continue
    lines.append(pending + raw)
    pending = ""

ignore_file = context / ".dockerignore"
ignored = [line.strip().rstrip("/") for line in (ignore_file.read_text().splitlines() if ignore_file.exists() else [])]
ignored = [pattern for pattern in ignored if pattern and not pattern.startswith("#")]
if any(pattern.startswith("!") for pattern in ignored):
    sys.exit(".dockerignore: exceptions (!pattern) are not replayed here; teach scripts/install_check.sh")


def is_ignored(relative: str) -> bool:
    parts = relative.split("/")
    prefixes = ["/".join(parts[: index + 1]) for index in range(len(parts))]
    return any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes for pattern in ignored)


def copy(source: Path, target: Path) -> None:
    relative = source.relative_to(context).as_posix()
    if is_ignored(relative):
        return
    if source.is_dir() and not source.is_symlink():
        target.mkdir(parents=True, exist_ok=True)
        for child in sorted(source.iterdir()):
            copy(child, target / child.name)
    elif source.is_symlink():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(os.readlink(source))  # as COPY does: a link stays a link
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def arguments(text: str) -> list[str]:
    return json.loads(text) if text.lstrip().startswith("[") else shlex.split(text)


workdir, env, steps = root, {}, []
image = {"python": "", "entrypoint": [], "cmd": [], "workdir": str(root)}
for line in lines:
    instruction, _, rest = line.strip().partition(" ")
    instruction, rest = instruction.upper(), rest.strip()
    if instruction == "FROM":
        found = re.match(r"python:(\d+\.\d+)", rest)
        image["python"] = found.group(1) if found else ""
    elif instruction == "WORKDIR":
        workdir = root / rest.lstrip("/")
        workdir.mkdir(parents=True, exist_ok=True)
        image["workdir"] = str(workdir)
    elif instruction == "COPY":
        words = [word for word in arguments(rest) if not word.startswith("--chown") and not word.startswith("--chmod")]
        if any(word.startswith("--") for word in words):
            sys.exit(f"Dockerfile: COPY {rest}: its options are not replayed here; teach scripts/install_check.sh")
        *sources, destination = words
        target = workdir / destination
        for pattern in sources:
            matches = sorted(glob.glob(str(context / pattern)))
            if not matches:
                sys.exit(f"Dockerfile: COPY {pattern}: no such file in the checkout")
            for match in map(Path, matches):
                into_folder = destination.endswith("/") or len(sources) > 1 or match.is_dir()
                copy(match, target / match.name if into_folder and not match.is_dir() else target)
    elif instruction == "RUN":
        # pip's cache is allowed here (the image leaves it out only to stay small)
        command = re.sub(r"\s--no-cache-dir\b", "", rest)
        steps.append(f"cd {shlex.quote(str(workdir))}")
        steps.append(command)
    elif instruction == "ENV":
        if "=" not in rest.split()[0]:
            name, _, value = rest.partition(" ")
            pairs = {name: value.strip()}
        else:
            pairs = dict(word.split("=", 1) for word in shlex.split(rest))
        env.update(pairs)
        steps += [f"export {name}={shlex.quote(value)}" for name, value in pairs.items() if name != "HOME"]
    elif instruction in ("ENTRYPOINT", "CMD"):
        image[instruction.lower()] = arguments(rest)
    else:
        sys.exit(f"Dockerfile: {instruction} is not replayed here; teach scripts/install_check.sh")

steps_file.write_text("set -euo pipefail\n" + "\n".join(steps) + "\n")
facts = [f"image_{key}={shlex.quote(image[key])}" for key in ("python", "workdir")]
facts += [f"image_{key}=({' '.join(map(shlex.quote, image[key]))})" for key in ("entrypoint", "cmd")]
facts.append(f"image_env=({' '.join(shlex.quote(f'{k}={v}') for k, v in env.items() if k != 'HOME')})")
facts_file.write_text("\n".join(facts) + "\n")
PY
    fail "the Dockerfile could not be replayed (above)"
image_python="" image_workdir="" image_entrypoint=() image_cmd=() image_env=()
# shellcheck disable=SC1091
. "$scratch/image-facts.sh"
[ ${#image_entrypoint[@]} -gt 0 ] || fail "the Dockerfile has no ENTRYPOINT to run"
here=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ -n "$image_python" ] && [ "$image_python" != "$here" ]; then
    say "note: the image has Python $image_python, this check ran $here (PYTHON=python$image_python to match)"
fi
"$python" -m venv "$scratch/image-venv"
PATH="$scratch/image-venv/bin:$PATH" bash "$scratch/image-steps.sh" > "$scratch/image-build.log" 2>&1 || { show_log image-build; fail "the Dockerfile's RUN lines failed"; }
say "Dockerfile: COPY and RUN replayed in a fresh venv ($(grep -c . "$scratch/image-steps.sh") steps)"
image=$scratch/image-venv
config_path=$image_workdir/config/events_config.json
expect_ok image-version "$scratch/elsewhere" "$image" "${image_env[@]}" -- "${image_entrypoint[@]}" --version
expect_demo image-demo "$scratch/elsewhere" "$image" "${image_env[@]}" -- "${image_entrypoint[@]}" demo
say "Dockerfile: $(head -1 "$scratch/image-version.log"); demo ran and showed its alert"
# WAREHOUSE=bigquery as on Cloud Run, no Google credentials (and no metadata server asked): `check`
# must get as far as looking for credentials to reach BigQuery
run image-bigquery "$scratch/elsewhere" "$image" "${image_env[@]}" WAREHOUSE=bigquery \
    GCP_PROJECT_ID=install-check-no-such-project NO_GCE_CHECK=True EVENTS_CONFIG_PATH="$config_path" \
    -- "${image_entrypoint[@]}" check > /dev/null
if grep -Eq "bigquery extra|No module named|ModuleNotFoundError" "$scratch/image-bigquery.log" ||
    ! grep -Eq "warehouse: .*[Cc]redentials" "$scratch/image-bigquery.log"; then
    show_log image-bigquery
    fail "WAREHOUSE=bigquery did not get as far as Google's credentials"
fi
expect_ok image-bigquery-modules "$scratch/elsewhere" "$image" -- python -c \
    "import dbt.adapters.bigquery, dlt.destinations.impl.bigquery.bigquery, google.cloud.secretmanager_v1, google.cloud.storage"
say "Dockerfile: WAREHOUSE=bigquery fails on credentials, not on a missing module; dbt-bigquery, Secret Manager, GCS import"
if [ ${#image_cmd[@]} -gt 0 ]; then
    expect_ok image-cmd "$scratch/elsewhere" "$image" "${image_env[@]}" -- "${image_entrypoint[@]}" "${image_cmd[@]}" --help
    say "Dockerfile: CMD (${image_cmd[*]}) is a command"
fi
say "passed in $((SECONDS - began)) s"
