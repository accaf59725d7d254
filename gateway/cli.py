"""`wallet-gateway`: serve, migrate, worker, partners, keys, config.

Commands read settings from the environment once and fail with a clear message (exit code 2)
when they are invalid. Secrets are printed exactly once, at creation or rotation.
"""

from __future__ import annotations

import getpass
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import click

from gateway.settings import Settings, SettingsError, load_settings


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def _container(settings: Settings | None = None) -> Any:
    from gateway.container import build_container
    from gateway.observability.logging import configure_logging

    settings = settings or _settings()
    configure_logging("WARNING", settings.log_format, stream=sys.stderr)
    try:
        return build_container(settings)
    except SettingsError as exc:  # e.g. a provider's settings (GATEWAY_<ID>_*)
        raise click.ClickException(str(exc)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="wallet-gateway")
def main() -> None:
    """Bank-to-wallet integration gateway."""


# --- serve / migrate / worker --------------------------------------------------------------------


@main.command()
@click.option("--revision", default="head", show_default=True, help="Target revision.")
def migrate(revision: str) -> None:
    """Apply database migrations."""
    from gateway.store import migrate as migrations
    from gateway.store.db import Database

    settings = _settings()
    db = Database.from_settings(settings)
    try:
        status = migrations.upgrade(db.engine, revision)
    finally:
        db.dispose()
    click.echo(f"database at revision {status.current} (head {status.head})")


@main.command("new-migration", hidden=True)
@click.argument("message")
@click.option("--rev-id", required=True, help="Next number, e.g. 0003.")
def new_migration(message: str, rev_id: str) -> None:
    """(developers) Autogenerate a migration from the models against a scratch SQLite DB."""
    import tempfile

    from gateway.store import migrate as migrations
    from gateway.store.db import Database

    with tempfile.TemporaryDirectory() as scratch:
        db = Database.from_settings(load_settings(database_url=f"sqlite:///{scratch}/scratch.db"))
        migrations.upgrade(db.engine)
        migrations.autogenerate(db.engine, message, rev_id)
        db.dispose()


@main.command()
@click.option("--host", default=None, help="Bind address (default GATEWAY_HOST).")
@click.option("--port", type=int, default=None, help="Port (default GATEWAY_PORT).")
@click.option(
    "--workers", type=int, default=None, help="Server processes (default GATEWAY_WORKERS)."
)
@click.option(
    "--gunicorn",
    "use_gunicorn",
    is_flag=True,
    help="Production: gunicorn managing uvicorn worker processes (restarts, graceful "
    "shutdown, aggregated metrics). Needs the `production` extra.",
)
def serve(host: str | None, port: int | None, workers: int | None, use_gunicorn: bool) -> None:
    """Serve the API (uvicorn; `--gunicorn` in production, see docs/operations.md)."""
    settings = _settings()
    if use_gunicorn:
        try:
            import gunicorn  # noqa: F401
            import uvicorn_worker  # noqa: F401
        except ImportError:
            raise click.ClickException(
                "--gunicorn needs gunicorn and uvicorn-worker: "
                "pip install 'wallet-gateway[production]'"
            ) from None
        from gateway.serving import prepare_metrics_dir

        # Before anything imports prometheus_client (gateway.app does), so every forked
        # process writes its samples where /metrics aggregates them.
        prepare_metrics_dir()

    from gateway.app import NotMigrated, ensure_migrated

    gateway = _container(settings)
    try:
        ensure_migrated(gateway)
        push_as = _simulator_push_credentials(settings, gateway)
    except NotMigrated as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        gateway.close()
    host = host or settings.host
    port = port or settings.port
    # Started before uvicorn so that every worker process (`--workers N`) finds it running.
    core = _start_embedded_core_banking(settings)
    sandboxes = _start_embedded_sandboxes(settings)
    if core is not None and push_as is not None:
        local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
        core.simulator.start_camt_push(
            f"http://{local}:{port}",
            client_id=push_as[0],
            client_secret=push_as[1],
            interval=settings.core_banking_simulator_camt_interval_seconds,
            version=settings.core_banking_simulator_camt_version,
        )
    base = f"http://{host}:{port}"
    click.echo(
        f"wallet-gateway listening on {base}\n"
        f"  API docs (Swagger UI)  {base}/docs/\n"
        f"  OpenAPI document       {base}/openapi.json\n"
        f"  readiness              {base}/health/ready\n"
        f"  metrics                {base}/metrics\n"
        + (
            f"  core banking           {core.soap_url} (embedded simulator, "
            f"admin API {core.base_url}/simulator)\n"
            if core is not None
            else f"  core banking           {settings.resolved_core_banking_url}\n"
        )
        + "".join(
            f"  {provider_id + ' sandbox':<22} {sandbox.base_url} (embedded simulator, admin API "
            f"{sandbox.base_url}/sandbox)\n"
            for provider_id, sandbox in sandboxes
        )
        + (
            f"  settlement             the simulator pushes camt.054/camt.053 as core partner "
            f"{push_as[0]} (docs/settlement.md)\n"
            if core is not None and push_as is not None
            else ""
        ),
        err=True,
    )
    if use_gunicorn:
        from gateway.serving import GatewayServer, gunicorn_options

        options = gunicorn_options(settings, host=host, port=port, workers=workers)
        GatewayServer(options).run()
        return

    import uvicorn

    uvicorn.run(
        "gateway.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers or settings.workers,
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=settings.graceful_shutdown_seconds,
    )


SIMULATOR_CORE_PARTNER = "embedded core-banking simulator"


def _simulator_push_credentials(settings: Settings, gateway: Any) -> tuple[str, str] | None:
    """Who the embedded simulator pushes settlement messages as, if it does (development).

    Configured credentials win; otherwise a `core` partner is created for it (or, on later
    starts, its secret rotated, since secrets are only ever shown once). Both are audited.
    """
    if not settings.core_banking_embedded or not settings.core_banking_simulator_camt_push:
        return None
    client_id = settings.core_banking_simulator_push_client_id
    secret = settings.core_banking_simulator_push_client_secret
    if client_id and secret is not None:
        return client_id, secret.get_secret_value()
    if settings.environment != "development":
        return None
    actor = "serve:embedded-core-banking-simulator"
    for partner in gateway.partners.list():
        if (
            partner["kind"] == "core"
            and partner["name"] == SIMULATOR_CORE_PARTNER
            and partner["status"] == "active"
        ):
            return partner["id"], gateway.partners.rotate_secret(partner["id"], actor=actor)
    view, new_secret = gateway.partners.create(
        name=SIMULATOR_CORE_PARTNER, kind="core", scopes=["settlement:write"], actor=actor
    )
    return view["id"], new_secret


def _start_embedded_core_banking(settings: Settings) -> Any:
    """With no GATEWAY_CORE_BANKING_URL, run the core-banking simulator on loopback."""
    if not settings.core_banking_embedded:
        return None
    if settings.environment == "production":  # settings refuse this too; belt and braces
        raise click.ClickException("the embedded core-banking simulator is not for production")
    from adapters.core_banking.simulator import CoreBankingSimulator

    password = settings.core_banking_password
    simulator = CoreBankingSimulator(
        settings.resolved_core_banking_simulator_db,
        username=settings.core_banking_username,
        password=password.get_secret_value() if password is not None else None,
    )
    host, port = settings.core_banking_simulator_host, settings.core_banking_simulator_port
    try:
        return simulator.serve(host, port)
    except OSError as exc:
        raise click.ClickException(
            f"cannot start the embedded core-banking simulator on {host}:{port} "
            f"({exc.strerror or exc}): set GATEWAY_CORE_BANKING_SIMULATOR_PORT to a free port, "
            "or GATEWAY_CORE_BANKING_URL to a running core"
        ) from None


def _start_embedded_sandboxes(settings: Settings) -> list[tuple[str, Any]]:
    """Enabled providers without a base URL get their sandbox simulator on loopback."""
    from adapters.providers.registry import start_embedded_sandboxes

    try:
        return start_embedded_sandboxes(settings)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(
            f"cannot start an embedded provider sandbox ({exc.strerror or exc}): set "
            "GATEWAY_<PROVIDER>_SIMULATOR_PORT to a free port, or GATEWAY_<PROVIDER>_BASE_URL "
            "to the provider"
        ) from None


@main.command()
def worker() -> None:
    """Run the background workers (outbox, recovery, expiry) in this process.

    Serves their metrics on GATEWAY_WORKER_METRICS_PORT (0: none): the alert gauges
    (backlog, unknown outcomes, open payouts, reconciliation breaks) are refreshed here.
    """
    import signal

    from gateway.app import NotMigrated, ensure_migrated
    from gateway.observability.logging import configure_logging, get_logger
    from gateway.workers.jobs import default_jobs
    from gateway.workers.runner import Workers

    settings = _settings()
    gateway = _container(settings)
    configure_logging(settings.log_level, settings.log_format)
    metrics_server = None
    try:
        try:
            ensure_migrated(gateway)
        except NotMigrated as exc:
            raise click.ClickException(str(exc)) from None
        if settings.worker_metrics_port:
            metrics_server = _serve_worker_metrics(settings)
            get_logger("gateway.workers").info(
                "worker_metrics_listening",
                url=f"http://{settings.host}:{metrics_server.port}/metrics",
            )
        workers = Workers(default_jobs(gateway))
        signal.signal(signal.SIGTERM, lambda *_: workers.stop_event.set())
        workers.start()
        try:
            workers.wait()
        except KeyboardInterrupt:
            pass
        finally:
            workers.stop()
    finally:
        if metrics_server is not None:
            metrics_server.close()
        gateway.close()


def _serve_worker_metrics(settings: Settings) -> Any:
    from gateway.observability.metrics import MetricsServer

    host, port = settings.host, settings.worker_metrics_port
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    try:
        return MetricsServer(host, port, token=token)
    except OSError as exc:
        raise click.ClickException(
            f"cannot serve worker metrics on {host}:{port} ({exc.strerror or exc}): set "
            "GATEWAY_WORKER_METRICS_PORT to a free port, or 0 to serve none"
        ) from None


# --- partners ------------------------------------------------------------------------------------


def _print_credentials(view: dict[str, Any], secret: str, fmt: str) -> None:
    if fmt == "json":
        click.echo(json.dumps({**view, "client_id": view["id"], "client_secret": secret}, indent=2))
    elif fmt == "env":
        click.echo(f"CLIENT_ID={shlex.quote(view['id'])}")
        click.echo(f"CLIENT_SECRET={shlex.quote(secret)}")
    else:
        click.echo(f"partner        {view['id']} ({view['kind']}, {view['status']})")
        click.echo(f"scopes         {' '.join(view['scopes'])}")
        click.echo(f"client_id      {view['id']}")
        click.echo(f"client_secret  {secret}")
        click.echo(
            "The secret is shown only once; store it in the partner's secret manager.", err=True
        )


_FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "env"]),
    default="text",
    show_default=True,
    help="env prints CLIENT_ID=… CLIENT_SECRET=… for `eval`.",
)


@main.group()
def partners() -> None:
    """Create and manage partners (API clients)."""


@partners.command("create")
@click.option("--name", required=True)
@click.option(
    "--kind",
    required=True,
    type=click.Choice(["wallet", "merchant", "bank_channel", "core", "operator"]),
)
@click.option("--scope", "scopes", multiple=True, help="Repeat; default: every scope of the kind.")
@click.option(
    "--settlement-account", default=None, help="The partner's settlement account at the bank."
)
@click.option("--settlement-currency", default=None, help="ISO 4217 currency of that account.")
@click.option("--rate-limit", default=None, help="Override, e.g. '500/second'.")
@_FORMAT
def partners_create(
    name: str,
    kind: str,
    scopes: tuple[str, ...],
    settlement_account: str | None,
    settlement_currency: str | None,
    rate_limit: str | None,
    fmt: str,
) -> None:
    """Create a partner and print its client credentials (once)."""
    gateway = _container()
    try:
        view, secret = gateway.partners.create(
            name=name,
            kind=kind,
            scopes=list(scopes) or None,
            settlement_account=settlement_account,
            settlement_currency=settlement_currency,
            rate_limit=rate_limit,
            actor=_actor(),
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    finally:
        gateway.close()
    _print_credentials(view, secret, fmt)


@partners.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def partners_list(as_json: bool) -> None:
    """List partners."""
    from rich.console import Console
    from rich.table import Table

    gateway = _container()
    try:
        rows = gateway.partners.list()
    finally:
        gateway.close()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table("id", "name", "kind", "status", "scopes")
    for row in rows:
        table.add_row(row["id"], row["name"], row["kind"], row["status"], " ".join(row["scopes"]))
    Console().print(table)


@partners.command("rotate-secret")
@click.argument("partner_id")
@_FORMAT
def partners_rotate_secret(partner_id: str, fmt: str) -> None:
    """Issue a new client secret; the old one and its tokens stop working at once."""
    gateway = _container()
    try:
        secret = gateway.partners.rotate_secret(partner_id, actor=_actor())
        view = gateway.partners.get(partner_id)
    finally:
        gateway.close()
    _print_credentials(view, secret, fmt)


def _set_status(partner_id: str, status: str, reason: str) -> None:
    gateway = _container()
    try:
        view = gateway.partners.set_status(partner_id, status, actor=_actor(), reason=reason)
    finally:
        gateway.close()
    click.echo(f"partner {view['id']} is {view['status']}")


@partners.command("suspend")
@click.argument("partner_id")
@click.option("--reason", default="", help="Recorded in the audit log.")
def partners_suspend(partner_id: str, reason: str) -> None:
    """Suspend a partner: its tokens stop working immediately."""
    _set_status(partner_id, "suspended", reason)


@partners.command("resume")
@click.argument("partner_id")
@click.option("--reason", default="")
def partners_resume(partner_id: str, reason: str) -> None:
    """Re-activate a suspended partner (it must request new tokens)."""
    _set_status(partner_id, "active", reason)


@partners.command("revoke")
@click.argument("partner_id")
@click.option("--reason", default="")
def partners_revoke(partner_id: str, reason: str) -> None:
    """Revoke a partner for good."""
    _set_status(partner_id, "revoked", reason)


@partners.command("set-fee")
@click.argument("partner_id")
@click.option("--direction", type=click.Choice(["debit", "credit"]), required=True)
@click.option("--currency", required=True)
@click.option("--fixed", default="0", show_default=True, help="Fixed part, e.g. 1.00")
@click.option("--percent", default="0", show_default=True, help="Rate in percent, e.g. 0.35")
@click.option("--minimum", default="0", show_default=True)
@click.option("--maximum", default=None)
def partners_set_fee(
    partner_id: str,
    direction: str,
    currency: str,
    fixed: str,
    percent: str,
    minimum: str,
    maximum: str | None,
) -> None:
    """Set a partner's fee (fixed + percent, clamped to [minimum, maximum])."""
    gateway = _container()
    try:
        fee = gateway.partners.set_fee(
            partner_id,
            direction=direction,
            currency=currency,
            fixed=fixed,
            percent=percent,
            minimum=minimum,
            maximum=maximum,
            actor=_actor(),
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    finally:
        gateway.close()
    click.echo(json.dumps(fee))


@partners.command("set-limit")
@click.argument("partner_id")
@click.option("--currency", required=True)
@click.option("--per-transaction", default=None, help="e.g. 50000.00")
@click.option("--daily", default=None, help="e.g. 1000000.00")
def partners_set_limit(
    partner_id: str, currency: str, per_transaction: str | None, daily: str | None
) -> None:
    """Cap a partner's transfers in one currency (on top of each customer's consent limits)."""
    gateway = _container()
    try:
        limit = gateway.partners.set_limit(
            partner_id,
            currency=currency,
            per_transaction=per_transaction,
            daily=daily,
            actor=_actor(),
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    finally:
        gateway.close()
    click.echo(json.dumps(limit))


# --- sandbox ------------------------------------------------------------------------------------


@main.group()
def sandbox() -> None:
    """Development helpers for the sandbox notifier."""


@sandbox.command("sms")
@click.option("--to", "to", default=None, help="Only messages to this number.")
@click.option("--limit", type=int, default=5, show_default=True)
@click.option("--code", is_flag=True, help="Print only the newest one-time code.")
def sandbox_sms(to: str | None, limit: int, code: bool) -> None:
    """Show SMS the sandbox notifier kept (GATEWAY_NOTIFIER=sandbox), newest first."""
    import re

    from adapters.notifiers.sandbox import SandboxNotifier

    settings = _settings()
    if settings.notifier != "sandbox":
        raise click.ClickException("the sandbox notifier is not in use")
    messages = SandboxNotifier(settings.data_dir / "sandbox-sms.jsonl").messages(to=to, limit=limit)
    if code:
        found = next(
            (m for m in (re.search(r"\b(\d{6})\b", x["text"]) for x in messages) if m), None
        )
        if found is None:
            raise click.ClickException("no one-time code found")
        click.echo(found.group(1))
        return
    for message in messages:
        click.echo(f"{message['sent_at']}  {message['to']}  {message['text']}")


# --- keys ----------------------------------------------------------------------------------------


@main.group()
def keys() -> None:
    """Manage signing and encryption keys."""


@keys.command("rotate")
@click.option(
    "--resume", is_flag=True, help="Do not add a key; finish re-encrypting to the newest."
)
@click.option("--batch-size", type=int, default=500, show_default=True)
@click.option(
    "--settle-seconds",
    type=float,
    default=None,
    help="Wait this long, then sweep again, so entries written by processes that had not yet "
    "noticed the new key are re-encrypted too (default: GATEWAY_VAULT_KEY_RELOAD_SECONDS).",
)
def keys_rotate(resume: bool, batch_size: int, settle_seconds: float | None) -> None:
    """Add a vault key and re-encrypt every entry under it, in batches, under live traffic."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    gateway = _container()
    vault, db = gateway.vault, gateway.db
    try:
        version = vault.keys.active if resume else vault.keys.add_version()
        settle = (
            gateway.settings.vault_key_reload_seconds if settle_seconds is None else settle_seconds
        )
        click.echo(f"vault key version {version} is active; re-encrypting older entries")
        total, failed = 0, list[str]()
        for sweep in range(2):
            remaining = vault.count_below(db, version)
            with Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                transient=False,
            ) as progress:
                task = progress.add_task(f"sweep {sweep + 1}", total=remaining)
                moved, bad = vault.reencrypt_all(
                    db,
                    version,
                    batch_size,
                    progress=lambda n, task=task: progress.advance(task, n),
                )
                total += moved
                failed = bad  # the last sweep's list is the current truth
            if sweep == 0 and settle > 0:
                time.sleep(settle)  # let every process reload the key directory
        left = vault.count_below(db, version)
        record_actor = _actor()
        from gateway.store.audit import record_audit

        with db.transaction() as session:
            record_audit(
                session,
                actor=record_actor,
                action="vault.rotated",
                target_type="vault",
                target_id=str(version),
                at=gateway.clock.now(),
                details={"reencrypted": total, "remaining": left, "undecryptable": failed},
            )
    finally:
        gateway.close()
    click.echo(f"re-encrypted {total} entries; {left} remain under older keys")
    if failed:
        raise click.ClickException(
            f"{len(failed)} entries do not decrypt (tampered or corrupt): {', '.join(failed[:20])}"
        )
    if left:
        raise click.ClickException("entries remain under older keys: run `keys rotate --resume`")


@keys.command("init")
@click.option(
    "--signing-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Signing-key directory (default GATEWAY_SIGNING_KEYS_DIR).",
)
@click.option(
    "--vault-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Vault-key directory (default GATEWAY_VAULT_KEYS_DIR).",
)
def keys_init(signing_dir: Path | None, vault_dir: Path | None) -> None:
    """Create the first signing key and vault keys where none exist; safe to re-run.

    Existing keys are never replaced: a directory that already holds keys is only checked.
    """
    from gateway.security.tokens import SigningKeys
    from gateway.vault import VaultKeys

    if signing_dir is None or vault_dir is None:
        settings = _settings()
        signing_dir = signing_dir or settings.resolved_signing_keys_dir
        vault_dir = vault_dir or settings.resolved_vault_keys_dir
    try:
        had_signing = any(signing_dir.glob("*.pem"))
        signing = SigningKeys(signing_dir, create_if_missing=True)
        had_vault = any(vault_dir.glob("*.key"))
        vault = VaultKeys(vault_dir, create_if_missing=True)
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"keys not usable: {exc}") from None
    if had_signing:
        click.echo(f"signing keys present in {signing_dir} ({len(signing.all())}), kept")
    else:
        click.echo(f"created signing key {signing.active.kid} in {signing_dir}")
    if had_vault:
        click.echo(f"vault keys present in {vault_dir} (active version {vault.active}), kept")
    else:
        click.echo(f"created vault keys in {vault_dir} (version {vault.active} and index.key)")
        click.echo(
            "Back up the vault keys with the database: without them stored account numbers "
            "cannot be decrypted.",
            err=True,
        )


@keys.command("rotate-signing")
def keys_rotate_signing() -> None:
    """Add a new access-token signing key; it signs from now on, old keys still verify."""
    from gateway.security.tokens import SigningKeys

    settings = _settings()
    signing = (
        SigningKeys(settings.resolved_signing_keys_dir, create_if_missing=False)
        if any(settings.resolved_signing_keys_dir.glob("*.pem"))
        else None
    )
    if signing is None:
        settings.resolved_signing_keys_dir.mkdir(parents=True, exist_ok=True)
        signing = SigningKeys(settings.resolved_signing_keys_dir, create_if_missing=True)
        click.echo(f"created signing key {signing.active.kid}")
        return
    key = signing.add_key()
    click.echo(f"added signing key {key.kid}; processes pick it up within seconds")


@keys.command("prune-signing")
@click.option("--keep", type=int, default=2, show_default=True)
def keys_prune_signing(keep: int) -> None:
    """Remove old signing keys (wait one token lifetime after a rotation)."""
    from gateway.security.tokens import SigningKeys

    settings = _settings()
    try:
        signing = SigningKeys(settings.resolved_signing_keys_dir, create_if_missing=False)
    except (FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    for kid in signing.prune(keep):
        click.echo(f"removed signing key {kid}")


# --- config --------------------------------------------------------------------------------------


@main.group()
def config() -> None:
    """Inspect configuration."""


@config.command("check")
def config_check() -> None:
    """Validate the environment's settings and print them (secrets masked)."""
    from adapters.providers.registry import load_provider_settings

    settings = _settings()
    try:
        providers = load_provider_settings(settings)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    for name, value in settings.model_dump().items():
        shown = "********" if "token" in name or "secret" in name or "password" in name else value
        if name == "database_url" and value:
            from sqlalchemy.engine import make_url

            shown = make_url(value).render_as_string(hide_password=True)
        click.echo(f"GATEWAY_{name.upper()}={'' if shown is None else shown}")
    for values in providers.values():
        for name, value in values.model_dump().items():
            secret = any(word in name for word in ("key", "secret", "password"))
            shown = "********" if secret and value is not None else value
            click.echo(f"{values.variable(name)}={'' if shown is None else shown}")
    click.echo("configuration is valid", err=True)


@config.command("docs")
@click.option(
    "--write",
    "target",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Rewrite the section between <!-- settings:start/end --> in this file (make docs).",
)
def config_docs(target: Path | None) -> None:
    """Print the reference of every GATEWAY_* setting as a markdown table."""
    from gateway import settings_doc

    table = settings_doc.render_table()
    if target is None:
        click.echo(table, nl=False)
        return
    try:
        updated = settings_doc.replace_section(target.read_text(), table)
    except ValueError as exc:
        raise click.ClickException(f"{target}: {exc}") from None
    target.write_text(updated)
    click.echo(f"wrote the settings reference into {target}", err=True)


# --- simulators ----------------------------------------------------------------------------------


@main.group()
def simulator() -> None:
    """Run simulators of the systems the gateway talks to (development, demos, tests)."""


@simulator.command("sms")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8094, show_default=True)
@click.option("--token", envvar="SMS_HUB_TOKEN", default=None, help="Require this bearer token.")
def simulator_sms(host: str, port: int, token: str | None) -> None:
    """Serve a stand-in SMS hub (what GATEWAY_NOTIFIER=http posts to) in the foreground."""
    from werkzeug.serving import run_simple

    from adapters.notifiers.sms_hub_simulator import SmsHubSimulator

    if _settings().environment == "production":
        raise click.ClickException("the SMS hub simulator is not for production")
    click.echo(f"SMS hub simulator on http://{host}:{port}/messages", err=True)
    run_simple(host, port, SmsHubSimulator(token).app, threaded=True)


@simulator.command("core-banking")
@click.option(
    "--host", default=None, help="Bind address (default GATEWAY_CORE_BANKING_SIMULATOR_HOST)."
)
@click.option(
    "--port", type=int, default=None, help="Port (default GATEWAY_CORE_BANKING_SIMULATOR_PORT)."
)
@click.option(
    "--db",
    default=None,
    help="Ledger: SQLite file or ':memory:' (default GATEWAY_CORE_BANKING_SIMULATOR_DB).",
)
@click.option("--seed/--no-seed", default=True, show_default=True, help="Open the demo accounts.")
@click.option(
    "--push-to",
    default=None,
    help="A gateway's base URL: push booked entries there as camt.054 (and camt.053 after each "
    "day), as the core partner GATEWAY_CORE_BANKING_SIMULATOR_PUSH_CLIENT_ID/_SECRET.",
)
def simulator_core_banking(
    host: str | None, port: int | None, db: str | None, seed: bool, push_to: str | None
) -> None:
    """Serve the core-banking SOAP simulator in the foreground.

    Seeded demo accounts and the fault-injection API: docs/core-banking-simulator.md.
    """
    from rich.console import Console
    from rich.table import Table

    from adapters.core_banking.simulator import CoreBankingSimulator
    from adapters.core_banking.simulator.ledger import to_decimal
    from gateway.domain.money import Money

    settings = _settings()
    if settings.environment == "production":
        raise click.ClickException("the core-banking simulator is not for production")
    password = settings.core_banking_password
    ledger = db or settings.resolved_core_banking_simulator_db
    core = CoreBankingSimulator(
        ledger,
        username=settings.core_banking_username,
        password=password.get_secret_value() if password is not None else None,
        seed_demo_accounts=seed,
    )
    host = host or settings.core_banking_simulator_host
    port = settings.core_banking_simulator_port if port is None else port
    try:
        server = core.serve(host, port)
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from None
    if push_to:
        client_id = settings.core_banking_simulator_push_client_id
        secret = settings.core_banking_simulator_push_client_secret
        if not client_id or secret is None:
            server.shutdown()
            raise click.ClickException(
                "--push-to needs GATEWAY_CORE_BANKING_SIMULATOR_PUSH_CLIENT_ID and _SECRET "
                "(a partner of kind core: wallet-gateway partners create --kind core ...)"
            )
        core.start_camt_push(
            push_to,
            client_id=client_id,
            client_secret=secret.get_secret_value(),
            interval=settings.core_banking_simulator_camt_interval_seconds,
            version=settings.core_banking_simulator_camt_version,
        )
    console = Console(stderr=True)
    table = Table("account", "holder", "currency", "status", "kind", "available")
    for row in core.ledger.accounts():
        if row["kind"] == "internal":
            continue
        table.add_row(
            row["number"],
            row["name"],
            row["currency"],
            row["status"],
            row["kind"],
            Money.from_decimal(to_decimal(row["available_units"]), row["currency"]).value,
        )
    console.print(table)
    console.print(
        f"core-banking simulator on {server.soap_url} (WSDL {server.soap_url}?wsdl)\n"
        f"  admin API {server.base_url}/simulator   ledger {ledger}\n"
        "Ctrl-C stops it."
    )
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()


@simulator.command("gsma-mm")
@click.option("--host", default=None, help="Bind address (default GATEWAY_GSMA_MM_SIMULATOR_HOST).")
@click.option(
    "--port", type=int, default=None, help="Port (default GATEWAY_GSMA_MM_SIMULATOR_PORT)."
)
def simulator_gsma_mm(host: str | None, port: int | None) -> None:
    """Serve the GSMA Mobile Money API sandbox in the foreground.

    It expects the credentials the gateway is configured with (GATEWAY_GSMA_MM_AUTH, _API_KEY,
    _CLIENT_ID/_CLIENT_SECRET) and sends callbacks with GATEWAY_GSMA_MM_CALLBACK_API_KEY.
    Wallets, fault modes and the admin API: docs/providers/gsma_mm.md.
    """
    from pydantic import ValidationError
    from rich.console import Console
    from rich.table import Table

    from adapters.providers.registry import PROVIDERS

    settings = _settings()
    if settings.environment == "production":
        raise click.ClickException("the GSMA Mobile Money sandbox is not for production")
    spec = PROVIDERS["gsma_mm"]
    assert spec.sandbox is not None
    try:
        values = spec.settings(_secrets_dir=_secrets_dir())
    except ValidationError as exc:
        raise click.ClickException(f"invalid GATEWAY_GSMA_MM_* settings: {exc}") from None
    host = host or values.simulator_host
    port = values.simulator_port if port is None else port
    try:
        server = spec.sandbox(values, host, port, settings.data_dir)
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from None
    console = Console(stderr=True)
    table = Table()
    for column in ("msisdn", "walletid", "name", "currency", "balance", "status"):
        table.add_column(column, no_wrap=True)
    for wallet in getattr(server, "sandbox").ledger.wallets.values():  # noqa: B009
        table.add_row(
            wallet.msisdn,
            wallet.walletid,
            wallet.full_name,
            wallet.currency,
            f"{wallet.balance:,.2f}",
            wallet.status,
        )
    console.print(table)
    auth = getattr(values, "auth", "none")
    console.print(
        f"GSMA Mobile Money API sandbox on {server.base_url} (auth: {auth})\n"
        f"  admin API {server.base_url}/sandbox   Ctrl-C stops it."
    )
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()


def _start_sandbox(provider_id: str, title: str, host: str | None, port: int | None) -> Any:
    """Build a provider's sandbox from its GATEWAY_<ID>_* settings and serve it (CLI)."""
    from pydantic import ValidationError

    from adapters.providers.registry import PROVIDERS

    settings = _settings()
    if settings.environment == "production":
        raise click.ClickException(f"the {title} sandbox is not for production")
    spec = PROVIDERS[provider_id]
    assert spec.sandbox is not None
    try:
        values = spec.settings(_secrets_dir=_secrets_dir())
    except ValidationError as exc:
        raise click.ClickException(
            f"invalid GATEWAY_{provider_id.upper()}_* settings: {exc}"
        ) from None
    host = host or values.simulator_host
    port = values.simulator_port if port is None else port
    try:
        return spec.sandbox(values, host, port, settings.data_dir)
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from None
    except ValueError as exc:  # unreadable key files
        raise click.ClickException(str(exc)) from None


def _run_sandbox(server: Any) -> None:
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()


@simulator.command("wechatpay")
@click.option(
    "--host", default=None, help="Bind address (default GATEWAY_WECHATPAY_SIMULATOR_HOST)."
)
@click.option(
    "--port", type=int, default=None, help="Port (default GATEWAY_WECHATPAY_SIMULATOR_PORT)."
)
def simulator_wechatpay(host: str | None, port: int | None) -> None:
    """Serve the WeChat Pay API v3 sandbox in the foreground.

    It uses the gateway's GATEWAY_WECHATPAY_* settings: merchant id, AppID, certificate serial
    and APIv3 key; it reads (or creates) the merchant key in
    GATEWAY_WECHATPAY_MERCHANT_PRIVATE_KEY_FILE and publishes its platform public key into
    GATEWAY_WECHATPAY_PLATFORM_KEYS_DIR (defaults under `<data_dir>/wechatpay-sandbox`).
    Users, fault modes and the admin API: docs/providers/wechatpay.md.
    """
    from rich.console import Console
    from rich.table import Table

    server = _start_sandbox("wechatpay", "WeChat Pay", host, port)
    sandbox = server.sandbox
    console = Console(stderr=True)
    table = Table()
    for column in ("openid", "name", "balance (CNY)", "status", "confirms"):
        table.add_column(column, no_wrap=True)
    for user in sandbox.ledger.users.values():
        table.add_row(
            user.openid,
            user.name,
            f"{user.balance / 100:,.2f}",
            user.status,
            "auto" if user.auto_receive else "must confirm",
        )
    console.print(table)
    console.print(
        f"WeChat Pay API v3 sandbox on {server.base_url} (mchid {sandbox.mchid}, "
        f"platform key {sandbox.platform_key_id})\n"
        f"  admin API {server.base_url}/sandbox   Ctrl-C stops it."
    )
    _run_sandbox(server)


@simulator.command("alipay")
@click.option("--host", default=None, help="Bind address (default GATEWAY_ALIPAY_SIMULATOR_HOST).")
@click.option(
    "--port", type=int, default=None, help="Port (default GATEWAY_ALIPAY_SIMULATOR_PORT)."
)
def simulator_alipay(host: str | None, port: int | None) -> None:
    """Serve the Alipay OpenAPI sandbox in the foreground.

    It uses the gateway's GATEWAY_ALIPAY_* settings: the APPID; it reads (or creates) the
    application key in GATEWAY_ALIPAY_APP_PRIVATE_KEY_FILE and publishes its Alipay public key
    into GATEWAY_ALIPAY_ALIPAY_PUBLIC_KEYS_DIR (defaults under `<data_dir>/alipay-sandbox`).
    Accounts, fault modes and the admin API: docs/providers/alipay.md.
    """
    from rich.console import Console
    from rich.table import Table

    server = _start_sandbox("alipay", "Alipay", host, port)
    sandbox = server.sandbox
    console = Console(stderr=True)
    table = Table()
    for column in ("user id", "logon id", "name", "balance (CNY)", "status"):
        table.add_column(column, no_wrap=True)
    for account in sandbox.ledger.accounts.values():
        table.add_row(
            account.user_id,
            ", ".join(account.logon_ids),
            account.name,
            f"{account.balance / 100:,.2f}",
            account.status,
        )
    console.print(table)
    console.print(
        f"Alipay OpenAPI sandbox on {server.base_url}/gateway.do (APPID {sandbox.app_id})\n"
        f"  admin API {server.base_url}/sandbox   Ctrl-C stops it."
    )
    _run_sandbox(server)


def _secrets_dir() -> str | None:
    import os

    return os.environ.get("GATEWAY_SECRETS_DIR") or None


# --- webhooks ------------------------------------------------------------------------------------


def _moment(value: str | None, option: str) -> Any:
    """An RFC 3339 / ISO 8601 time; one without a zone is taken as UTC."""
    from datetime import UTC, datetime

    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            "expected a time such as 2026-01-31T08:00:00Z", param_hint=option
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@main.group()
def webhooks() -> None:
    """Webhook deliveries to partners (see docs/webhooks.md)."""


@webhooks.command("replay")
@click.option(
    "--since", default=None, help="Events created at or after this time (UTC if no zone)."
)
@click.option("--until", default=None, help="... and before this time.")
@click.option("--endpoint", "endpoint_id", default=None, help="Only deliveries to this endpoint.")
@click.option("--event", "event_id", default=None, help="Replay this one event instead of a range.")
def webhooks_replay(
    since: str | None, until: str | None, endpoint_id: str | None, event_id: str | None
) -> None:
    """Send failed deliveries again (a time range), or one event to its endpoints.

    A range re-queues every delivery of events created in [since, until) that is not delivered
    and has failed at least once; each gets a fresh retry window. The running dispatchers send
    them. Deliveries to disabled or deleted endpoints are skipped.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from gateway.domain.errors import GatewayError

    if bool(event_id) == bool(since or until) or (not event_id and not (since and until)):
        raise click.UsageError("give either --event, or both --since and --until")
    start, end = _moment(since, "--since"), _moment(until, "--until")
    gateway = _container()
    try:
        if event_id:
            result = gateway.webhooks.replay_event(
                event_id, actor=_actor(), endpoint_id=endpoint_id
            )
        else:
            columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
            )
            with Progress(*columns, console=Console(stderr=True)) as progress:
                task = progress.add_task("re-queueing failed deliveries", total=None)

                def report(done: int, total: int) -> None:
                    progress.update(task, completed=done, total=total)

                result = gateway.webhooks.replay_range(
                    since=start,
                    until=end,
                    actor=_actor(),
                    endpoint_id=endpoint_id,
                    progress=report,
                )
    except GatewayError as exc:
        raise click.ClickException(exc.detail) from None
    finally:
        gateway.close()
    click.echo(
        f"queued {result.queued} deliveries again; skipped {result.skipped} "
        "(endpoint disabled or deleted, or a delivery in flight)"
    )


# --- reconciliation (docs/settlement.md) ---------------------------------------------------------


def _business_date(value: str, option: str = "--date") -> Any:
    from datetime import date

    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter("expected a date such as 2026-01-31", param_hint=option) from None


@main.group()
def reconcile() -> None:
    """Settlement reconciliation: reports, closing a date, resolving breaks."""


@reconcile.command("report")
@click.option("--date", "on", required=True, help="The settlement (booking) date, YYYY-MM-DD.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "json"]),
    default="csv",
    show_default=True,
    help="csv: one row per entry (and per missing entry); json: the summary and the rows.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write here instead of standard output.",
)
def reconcile_report(on: str, fmt: str, output: Path | None) -> None:
    """Every entry of a settlement date with what it matched and its break, if any.

    Streams in pages with a progress bar (on standard error), so a day of millions of entries
    takes bounded memory. Account numbers are masked.
    """
    import csv
    import io

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from gateway.services.settlement import REPORT_COLUMNS

    day = _business_date(on)
    gateway = _container()
    target = output.open("w", newline="", encoding="utf-8") if output else None
    out: Any = target if target is not None else sys.stdout
    try:
        total = gateway.settlement.count_report_rows(day)
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=Console(stderr=True), transient=total < 10_000) as bar:
            task = bar.add_task(f"reconciliation report {day.isoformat()}", total=total)
            rows = gateway.settlement.report_rows(day)
            if fmt == "csv":
                writer = csv.DictWriter(out, fieldnames=REPORT_COLUMNS, lineterminator="\n")
                writer.writeheader()
                for count, row in enumerate(rows, start=1):
                    writer.writerow(row)
                    if count % 500 == 0:
                        bar.update(task, completed=count)
            else:
                summary = gateway.settlement.report(day)
                head = json.dumps(summary, indent=2)[:-2]  # reopen the object for the rows
                out.write(head + ',\n  "rows": [')
                buffer = io.StringIO()
                for count, row in enumerate(rows, start=1):
                    buffer.write(("\n    " if count == 1 else ",\n    ") + json.dumps(row))
                    if count % 500 == 0:
                        out.write(buffer.getvalue())
                        buffer = io.StringIO()
                        bar.update(task, completed=count)
                out.write(buffer.getvalue() + "\n  ]\n}\n")
            bar.update(task, completed=total)
    finally:
        if target is not None:
            target.close()
        gateway.close()


@reconcile.command("close")
@click.option("--date", "on", required=True, help="The settlement date to close, YYYY-MM-DD.")
@click.option("--partner", "partner_id", default=None, help="Only this partner's settlement.")
@click.option("--reason", required=True, help="Why (recorded in the audit log).")
def reconcile_close(on: str, partner_id: str | None, reason: str) -> None:
    """Complete the date's open settlements without waiting for the core's statement."""
    from gateway.domain.errors import GatewayError

    gateway = _container()
    try:
        closed = gateway.settlement.close_date(
            _business_date(on), actor=_actor(), reason=reason, partner_id=partner_id
        )
    except GatewayError as exc:
        raise click.ClickException(exc.detail) from None
    finally:
        gateway.close()
    for row in closed:
        click.echo(f"{row['id']} {row['partner_id']} net {row['net']['value']} {row['currency']}")
    click.echo(f"completed {len(closed)} settlement(s)")


@reconcile.command("resolve")
@click.argument("break_id")
@click.option("--reason", required=True, help="Why (recorded in the audit log).")
def reconcile_resolve(break_id: str, reason: str) -> None:
    """Resolve a reconciliation break."""
    from gateway.domain.errors import GatewayError

    gateway = _container()
    try:
        view = gateway.settlement.resolve_break(break_id, reason=reason, actor=_actor())
    except GatewayError as exc:
        raise click.ClickException(exc.detail) from None
    finally:
        gateway.close()
    click.echo(f"break {view['id']} ({view['type']}) resolved")


if __name__ == "__main__":  # pragma: no cover
    main()
