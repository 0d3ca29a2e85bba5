"""The OpenAPI document's shared parts: the errors, the rate-limit headers and the Bearer
scheme, as the seed names them.

drf-spectacular reads the views; the answers' shapes are ``lukittu.shapes`` declarations
(each app's ``shapes.py``, the envelope's and the errors' in ``lukittu.api``), from which it
derives their components. What is left here is registered once under the seed's names and
referenced with ``ref()``: the path parameters, headers and shared responses, and the
request bodies the apps still describe by hand. ``postprocess`` adds them to the document,
turns the path parameters into the seed's ``TeamId``/``ReleaseIdPath`` references, and gives
every Developer API operation the same error responses and rate-limit headers, because every
one of them answers that way (``TeamApiView``). Public operations (``public_operation``: the
Client API, whose credential is a license key in the query) get ``security: []`` and the
catch-all error responses instead.

Each operation's errors are a table of ``ErrorCase`` rows in the order the service checks
them (``add_errors``): ``postprocess`` turns it into one response per status, whose
description lists that status's rows in order and whose ``examples`` hold each distinct error
as the client receives it, and appends the whole table to the operation's description.
"""

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiExample, OpenApiResponse

from lukittu.api import ApiError, Code, ErrorResponse, internal_error, invalid_api_key
from lukittu.shapes import Shape, envelope, page

Schema = dict[str, Any]

COMPONENTS: dict[str, dict[str, Schema]] = {
    "schemas": {},
    "parameters": {},
    "responses": {},
    "headers": {},
}
# Path parameter name -> the component (under ``parameters``) that describes it.
PATH_PARAMETERS: dict[str, str] = {}
# operationId -> path parameter name -> its component, where it differs from PATH_PARAMETERS'.
OPERATION_PATH_PARAMETERS: dict[str, dict[str, str]] = {}
# operationId -> status -> OpenAPI links of that response.
LINKS: dict[str, dict[str, Schema]] = {}
# operationId -> status -> the whole response, for what drf-spectacular cannot say (a binary
# body with headers, a redirect).
RESPONSES: dict[str, dict[str, Schema]] = {}
# Operations that need no credential in a header: ``security: []``.
PUBLIC_OPERATIONS: set[str] = set()
# The time shown in every example envelope.
EXAMPLE_TIMESTAMP = "2023-09-15T14:35:00.000Z"


@dataclass(frozen=True)
class ErrorCase:
    """One row of an operation's error table: what the client gets, and when.

    ``details`` is the text as the table shows it; ``example_details`` replaces it in the
    example where the text varies (``Invalid query parameter: <names>``), and ``data`` is the
    example envelope's ``data``."""

    status: int
    code: str
    details: str
    when: str
    data: Any = None
    example_details: str | None = None

    @classmethod
    def of(cls, error: ApiError, when: str) -> "ErrorCase":
        """The row of an error the service raises, taken from the error itself."""
        return cls(error.status_code, error.error_code, error.details, when, error.data)

    def example(self) -> Schema:
        details = self.example_details or self.details
        return {
            "summary": f"{self.code}: {details}",
            "value": {
                "data": self.data,
                "result": {
                    "timestamp": EXAMPLE_TIMESTAMP,
                    "valid": False,
                    "details": details,
                    "code": self.code,
                },
            },
        }


# operationId -> its error table, built with the document (a row may name a setting's value).
ERROR_TABLES: dict[str, Callable[[], list[ErrorCase]]] = {}


def add_errors(operation_id: str, table: Callable[[], list[ErrorCase]]) -> None:
    ERROR_TABLES[operation_id] = table


def ref(name: str, kind: str = "schemas") -> Schema:
    return {"$ref": f"#/components/{kind}/{name}"}


def register(kind: str, name: str, definition: Schema) -> Schema:
    """Adds a component (once: a second definition under the same name is a mistake)."""
    if name in COMPONENTS[kind] and COMPONENTS[kind][name] != definition:
        raise ValueError(f"OpenAPI component {kind}/{name} defined twice")
    COMPONENTS[kind][name] = definition
    return ref(name, kind)


def add_links(operation_id: str, status: str, links: Schema) -> None:
    LINKS.setdefault(operation_id, {})[status] = links


def add_responses(operation_id: str, responses: dict[str, Schema]) -> None:
    RESPONSES.setdefault(operation_id, {}).update(responses)


def public_operation(operation_id: str) -> None:
    PUBLIC_OPERATIONS.add(operation_id)


def path_parameter(
    component: str,
    name: str,
    description: str,
    example: str,
    operations: tuple[str, ...] = (),
) -> Schema:
    """A path parameter's component: for ``operations`` only when given (the Client API's
    ``teamId`` is not an API key's team), else for every parameter of that name."""
    if operations:
        for operation_id in operations:
            OPERATION_PATH_PARAMETERS.setdefault(operation_id, {})[name] = component
    else:
        PATH_PARAMETERS[name] = component
    return register(
        "parameters",
        component,
        {
            "name": name,
            "in": "path",
            "required": True,
            "description": description,
            "schema": ref("UUID"),
            "example": example,
        },
    )


def envelope_schema(data: Schema) -> Schema:
    """A success envelope whose ``data`` is ``data``: the seed's ``allOf`` with
    ``SuccessResponse``."""
    return {
        "allOf": [
            ref("SuccessResponse"),
            {"type": "object", "properties": {"data": data}, "required": ["data"]},
        ]
    }


# --- Schemas ----------------------------------------------------------------------------------

UUID = register(
    "schemas", "UUID", {"type": "string", "format": "uuid", "description": "UUID v4 identifier"}
)

# --- Headers ----------------------------------------------------------------------------------

_INTEGER = {"type": "integer", "minimum": 0}
RATE_LIMIT_HEADERS = {
    name: register(
        "headers", name, {"description": description, "required": True, "schema": _INTEGER}
    )
    for name, description in (
        ("X-RateLimit-Limit", "Requests this API key (or address) may make in the window"),
        ("X-RateLimit-Remaining", "Requests left in the current window"),
        ("X-RateLimit-Reset", "Seconds until the window resets"),
    )
}
REQUEST_ID_HEADER = register(
    "headers",
    "X-Request-ID",
    {
        "description": "The request's id, as in the server's logs (the caller's own when safe)",
        "required": True,
        "schema": {"type": "string"},
    },
)
register(
    "headers",
    "Retry-After",
    {
        "description": "Seconds to wait before the next request",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    },
)
register(
    "headers",
    "WWW-Authenticate",
    {"description": "Always `Bearer`", "required": True, "schema": {"type": "string"}},
)

# --- Responses --------------------------------------------------------------------------------

UNAUTHORIZED = ErrorCase.of(
    invalid_api_key(),
    "no key, or a malformed, unknown, expired or revoked key, another team's key, a deleted team",
)
RATE_LIMITED = ErrorCase(
    429,
    Code.RATE_LIMIT,
    "Too many requests",
    'this API key is over its rate limit; or, with details "Too many failed authentications '
    "from this address\", the caller's address made more failed authentications than "
    "`DEV_API_AUTH_FAILURE_RATE` allows (every request from it is refused until `Retry-After`)",
)
INTERNAL_ERROR = ErrorCase.of(internal_error(), "anything unexpected")
# 401 and 429 are the same for every operation: shared components (below).
# Conditional and idempotent writes (teams/conditions.py), in the order they are checked.
IDEMPOTENCY_ERRORS = (
    ErrorCase(
        400,
        Code.BAD_REQUEST,
        'Malformed If-Match: send "<etag>" as received',
        "`If-Match` is neither `*` nor a list of quoted entity tags",
    ),
    ErrorCase(
        400,
        Code.BAD_REQUEST,
        "Idempotency-Key must be 1 to 255 printable ASCII characters",
        "a malformed `Idempotency-Key`",
    ),
    ErrorCase(
        422,
        Code.BAD_REQUEST,
        "This Idempotency-Key was already used with a different request",
        "the key was used in the last 24 hours (same API key, method and path) with other "
        "`data` or another file",
    ),
    ErrorCase(
        409,
        Code.BAD_REQUEST,
        "A request with this Idempotency-Key is still being processed",
        "the first request with the key has not finished; retry after `Retry-After` seconds",
    ),
)
MALFORMED_IF_NONE_MATCH = ErrorCase(
    400,
    Code.BAD_REQUEST,
    'Malformed If-None-Match: send "<etag>" as received',
    "`If-None-Match` is neither `*` nor a list of quoted entity tags",
)
PRECONDITION_FAILED = ErrorCase(
    412,
    Code.BAD_REQUEST,
    "Precondition failed: the resource has changed; GET it again for its current ETag",
    "`If-Match` names none of the current ETag (sent in the `ETag` header)",
)

SHARED_ERROR_CASES = {401: UNAUTHORIZED, 429: RATE_LIMITED}


def _error_content(*cases: ErrorCase) -> Schema:
    """The error envelope, with an example of each distinct error, in order."""
    examples: dict[str, Schema] = {}
    for case in cases:
        examples.setdefault(case.example_details or case.details, case.example())
    return {"application/json": {"schema": ref("ErrorResponse"), "examples": examples}}


def _markdown_details(details: str) -> str:
    # ``<names>`` would be read as an HTML tag (and dropped by Swagger UI's sanitiser).
    return details.replace("<", "\\<").replace(">", "\\>")


def _error_description(cases: list[ErrorCase]) -> str:
    return "\n".join(
        f'- `{case.code}` "{_markdown_details(case.details)}": {case.when}' for case in cases
    )


register(
    "responses",
    "StandardError",
    {
        "description": (
            "Standard API error response. All errors follow the same `{data, result}` "
            "structure.\nThe HTTP status code indicates the general error category, while "
            "`result.code` provides specific error details."
        ),
        "headers": {"X-Request-ID": REQUEST_ID_HEADER},
        # The catch-all: each operation lists the statuses it returns, so these examples stand
        # for what none lists (a method a documented path does not serve; a proxy's 5XX).
        "content": _error_content(
            ErrorCase(
                405, Code.BAD_REQUEST, "Method not allowed", "the path does not serve the method"
            ),
            INTERNAL_ERROR,
        ),
    },
)
SHARED_ERROR_RESPONSES = {
    401: register(
        "responses",
        "Unauthorized",
        {
            "description": _error_description([UNAUTHORIZED]),
            "headers": {"WWW-Authenticate": ref("WWW-Authenticate", "headers")},
            "content": _error_content(UNAUTHORIZED),
        },
    ),
    429: register(
        "responses",
        "RateLimited",
        {
            "description": _error_description([RATE_LIMITED]),
            "headers": {
                "Retry-After": ref("Retry-After", "headers"),
                **RATE_LIMIT_HEADERS,
            },
            "content": _error_content(RATE_LIMITED),
        },
    ),
}

# Every Developer API operation: these after its own responses.
DEV_API_ERROR_RESPONSES = {
    "401": SHARED_ERROR_RESPONSES[401],
    "429": SHARED_ERROR_RESPONSES[429],
    "4XX": ref("StandardError", "responses"),
    "5XX": ref("StandardError", "responses"),
}


def error_responses(cases: list[ErrorCase]) -> dict[str, Schema]:
    """One response per status of ``cases``, ascending: its rows in order in the description,
    an example of each distinct error. The Developer API's 401 and 429 are the shared
    components (the Client API's 429s are rows of their own, without rate-limit headers)."""
    by_status: dict[int, list[ErrorCase]] = {}
    for case in cases:
        by_status.setdefault(case.status, []).append(case)
    responses: dict[str, Schema] = {}
    for status in sorted(by_status):
        rows = by_status[status]
        shared = SHARED_ERROR_CASES.get(status)
        if shared is not None and shared in rows:
            if rows != [shared]:
                raise ValueError(f"{status} is a shared response: its row is the shared one")
            responses[str(status)] = SHARED_ERROR_RESPONSES[status]
            continue
        responses[str(status)] = {
            "description": _error_description(rows),
            "headers": {"X-Request-ID": REQUEST_ID_HEADER},
            "content": _error_content(*rows),
        }
    return responses


def error_table(cases: list[ErrorCase]) -> str:
    """The whole table in Markdown (Swagger UI renders tables), in the order checked."""
    lines = [
        "**Errors**, in the order they are checked (a request with several problems gets the "
        "first):",
        "",
        "| status | code | details | when |",
        "| --- | --- | --- | --- |",
    ]
    for case in cases:
        when = case.when.replace("|", "\\|")
        details = _markdown_details(case.details)
        lines.append(f"| {case.status} | `{case.code}` | {details} | {when} |")
    return "\n".join(lines)


class BearerApiKeyScheme(OpenApiAuthenticationExtension):
    """``Authorization: Bearer <key>`` (``teams.authentication.ApiKeyAuthentication``)."""

    target_class = "teams.authentication.ApiKeyAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> Schema:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "apiKey",
            "description": (
                "An API key of the team in the URL: `Authorization: Bearer <key>`. Operators "
                "create keys with `manage.py create_api_key` or in the admin; a key is shown "
                "once."
            ),
        }


# ``*``, or a comma-separated list of quoted entity tags, each possibly weak (RFC 9110 8.8.3).
ENTITY_TAGS = r'^\s*(\*|(W/)?"[^"]*"(\s*,\s*(W/)?"[^"]*")*)\s*$'
# Operations that honour If-None-Match / If-Match and Idempotency-Key (teams/conditions.py).
CONDITIONAL_READS = {"getRelease", "getProduct", "getBranch"}
CONDITIONAL_WRITES = {
    f"{verb}{noun}"
    for verb in ("create", "update", "delete")
    for noun in ("Release", "Product", "Branch")
}
_HEADER_PARAMETERS = {
    "Idempotency-Key": (
        "Makes a retry safe: the first answer to this key (per API key, method and path) is "
        "stored for 24 hours and replayed with `Idempotent-Replayed: true`; the same key with a "
        "different request is 422, and while the first is still running, 409.",
        {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]+$"},
    ),
    "If-Match": (
        'Write only if the resource\'s current ETag is one of these (`"…"`, or `*`): else 412 '
        "with the current `ETag`.",
        {"type": "string", "pattern": ENTITY_TAGS},
    ),
    "If-None-Match": (
        "304 with no body when the resource's current ETag is one of these.",
        {"type": "string", "pattern": ENTITY_TAGS},
    ),
}
ETAG_HEADER = register(
    "headers",
    "ETag",
    {
        "description": "The representation's entity tag (it ignores `updatedAt`)",
        "schema": {"type": "string"},
    },
)
REPLAYED_HEADER = register(
    "headers",
    "Idempotent-Replayed",
    {
        "description": "`true` when this is the stored answer to an earlier request",
        "schema": {"type": "string", "enum": ["true"]},
    },
)


def _header_parameter(name: str) -> Schema:
    description, schema = _HEADER_PARAMETERS[name]
    return {
        "name": name,
        "in": "header",
        "required": False,
        "description": description,
        "schema": schema,
    }


def _with_conditions(operation_id: str, operation: Schema) -> None:
    if operation_id in CONDITIONAL_READS:
        names, extra = ["If-None-Match"], {"ETag": ETAG_HEADER}
        responses = operation["responses"]
        ok = {status: response for status, response in responses.items() if status < "300"}
        rest = {status: response for status, response in responses.items() if status >= "300"}
        not_modified = {
            "description": "Not modified: the client's copy is current",
            "headers": {"ETag": ETAG_HEADER},
        }
        operation["responses"] = {**ok, "304": not_modified, **rest}
    elif operation_id in CONDITIONAL_WRITES:
        names = ["Idempotency-Key"] + ([] if operation_id.startswith("create") else ["If-Match"])
        extra = {"ETag": ETAG_HEADER, "Idempotent-Replayed": REPLAYED_HEADER}
    else:
        return
    operation.setdefault("parameters", []).extend(_header_parameter(name) for name in names)
    for status, response in operation["responses"].items():
        if status.startswith("2"):
            response["headers"] = {**response.get("headers", {}), **extra}


def _with_dev_api_responses(operation: Schema) -> None:
    responses = operation["responses"]
    for status, response in responses.items():
        if status.startswith("2"):
            response["headers"] = {
                **RATE_LIMIT_HEADERS,
                "X-Request-ID": REQUEST_ID_HEADER,
                **response.get("headers", {}),
            }
    for status, response in DEV_API_ERROR_RESPONSES.items():
        responses.setdefault(status, response)
    _with_conditions(operation.get("operationId", ""), operation)


def _path_parameter_ref(operation_id: str, parameter: Schema) -> Schema:
    """The reference to a path parameter's component, or the parameter as it is."""
    if parameter.get("in") != "path":
        return parameter
    name = parameter.get("name", "")
    component = OPERATION_PATH_PARAMETERS.get(operation_id, {}).get(name)
    component = component or PATH_PARAMETERS.get(name)
    return ref(component, "parameters") if component else parameter


def _schema_of(schema: Schema) -> Schema:
    """The schema itself, or the registered component a ``$ref`` names."""
    name = schema.get("$ref", "").rpartition("/")[2]
    return COMPONENTS["schemas"].get(name, schema) if "$ref" in schema else schema


class _IntoDocument:
    """A ``Resolver`` that writes each shape's component into the document's schemas (for
    the shapes no operation names: the error envelope of the shared responses)."""

    def __init__(self, schemas: Schema) -> None:
        self.schemas = schemas

    def shape(self, shape: type[Shape]) -> Schema:
        if shape.component not in self.schemas:
            self.schemas[shape.component] = shape.schema(self)
        return ref(shape.component)

    def named(self, name: str, schema: Schema) -> Schema:
        self.schemas.setdefault(name, schema)
        return ref(name)


def postprocess(result: Schema, generator: Any, request: Any, public: bool) -> Schema:
    """drf-spectacular postprocessing hook (see the module's docstring)."""
    components = result.setdefault("components", {})
    for kind, definitions in COMPONENTS.items():
        components.setdefault(kind, {}).update(definitions)
    _IntoDocument(components["schemas"]).shape(ErrorResponse)
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            operation_id = operation.get("operationId", "")
            operation["parameters"] = [
                _path_parameter_ref(operation_id, parameter)
                for parameter in operation.get("parameters", [])
            ]
            if not operation["parameters"]:
                del operation["parameters"]
            # A copy: the document is made again for every request for it.
            operation["responses"].update(copy.deepcopy(RESPONSES.get(operation_id, {})))
            for status, links in LINKS.get(operation_id, {}).items():
                operation["responses"][status]["links"] = links
            if operation_id in ERROR_TABLES:
                cases = ERROR_TABLES[operation_id]()
                for status, response in error_responses(cases).items():
                    operation["responses"].setdefault(status, response)
                operation["description"] = (
                    f"{operation.get('description', '')}\n\n{error_table(cases)}".strip()
                )
            body = operation.get("requestBody")
            if body and all(
                _schema_of(media.get("schema", {})).get("required")
                for media in body["content"].values()
            ):
                body["required"] = True  # drf-spectacular cannot tell for a plain schema
            if any("bearerAuth" in requirement for requirement in operation.get("security", [])):
                _with_dev_api_responses(operation)
            if operation_id in PUBLIC_OPERATIONS:
                # Stated rather than left out, so no global default could apply.
                operation["security"] = []
                for status, response in operation["responses"].items():
                    if status.startswith(("2", "3")):
                        response.setdefault("headers", {})["X-Request-ID"] = REQUEST_ID_HEADER
                for status in ("4XX", "5XX"):
                    operation["responses"].setdefault(status, ref("StandardError", "responses"))
                # Ascending, the ranges last, wherever each response came from.
                operation["responses"] = dict(
                    sorted(
                        operation["responses"].items(), key=lambda item: ("X" in item[0], item[0])
                    )
                )
    return result


# --- Shared by every app's operations: envelopes, bodies and the errors of lists and bodies


def success_example(details: str, data: Any) -> OpenApiExample:
    return OpenApiExample(
        details,
        value={
            "data": data,
            "result": {"timestamp": EXAMPLE_TIMESTAMP, "valid": True, "details": details},
        },
    )


def page_of(name: str, item: Schema) -> Schema:
    return envelope_schema(
        {
            "type": "object",
            "properties": {
                name: {"type": "array", "items": item},
                "hasNextPage": {"type": "boolean"},
                "totalResults": {"type": "integer", "minimum": 0},
            },
            "required": [name, "hasNextPage", "totalResults"],
        }
    )


def one(
    shape: type[Shape] | Schema, description: str, details: str, example: Schema
) -> OpenApiResponse:
    """The success envelope of ``shape`` (a ``Shape``, or a schema)."""
    return OpenApiResponse(
        response=envelope(shape) if isinstance(shape, type) else envelope_schema(shape),
        description=description,
        examples=[success_example(details, example)],
    )


def page_response(shape: type[Shape], key: str, details: str, example: Schema) -> OpenApiResponse:
    """A page of ``shape`` under ``key``, with one ``example`` item."""
    return OpenApiResponse(
        response=page(shape, key),
        description=f"A page of {key}",
        examples=[
            success_example(details, {key: [example], "hasNextPage": False, "totalResults": 1})
        ],
    )


def json_request(schema: Schema, example: Schema) -> dict[str, Any]:
    """``extend_schema`` arguments for a JSON body: the schema and its prefilled example."""
    return {
        "request": {"application/json": schema},
        "examples": [OpenApiExample("Body", value=example, request_only=True)],
    }


INVALID_TEAM_ID = ErrorCase(
    400,
    Code.BAD_REQUEST,
    "Invalid teamId",
    "`teamId` is not a UUID (36 characters, ASCII hex digits and hyphens)",
)

BAD_QUERY = ErrorCase(
    400,
    Code.BAD_REQUEST,
    "Invalid query parameter: <names>",
    "a query parameter has a bad value, is repeated or is unknown",
    data={"errors": [{"message": "Unknown parameter.", "path": ["sort"]}]},
    example_details="Invalid query parameter: sort",
)
UNSUPPORTED = ErrorCase(
    415,
    Code.BAD_REQUEST,
    "Unsupported media type",
    "the body is not `application/json`",
    data={
        "errors": [
            {"message": "Send a JSON object with Content-Type: application/json", "path": []}
        ]
    },
)
MALFORMED = ErrorCase(400, Code.BAD_REQUEST, "Malformed JSON body", "the body is not JSON")
INVALID_BODY = ErrorCase(
    400,
    Code.BAD_REQUEST,
    "Invalid request body",
    "a field is missing, of the wrong type, too long, blank or unknown; `data.errors` has each",
    data={"errors": [{"message": "This field is required.", "path": ["name"]}]},
)

BODY_ERRORS = (UNSUPPORTED, MALFORMED, INVALID_BODY)
