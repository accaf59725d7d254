"""JSON logs through structlog, with a redaction step that runs on every line.

Redaction is by key (secrets and tokens removed; account and phone numbers masked to their last
four characters) and by pattern on every string (JWTs, bearer/basic credentials, our secret
formats, IBANs, long digit runs), so a number that slips into a message or a traceback is masked
too. Third-party (stdlib) logs go through the same chain.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import IO, Any

import structlog

from gateway.observability.context import request_id_var, trace_var

_SECRET_KEY = re.compile(
    r"secret|password|passwd|token|authorization|otp|pin$|^pin|cvv|api_?key|private_?key|"
    r"cookie|signature|credential|code_hash",
    re.IGNORECASE,
)
_MASK_KEY = re.compile(r"account|iban|msisdn|mobile|phone|card", re.IGNORECASE)
_SAFE_KEY = re.compile(r"(_id|_ids|_count|_type|_version|_at|^event|^level|^logger)$")


def mask(value: object) -> str:
    """`****6789`: enough to recognise, never enough to use."""
    text = re.sub(r"[\s\-]", "", str(value))
    return "****" + text[-4:] if len(text) > 4 else "****"


_DATE_PREFIX = re.compile(r"\d{4}-\d{2}-\d{2}")


def _mask_digits(match: re.Match[str]) -> str:
    text = match.group(0)
    return text if _DATE_PREFIX.match(text) else mask(text)


_PATTERNS: list[tuple[re.Pattern[str], Any]] = [
    (re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), "[REDACTED:jwt]"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}"), r"\1 [REDACTED]"),
    (re.compile(r"\b(?:whsec|wgs|whk)_[A-Za-z0-9_\-+/=]{6,}"), "[REDACTED:secret]"),
    (re.compile(r"\b[A-Z]{2}\d{2}[A-Z0-9]{11,30}\b"), _mask_digits),  # IBAN
    (re.compile(r"(?<![\w.:/-])\+?\d(?:[ \-]?\d){7,}(?![\w.])"), _mask_digits),  # accounts, phones
]


def redact_text(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact(key: str, value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _redact(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(key, v) for v in value]
    if value is None or isinstance(value, bool) or _SAFE_KEY.search(key):
        return redact_text(value) if isinstance(value, str) else value
    if _SECRET_KEY.search(key):
        return "[REDACTED]"
    if _MASK_KEY.search(key):
        return mask(value)
    if isinstance(value, str):
        return redact_text(value)
    return value


def redact(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: the last step before rendering."""
    return {key: _redact(key, value) for key, value in event.items()}


def _add_correlation(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    request_id = request_id_var.get()
    if request_id and "request_id" not in event:
        event["request_id"] = request_id
    trace = trace_var.get()
    if trace is not None and "trace_id" not in event:
        event["trace_id"] = trace.trace_id
    return event


class _StdoutProxy:
    """Resolve sys.stdout at write time (so captured or replaced stdout is honoured)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


def _pre_chain() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        _add_correlation,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]


def build_formatter(fmt: str = "json") -> logging.Formatter:
    renderer: Any = (
        structlog.processors.JSONRenderer(sort_keys=False)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_pre_chain(),
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, redact, renderer],
    )


def configure_logging(
    level: str = "INFO", fmt: str = "json", stream: IO[str] | None = None
) -> None:
    """Route structlog and stdlib logging through one redacting formatter (idempotent)."""
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_pre_chain(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream or _StdoutProxy())
    handler.setFormatter(build_formatter(fmt))
    handler.set_name("gateway")
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if h.get_name() != "gateway"] + [handler]
    root.setLevel(level)
    # Our middleware writes the access log; zeep's envelope dumps would carry account numbers.
    for noisy in (
        "uvicorn.access",
        "zeep",
        "zeep.transports",
        "urllib3",
        "alembic",
        "httpx",
        "httpx2",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").disabled = True


def get_logger(name: str) -> Any:
    return structlog.stdlib.get_logger(name)
