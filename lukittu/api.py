"""The API envelope, the one error type, and the exception handler that turns errors into it."""

import logging
from datetime import UTC, datetime
from typing import Any, NamedTuple

from django.core.exceptions import (
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.db import OperationalError
from django.http import Http404, HttpRequest, JsonResponse
from django.views import defaults
from rest_framework import exceptions
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from lukittu.shapes import (  # noqa: F401 (iso_utc: every app writes its times with it)
    Boolean,
    Choice,
    Field,
    Many,
    One,
    Shape,
    StandardResult,
    SuccessResponse,
    Text,
    iso_utc,
    valid_always,
)

logger = logging.getLogger("lukittu.api")


# The seed's ``ErrorResponse.result.code`` enum, complete and in the seed's order: the OpenAPI
# document publishes exactly this list.
ERROR_CODES = (
    "INTERNAL_SERVER_ERROR",
    "BAD_REQUEST",
    "LICENSE_NOT_FOUND",
    "IP_LIMIT_REACHED",
    "HWID_LIMIT_REACHED",
    "PRODUCT_NOT_FOUND",
    "CUSTOMER_NOT_FOUND",
    "LICENSE_EXPIRED",
    "LICENSE_SUSPENDED",
    "TEAM_NOT_FOUND",
    "RATE_LIMIT",
    "HARDWARE_IDENTIFIER_BLACKLISTED",
    "COUNTRY_BLACKLISTED",
    "IP_BLACKLISTED",
    "RELEASE_NOT_FOUND",
    "FORBIDDEN",
    "UNAUTHORIZED",
    "INVALID_SESSION_KEY",
    "NO_ACCESS_TO_RELEASE",
    "RELEASE_ARCHIVED",
    "RELEASE_DRAFT",
)


class Code:
    """Values of the seed's ``ErrorResponse.result.code`` enum (``ERROR_CODES``) that this
    service uses."""

    BAD_REQUEST = "BAD_REQUEST"
    UNAUTHORIZED = "UNAUTHORIZED"
    FORBIDDEN = "FORBIDDEN"
    RATE_LIMIT = "RATE_LIMIT"
    RELEASE_NOT_FOUND = "RELEASE_NOT_FOUND"
    PRODUCT_NOT_FOUND = "PRODUCT_NOT_FOUND"
    LICENSE_NOT_FOUND = "LICENSE_NOT_FOUND"
    TEAM_NOT_FOUND = "TEAM_NOT_FOUND"
    INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"
    # The Client API's (delivery/).
    INVALID_SESSION_KEY = "INVALID_SESSION_KEY"
    RELEASE_ARCHIVED = "RELEASE_ARCHIVED"
    RELEASE_DRAFT = "RELEASE_DRAFT"
    NO_ACCESS_TO_RELEASE = "NO_ACCESS_TO_RELEASE"
    LICENSE_SUSPENDED = "LICENSE_SUSPENDED"
    LICENSE_EXPIRED = "LICENSE_EXPIRED"
    IP_LIMIT_REACHED = "IP_LIMIT_REACHED"
    HWID_LIMIT_REACHED = "HWID_LIMIT_REACHED"


class FieldError(Shape, description="One problem in the request, and where it is."):
    message = Text(description="What is wrong")
    path = Many(
        Field(schema={"oneOf": [{"type": "string"}, {"type": "integer"}]}),
        description=(
            "Keys and list indexes from the top of `data` (or the query parameter's name) down "
            'to the problem, e.g. `["metadata", 3, "key"]`; `[]` for `data` itself, or for the '
            "request as a whole"
        ),
    )


def field_error(message: str, path: list[str | int]) -> dict[str, Any]:
    return FieldError.dump(None, message=message, path=path)


class ErrorData(Shape):
    errors = Many(One(FieldError, built=True))


class ErrorResult(StandardResult, extends=True):
    valid = valid_always(False)
    code = Choice(ERROR_CODES, "code", description="Error code indicating the specific issue")


class ErrorResponse(Shape):
    """The seed's ``ErrorResponse``: every error's ``{data, result}``."""

    data = One(
        ErrorData,
        inline=True,
        built=True,
        nullable=True,
        description=(
            "Additional error-related data: `null`, except for `Invalid request body` and "
            "`Invalid query parameter: ...`, where `errors` lists every problem, and "
            "`Unsupported media type`, where it says what to send instead"
        ),
    )
    result = One(ErrorResult, inline=True)


class _Outcome(NamedTuple):
    """What a result says (``StandardResult`` and ``ErrorResult`` read it)."""

    timestamp: datetime
    valid: bool
    details: str
    code: str | None


def envelope(data: Any, *, details: str, code: str | None = None) -> dict[str, Any]:
    outcome = _Outcome(datetime.now(UTC), code is None, details, code)
    if code is None:
        return SuccessResponse.dump(None, data=data, result=outcome)
    return ErrorResponse.dump(None, data=data, result=outcome)


class ApiError(exceptions.APIException):
    """Every error the API reports: an HTTP status, a seed ``code`` and the ``details`` text."""

    def __init__(
        self,
        status: int,
        code: str,
        details: str,
        *,
        data: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail=details)
        self.status_code = status
        self.error_code = code
        self.details = details
        self.data = data
        self.headers = headers or {}

    def __repr__(self) -> str:
        return f"ApiError({self.status_code}, {self.error_code}, {self.details!r})"


def success(
    data: Any, *, details: str, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(envelope(data, details=details), status=status, headers=headers)


def error_body(error: ApiError) -> dict[str, Any]:
    return envelope(error.data, details=error.details, code=error.error_code)


def invalid_api_key() -> ApiError:
    return ApiError(
        401, Code.UNAUTHORIZED, "Invalid API key", headers={"WWW-Authenticate": "Bearer"}
    )


def too_many_auth_failures(retry_after: int, rate_limit: dict[str, str]) -> ApiError:
    """The Developer API's 429 for an address over ``DEV_API_AUTH_FAILURE_RATE``, whatever
    key it sent, until the window ends in ``retry_after`` seconds; ``rate_limit`` is the
    ``X-RateLimit-*`` headers of the limit that refused it."""
    return ApiError(
        429,
        Code.RATE_LIMIT,
        "Too many failed authentications from this address",
        headers={"Retry-After": str(retry_after), **rate_limit},
    )


def not_found() -> ApiError:
    return ApiError(404, Code.BAD_REQUEST, "Not found")


def internal_error() -> ApiError:
    return ApiError(500, Code.INTERNAL_SERVER_ERROR, "Internal server error")


def database_unavailable() -> ApiError:
    return ApiError(
        503,
        Code.INTERNAL_SERVER_ERROR,
        "Database unavailable; retry the request",
        headers={"Retry-After": "5"},
    )


# The contract fixes the 415's details; the envelope's ``data`` says what to send instead. Every
# body this API parses is a release's multipart create or update.
MULTIPART_HINT = (
    "Send multipart/form-data with the release's JSON in a 'data' field (and the build in an "
    "optional 'file' part), e.g. curl -F 'data=<data.json' -F file=@app.jar"
)


def unsupported_media_type() -> ApiError:
    return ApiError(
        415,
        Code.BAD_REQUEST,
        "Unsupported media type",
        data={"errors": [field_error(MULTIPART_HINT, [])]},
    )


def as_api_error(exc: Exception) -> ApiError | None:
    """Map framework exceptions to the contract's errors; ``None`` for unexpected ones."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        return invalid_api_key()
    if isinstance(exc, exceptions.Throttled):
        return ApiError(429, Code.RATE_LIMIT, "Too many requests")
    if isinstance(exc, exceptions.UnsupportedMediaType):
        return unsupported_media_type()
    if isinstance(exc, exceptions.MethodNotAllowed):
        return ApiError(405, Code.BAD_REQUEST, "Method not allowed")
    if isinstance(exc, exceptions.NotFound | Http404):
        return not_found()
    if isinstance(exc, exceptions.PermissionDenied):
        return ApiError(403, Code.FORBIDDEN, "Forbidden")
    if isinstance(exc, exceptions.ParseError):
        return ApiError(400, Code.BAD_REQUEST, "Malformed multipart body")
    if isinstance(exc, RequestDataTooBig):
        return ApiError(413, Code.BAD_REQUEST, "Request body too large")
    if isinstance(exc, TooManyFieldsSent | TooManyFilesSent):
        return ApiError(400, Code.BAD_REQUEST, "Too many fields in the request body")
    if isinstance(exc, SuspiciousOperation):
        return ApiError(400, Code.BAD_REQUEST, "Bad request")
    if isinstance(exc, exceptions.APIException):
        return ApiError(exc.status_code, Code.BAD_REQUEST, str(exc.detail))
    return None


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF's handler first (it sets Retry-After, WWW-Authenticate and rolls back), then the
    envelope. Unexpected exceptions become a logged 500, never an HTML page."""
    # Imported here: rest_framework.views loads the authentication classes, which import this.
    from rest_framework.views import exception_handler as drf_exception_handler
    from rest_framework.views import set_rollback

    response = drf_exception_handler(exc, context)
    error = as_api_error(exc)
    if error is None and isinstance(exc, OperationalError):
        # Unreachable, timed out (lukittu/db_deadline.py) or a statement cancelled by the
        # server's timeout: the instance may serve again in a moment, so a 503, not a 500.
        set_rollback()
        logger.error("Database unavailable (request id %s): %s", _request_id(context), exc)
        error = database_unavailable()
    if error is None:
        set_rollback()
        logger.exception(
            "Unhandled error in %s (request id %s)",
            context.get("view").__class__.__name__,
            _request_id(context),
        )
        error = internal_error()
    headers = dict(response.headers) if response is not None else {}
    headers.pop("Content-Type", None)
    headers.update(error.headers)
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        headers["Retry-After"] = str(max(1, int(exc.wait + 0.999)))
    return Response(error_body(error), status=error.status_code, headers=headers)


def _request_id(context: dict[str, Any]) -> str:
    return getattr(context.get("request"), "request_id", "-")


def json_error(error: ApiError) -> JsonResponse:
    """The envelope outside DRF (unknown URLs, middleware)."""
    response = JsonResponse(
        error_body(error), status=error.status_code, json_dumps_params={"separators": (",", ":")}
    )
    for name, value in error.headers.items():
        response[name] = value
    return response


class JsonOnlyNegotiation(BaseContentNegotiation):
    """Always JSON, whatever ``Accept`` says: the API has one representation."""

    def select_parser(self, request: Any, parsers: list[Any]) -> Any:
        for parser in parsers:
            if request.content_type and request.content_type.lower().startswith(parser.media_type):
                return parser
        return None

    def select_renderer(
        self, request: Any, renderers: list[Any], format_suffix: str | None = None
    ) -> tuple[Any, str]:
        return (JSONRenderer(), JSONRenderer.media_type)


def api_not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    return json_error(not_found())


def _api_or_default(error: ApiError, default: Any) -> Any:
    """Django's error handlers: the envelope under /api/, Django's own pages elsewhere."""

    def handler(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        if request.path.startswith("/api/"):
            return json_error(error)
        return default(request, *args, **kwargs)

    return handler


bad_request = _api_or_default(ApiError(400, Code.BAD_REQUEST, "Bad request"), defaults.bad_request)
permission_denied = _api_or_default(
    ApiError(403, Code.FORBIDDEN, "Forbidden"), defaults.permission_denied
)
server_error = _api_or_default(internal_error(), defaults.server_error)
