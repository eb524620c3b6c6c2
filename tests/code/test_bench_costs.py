"""``bench/costs.py`` prices jobs from the figures BENCHMARKS.md holds, and refuses gaps.

A small hand-made BENCHMARKS text stands in for the real file, so each cost can
be checked against arithmetic done here by hand, and a section or figure left
out must stop the script with a message naming that section.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.costs import (
    CPU_INSTANCES,
    MissingFigure,
    batch_predictions,
    main,
    mapping,
    point_predictions,
    render,
    segmentation_cpu,
    segmentation_gpu,
)

MACHINE = "Machine: Test CPU, 2 cores, 8 GiB RAM.  \n"

SECTIONS = {
    "api": MACHINE
    + (
        "| server | c1 req/s | c16 req/s | errors |\n|---|---|---|---|\n"
        "| terraops | 1000 | 4,000 | 0 |\n| FastAPI echo | 9000 | 9000 | 0 |\n"
    ),
    "batch": MACHINE
    + (
        "| body | rows | req/s | rows/s |\n|---|---|---|---|\n"
        "| instances (rows) | 10,000 | 1.0 | 10,000 |\n| Arrow IPC | 100,000 | 0.5 | 50,000 |\n"
        "\n| step | 10,000 rows |\n|---|---|\n| LightGBM | 900,000 |\n"
    ),
    "raster": MACHINE
    + (
        "Scenes (2 m pixels, 20 m cells).\n\n| scene | cells | run | s | Mpx/s |\n"
        "|---|---|---|---|---|\n| 1024² px (2.0 km) | 102×102 | cold | 1 | 9.0 |\n"
        "| 2048² px (4.1 km) | 204×204 | cold | 4 | 1.0 |\n"
        "| 2048² px (4.1 km) | 204×204 | cached | 1 | 3.0 |\n"
    ),
    "segmentation": MACHINE
    + (
        "| engine | images/s |\n|---|---|\n| eager | 1.0 |\n\n"
        "`terraops segment predict --engine onnx-int8`:\n\n"
        "| image | megapixels | wall s | inference MP/s |\n|---|---|---|---|\n"
        "| 512² | 0.26 | 7 | 0.05 |\n| 2048² | 4.19 | 40 | 0.10 |\n"
    ),
    "gpu": (
        "Lent machine (NVIDIA H200, 16 CPUs).\n\n| variant | megapixels/s |\n|---|---|\n"
        "| bf16 | 1 017 |\n\n- **End to end** on a 4096² (16.8 MP) GeoTIFF: **98 s, 0.4 MP/s"
        " — the ≥ 100 MP/s target is not met.**\n"
    ),
}


def bench_text(**override: str | None) -> str:
    parts = ["# Benchmarks\n"]
    for name, body in {**SECTIONS, **override}.items():
        if body is not None:
            parts.append(f"<!-- bench:{name} -->\n{body}<!-- /bench:{name} -->\n")
    return "\n".join(parts)


def test_each_throughput_is_read_from_its_section() -> None:
    text = bench_text()
    assert point_predictions(text).per_s == 4000  # terraops' c16, not the echo's
    assert batch_predictions(text).per_s == 50_000  # best HTTP row, not the in-process table
    assert segmentation_cpu(text).per_s == pytest.approx(0.10)  # the largest image
    gpu = segmentation_gpu(text)
    assert gpu is not None and gpu.per_s == pytest.approx(0.4)  # not the 100 MP/s goal
    # Largest scene with both runs: 1 / (1/1 + 1/3) Mpx/s = 0.75 Mpx/s, × (2 m)² = 3 km²/s.
    assert mapping(text).per_s == pytest.approx(3.0)


def test_costs_are_work_over_throughput_times_price() -> None:
    out = render(bench_text(), "python bench/costs.py")
    large = CPU_INSTANCES[0]  # 2 vCPU: the measured figure as is
    hours = 1_000_000 / 4000 / 3600
    assert f"{hours * large.usd_per_h:.2g} |" in out
    # 100 km² at 0.5 m = 400 MP; 0.10 MP/s on 2 cores → 4000 s; × 8 on 16 vCPU → 500 s.
    assert "400 MP" in out and "| 0.8 MP/s (× 16/2) | 8.33 min |" in out
    assert "| 10,800 km²/h |" in out  # 3 km²/s shown per hour
    assert "0.4 MP/s (assumed as measured) | 16.7 min |" in out  # 400 MP / 0.4 MP/s
    assert "point predictions ← *api*" in out and "GPU segmentation ← *gpu*" in out


def test_a_gpu_section_without_an_end_to_end_figure_says_so() -> None:
    out = render(bench_text(gpu="| variant | megapixels/s |\n|---|---|\n| bf16 | 1 017 |\n"), "x")
    assert "Not measured" in out and "GPU segmentation ← *gpu*" not in out


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"batch": None}, "'batch'"),
        ({"api": MACHINE + "| server | c1 req/s |\n|---|---|\n| terraops | 1 |\n"}, "'api'"),
        ({"raster": SECTIONS["raster"].replace("2 m pixels", "fine pixels")}, "'raster'"),
        ({"segmentation": SECTIONS["segmentation"].replace("Machine:", "Host:")}, "'segmentation'"),
    ],
)
def test_a_missing_figure_stops_with_the_section_named(
    override: dict[str, str | None], named: str
) -> None:
    with pytest.raises(MissingFigure, match=named):
        render(bench_text(**override), "x")


def test_main_writes_its_section_and_fails_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "BENCHMARKS.md"
    out.write_text(bench_text())
    assert main(["--out", str(out)]) == 0
    written = out.read_text()
    assert written.count("<!-- bench:costs -->") == 1 and "<!-- bench:api -->" in written
    out.write_text(bench_text(raster=None))
    assert main(["--out", str(out)]) == 2
    assert "'raster'" in capsys.readouterr().err
    assert "bench:costs" not in out.read_text()  # nothing written on failure
