"""RFC 9457 problem details for every error, and request validators that explain themselves.

Every problem carries `type` (`urn:wallet-gateway:problem:<code>`), `title`, `status`,
`detail`, `instance`, our stable `code`, the `request_id`, and for validation failures
`errors[]` entries with a JSON `pointer` (body) or the `parameter`/`header` name.
Messages never echo submitted values: a rejected field may be an account number.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import starlette.exceptions
from connexion import FlaskApp
from connexion.datastructures import MediaTypeDict
from connexion.exceptions import (
    ExtraParameterProblem,
    Forbidden,
    ProblemException,
    Unauthorized,
    UnsupportedMediaTypeProblem,
)
from connexion.json_schema import Draft4RequestValidator
from connexion.lifecycle import ConnexionRequest, ConnexionResponse
from connexion.validators import (
    FormDataValidator,
    JSONRequestBodyValidator,
    MultiPartFormDataValidator,
    ParameterValidator,
)
from jsonschema import Draft4Validator, ValidationError
from starlette.types import Scope

from gateway.domain.errors import FieldError, GatewayError, InvalidRequest
from gateway.observability.context import request_id_var
from gateway.observability.logging import get_logger
from gateway.observability.metrics import AUTH_FAILURES

PROBLEM_JSON = "application/problem+json"
log = get_logger("gateway.api")

_STATUS_CODES = {
    400: ("invalid_request", "Invalid request"),
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    406: ("not_acceptable", "Not acceptable"),
    409: ("conflict", "Conflict"),
    413: ("payload_too_large", "Payload too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
    422: ("unprocessable", "Unprocessable request"),
    429: ("rate_limited", "Too many requests"),
    500: ("internal_error", "Internal server error"),
    503: ("service_unavailable", "Service unavailable"),
}


def problem_document(
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    instance: str | None = None,
    errors: Iterable[FieldError] = (),
    extensions: dict[str, Any] | None = None,
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "type": f"urn:wallet-gateway:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": request_id_var.get(),
    }
    if instance:
        document["instance"] = instance
    errors = list(errors)
    if errors:
        document["errors"] = errors
    document.update(extensions or {})
    return document


def problem_response(
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    instance: str | None = None,
    errors: Iterable[FieldError] = (),
    headers: dict[str, str] | None = None,
    extensions: dict[str, Any] | None = None,
) -> ConnexionResponse:
    body = problem_document(
        status, code, title, detail, instance=instance, errors=errors, extensions=extensions
    )
    return ConnexionResponse(
        status_code=status,
        mimetype=PROBLEM_JSON,
        content_type=PROBLEM_JSON,
        body=json.dumps(body),
        headers=headers or {},
    )


def render_gateway_error(exc: GatewayError, instance: str | None) -> ConnexionResponse:
    return problem_response(
        exc.status,
        exc.code,
        exc.title,
        exc.detail,
        instance=instance,
        errors=exc.errors,
        headers=exc.headers,
        extensions=exc.extensions,
    )


def _instance(request: ConnexionRequest) -> str:
    return str(request.url.path)


def handle_gateway_error(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    assert isinstance(exc, GatewayError)
    if exc.status >= 500:
        log.error("request_failed", code=exc.code, status=exc.status, exc_info=exc)
    elif exc.status in (401, 403):
        AUTH_FAILURES.labels(reason=exc.code).inc()
    return render_gateway_error(exc, _instance(request))


def handle_connexion_problem(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    """Connexion's own problems (security, media type, parameters), re-rendered with our codes."""
    assert isinstance(exc, ProblemException)
    status = exc.status
    code, title = _STATUS_CODES.get(status, ("error", exc.title or "Error"))
    headers = dict(exc.headers or {})
    errors: list[FieldError] = []
    detail = exc.detail or title
    if isinstance(exc, Unauthorized):
        code = "unauthorized"
        detail = "A valid bearer access token is required (see POST /oauth/token)"
        headers.setdefault("WWW-Authenticate", 'Bearer realm="wallet-gateway"')
        AUTH_FAILURES.labels(reason="missing_token").inc()
    elif status == 400 and exc.detail == "RequestBody is required":
        code, detail = "validation_failed", "The request body is required"
        errors = [{"pointer": "", "detail": "is required"}]
    elif isinstance(exc, UnsupportedMediaTypeProblem):
        code = "unsupported_media_type"
    elif isinstance(exc, ExtraParameterProblem):
        code = "unknown_parameter"
        # connexion keeps the names only in its detail ("Extra formData parameter(s) a,b not
        # in spec").
        names = getattr(exc, "extra_params", None) or _extra_names(str(exc.detail))
        errors = [
            {"parameter": name, "detail": "is not a parameter of this operation"}
            for name in sorted(names)
        ]
        detail = "The request has parameters this operation does not accept"
    if status >= 500:
        log.error("request_failed", code=code, status=status, detail=exc.detail)
        detail = "The gateway failed to process the request"
    return problem_response(
        status, code, title, detail, instance=_instance(request), errors=errors, headers=headers
    )


def handle_forbidden(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    """Scope checks fail with connexion's Forbidden (not a ProblemException)."""
    required = " ".join(sorted(getattr(exc, "required_scopes", []) or []))
    AUTH_FAILURES.labels(reason="insufficient_scope").inc()
    return problem_response(
        403,
        "insufficient_scope",
        "Forbidden",
        f"The access token lacks the scope this operation requires ({required})",
        instance=_instance(request),
        headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{required}"'},
        extensions={"required_scopes": required.split()},
    )


def handle_http_exception(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    assert isinstance(exc, starlette.exceptions.HTTPException)
    code, title = _STATUS_CODES.get(exc.status_code, ("error", "Error"))
    detail = {
        404: "No resource at this path",
        405: "This path does not support the method",
    }.get(exc.status_code, title)
    return problem_response(
        exc.status_code,
        code,
        title,
        detail,
        instance=_instance(request),
        headers=dict(exc.headers or {}),
    )


def handle_unexpected(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    """Anything else: logged with its traceback (redacted), answered without internals."""
    log.error("unhandled_exception", exc_info=exc)
    return problem_response(
        500,
        "internal_error",
        "Internal server error",
        "The gateway failed to process the request; quote the request_id to support",
        instance=_instance(request),
    )


def register_error_handlers(app: FlaskApp) -> None:
    app.add_error_handler(GatewayError, handle_gateway_error)
    app.add_error_handler(ProblemException, handle_connexion_problem)
    app.add_error_handler(Forbidden, handle_forbidden)
    app.add_error_handler(starlette.exceptions.HTTPException, handle_http_exception)
    app.add_error_handler(Exception, handle_unexpected)


# --- validation ---------------------------------------------------------------------------------

_FORMAT_NAMES = {"date-time": "date-time (RFC 3339)", "date": "date (YYYY-MM-DD)", "uri": "URI"}


def _describe(error: ValidationError) -> list[tuple[list[Any], str]]:
    """(path, message) pairs for one jsonschema error, phrased without the submitted value."""
    path = list(error.absolute_path)
    validator = error.validator
    value = error.validator_value
    instance = error.instance
    if validator == "required":
        return [([*path, name], "is required") for name in value if name not in instance]
    if validator == "additionalProperties" and isinstance(instance, dict):
        allowed = set(error.schema.get("properties", {}))
        return [
            ([*path, name], "is not an allowed field") for name in instance if name not in allowed
        ]
    return [(path, _message(str(validator), value))]


def _message(validator: str, value: Any) -> str:
    match validator:
        case "type":
            return f"must be of type {value if isinstance(value, str) else ' or '.join(value)}"
        case "enum":
            return "must be one of: " + ", ".join(str(v) for v in value)
        case "pattern":
            return "does not have the expected format"
        case "format":
            return f"must be a valid {_FORMAT_NAMES.get(str(value), value)}"
        case "minLength":
            return f"must be at least {value} characters long"
        case "maxLength":
            return f"must be at most {value} characters long"
        case "minimum":
            return f"must be at least {value}"
        case "maximum":
            return f"must be at most {value}"
        case "minItems":
            return f"must have at least {value} items"
        case "maxItems":
            return f"must have at most {value} items"
        case "uniqueItems":
            return "must not contain duplicates"
        case "oneOf":
            return "does not match exactly one allowed shape"
        case "anyOf":
            return "does not match any allowed shape"
        case _:
            return "is invalid"


def _pointer(path: list[Any]) -> str:
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise InvalidRequest(
                "The request body repeats a field",
                code="malformed_json",
                errors=[{"pointer": "/" + key, "detail": "appears more than once"}],
            )
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise InvalidRequest(
        f"The request body contains {name}, which JSON does not allow", code="malformed_json"
    )


class ProblemJSONBodyValidator(JSONRequestBodyValidator):
    """Validates JSON bodies, reporting every error with a JSON pointer; strict JSON parsing."""

    _cached_validator: Draft4Validator | None = None

    async def wrap_receive(self, receive: Any, *, scope: Scope) -> Any:
        if self._schema.get("format") == "binary":
            # An opaque body (a provider's notification): the handler verifies the exact bytes,
            # so nothing here may parse, reject or re-encode them.
            return receive, scope
        return await super().wrap_receive(receive, scope=scope)

    @property
    def _validator(self) -> Draft4Validator:  # built once per operation, not per request
        if self._cached_validator is None:
            self._cached_validator = Draft4RequestValidator(
                self._schema, format_checker=Draft4Validator.FORMAT_CHECKER
            )
        return self._cached_validator

    async def _parse(self, stream: Any, scope: Scope) -> Any:
        raw = b"".join([chunk async for chunk in stream])
        if not raw.strip():
            return None
        try:
            return json.loads(
                raw.decode(self._encoding),
                object_pairs_hook=_reject_duplicates,
                parse_constant=_reject_constant,
            )
        except UnicodeDecodeError:
            raise InvalidRequest(
                "The request body is not valid UTF-8", code="malformed_json"
            ) from None
        except json.JSONDecodeError as exc:
            raise InvalidRequest(
                f"The request body is not valid JSON ({exc.msg} at line {exc.lineno} "
                f"column {exc.colno})",
                code="malformed_json",
            ) from None

    def _validate(self, body: Any) -> dict[str, Any] | None:
        if body is None:
            if self._nullable or not self._required:  # an optional body may be absent
                return None
            raise InvalidRequest(
                "The request body is required",
                code="validation_failed",
                errors=[{"pointer": "", "detail": "is required"}],
            )
        errors: list[FieldError] = []
        for error in sorted(
            self._validator.iter_errors(body), key=lambda e: list(map(str, e.absolute_path))
        ):
            for path, message in _describe(error):
                errors.append({"pointer": _pointer(path), "detail": message})
        if errors:
            raise InvalidRequest(
                f"The request body failed validation ({len(errors)} error(s))",
                code="validation_failed",
                errors=errors,
            )
        return None


class ProblemParameterValidator(ParameterValidator):
    """Validates query/path/header parameters, collecting every error with its name."""

    _validators: dict[int, Draft4Validator]

    def _schema_validator(self, param: dict[str, Any]) -> Draft4Validator:
        cache = self.__dict__.setdefault("_validators", {})
        key = id(param)
        if key not in cache:
            cache[key] = Draft4Validator(
                param.get("schema", param), format_checker=Draft4Validator.FORMAT_CHECKER
            )
        return cache[key]

    def validate_request(self, request: ConnexionRequest) -> None:
        errors: list[FieldError] = []
        if self.strict_validation:
            extra = self.validate_query_parameter_list(request, self.security_query_params)
            errors += [
                {"parameter": name, "detail": "is not a parameter of this operation"}
                for name in sorted(extra)
            ]
        sources = {
            "query": request.query_params,
            "path": request.path_params,
            "header": request.headers,
        }
        for location, params in self.parameters.items():
            for param in params:
                name = param["name"]
                lookup = name.replace("-", "_") if location == "path" else name
                value = sources.get(location, {}).get(lookup)
                where = "header" if location == "header" else "parameter"
                if value is None:
                    if param.get("required"):
                        errors.append({where: name, "detail": "is required"})  # type: ignore[misc]
                    continue
                for error in self._schema_validator(param).iter_errors(value):
                    for _path, message in _describe(error):
                        errors.append({where: name, "detail": message})  # type: ignore[misc]
        if errors:
            raise InvalidRequest(
                "The request parameters failed validation", code="validation_failed", errors=errors
            )


def _extra_names(detail: str) -> list[str]:
    listed = detail.partition("parameter(s) ")[2].rpartition(" not in spec")[0]
    return [name for name in listed.split(",") if name]


class OpenFormDataValidator(FormDataValidator):
    """Form bodies. A schema that allows additional properties (a provider's notification, whose
    parameters the provider extends at will: Alipay) is not checked for unknown names; every
    other form keeps strict validation."""

    def _validate_params_strictly(self, data: dict[str, Any]) -> None:
        if self._schema.get("additionalProperties") not in (None, False):
            return
        super()._validate_params_strictly(data)


VALIDATOR_MAP = {
    "parameter": ProblemParameterValidator,
    "body": MediaTypeDict(
        {
            "*/*json": ProblemJSONBodyValidator,
            "application/x-www-form-urlencoded": OpenFormDataValidator,
            "multipart/form-data": MultiPartFormDataValidator,
        }
    ),
}
