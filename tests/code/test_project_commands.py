"""The project's promises to a newcomer: the two commands, the make targets, honest check-env."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
REQUIRED_TARGETS = (
    "install",
    "demo",
    "test",
    "check-env",
    "train",
    "serve",
    "smoke",
    "bench",
    "lint",
)


def test_readme_starts_with_the_two_commands() -> None:
    head = (ROOT / "README.md").read_text().split("## ", 1)[0]
    assert "make demo" in head
    assert "make test" in head


@pytest.mark.parametrize("target", REQUIRED_TARGETS)
def test_make_target_exists(target: str) -> None:
    res = subprocess.run(
        ["make", "-n", "-C", str(ROOT), target], capture_output=True, text=True, timeout=30
    )
    assert "No rule to make target" not in res.stderr, res.stderr


def test_ci_runs_make_test() -> None:
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def _project() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    return _normalise(re.split(r"[\[<>=!~;\s]", requirement, maxsplit=1)[0])


def _pins() -> dict[str, str]:
    """constraints.txt as {normalised name: version}."""
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[_normalise(name)] = version.strip()
    return pins


def _requirements() -> list[str]:
    """Every requirement of pyproject.toml: core and every extra."""
    project = _project()
    found = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        found += extra
    return found


def test_every_dependency_is_pinned() -> None:
    """Each direct dependency of pyproject.toml, extras included, has an exact pin."""
    pins = _pins()
    for requirement in _requirements():
        assert _requirement_name(requirement) in pins, requirement
    # psycopg[binary] brings psycopg-binary: pinned too, to the same release.
    assert pins["psycopg-binary"] == pins["psycopg"]


def test_pins_resolve_on_any_machine() -> None:
    """Public versions only: no local label (+cpu), URL, file or index option that only
    one machine can satisfy, in constraints.txt or in pyproject.toml."""
    lines = [
        line.strip()
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for line in lines:
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*==[0-9][0-9A-Za-z.!]*", line), line
    for requirement in _requirements():
        assert "@" not in requirement and "+" not in requirement, requirement
        assert "://" not in requirement and "file:" not in requirement, requirement


def test_segment_extra_is_what_the_code_checks() -> None:
    """The heavy stack is the segment extra (torch pinned exactly), not a core dependency,
    and it is the very list of modules `terraops segment` checks before it runs."""
    from terraops.extras import EXTRA_MODULES, SEGMENT

    project = _project()
    segment = project["optional-dependencies"]["segment"]
    assert "torch==2.13.0" in segment
    assert {_requirement_name(r) for r in segment} == set(EXTRA_MODULES[SEGMENT])
    core = {_requirement_name(r) for r in project["dependencies"]}
    assert not core & set(EXTRA_MODULES[SEGMENT]), core & set(EXTRA_MODULES[SEGMENT])
    assert '".[dev,segment,docs]"' in (ROOT / "Makefile").read_text()  # make install: everything


def test_system_deps_script_and_check_env_name_the_same_packages() -> None:
    script = (ROOT / "scripts" / "install-system-deps.sh").read_text()
    listed = re.search(r"^PACKAGES=\(([^)]*)\)", script, re.M)
    assert listed is not None
    check_env = (ROOT / "scripts" / "check_env.py").read_text()
    for package in listed.group(1).split():
        assert f'"{package}",' in check_env, package


def test_check_env_reports_installed_packages_and_exit_code() -> None:
    res = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "check_env.py")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "mlflow" in res.stdout and "lightgbm" in res.stdout
    # honest: exit code 0 exactly when nothing is reported missing
    assert (res.returncode == 0) == ("missing:" not in res.stdout), res.stdout


def _unprivileged() -> list[str]:
    """A prefix that runs a command as ``nobody`` (root only), else skip."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root (as in CI) to run the script as an unprivileged user")
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def test_system_deps_as_non_root_lists_what_is_missing_and_does_not_fail(tmp_path: Path) -> None:
    """`make install` as an ordinary user: the Debian step installs nothing, exits 0, and
    names each missing package and the tests it costs. PostgreSQL is taken away for real
    (an empty tmpfs over /usr/lib/postgresql, in a private mount namespace)."""
    as_nobody = _unprivileged()
    hide = '[ -d /usr/lib/postgresql ] && mount -t tmpfs none /usr/lib/postgresql; exec "$@"'
    script = ROOT / "scripts" / "install-system-deps.sh"
    with script.open() as stdin:  # read as root: the clone may not be readable by nobody
        res = subprocess.run(
            ["unshare", "--mount", "sh", "-c", hide, "sh", *as_nobody, "bash", "-s"],
            stdin=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            cwd="/",
        )
    if "unshare" in res.stderr and res.returncode != 0:
        pytest.skip(f"no mount namespace here: {res.stderr.strip()}")
    assert res.returncode == 0, res.stderr
    assert "postgresql" in res.stderr and "scale-out tests" in res.stderr, res.stderr
    assert "apt-get install" in res.stderr, res.stderr
