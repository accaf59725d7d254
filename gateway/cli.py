"""`wallet-gateway`: serve, migrate, worker, partners, keys, config.

Commands read settings from the environment once and fail with a clear message (exit code 2)
when they are invalid. Secrets are printed exactly once, at creation or rotation.
"""

from __future__ import annotations

import getpass
import json
import shlex
import sys
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
    return build_container(settings)


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
    "--workers", type=int, default=None, help="uvicorn processes (default GATEWAY_WORKERS)."
)
def serve(host: str | None, port: int | None, workers: int | None) -> None:
    """Serve the API with uvicorn (see docs/operations.md for gunicorn in production)."""
    import uvicorn

    from gateway.app import NotMigrated, ensure_migrated

    settings = _settings()
    gateway = _container(settings)
    try:
        ensure_migrated(gateway)
    except NotMigrated as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        gateway.close()
    host = host or settings.host
    port = port or settings.port
    base = f"http://{host}:{port}"
    click.echo(
        f"wallet-gateway listening on {base}\n"
        f"  API docs (Swagger UI)  {base}/docs/\n"
        f"  OpenAPI document       {base}/openapi.json\n"
        f"  readiness              {base}/health/ready\n"
        f"  metrics                {base}/metrics\n",
        err=True,
    )
    uvicorn.run(
        "gateway.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers or settings.workers,
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=10,
    )


@main.command()
def worker() -> None:
    """Run the background workers (outbox, recovery, expiry) in this process."""
    import signal

    from gateway.app import NotMigrated, ensure_migrated
    from gateway.observability.logging import configure_logging
    from gateway.workers.jobs import default_jobs
    from gateway.workers.runner import Workers

    settings = _settings()
    gateway = _container(settings)
    configure_logging(settings.log_level, settings.log_format)
    try:
        ensure_migrated(gateway)
    except NotMigrated as exc:
        raise click.ClickException(str(exc)) from None
    workers = Workers(default_jobs(gateway))
    signal.signal(signal.SIGTERM, lambda *_: workers.stop_event.set())
    workers.start()
    try:
        workers.wait()
    except KeyboardInterrupt:
        pass
    finally:
        workers.stop()
        gateway.close()


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


# --- keys ----------------------------------------------------------------------------------------


@main.group()
def keys() -> None:
    """Manage signing and encryption keys."""


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
    signing = SigningKeys(settings.resolved_signing_keys_dir, create_if_missing=False)
    for kid in signing.prune(keep):
        click.echo(f"removed signing key {kid}")


# --- config --------------------------------------------------------------------------------------


@main.group()
def config() -> None:
    """Inspect configuration."""


@config.command("check")
def config_check() -> None:
    """Validate the environment's settings and print them (secrets masked)."""
    settings = _settings()
    for name, value in settings.model_dump().items():
        shown = "********" if "token" in name or "secret" in name or "password" in name else value
        if name == "database_url" and value:
            from sqlalchemy.engine import make_url

            shown = make_url(value).render_as_string(hide_password=True)
        click.echo(f"GATEWAY_{name.upper()}={'' if shown is None else shown}")
    click.echo("configuration is valid", err=True)


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


if __name__ == "__main__":  # pragma: no cover
    main()
