"""The project's promises to a newcomer: the two commands, the make targets, honest check-env."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


def test_every_dependency_is_pinned() -> None:
    """Each direct dependency of pyproject.toml has an exact pin in constraints.txt."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    direct = project["dependencies"] + project["optional-dependencies"]["dev"]
    pins = {
        line.split("==")[0].lower().replace("_", "-").replace(".", "-")
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    for requirement in direct:
        name = requirement.split("[")[0]
        for sep in "<>=!~ ":
            name = name.split(sep)[0]
        assert name.lower().replace("_", "-").replace(".", "-") in pins, requirement


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
