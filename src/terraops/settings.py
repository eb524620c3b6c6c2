"""Runtime settings, built once at an entry point and passed down.

Every value can be set from the environment with the ``TERRAOPS_`` prefix
(e.g. ``TERRAOPS_HOME=/data/terraops``). All state lives under ``home``: the
MLflow store (SQLite + artifacts by default), the alias history, the local
model cache, scenes, reports and prediction logs. Pointing
``mlflow_tracking_uri`` at a real tracking server moves tracking and registry
there without any other change; setting ``state_db_url`` as well moves the alias
history and the promotion lock into PostgreSQL, so several hosts share them.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """terraops configuration (env prefix ``TERRAOPS_``)."""

    model_config = SettingsConfigDict(env_prefix="TERRAOPS_", extra="ignore")

    home: Path = Field(default=Path(".terraops"), description="Folder holding all state.")
    mlflow_tracking_uri: str | None = Field(
        default=None, description="MLflow tracking/registry URI; default: SQLite under home."
    )
    state_db_url: SecretStr | None = Field(
        default=None,
        description="PostgreSQL URL (postgresql://user[:password]@host:port/dbname) of the "
        "terraops state shared by several hosts: the alias history and the promotion lock "
        "(a PostgreSQL advisory lock). Unset: both stay under home (SQLite file, file lock), "
        "which serialises one machine only. See docs/scale-out.md.",
    )
    experiment_prefix: str = Field(default="terraops", description="MLflow experiment prefix.")
    samples_mirror: Path | None = Field(
        default=None,
        description="A folder holding copies of the raw sample files (e.g. a shared data "
        "folder on machines without network): `terraops samples fetch` reads a sample from "
        "it, checksum verified, before trying the network. Unset: network only.",
    )
    map_scene: str | None = Field(
        default=None,
        description="The scene the map opens on when its catalogue holds several (its name "
        "as the map's scene picker lists it, e.g. a Landsat product id), where it has a layer "
        "of the view; a ?scene= link still wins. Unset: the first scene, in catalogue order, "
        "with a layer of the view.",
    )
    user: str | None = Field(default=None, description="Who acts (alias history); default OS user.")
    admin_token: SecretStr | None = Field(
        default=None, description="Bearer token for /v1/admin; unset means admin API disabled."
    )
    feedback_token: SecretStr | None = Field(
        default=None,
        description="Bearer token for POST /v1/{service}/feedback (it moves the live error, "
        "which can roll a model back); unset: the admin token; neither set: feedback is refused.",
    )
    feedback_rate_per_min: float = Field(
        default=120.0,
        gt=0,
        description="Feedback requests one client (IP address) may send per minute; "
        "a burst of as many is allowed, then 429 with Retry-After.",
    )
    max_header_kb: float = Field(
        default=16.0,
        gt=0,
        description="Largest request head (request line + headers, KiB) `terraops serve` "
        "accepts; beyond it the answer is 431 and the connection is closed.",
    )
    header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Time a client has to send a request's headers (from its first byte, or "
        "from connecting) before `terraops serve` closes the connection (slow-loris guard).",
    )
    max_batch_size: int = Field(default=10_000, ge=1, description="Largest batch accepted.")
    max_body_mb: float | None = Field(
        default=None,
        gt=0,
        description="Largest JSON request body (MB), refused with 413 beyond; default "
        "64 KiB + 2 KiB per allowed batch instance. /v1/segment has its own limit.",
    )
    poll_interval_s: float = Field(
        default=2.0, gt=0, description="How often a server checks the registry for a new champion."
    )
    registry_timeout_s: float = Field(
        default=3.0, gt=0, description="Timeout of one registry call made by the server poller."
    )
    promotion_tolerance: float = Field(
        default=0.05,
        ge=0,
        description="A candidate may be at most this fraction worse than the champion "
        "on its service's primary spatial-CV metric.",
    )
    prediction_log: bool = Field(
        default=True, description="Log every served prediction under home/predictions."
    )
    prediction_log_max_mb: float = Field(
        default=64.0, gt=0, description="A prediction-log file is rotated when it reaches this."
    )
    prediction_log_retention_days: float = Field(
        default=30.0, gt=0, description="Prediction-log files older than this are deleted."
    )
    live_error_window_h: float = Field(
        default=24.0,
        gt=0,
        description="Window of the live-error gauge in /metrics (feedback received in it).",
    )
    slo_check_interval_s: float = Field(
        default=0.0,
        ge=0,
        description="`terraops serve` checks the SLOs (SLO.md) this often; 0 = off.",
    )
    slo_window: str = Field(default="1h", description="Window of the scheduled SLO check.")
    slo_rollback_on_breach: bool = Field(
        default=False, description="The scheduled SLO check rolls a breaching champion back."
    )
    drift_check_interval_s: float | None = Field(
        default=None,
        gt=0,
        description="`terraops serve` checks the prediction log for drift this often "
        "(one thread per server, state under home/reports/drift); unset = off.",
    )
    drift_window: str = Field(
        default="24h",
        pattern=r"^[0-9]+(\.[0-9]+)?[smhd]$",
        description="Inputs of the scheduled drift check: predictions logged in this window "
        "(30m, 6h, 1d).",
    )
    cell_size_m: float = Field(default=20.0, gt=0, description="Feature grid cell size (m).")
    landcover_source: Literal["auto", "spectral", "segmentation"] = Field(
        default="auto",
        description="Land cover under the UHI/flood features: the segmentation champion "
        "(auto: when one is registered) or the spectral rules.",
    )
    dask_scheduler: str | None = Field(default=None, description="Dask scheduler address.")
    services: list[str] = Field(
        default_factory=lambda: ["uhi", "flood"], description="Services a server loads."
    )
    tile_cache_mb: float = Field(
        default=256.0,
        ge=0,
        description="Rendered-tile cache per server process (MB); 0 turns it off.",
    )
    tile_max_age_s: int = Field(
        default=3600,
        ge=0,
        description="Cache-Control max-age of tiles (a layer's file never changes in place).",
    )

    segment_max_upload_mb: float = Field(
        default=8.0,
        gt=0,
        description="Largest GeoTIFF accepted by POST /v1/segment (MB).",
    )
    segment_max_pixels: int = Field(
        default=4_000_000,
        ge=1,
        description="Most pixels (width × height) of an image accepted by POST /v1/segment.",
    )
    segment_vector_workers: int | None = Field(
        default=None,
        ge=0,
        description="Worker processes that turn segmentation masks into polygons, strip by "
        "strip (default: one per core; 0 or 1: in the calling process).",
    )
    whatif_max_features: int = Field(
        default=50, ge=1, description="Most interventions in one what-if scenario (HTTP)."
    )
    whatif_max_area_ha: float = Field(
        default=400.0,
        gt=0,
        description="Largest total area (ha) of a what-if scenario's polygons (HTTP).",
    )
    whatif_max_body_bytes: int = Field(
        default=1_000_000,
        ge=1_000,
        description="Largest POST /v1/{service}/whatif body (bytes), refused with 413 beyond.",
    )
    whatif_rate_per_min: float = Field(
        default=30.0,
        gt=0,
        description="What-if runs a client may start per minute (each takes seconds of CPU "
        "and writes map layers).",
    )

    # ----- derived locations -------------------------------------------------
    @property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def tracking_uri(self) -> str:
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{self.home_dir / 'mlflow.db'}"

    @property
    def artifact_root(self) -> Path:
        """Where a local store keeps artifacts (never ``./mlruns``)."""
        return self.home_dir / "mlartifacts"

    @property
    def model_cache_dir(self) -> Path:
        return self.home_dir / "model-cache"

    @property
    def history_db(self) -> Path:
        return self.home_dir / "lifecycle.db"

    @property
    def scenes_dir(self) -> Path:
        return self.home_dir / "scenes"

    @property
    def predictions_dir(self) -> Path:
        return self.home_dir / "predictions"

    @property
    def feedback_db(self) -> Path:
        """Ground truth sent back for served predictions (SQLite)."""
        return self.home_dir / "feedback.db"

    @property
    def layers_dir(self) -> Path:
        """The layer catalogue and the products written for it (COGs, GeoJSON)."""
        return self.home_dir / "layers"

    @property
    def reports_dir(self) -> Path:
        return self.home_dir / "reports"

    @property
    def actor(self) -> str:
        """Who is acting, for the alias history."""
        if self.user:
            return self.user
        try:
            return getpass.getuser()
        except Exception:  # no passwd entry (containers)
            return os.environ.get("USER", "unknown")

    def ensure_home(self) -> Path:
        self.home_dir.mkdir(parents=True, exist_ok=True)
        return self.home_dir
