"""The one atomic writer: whole content or the old file, no debris, no shared temp names."""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from terraops.adapters import atomic


def _debris(folder: Path) -> list[str]:
    """Hidden files or folders an interrupted writer would leave behind."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@settings(max_examples=40, deadline=None)
@given(old=st.binary(max_size=2048), new=st.binary(max_size=2048))
def test_bytes_land_whole_and_leave_no_temp(
    tmp_path_factory: pytest.TempPathFactory, old: bytes, new: bytes
) -> None:
    folder = tmp_path_factory.mktemp("bytes")
    target = folder / "out.bin"
    target.write_bytes(old)
    atomic.atomic_write_bytes(target, new)
    assert target.read_bytes() == new
    assert _debris(folder) == []


@settings(max_examples=30, deadline=None)
@given(payload=st.dictionaries(st.text(max_size=8), st.integers() | st.text(), max_size=6))
def test_json_round_trips_with_a_final_newline(
    tmp_path_factory: pytest.TempPathFactory, payload: dict[str, object]
) -> None:
    target = tmp_path_factory.mktemp("json") / "payload.json"
    atomic.atomic_write_json(target, payload, indent=2, sort_keys=True)
    text = target.read_text(encoding="utf-8")
    assert text == json.dumps(payload, indent=2, sort_keys=True) + "\n"
    assert json.loads(text) == payload


def test_text_is_utf8_and_parents_are_made_on_request(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "note.md"
    with pytest.raises(FileNotFoundError):
        atomic.atomic_write_text(target, "x")
    atomic.atomic_write_text(target, "Zürich — 20 °C\n", parents=True)
    assert target.read_bytes() == "Zürich — 20 °C\n".encode()


def test_a_failure_inside_the_block_keeps_the_old_file_and_removes_the_temp(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    target.write_text("old", encoding="utf-8")
    with (
        pytest.raises(RuntimeError, match="writer failed"),
        atomic.atomic_path(target) as staging,
    ):
        staging.write_text("half of the new", encoding="utf-8")
        raise RuntimeError("writer failed")
    assert target.read_text(encoding="utf-8") == "old"
    assert _debris(tmp_path) == []


def test_a_block_that_writes_nothing_fails_and_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "cells.parquet"
    target.write_bytes(b"old")
    with pytest.raises(FileNotFoundError), atomic.atomic_path(target):
        pass
    assert target.read_bytes() == b"old"


def test_temp_names_are_hidden_siblings_with_pid_label_and_suffix(tmp_path: Path) -> None:
    target = tmp_path / "mask.tif"
    name = atomic.temp_sibling(target, label="staging", suffix=".tif")
    assert name.parent == tmp_path
    assert name.name.startswith(".mask.tif.")
    assert name.name.endswith(".staging.tif")
    assert f".{os.getpid()}." in name.name
    assert name != atomic.temp_sibling(target, label="staging", suffix=".tif")


def test_threads_writing_one_target_never_share_a_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "champion.json"
    names: list[Path] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def write(worker: int) -> None:
        barrier.wait()
        for round_ in range(25):
            with atomic.atomic_path(target) as staging:
                with lock:
                    names.append(staging)
                staging.write_text(json.dumps({"worker": worker, "round": round_}) * 50)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(names)) == len(names) == 200
    text = target.read_text()
    piece = json.loads(text[: len(text) // 50])
    assert text == json.dumps(piece) * 50  # one writer's whole content, never a mix
    assert _debris(tmp_path) == []


def _write_many(target: str, worker: int) -> None:
    for round_ in range(20):
        atomic.atomic_write_text(Path(target), f"{worker}:{round_}\n" * 200)


def test_processes_writing_one_target_leave_one_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "last.json"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_write_many, args=(str(target), w)) for w in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    lines = target.read_text().splitlines()
    assert len(lines) == 200 and len(set(lines)) == 1
    assert _debris(tmp_path) == []


def test_a_folder_is_replaced_whole_or_not_at_all(tmp_path: Path) -> None:
    target = tmp_path / "scene"
    target.mkdir()
    (target / "old.tif").write_bytes(b"old")
    with pytest.raises(ValueError), atomic.atomic_directory_path(target) as staging:
        (staging / "new.tif").write_bytes(b"new")
        raise ValueError("import failed")
    assert [p.name for p in target.iterdir()] == ["old.tif"]
    assert _debris(tmp_path) == []
    with atomic.atomic_directory_path(target) as staging:
        (staging / "new.tif").write_bytes(b"new")
    assert [p.name for p in target.iterdir()] == ["new.tif"]
    assert _debris(tmp_path) == []


def test_a_temp_sibling_folder_is_removed_whatever_happens(tmp_path: Path) -> None:
    target = tmp_path / "models" / "7"
    target.parent.mkdir()
    with atomic.temp_sibling_directory(target) as scratch:
        (scratch / "model").mkdir()
        (scratch / "model" / "MLmodel").write_text("flavors: {}\n")
        (scratch / "model").rename(target)
    assert (target / "MLmodel").is_file()
    assert _debris(target.parent) == []
