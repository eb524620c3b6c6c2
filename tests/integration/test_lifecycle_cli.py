"""Lifecycle against a real MLflow store: CLI, gates, crash safety, the runbook."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from typer.testing import CliRunner

from serving_support import LEGACY_BODY, TrainedHome, settings_env
from terraops.adapters.registry import ModelRegistry
from terraops.api.app import create_app
from terraops.cli.main import app as cli
from terraops.domain.promotion import CHAMPION, champion_lineage
from terraops.errors import PromotionRefusedError
from terraops.pipelines.lifecycle import aliases as lifecycle
from terraops.settings import Settings

pytestmark = pytest.mark.integration
RUNBOOK = Path(__file__).parents[2] / "RUNBOOK_ROLLBACK.md"


@pytest.fixture
def run_cli(home_settings: Settings) -> Any:
    """Invoke the CLI in-process with ``home_settings`` (as TERRAOPS_ env would)."""
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(cli, list(args), obj=home_settings)

    return run


def champion(settings: Settings) -> int | None:
    return ModelRegistry(settings).get_alias("uhi", CHAMPION)


def test_promote_rollback_and_history_via_cli(
    run_cli: Any, home_settings: Settings, trained_home: TrainedHome
) -> None:
    v1, v2 = trained_home.uhi_versions
    assert run_cli("promote", "uhi", "--version", str(v1), "--reason", "first").exit_code == 0
    assert run_cli("promote", "uhi", "--version", str(v2)).exit_code == 0
    assert champion(home_settings) == v2
    again = run_cli("promote", "uhi", "--version", str(v2))
    assert again.exit_code == 2 and "already the champion" in again.output
    assert run_cli("rollback", "uhi", "--reason", "bad").exit_code == 0
    assert champion(home_settings) == v1
    nothing = run_cli("rollback", "uhi")
    assert nothing.exit_code == 4 and "no earlier champion" in nothing.output

    listed = json.loads(run_cli("models", "list", "uhi", "--json").stdout)
    assert [row["version"] for row in listed] == [v1, v2]
    assert "champion" in listed[0]["aliases"] and listed[0]["data_quality"] == "passed"
    history = json.loads(run_cli("models", "history", "uhi", "--json").stdout)
    assert [(h["action"], h["from_version"], h["to_version"]) for h in history[:3]] == [
        ("rollback", v2, v1),
        ("promote", v1, v2),
        ("promote", None, v1),
    ]
    assert history[-1]["alias"] == "challenger"  # recorded by training
    assert {h["actor"] for h in history[:3]} == {"tester"}
    assert all(h["status"] == "committed" for h in history)
    assert "rollback" in run_cli("models", "history", "uhi").stdout


def register_broken_copy(settings: Settings, version: int, tmp: Path, damage: str) -> int:
    """A new version whose model file in the artifact store is corrupt or missing."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    original = client.get_model_version("uhi", str(version))
    source = client.get_model_version_download_uri("uhi", str(version))
    broken = tmp / f"broken-{damage}"
    shutil.copytree(Path(source.removeprefix("file://")), broken)
    model_file = broken / "artifacts" / "model.lgb"  # the pyfunc's booster artifact
    assert model_file.is_file()
    if damage == "corrupt":
        model_file.write_text("tree\nthis is not a LightGBM model\n")
    else:
        model_file.unlink()
    created = client.create_model_version("uhi", str(broken), run_id=original.run_id)
    return int(created.version)


@pytest.mark.parametrize("damage", ["corrupt", "deleted"])
def test_unloadable_candidate_is_refused_and_champion_kept(
    run_cli: Any, home_settings: Settings, trained_home: TrainedHome, tmp_path: Path, damage: str
) -> None:
    v1 = trained_home.uhi_versions[0]
    assert run_cli("promote", "uhi", "--version", str(v1)).exit_code == 0
    bad = register_broken_copy(home_settings, v1, tmp_path, damage)
    refused = run_cli("promote", "uhi", "--version", str(bad), "--force")
    assert refused.exit_code == 4
    assert f"model v{bad} cannot be loaded" in refused.output
    assert champion(home_settings) == v1
    assert lifecycle.history(home_settings, "uhi")[0].to_version == v1


def test_data_quality_and_metric_gates_on_real_runs(
    home_settings: Settings, trained_home: TrainedHome
) -> None:
    from mlflow.tracking import MlflowClient

    registry = ModelRegistry(home_settings)
    v1, v2 = trained_home.uhi_versions
    lifecycle.promote(home_settings, registry, "uhi", v1)
    uri = home_settings.tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.set_model_version_tag("uhi", str(v2), "terraops.data_quality", "failed")
    with pytest.raises(PromotionRefusedError) as refused:
        lifecycle.promote(home_settings, registry, "uhi", v2)
    assert refused.value.reasons == [
        "data quality of the training run is 'failed', not 'passed' (tag terraops.data_quality)"
    ]
    strict = home_settings.model_copy(update={"promotion_tolerance": -0.5})  # demand 50 % better
    client.set_model_version_tag("uhi", str(v2), "terraops.data_quality", "passed")
    with pytest.raises(PromotionRefusedError, match="refused") as worse:
        lifecycle.promote(strict, registry, "uhi", v2)
    assert "worse than champion" in worse.value.reasons[0]
    assert registry.get_alias("uhi", CHAMPION) == v1


CRASH_AT = Path(__file__).with_name("crash_at.py")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("step", "expected_status", "expected_champion"),
    [("before", "aborted", 0), ("after", "committed", 1)],
)
def test_kill_during_promotion_is_reconciled(
    home_settings: Settings,
    trained_home: TrainedHome,
    step: str,
    expected_status: str,
    expected_champion: int,
) -> None:
    """The promoting process dies like ``kill -9`` just before / just after the alias
    moves (injected by ``crash_at.py`` around the registry call); state stays consistent."""
    v1, v2 = trained_home.uhi_versions
    registry = ModelRegistry(home_settings)
    lifecycle.promote(home_settings, registry, "uhi", v1)
    env = settings_env(home_settings)
    args = [sys.executable, str(CRASH_AT), step, "promote", "uhi", "--version", str(v2)]
    crashed = subprocess.run(args, env=env, capture_output=True, timeout=120)
    assert crashed.returncode == 9, crashed.stderr.decode()[-2000:]

    journal = lifecycle.open_history(home_settings)
    assert journal.pending("uhi")[0].to_version == v2  # the intent survived the crash
    entries = lifecycle.history(home_settings, "uhi", registry=registry)
    actual = registry.get_alias("uhi", CHAMPION)
    assert actual == (v1, v2)[expected_champion]
    assert entries[0].status == expected_status and entries[0].to_version == v2
    assert lifecycle.open_history(home_settings).pending("uhi") == []
    assert champion_lineage(reversed(entries))[-1] == actual


def runbook_commands() -> list[str]:
    """Every command line inside the runbook's fenced bash blocks."""
    commands, inside = [], False
    for line in RUNBOOK.read_text().splitlines():
        if line.startswith("```"):
            inside = line.strip() == "```bash"
            continue
        if inside and line.strip() and not line.startswith("export "):
            commands.append(line.strip())
    return commands


def curl_request(command: str, token: str) -> tuple[str, str, dict[str, str], bytes | None]:
    """(method, path, headers, body) of a runbook curl line."""
    words = shlex.split(command.replace("$TERRAOPS_ADMIN_TOKEN", token))
    method, headers, body, url = "GET", {}, None, ""
    i = 1
    while i < len(words):
        word = words[i]
        if word == "-X":
            method, i = words[i + 1], i + 1
        elif word == "-H":
            name, value = words[i + 1].split(":", 1)
            headers[name.strip()], i = value.strip(), i + 1
        elif word == "-d":
            body, i = words[i + 1].encode(), i + 1
            method = "POST" if method == "GET" else method
        elif not word.startswith("-"):
            url = word
        i += 1
    assert url.startswith("$TERRAOPS_URL/"), command
    return method, url.removeprefix("$TERRAOPS_URL"), headers, body


@pytest.mark.slow
def test_every_runbook_command_works(
    run_cli: Any, home_settings: Settings, trained_home: TrainedHome
) -> None:
    """Replay the runbook: a bad v2 is champion before every rollback command."""
    v1, v2 = trained_home.uhi_versions
    assert (v1, v2) == (1, 2), "the runbook's examples use versions 1 and 2"
    secured = home_settings.model_copy(
        update={"admin_token": SecretStr("runbook-token"), "services": ["uhi"]}
    )
    registry = ModelRegistry(home_settings)
    lifecycle.promote(home_settings, registry, "uhi", v1)
    commands = runbook_commands()
    assert sum(c.startswith("terraops ") for c in commands) >= 5
    assert sum(c.startswith("curl ") for c in commands) >= 4
    with TestClient(create_app(secured)) as api:
        for command in commands:
            if "rollback" in command and registry.get_alias("uhi", CHAMPION) != v2:
                lifecycle.promote(home_settings, registry, "uhi", v2, reason="bad release")
            if command.startswith("terraops "):
                result = run_cli(*shlex.split(command)[1:])
                assert result.exit_code == 0, f"{command}\n{result.output}"
            else:
                assert command.startswith("curl "), command
                method, path, headers, body = curl_request(command, "runbook-token")
                response = api.request(method, path, headers=headers, content=body)
                assert response.status_code == 200, f"{command}\n{response.text}"
                if path == "/v1/uhi/predict":
                    assert json.loads(body or b"{}") == LEGACY_BODY
                    served = registry.get_alias("uhi", CHAMPION)
                    assert response.headers["X-Model-Version"] == str(served)
            if "rollback" in command:
                assert registry.get_alias("uhi", CHAMPION) == v1, command
