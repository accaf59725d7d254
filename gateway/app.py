"""The application factory: a connexion 3 FlaskApp built from `openapi/gateway.yaml`.

`create_app()` is what uvicorn/gunicorn load (as a factory); tests call it with their own
settings and container overrides. The app refuses to start on an un-migrated database.
"""

from __future__ import annotations

import datetime as dt
import functools
import gc
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import flask
from connexion import FlaskApp
from connexion.jsonifier import Jsonifier
from connexion.middleware import MiddlewarePosition
from connexion.options import SwaggerUIOptions
from connexion.resolver import Resolver
from connexion.utils import get_function_from_name

from gateway import resources
from gateway.api import auth, providers
from gateway.api.deps import EXTENSION
from gateway.api.middleware import GatewayMiddleware
from gateway.api.problems import VALIDATOR_MAP, register_error_handlers
from gateway.container import Container, build_container
from gateway.observability import metrics
from gateway.observability.logging import configure_logging, get_logger
from gateway.settings import Settings, load_settings
from gateway.store import migrate
from gateway.workers.jobs import default_jobs
from gateway.workers.runner import Workers

log = get_logger("gateway.app")
BULK_PATHS = ("/core/v1/iso20022",)


class _QuietConnexion(logging.Filter):
    """Drop two per-request connexion messages about XML bodies that say nothing actionable.

    `POST /core/v1/iso20022` accepts application/xml and text/xml, and connexion 3.3 warns
    "accepts multiple content types" on every such request; it also notes at INFO that it does
    not validate XML (on purpose: the body is streamed and validated against the XSD by us).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return not (
            message.startswith("this operation accepts multiple content types")
            or message.startswith("Skipping validation. No validator registered")
        )


for _name in ("connexion.operations.openapi3", "connexion.middleware.validation"):
    logging.getLogger(_name).addFilter(_QuietConnexion())


class NotMigrated(RuntimeError):
    """The database schema is behind this release."""


class _Encoder(json.JSONEncoder):
    """Datetimes as RFC 3339; anything else unknown (e.g. Decimal) is a bug, not a float."""

    def default(self, o: Any) -> Any:
        if isinstance(o, dt.datetime):
            return o.isoformat().replace("+00:00", "Z")
        if isinstance(o, dt.date):
            return o.isoformat()
        return super().default(o)


def _json_by_default(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Declare JSON as the content type of what a handler returns.

    Operations also document `application/problem+json` error responses, so connexion cannot
    infer the type of a success body; handlers stay plain (`return body, 201`) thanks to this.
    """

    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = handler(*args, **kwargs)
        if isinstance(result, dict | list):
            return result, 200, {"Content-Type": "application/json"}
        if isinstance(result, tuple) and isinstance(result[0], dict | list):
            body, status, *rest = result
            headers = {"Content-Type": "application/json", **(rest[0] if rest else {})}
            return body, status, headers
        return result

    return wrapper


def _resolve(function_name: str) -> Callable[..., Any]:
    return _json_by_default(get_function_from_name(function_name))


def ensure_migrated(gateway: Container) -> None:
    status = migrate.status(gateway.db.engine)
    if not status.up_to_date:
        raise NotMigrated(
            f"database schema is at {status.current or 'nothing'}, this release needs "
            f"{status.head}: run `wallet-gateway migrate` first"
        )


def _lifespan(gateway: Container) -> Any:
    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        ensure_migrated(gateway)
        workers = None
        if gateway.settings.run_workers_in_process:
            workers = Workers(default_jobs(gateway))
            workers.start()
        # What start-up built (the OpenAPI validators, the parsed WSDL, pools) lives as long
        # as the process: keep it out of the cyclic collector, whose full passes over it
        # stopped every request in the process for ~90 ms at a time.
        gc.freeze()
        log.info("gateway_started", environment=gateway.settings.environment)
        try:
            yield
        finally:
            if workers is not None:
                workers.stop()

    return lifespan


def _metrics_view() -> flask.Response:
    gateway: Container = flask.current_app.extensions[EXTENSION]
    token = gateway.settings.metrics_token
    secret = token.get_secret_value() if token is not None else None
    if not metrics.token_matches(flask.request.headers.get("Authorization", ""), secret):
        return flask.Response("metrics token required\n", status=401, mimetype="text/plain")
    body, content_type = metrics.render()
    return flask.Response(body, content_type=content_type)


def create_app(
    settings: Settings | None = None,
    *,
    container: Container | None = None,
    validate_responses: bool = False,
) -> FlaskApp:
    settings = settings or (container.settings if container else load_settings())
    configure_logging(settings.log_level, settings.log_format)
    gateway = container or build_container(settings)
    app = FlaskApp(
        __name__,
        specification_dir=resources.openapi_dir(),
        lifespan=_lifespan(gateway),
        jsonifier=Jsonifier(json, cls=_Encoder, separators=(",", ":")),
        security_map=auth.security_map(gateway.tokens),
        validator_map=VALIDATOR_MAP,
        strict_validation=True,
        validate_responses=validate_responses,
        swagger_ui_options=SwaggerUIOptions(swagger_ui_path="/docs"),
    )
    app.add_api("gateway.yaml", resolver=Resolver(function_resolver=_resolve))
    app.add_middleware(
        GatewayMiddleware,
        position=MiddlewarePosition.BEFORE_EXCEPTION,
        max_body_bytes=settings.max_body_bytes,
        bulk_body_bytes=settings.max_bulk_body_bytes,
        bulk_paths=BULK_PATHS,
    )
    register_error_handlers(app)
    flask_app = app.app
    flask_app.extensions[EXTENSION] = gateway
    auth.install(flask_app)
    flask_app.before_request(providers.keep_raw_body)
    flask_app.add_url_rule("/metrics", "metrics", _metrics_view)
    return app
