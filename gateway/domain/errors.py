"""One error hierarchy for the whole gateway.

Every error raised on purpose is a `GatewayError`: it carries the HTTP status, a stable
machine-readable `code` and a human `detail` that the API renders as RFC 9457 problem+json.
Details are written for partners: they never contain secrets, account numbers or internals.
Adapter errors (core banking, providers) subclass these in `adapters.base`.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypedDict


class FieldError(TypedDict, total=False):
    """One entry of a problem's `errors[]`: where (JSON pointer or parameter, or for XML
    bodies the element `path` and `line`) and what."""

    pointer: str
    parameter: str
    header: str
    path: str
    line: int
    column: int
    detail: str


class GatewayError(Exception):
    """Base class: status, code, title and a partner-safe detail."""

    status: ClassVar[int] = 500
    default_code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Internal server error"
    default_retryable: ClassVar[bool] = False

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
        retryable: bool | None = None,
        status: int | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.code = code or self.default_code
        self.errors = errors or []
        self.headers = headers or {}
        self.retryable = self.default_retryable if retryable is None else retryable
        self.extensions = extensions
        if status is not None:
            self.status = status  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, status={self.status})"


class InvalidRequest(GatewayError):
    status = 400
    default_code = "invalid_request"
    title = "Invalid request"


class AuthenticationFailed(GatewayError):
    status = 401
    default_code = "unauthorized"
    title = "Unauthorized"


class PermissionDenied(GatewayError):
    status = 403
    default_code = "forbidden"
    title = "Forbidden"


class NotFound(GatewayError):
    status = 404
    default_code = "not_found"
    title = "Not found"


class Conflict(GatewayError):
    status = 409
    default_code = "conflict"
    title = "Conflict"


class PayloadTooLarge(GatewayError):
    status = 413
    default_code = "payload_too_large"
    title = "Payload too large"


class Unprocessable(GatewayError):
    status = 422
    default_code = "unprocessable"
    title = "Unprocessable request"


class RateLimited(GatewayError):
    status = 429
    default_code = "rate_limited"
    title = "Too many requests"
    default_retryable = True


class UpstreamError(GatewayError):
    """A dependency (core banking, provider) failed in a way the partner cannot fix."""

    status = 502
    default_code = "upstream_error"
    title = "Upstream error"


class ServiceUnavailable(GatewayError):
    status = 503
    default_code = "service_unavailable"
    title = "Service unavailable"
    default_retryable = True
