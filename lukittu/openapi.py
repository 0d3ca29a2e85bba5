"""The OpenAPI document's shared parts: the envelope, the errors, the rate-limit headers and the
Bearer scheme, as the seed names them.

drf-spectacular reads the views; the response and request shapes are plain OpenAPI dicts
(``output`` is built by functions, not serializers), registered here once under their seed
names and referenced with ``ref()``. ``postprocess`` adds them to the document, turns the
path parameters into the seed's ``TeamId``/``ReleaseIdPath`` references, and gives every
Developer API operation the same error responses and rate-limit headers, because every one
of them answers that way (``TeamApiView``).
"""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension

from lukittu.api import ERROR_CODES

Schema = dict[str, Any]

COMPONENTS: dict[str, dict[str, Schema]] = {
    "schemas": {},
    "parameters": {},
    "responses": {},
    "headers": {},
}
# Path parameter name -> the component (under ``parameters``) that describes it.
PATH_PARAMETERS: dict[str, str] = {}
# operationId -> status -> OpenAPI links of that response.
LINKS: dict[str, dict[str, Schema]] = {}


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


def path_parameter(component: str, name: str, description: str, example: str) -> Schema:
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

register(
    "schemas",
    "StandardResult",
    {
        "type": "object",
        "properties": {
            "timestamp": {
                "type": "string",
                "format": "date-time",
                "description": "Timestamp when the response was generated (UTC, with a Z)",
            },
            "valid": {
                "type": "boolean",
                "description": "Indicates whether the operation was successful",
            },
            "details": {
                "type": "string",
                "description": "Human-readable description of the result",
            },
        },
        "required": ["timestamp", "valid", "details"],
    },
)

register(
    "schemas",
    "SuccessResponse",
    {
        "type": "object",
        "properties": {
            "data": {"type": "object", "description": "Response data"},
            "result": {
                "allOf": [
                    ref("StandardResult"),
                    {
                        "type": "object",
                        "properties": {
                            "valid": {
                                "type": "boolean",
                                "enum": [True],
                                "description": "Always true for success responses",
                            }
                        },
                    },
                ]
            },
        },
        "required": ["data", "result"],
    },
)

register(
    "schemas",
    "FieldError",
    {
        "type": "object",
        "description": "One problem in the request, and where it is.",
        "properties": {
            "message": {"type": "string", "description": "What is wrong"},
            "path": {
                "type": "array",
                "description": (
                    "Keys and list indexes from the top of `data` (or the query parameter's "
                    'name) down to the problem, e.g. `["metadata", 3, "key"]`; `[]` for `data` '
                    "itself"
                ),
                "items": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
            },
        },
        "required": ["message", "path"],
    },
)

register(
    "schemas",
    "ErrorResponse",
    {
        "type": "object",
        "properties": {
            "data": {
                "type": "object",
                "nullable": True,
                "description": (
                    "Additional error-related data: `null`, except for `Invalid request body` "
                    "and `Invalid query parameter: ...`, where `errors` lists every problem"
                ),
                "properties": {
                    "errors": {"type": "array", "items": ref("FieldError")},
                },
                "required": ["errors"],
            },
            "result": {
                "allOf": [
                    ref("StandardResult"),
                    {
                        "type": "object",
                        "properties": {
                            "valid": {
                                "type": "boolean",
                                "enum": [False],
                                "description": "Always false for error responses",
                            },
                            "code": {
                                "type": "string",
                                "description": "Error code indicating the specific issue",
                                "enum": list(ERROR_CODES),
                            },
                        },
                        "required": ["code"],
                    },
                ]
            },
        },
        "required": ["data", "result"],
    },
)

# --- Headers ----------------------------------------------------------------------------------

_INTEGER = {"type": "integer", "minimum": 0}
RATE_LIMIT_HEADERS = {
    name: register(
        "headers", name, {"description": description, "required": True, "schema": _INTEGER}
    )
    for name, description in (
        ("X-RateLimit-Limit", "Requests this API key may make in the current window"),
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

_ERROR_CONTENT = {"application/json": {"schema": ref("ErrorResponse")}}

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
        "content": _ERROR_CONTENT,
    },
)
register(
    "responses",
    "Unauthorized",
    {
        "description": (
            '`UNAUTHORIZED` "Invalid API key": no key, a malformed, unknown, expired or revoked '
            "key, another team's key, or a deleted team."
        ),
        "headers": {"WWW-Authenticate": ref("WWW-Authenticate", "headers")},
        "content": _ERROR_CONTENT,
    },
)
register(
    "responses",
    "RateLimited",
    {
        "description": '`RATE_LIMIT` "Too many requests": this API key is over its rate limit.',
        "headers": {
            "Retry-After": ref("Retry-After", "headers"),
            **RATE_LIMIT_HEADERS,
        },
        "content": _ERROR_CONTENT,
    },
)

# Every Developer API operation: these after its own responses.
DEV_API_ERROR_RESPONSES = {
    "401": ref("Unauthorized", "responses"),
    "429": ref("RateLimited", "responses"),
    "4XX": ref("StandardError", "responses"),
    "5XX": ref("StandardError", "responses"),
}


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


def postprocess(result: Schema, generator: Any, request: Any, public: bool) -> Schema:
    """drf-spectacular postprocessing hook (see the module's docstring)."""
    components = result.setdefault("components", {})
    for kind, definitions in COMPONENTS.items():
        components.setdefault(kind, {}).update(definitions)
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            parameters = operation.get("parameters", [])
            operation["parameters"] = [
                ref(PATH_PARAMETERS[parameter["name"]], "parameters")
                if parameter.get("in") == "path" and parameter.get("name") in PATH_PARAMETERS
                else parameter
                for parameter in parameters
            ]
            if not operation["parameters"]:
                del operation["parameters"]
            for status, links in LINKS.get(operation.get("operationId", ""), {}).items():
                operation["responses"][status]["links"] = links
            body = operation.get("requestBody")
            if body and all(
                media.get("schema", {}).get("required") for media in body["content"].values()
            ):
                body["required"] = True  # drf-spectacular cannot tell for a plain schema
            if any("bearerAuth" in requirement for requirement in operation.get("security", [])):
                _with_dev_api_responses(operation)
    return result
