"""Benchmark plumbing: start servers on loopback, drive them with wrk, describe the machine.

Every server is started by the benchmark itself on a free 127.0.0.1 port and
stopped at the end; load is bounded in time (wrk -d).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

WRK_SCRIPT = Path(__file__).with_name("wrk_report.lua")
ENV_BODY_MAX = 64 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_server(
    cmd: Sequence[str],
    *,
    ready_url: str,
    env: dict[str, str] | None = None,
    timeout_s: float = 90,
    log_path: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server process group, wait until ``ready_url`` answers 200, stop it after.

    The server's stderr goes to a file (``log_path``, else a temporary file removed
    afterwards), never to a pipe nobody reads while it runs: a server that writes a
    warning per request (rio-tiler tiles do) would fill the pipe's 64 KiB and block
    mid-request — a hang that looks like a slow server.
    """
    if log_path is None:
        handle, name = tempfile.mkstemp(prefix="bench-server-", suffix=".log")
        os.close(handle)
    log = Path(log_path or name)
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            list(cmd),
            env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=sink,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                err = log.read_text(errors="replace")
                raise RuntimeError(f"{cmd[0]} exited early ({proc.returncode}): {err[-2000:]}")
            try:
                if httpx.get(ready_url, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{ready_url} not ready after {timeout_s} s")
            time.sleep(0.3)
        yield proc
    finally:
        stop_group(proc)
        if log_path is None:
            log.unlink(missing_ok=True)


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group (workers included), SIGKILL if it lingers."""
    for sig, wait_s in ((signal.SIGTERM, 15.0), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def wrk(url: str, body: str, *, connections: int, threads: int, seconds: float) -> dict[str, float]:
    """One bounded wrk run; returns requests/s, p50/p95/p99 (ms) and error count."""
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is missing: apt-get install -y wrk (make bench installs it)")
    body_file: str | None = None
    body_env = {"WRK_BODY": body}
    if len(body) > ENV_BODY_MAX:  # the kernel caps one environment string at 128 KiB
        handle, body_file = tempfile.mkstemp(prefix="wrk-body-", suffix=".json")
        with os.fdopen(handle, "w") as sink:
            sink.write(body)
        body_env = {"WRK_BODY_FILE": body_file}
    res = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds:g}s",  # wrk refuses "5.0s"
            "--timeout",
            "5s",
            "-s",
            str(WRK_SCRIPT),
            url,
        ],
        env={**os.environ, **body_env},
        capture_output=True,
        text=True,
    )
    if body_file is not None:
        Path(body_file).unlink(missing_ok=True)
    if res.returncode != 0:
        raise RuntimeError(f"wrk failed ({res.returncode}): {res.stdout[-500:]}{res.stderr[-500:]}")
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("{"))
    return json.loads(line)  # type: ignore[no-any-return]


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def machine_description() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{cpu}, {os.cpu_count()} cores, {mem_gib:.0f} GiB RAM, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def replace_section(path: Path, name: str, body: str) -> None:
    """Write ``body`` between ``<!-- bench:name -->`` markers, keeping other sections."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    text = path.read_text() if path.exists() else "# Benchmarks\n\nWritten by `make bench`.\n"
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
