"""Shared by the segmentation tests: the CLI under test and a tiny U-Net's training flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from typer.testing import CliRunner

from terraops.cli import lifecycle as lifecycle_cli
from terraops.cli import segment as segment_cli
from terraops.settings import Settings

#: A U-Net small enough to train in seconds (the real one is swapped out in tests). Full
#: 3×3 convolutions (``block=standard``): the tests' tiny recipes were sized for them, and a
#: depthwise-separable net this narrow, trained this briefly, labels every pixel background.
TINY_TRAINING = [
    "--epochs", "1",
    "--param", "block=standard",
    "--param", "base_width=4",
    "--param", "depth=2",
    "--param", "chips_per_epoch=8",
    "--param", "chip=64",
    "--param", "batch_size=4",
]  # fmt: skip


def segment_cli_app() -> typer.Typer:
    """The commands under test (cli/main.py registers the same modules)."""
    app = typer.Typer()
    lifecycle_cli.register(app)
    segment_cli.register(app)
    return app


def invoke(settings: Settings, *args: str) -> Any:
    """Run the segmentation/lifecycle CLI on ``settings``' home."""
    return CliRunner().invoke(segment_cli_app(), list(args), obj=settings)


def train_tiny(settings: Settings, train_dir: Path, val_dir: Path, *, promote: bool) -> Any:
    """Train the tiny U-Net on one city, validate on another; optionally force it champion.

    Returns the CLI result of ``segment train --json``. The tiny model cannot pass the
    building-IoU gate, hence ``--force``.
    """
    trained = invoke(
        settings,
        "segment", "train", "--scenes", str(train_dir), "--val-scenes", str(val_dir),
        *TINY_TRAINING, "--device", "cpu", "--json",
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    if promote:
        promoted = invoke(settings, "promote", "segmentation", "--challenger", "--force")
        assert promoted.exit_code == 0, promoted.output
    return trained
