"""The CLI's mapping of "disk full / read-only" failures, however deeply wrapped.

The real faults (a full tmpfs, a read-only bind mount) are in
``tests/integration/test_faults.py``; these check the mapping's edges cheaply:
an errno anywhere in the cause chain, SQLite's wording, and a plain bug that
must keep its traceback.
"""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from terraops.adapters.storage_errors import storage_error
from terraops.cli import common
from terraops.errors import RegistryUnavailableError, StorageError
from terraops.settings import Settings


def wrapped(inner: BaseException) -> RegistryUnavailableError:
    """``inner`` two levels down, as MLflow → SQLAlchemy → SQLite raise it."""
    try:
        try:
            raise inner
        except BaseException as exc:
            raise RuntimeError("(sqlalchemy) statement failed") from exc
    except RuntimeError as exc:
        try:
            raise RegistryUnavailableError("MLflow tracking store unavailable") from exc
        except RegistryUnavailableError as outer:
            return outer


@pytest.mark.parametrize(
    ("code", "words"),
    [(errno.ENOSPC, "the disk is full"), (errno.EROFS, "the file system is read-only")],
)
def test_errno_deep_in_the_chain_names_the_file(code: int, words: str, tmp_path: Path) -> None:
    failure = wrapped(OSError(code, "failed", "/data/home/mlflow.db"))
    found = storage_error(failure, tmp_path / "home")
    assert isinstance(found, StorageError)
    assert found.message == f"cannot write /data/home/mlflow.db: {words}"
    assert common.exit_code_for(found) == 6


def test_sqlite_full_is_storage_and_names_the_home(tmp_path: Path) -> None:
    failure = wrapped(sqlite3.OperationalError("database or disk is full"))
    found = storage_error(failure, tmp_path / "home")
    assert isinstance(found, StorageError)
    assert found.message.startswith(f"cannot write {tmp_path / 'home'}: database or disk is full")


def test_a_command_judges_the_failure_against_its_own_home(tmp_path: Path) -> None:
    """The home comes from the settings the command was run with, not the environment."""
    app = typer.Typer()

    @app.command()
    def write(ctx: typer.Context) -> None:
        with common.handle_errors(ctx):
            raise wrapped(sqlite3.OperationalError("database or disk is full"))

    result = CliRunner().invoke(app, [], obj=Settings(home=tmp_path / "elsewhere"))
    assert result.exit_code == 6
    # rich may wrap a long path anywhere: compare without the whitespace it adds
    assert f"cannotwrite{tmp_path / 'elsewhere'}" in "".join(result.output.split())


def test_io_error_on_a_healthy_disk_is_not_called_full(tmp_path: Path) -> None:
    """SQLite's "disk I/O error" is only blamed on storage when the home is full/read-only."""
    failure = wrapped(sqlite3.OperationalError("disk I/O error"))
    assert storage_error(failure, tmp_path / "home") is None


def test_other_failures_keep_their_own_handling() -> None:
    with pytest.raises(typer.Exit) as exited, common.handle_errors():
        raise wrapped(ConnectionRefusedError(errno.ECONNREFUSED, "refused"))
    assert exited.value.exit_code == 5
    with pytest.raises(KeyError), common.handle_errors():  # a bug keeps its traceback
        raise KeyError("bug")
