"""The OpenAPI document at /api/schema/ and Swagger UI at /api/docs/: the update operation as the
seed publishes it, the other operations to the same standard, real responses valid against
the documented shapes, every operation's error table (each status, its rows in order, an
example of each error as the service sends it), Swagger UI's prefilled forms sent as they
come, and docs that need no internet."""

import json
import re

import pytest
from django.contrib.staticfiles import finders
from drf_spectacular.validation import validate_schema
from openapi_schema_validator import OAS30Validator, oas30_format_checker

from lukittu.api import Code
from releases.models import Release, ReleaseFile
from tests.helpers import (
    attach_file,
    error,
    make_jar,
    put_release,
    release_json,
    release_url,
    result_of,
    update_data,
)

UPDATE_PATH = "/api/v1/dev/teams/{teamId}/releases/{releaseId}"
LIST_PATH = "/api/v1/dev/teams/{teamId}/releases"

# From the seed's ErrorResponse (seed/update-release.md), in its order.
SEED_ERROR_CODES = [
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
]
STANDARD_ERROR = {"$ref": "#/components/responses/StandardError"}


@pytest.fixture
def document(client):
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/vnd.oai.openapi+json"
    return response.json()


def resolve(document, node):
    """``node`` with every ``$ref`` replaced by what it points at (the document has no cycles)."""
    if isinstance(node, dict):
        if "$ref" in node:
            target = document
            for step in node["$ref"].removeprefix("#/").split("/"):
                target = target[step]
            return resolve(document, target)
        return {key: resolve(document, value) for key, value in node.items()}
    if isinstance(node, list):
        return [resolve(document, item) for item in node]
    return node


def assert_valid(document, schema, instance):
    OAS30Validator(resolve(document, schema), format_checker=oas30_format_checker).validate(
        instance
    )


def response_schema(document, path, method, status):
    response = resolve(document, document["paths"][path][method]["responses"][status])
    return response["content"]["application/json"]["schema"]


# --- the document ------------------------------------------------------------------------------


def test_schema_is_a_valid_openapi_3_document(document):
    validate_schema(document)  # raises on an invalid document

    assert document["openapi"].startswith("3.0.")
    dev = "/api/v1/dev/teams/{teamId}"
    client = "/api/v1/client/teams/{teamId}"
    assert {(path, method) for path, item in document["paths"].items() for method in item} == {
        (LIST_PATH, "get"),
        (LIST_PATH, "post"),
        (UPDATE_PATH, "get"),
        (UPDATE_PATH, "put"),
        (UPDATE_PATH, "delete"),
        (f"{dev}/products", "get"),
        (f"{dev}/products", "post"),
        (f"{dev}/products/{{productId}}", "get"),
        (f"{dev}/products/{{productId}}", "put"),
        (f"{dev}/products/{{productId}}", "delete"),
        (f"{dev}/products/{{productId}}/branches", "get"),
        (f"{dev}/products/{{productId}}/branches", "post"),
        (f"{dev}/branches/{{branchId}}", "get"),
        (f"{dev}/branches/{{branchId}}", "put"),
        (f"{dev}/branches/{{branchId}}", "delete"),
        (f"{client}/verification/classloader", "get"),
        (f"{client}/releases/download", "get"),
        (f"{client}/releases/latest", "get"),
        (f"{dev}/webhooks", "get"),
        (f"{dev}/webhooks", "post"),
        (f"{dev}/webhooks/{{webhookId}}", "get"),
        (f"{dev}/webhooks/{{webhookId}}", "put"),
        (f"{dev}/webhooks/{{webhookId}}", "delete"),
        (f"{dev}/webhooks/{{webhookId}}/rotate-secret", "post"),
        (f"{dev}/webhooks/{{webhookId}}/test", "post"),
        (f"{dev}/webhooks/{{webhookId}}/deliveries", "get"),
        (f"{dev}/webhooks/{{webhookId}}/deliveries/{{deliveryId}}/redeliver", "post"),
    }


def test_schema_is_yaml_by_default_and_needs_no_key(client):
    response = client.get("/api/schema/", HTTP_AUTHORIZATION="Bearer not-a-key")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/vnd.oai.openapi; charset=utf-8"
    assert response.content.startswith(b"openapi: 3.0.")
    assert "X-RateLimit-Limit" not in response


def test_schema_errors_are_the_envelope(client):
    response = client.post("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi")

    assert response.status_code == 405
    assert response["Content-Type"] == "application/json"
    assert result_of(response) == error("Method not allowed")
    assert response.json()["data"] is None


# --- Update Release, as the seed publishes it ----------------------------------------------


def test_update_operation_matches_the_seed(document):
    operation = document["paths"][UPDATE_PATH]["put"]

    assert operation["operationId"] == "updateRelease"
    assert operation["summary"] == "Update Release"
    assert operation["tags"] == ["Dev - Releases"]
    # The seed's two path parameters, then the optional headers of conditional writes.
    assert operation["parameters"][:2] == [
        {"$ref": "#/components/parameters/TeamId"},
        {"$ref": "#/components/parameters/ReleaseIdPath"},
    ]
    assert [(p["name"], p["in"], p["required"]) for p in operation["parameters"][2:]] == [
        ("Idempotency-Key", "header", False),
        ("If-Match", "header", False),
    ]
    assert operation["security"] == [{"bearerAuth": []}]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ReleaseResponse"
    }
    assert operation["responses"]["4XX"] == STANDARD_ERROR
    assert operation["responses"]["5XX"] == STANDARD_ERROR


def test_update_body_is_multipart_data_and_file(document):
    body = document["paths"][UPDATE_PATH]["put"]["requestBody"]

    assert body["required"] is True
    assert list(body["content"]) == ["multipart/form-data"]
    media = body["content"]["multipart/form-data"]
    schema = media["schema"]
    assert schema["type"] == "object"
    assert schema["required"] == ["data"]
    assert set(schema["properties"]) == {"data", "file"}
    assert schema["properties"]["file"]["type"] == "string"
    assert schema["properties"]["file"]["format"] == "binary"
    # `data` is one form field holding a JSON object (an object property of a multipart body is
    # JSON by default); the file part's name needs an extension.
    assert list(media["encoding"]) == ["file"]
    disposition = media["encoding"]["file"]["headers"]["Content-Disposition"]
    assert re.search(disposition["schema"]["pattern"], 'form-data; name="file"; filename="a.jar"')
    assert not re.search(disposition["schema"]["pattern"], 'form-data; name="file"; filename="a"')
    data = resolve(document, schema["properties"]["data"])["allOf"][0]
    assert data["type"] == "object"
    assert data["required"] == [
        "version",
        "productId",
        "status",
        "setAsLatest",
        "keepExistingFile",
        "branchId",
        "metadata",
        "licenseIds",
    ]
    assert data["additionalProperties"] is False
    assert data["properties"]["metadata"]["maxItems"] == 20
    assert data["properties"]["licenseIds"]["maxItems"] == 30
    assert data["properties"]["status"]["enum"] == ["PUBLISHED", "DRAFT", "DEPRECATED", "ARCHIVED"]


def test_path_parameters_are_the_seeds(document):
    parameters = document["components"]["parameters"]

    assert {name: resolve(document, parameters[name]) for name in ("TeamId", "ReleaseIdPath")} == {
        "TeamId": {
            "name": "teamId",
            "in": "path",
            "required": True,
            "description": "Your team's UUID. The API key must belong to this team.",
            "schema": {"type": "string", "format": "uuid", "description": "UUID v4 identifier"},
            "example": "123e4567-e89b-12d3-a456-426614174000",
        },
        "ReleaseIdPath": {
            "name": "releaseId",
            "in": "path",
            "required": True,
            "description": "The unique identifier (UUID v4) of the release.",
            "schema": {"type": "string", "format": "uuid", "description": "UUID v4 identifier"},
            "example": "456e7890-e89b-12d3-a456-426614174111",
        },
    }


def test_standard_error_has_the_seeds_code_enum(document):
    components = document["components"]
    standard_error = components["responses"]["StandardError"]
    error_response = components["schemas"]["ErrorResponse"]
    result = error_response["properties"]["result"]["allOf"]

    assert standard_error["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorResponse"
    }
    assert result[0] == {"$ref": "#/components/schemas/StandardResult"}
    assert result[1]["properties"]["code"]["enum"] == SEED_ERROR_CODES
    assert result[1]["properties"]["valid"]["enum"] == [False]
    assert result[1]["required"] == ["code"]
    assert error_response["properties"]["data"]["nullable"] is True


def test_every_code_the_service_uses_is_in_the_seeds_enum():
    used = {value for name, value in vars(Code).items() if name.isupper()}

    assert used
    assert used <= set(SEED_ERROR_CODES)


def test_bearer_security_scheme(document):
    scheme = document["components"]["securitySchemes"]["bearerAuth"]

    assert {key: scheme[key] for key in ("type", "scheme", "bearerFormat")} == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "apiKey",
    }
    assert document["components"]["securitySchemes"].keys() == {"bearerAuth"}


def test_release_response_is_the_seeds_shape(document):
    schemas = document["components"]["schemas"]

    assert schemas["ReleaseResponse"]["allOf"][0] == {
        "$ref": "#/components/schemas/SuccessResponse"
    }
    release = resolve(document, schemas["ReleaseResponse"]["allOf"][1]["properties"]["data"])
    assert release["allOf"][0] == resolve(document, schemas["ReleaseData"])
    extra = release["allOf"][1]["properties"]
    assert extra["metadata"] == resolve(document, schemas["Metadata"])
    assert extra["product"] == resolve(document, schemas["ProductData"])
    assert extra["file"] == resolve(document, schemas["ReleaseFileData"])
    assert extra["branch"]["nullable"] is True
    assert set(schemas["ReleaseData"]["required"]) >= {
        "id",
        "version",
        "status",
        "latest",
        "productId",
        "teamId",
        "createdAt",
        "updatedAt",
    }
    assert set(schemas["ReleaseFileData"]["required"]) >= {
        "id",
        "key",
        "size",
        "name",
        "checksum",
        "sha256",
        "createdAt",
    }


# --- every operation, to the same standard --------------------------------------------------


@pytest.mark.parametrize(
    ("path", "method", "operation_id", "statuses"),
    [
        (LIST_PATH, "get", "listReleases", ["200", "400", "401", "404", "429", "500"]),
        (
            LIST_PATH,
            "post",
            "createRelease",
            [
                "201",
                "400",
                "401",
                "403",
                "404",
                "409",
                "411",
                "413",
                "415",
                "422",
                "429",
                "500",
                "503",
            ],
        ),
        (UPDATE_PATH, "get", "getRelease", ["200", "304", "400", "401", "404", "429", "500"]),
        (
            UPDATE_PATH,
            "put",
            "updateRelease",
            [
                "200",
                "400",
                "401",
                "403",
                "404",
                "409",
                "411",
                "412",
                "413",
                "415",
                "422",
                "429",
                "500",
                "503",
            ],
        ),
        (
            UPDATE_PATH,
            "delete",
            "deleteRelease",
            ["200", "400", "401", "404", "409", "412", "422", "429", "500"],
        ),
    ],
)
def test_every_operation_is_documented(document, path, method, operation_id, statuses):
    operation = document["paths"][path][method]
    status = statuses[0]

    assert operation["operationId"] == operation_id
    assert operation["summary"]
    assert operation["description"]
    assert operation["security"] == [{"bearerAuth": []}]
    # Every status it returns, ascending, then the seed's catch-alls.
    assert list(operation["responses"]) == [*statuses, "4XX", "5XX"]
    assert operation["responses"]["4XX"] == STANDARD_ERROR
    assert operation["responses"]["5XX"] == STANDARD_ERROR
    assert operation["responses"]["401"] == {"$ref": "#/components/responses/Unauthorized"}
    assert operation["responses"]["429"] == {"$ref": "#/components/responses/RateLimited"}
    conditional = {
        "getRelease": {"ETag"},
        "createRelease": {"ETag", "Idempotent-Replayed"},
        "updateRelease": {"ETag", "Idempotent-Replayed"},
        "deleteRelease": {"ETag", "Idempotent-Replayed"},
    }
    assert set(operation["responses"][status]["headers"]) == {
        "X-RateLimit-Limit",
        "X-RateLimit-Remaining",
        "X-RateLimit-Reset",
        "X-Request-ID",
        *conditional.get(operation_id, set()),
    }
    rate_limited = document["components"]["responses"]["RateLimited"]
    assert "Retry-After" in rate_limited["headers"]


def test_list_query_parameters_and_their_enums(document):
    parameters = {
        parameter["name"]: parameter
        for parameter in resolve(document, document["paths"][LIST_PATH]["get"]["parameters"])
    }

    assert list(parameters) == [
        "teamId",
        "productId",
        "status",
        "search",
        "sortColumn",
        "sortDirection",
        "page",
        "pageSize",
    ]
    assert all(parameters[name]["in"] == "query" for name in list(parameters)[1:])
    assert set(parameters["status"]["schema"]["enum"]) == {
        "PUBLISHED",
        "DRAFT",
        "DEPRECATED",
        "ARCHIVED",
    }
    assert set(parameters["sortColumn"]["schema"]["enum"]) == {
        "version",
        "createdAt",
        "updatedAt",
        "latest",
    }
    assert parameters["sortDirection"]["schema"]["enum"] == ["asc", "desc"]
    assert parameters["pageSize"]["schema"]["enum"] == [10, 25, 50, 100]
    assert parameters["page"]["schema"]["minimum"] == 1
    assert parameters["productId"]["schema"]["format"] == "uuid"


# --- real responses match the documented shapes -----------------------------------------------


def test_update_response_matches_the_document(client, document, world):
    data = update_data(
        world.release,
        status="PUBLISHED",
        setAsLatest=True,
        branchId=str(world.branch.id),
        metadata=[{"key": "channel", "value": "stable"}],
    )

    response = put_release(
        client,
        world.team.id,
        world.release.id,
        key=world.key,
        data=data,
        file=("app.jar", make_jar()),
    )

    assert response.status_code == 200, response.json()
    assert ReleaseFile.objects.filter(release=world.release).count() == 1
    assert_valid(document, response_schema(document, UPDATE_PATH, "put", "200"), response.json())
    assert response.json()["data"]["file"]["mainClassName"] == "com.example.Main"


def test_create_get_list_and_delete_responses_match_the_document(client, document, world):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {world.key}"}
    releases = f"/api/v1/dev/teams/{world.team.id}/releases"
    data = {"version": "3.0.0", "productId": str(world.product.id), "status": "PUBLISHED"}

    created = client.post(releases, data={"data": json.dumps(data)}, **headers)
    fetched = client.get(release_url(world.team.id, world.release.id), **headers)
    listed = client.get(f"{releases}?pageSize=10&sortColumn=version", **headers)
    deleted = client.delete(release_url(world.team.id, world.other_release.id), **headers)

    assert [created.status_code, fetched.status_code, listed.status_code] == [201, 200, 200]
    assert deleted.status_code == 200
    assert listed.json()["data"]["totalResults"] == 3
    for response, path, method, status in [
        (created, LIST_PATH, "post", "201"),
        (fetched, UPDATE_PATH, "get", "200"),
        (listed, LIST_PATH, "get", "200"),
        (deleted, UPDATE_PATH, "delete", "200"),
    ]:
        assert_valid(document, response_schema(document, path, method, status), response.json())


def test_error_responses_match_the_document(client, document, world):
    invalid_body = put_release(
        client,
        world.team.id,
        world.release.id,
        key=world.key,
        data=update_data(world.release, version="1 0", colour="red"),
    )
    unauthorized = client.get(f"/api/v1/dev/teams/{world.team.id}/releases")

    assert invalid_body.status_code == 400
    assert invalid_body.json()["data"] == {
        "errors": [
            {"message": "Must not contain whitespace.", "path": ["version"]},
            {"message": "Unknown field.", "path": ["colour"]},
        ]
    }
    assert unauthorized.status_code == 401
    assert unauthorized["WWW-Authenticate"] == "Bearer"
    assert_valid(
        document, response_schema(document, UPDATE_PATH, "put", "4XX"), invalid_body.json()
    )
    assert_valid(document, response_schema(document, LIST_PATH, "get", "401"), unauthorized.json())


def test_a_response_that_breaks_the_shape_is_caught(document):
    # The check above could pass vacuously; it does not.
    broken = {
        "data": None,
        "result": {"timestamp": "2026-01-02T03:04:05.678Z", "valid": False, "details": "x"},
    }

    with pytest.raises(Exception, match="'code' is a required property"):
        assert_valid(document, response_schema(document, UPDATE_PATH, "put", "4XX"), broken)


# --- Swagger UI ------------------------------------------------------------------------------


def test_docs_render_without_the_internet(client):
    response = client.get("/api/docs/", HTTP_ACCEPT="application/json")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert re.findall(r"https?://", html) == []
    assert "swagger-ui-bundle.js" in html
    assert '"/api/schema/"' in html
    for asset in re.findall(r'(?:src|href)="/static/([^"]+)"', html):
        assert finders.find(asset), asset
    assert len(re.findall(r'(?:src|href)="/static/', html)) == 4


# --- Error tables: every status, its rows in order, an example of each ------------------------

LATEST_RULE = "Cannot set as latest release when license IDs are provided"
VERSION_TAKEN = "A release with this version already exists for this product and branch"
TOO_LARGE = "File too large. Maximum size is 10 MB"
# README's Update Release table, row for row, with what Django's parser refuses (a body whose
# text fields pass 2.5 MiB, too many fields) and a `data` file part over 2.5 MiB.
BODY_ERRORS = [
    (415, "BAD_REQUEST", "Unsupported media type"),
    (413, "BAD_REQUEST", TOO_LARGE),
    (411, "BAD_REQUEST", "Length required"),
    (400, "BAD_REQUEST", "Invalid Content-Length"),
    (400, "BAD_REQUEST", "Incomplete request body"),
    (400, "BAD_REQUEST", "Malformed multipart body"),
    (413, "BAD_REQUEST", "Request body too large"),
    (400, "BAD_REQUEST", "Too many fields in the request body"),
    (400, "BAD_REQUEST", "Missing data field"),
    (400, "BAD_REQUEST", "Send the data field once"),
    (413, "BAD_REQUEST", "Request body too large"),
    (400, "BAD_REQUEST", "Invalid JSON in data field"),
    (400, "BAD_REQUEST", "Invalid request body"),
    (400, "BAD_REQUEST", "Send at most one file"),
    (400, "BAD_REQUEST", "The file field must be a file upload"),
    (413, "BAD_REQUEST", TOO_LARGE),
    (403, "FORBIDDEN", "File uploads require a paid subscription"),
]
REFERENCE_ERRORS = [
    (404, "PRODUCT_NOT_FOUND", "Product not found"),
    (404, "RELEASE_NOT_FOUND", "Branch not found"),
    (404, "LICENSE_NOT_FOUND", "One or more license IDs not found"),
    (400, "BAD_REQUEST", LATEST_RULE),
]
FILE_ERRORS = [
    (400, "BAD_REQUEST", "File must have an extension"),
    (400, "BAD_REQUEST", "Invalid JAR file"),
    (400, "BAD_REQUEST", "Main class not found in JAR file"),
    (400, "BAD_REQUEST", "Storage limit reached"),
    (503, "INTERNAL_SERVER_ERROR", "Storage busy; retry the request"),
    (503, "INTERNAL_SERVER_ERROR", "Storage unavailable"),
    (
        503,
        "INTERNAL_SERVER_ERROR",
        "The upload's storage reservation lapsed before it could be saved; retry the request",
    ),
    (503, "INTERNAL_SERVER_ERROR", "Database unavailable; retry the request"),
    (500, "INTERNAL_SERVER_ERROR", "Internal server error"),
]
ACCESS_ERRORS = [
    (401, "UNAUTHORIZED", "Invalid API key"),
    (429, "RATE_LIMIT", "Too many requests"),
]
# Conditional and idempotent writes: the headers are checked after the body.
IDEMPOTENCY_ERRORS = [
    (400, "BAD_REQUEST", 'Malformed If-Match: send "<etag>" as received'),
    (400, "BAD_REQUEST", "Idempotency-Key must be 1 to 255 printable ASCII characters"),
    (422, "BAD_REQUEST", "This Idempotency-Key was already used with a different request"),
    (409, "BAD_REQUEST", "A request with this Idempotency-Key is still being processed"),
]
PRECONDITION_FAILED = (
    412,
    "BAD_REQUEST",
    "Precondition failed: the resource has changed; GET it again for its current ETag",
)
ERROR_TABLES = {
    "updateRelease": [
        (400, "BAD_REQUEST", "Invalid teamId"),
        (400, "BAD_REQUEST", "Invalid releaseId"),
        *ACCESS_ERRORS,
        *BODY_ERRORS,
        *IDEMPOTENCY_ERRORS,
        (404, "RELEASE_NOT_FOUND", "Release not found"),
        PRECONDITION_FAILED,
        *REFERENCE_ERRORS,
        (409, "BAD_REQUEST", VERSION_TAKEN),
        *FILE_ERRORS,
    ],
    # README's Create paragraph: the update's rows up to the upload feature, then product,
    # branch, licenses, licenses with latest, the release limit, the version, the file.
    "createRelease": [
        (400, "BAD_REQUEST", "Invalid teamId"),
        *ACCESS_ERRORS,
        *BODY_ERRORS,
        *IDEMPOTENCY_ERRORS,
        *REFERENCE_ERRORS,
        (403, "FORBIDDEN", "Max releases per product reached"),
        (409, "BAD_REQUEST", VERSION_TAKEN),
        *FILE_ERRORS,
    ],
    "getRelease": [
        (400, "BAD_REQUEST", "Invalid teamId"),
        (400, "BAD_REQUEST", "Invalid releaseId"),
        *ACCESS_ERRORS,
        (404, "RELEASE_NOT_FOUND", "Release not found"),
        (400, "BAD_REQUEST", 'Malformed If-None-Match: send "<etag>" as received'),
        (500, "INTERNAL_SERVER_ERROR", "Internal server error"),
    ],
    "listReleases": [
        (400, "BAD_REQUEST", "Invalid teamId"),
        *ACCESS_ERRORS,
        (400, "BAD_REQUEST", "Invalid query parameter: <names>"),
        (404, "PRODUCT_NOT_FOUND", "Product not found"),
        (500, "INTERNAL_SERVER_ERROR", "Internal server error"),
    ],
}
ERROR_TABLES["deleteRelease"] = [
    (400, "BAD_REQUEST", "Invalid teamId"),
    (400, "BAD_REQUEST", "Invalid releaseId"),
    *ACCESS_ERRORS,
    *IDEMPOTENCY_ERRORS,
    (404, "RELEASE_NOT_FOUND", "Release not found"),
    PRECONDITION_FAILED,
    (500, "INTERNAL_SERVER_ERROR", "Internal server error"),
]
OPERATIONS = {
    "listReleases": (LIST_PATH, "get"),
    "createRelease": (LIST_PATH, "post"),
    "getRelease": (UPDATE_PATH, "get"),
    "updateRelease": (UPDATE_PATH, "put"),
    "deleteRelease": (UPDATE_PATH, "delete"),
}
TABLE_ROW = re.compile(r"^\| (\d{3}) \| `([A-Z_]+)` \| (.+?) \| .+ \|$", re.MULTILINE)
BULLET = re.compile(r'^- `([A-Z_]+)` "(.+?)": .+$', re.MULTILINE)


def unescape(markdown):
    return markdown.replace("\\<", "<").replace("\\>", ">")


def operation_of(document, operation_id):
    path, method = OPERATIONS[operation_id]
    return document["paths"][path][method]


def table_in(description):
    """The error table at the end of an operation's description, as (status, code, details)."""
    return [
        (int(status), code, unescape(details))
        for status, code, details in TABLE_ROW.findall(description)
    ]


def assert_ends_with_error_table(operation, table):
    """The operation's description ends with ``table``, as (status, code, details) rows."""
    assert "**Errors**, in the order they are checked" in operation["description"]
    assert table_in(operation["description"]) == table


def responses_by_status(document, operation, table):
    """For each status of ``table``: its (code, details) rows in order, the (code, details)
    its response's description lists, and its JSON media, with the envelope's schema
    checked."""
    for status in sorted({status for status, _, _ in table}):
        rows = [(code, details) for row_status, code, details in table if row_status == status]
        response = resolve(document, operation["responses"][str(status)])
        listed = [
            (code, unescape(details)) for code, details in BULLET.findall(response["description"])
        ]
        media = response["content"]["application/json"]
        assert media["schema"] == resolve(document, {"$ref": "#/components/schemas/ErrorResponse"})
        yield status, rows, listed, media


def without_timestamp(envelope):
    result = dict(envelope["result"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", result.pop("timestamp"))
    return {"data": envelope["data"], "result": result}


@pytest.mark.parametrize("operation_id", list(OPERATIONS))
def test_the_operation_description_ends_with_its_error_table_in_order(document, operation_id):
    assert_ends_with_error_table(operation_of(document, operation_id), ERROR_TABLES[operation_id])


@pytest.mark.parametrize("operation_id", list(OPERATIONS))
def test_each_status_lists_its_rows_in_order_with_an_example_of_each(document, operation_id):
    operation = operation_of(document, operation_id)
    table = ERROR_TABLES[operation_id]

    for status, rows, listed, media in responses_by_status(document, operation, table):
        assert listed == rows, status
        examples = [example["value"] for example in media["examples"].values()]
        # One example per distinct error, with its real code (never a generic one).
        assert [(value["result"]["code"], value["result"]["details"]) for value in examples] == [
            (
                code,
                "Invalid query parameter: pageSize, productID" if "<names>" in details else details,
            )
            for code, details in dict.fromkeys(rows)
        ], status
        for value in examples:
            assert_valid(document, {"$ref": "#/components/schemas/ErrorResponse"}, value)
            assert value["result"]["valid"] is False


def test_401_and_429_are_the_shared_responses_with_their_own_examples(document):
    responses = document["components"]["responses"]

    assert responses["Unauthorized"]["content"]["application/json"]["examples"] == {
        "Invalid API key": {
            "summary": "UNAUTHORIZED: Invalid API key",
            "value": {
                "data": None,
                "result": {
                    "timestamp": "2023-09-15T14:35:00.000Z",
                    "valid": False,
                    "details": "Invalid API key",
                    "code": "UNAUTHORIZED",
                },
            },
        }
    }
    assert responses["RateLimited"]["content"]["application/json"]["examples"] == {
        "Too many requests": {
            "summary": "RATE_LIMIT: Too many requests",
            "value": {
                "data": None,
                "result": {
                    "timestamp": "2023-09-15T14:35:00.000Z",
                    "valid": False,
                    "details": "Too many requests",
                    "code": "RATE_LIMIT",
                },
            },
        }
    }
    standard = responses["StandardError"]["content"]["application/json"]["examples"]
    assert [example["value"]["result"]["code"] for example in standard.values()] == [
        "BAD_REQUEST",
        "INTERNAL_SERVER_ERROR",
    ]


def test_the_file_limit_in_the_tables_follows_the_setting(client, settings):
    settings.MAX_RELEASE_FILE_MB = 3

    document = client.get("/api/schema/?format=json").json()

    table = table_in(operation_of(document, "updateRelease")["description"])
    assert [row for row in table if row[0] == 413] == [
        (413, "BAD_REQUEST", "File too large. Maximum size is 3 MB"),
        (413, "BAD_REQUEST", "Request body too large"),
        (413, "BAD_REQUEST", "Request body too large"),
        (413, "BAD_REQUEST", "File too large. Maximum size is 3 MB"),
    ]


def documented_example(document, operation_id, status, details):
    response = resolve(document, operation_of(document, operation_id)["responses"][str(status)])
    return response["content"]["application/json"]["examples"][details]["value"]


def test_the_error_examples_are_what_the_service_sends(client, document, world):
    auth = {"HTTP_AUTHORIZATION": f"Bearer {world.key}"}
    not_multipart = client.put(
        release_url(world.team.id, world.release.id),
        data="{}",
        content_type="application/json",
        **auth,
    )
    unauthorized = client.get(f"/api/v1/dev/teams/{world.team.id}/releases")
    invalid_body = put_release(
        client,
        world.team.id,
        world.release.id,
        key=world.key,
        data=update_data(
            world.release, version="1", metadata=[{"key": "k", "value": "v", "colour": "red"}]
        ),
    )
    missing = client.get(release_url(world.team.id, "00000000-0000-4000-8000-000000000000"), **auth)
    bad_query = client.get(
        f"/api/v1/dev/teams/{world.team.id}/releases?pageSize=20&productID=x", **auth
    )

    for response, operation_id, details in [
        (not_multipart, "updateRelease", "Unsupported media type"),
        (unauthorized, "listReleases", "Invalid API key"),
        (invalid_body, "updateRelease", "Invalid request body"),
        (missing, "getRelease", "Release not found"),
        (bad_query, "listReleases", "Invalid query parameter: pageSize, productID"),
    ]:
        example = documented_example(document, operation_id, response.status_code, details)
        assert without_timestamp(response.json()) == without_timestamp(example), details


# --- Swagger UI's forms, as they come -----------------------------------------------------------

UPDATE_EXAMPLE = {
    "version": "1.2.0",
    "productId": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
    "status": "PUBLISHED",
    "setAsLatest": True,
    "keepExistingFile": True,
    "branchId": None,
    "metadata": [{"key": "channel", "value": "stable"}],
    "licenseIds": [],
}
CREATE_EXAMPLE = {key: value for key, value in UPDATE_EXAMPLE.items() if key != "keepExistingFile"}


def data_property(document, path, method):
    body = document["paths"][path][method]["requestBody"]["content"]["multipart/form-data"]
    return body["schema"]["properties"]["data"]


@pytest.mark.parametrize(
    ("path", "method", "component", "example"),
    [
        (UPDATE_PATH, "put", "ReleaseUpdateData", UPDATE_EXAMPLE),
        (LIST_PATH, "post", "ReleaseCreateData", CREATE_EXAMPLE),
    ],
)
def test_the_prefilled_data_is_a_realistic_valid_example(
    document, path, method, component, example
):
    data = data_property(document, path, method)
    schema = {"$ref": f"#/components/schemas/{component}"}

    assert data["example"] == example
    assert_valid(document, schema, data["example"])
    # Each field's own example is valid too, and none is left to a generated sample.
    properties = resolve(document, schema)["properties"]
    for name, field in properties.items():
        assert "example" in field, name
        OAS30Validator(field, format_checker=oas30_format_checker).validate(field["example"])
    assert properties["version"]["example"] == "1.2.0"
    assert properties["status"]["example"] == "PUBLISHED"
    assert properties["metadata"]["example"] == [{"key": "channel", "value": "stable"}]


SWAGGER_BOUNDARY = "----WebKitFormBoundaryq4MN8c2xQe1ZfV9r"


def swagger_form(data):
    """The body Swagger UI's "Try it out" sends: the prefilled ``data`` as its text (pretty
    printed JSON) and, with "Send empty value" ticked and no file chosen, ``file`` as an empty
    text field."""
    return (
        f"--{SWAGGER_BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="data"\r\n\r\n'
        f"{json.dumps(data, indent=2)}\r\n"
        f"--{SWAGGER_BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="file"\r\n\r\n'
        "\r\n"
        f"--{SWAGGER_BOUNDARY}--\r\n"
    ).encode()


def swagger_request(client, world, method, url, data):
    return client.generic(
        method,
        url,
        data=swagger_form(data),
        content_type=f"multipart/form-data; boundary={SWAGGER_BOUNDARY}",
        HTTP_ACCEPT="application/json",
        HTTP_AUTHORIZATION=f"Bearer {world.key}",
    )


def test_swagger_uis_update_form_as_it_comes(client, document, world):
    old = attach_file(world.release, "app-1.1.0.zip")
    prefilled = data_property(document, UPDATE_PATH, "put")["example"]
    url = release_url(world.team.id, world.release.id)

    # As prefilled, only the product id is not the team's: the form itself is accepted.
    as_is = swagger_request(client, world, "PUT", url, prefilled)
    with_product = swagger_request(
        client, world, "PUT", url, {**prefilled, "productId": str(world.product.id)}
    )

    assert without_timestamp(as_is.json()) == {
        "data": None,
        "result": {"valid": False, "details": "Product not found", "code": "PRODUCT_NOT_FOUND"},
    }
    assert with_product.status_code == 200, with_product.json()
    assert without_timestamp(with_product.json()) == {
        "data": release_json(world.release),
        "result": {"valid": True, "details": "Release updated"},
    }
    body = with_product.json()["data"]
    assert (body["version"], body["status"], body["latest"]) == ("1.2.0", "PUBLISHED", True)
    assert body["metadata"] == [{"key": "channel", "value": "stable", "locked": False}]
    # The empty `file` field is no file: keepExistingFile kept the old one.
    assert body["file"]["id"] == str(old.id)
    assert ReleaseFile.objects.filter(release=world.release).count() == 1


def test_swagger_uis_create_form_as_it_comes(client, document, world):
    prefilled = data_property(document, LIST_PATH, "post")["example"]
    url = f"/api/v1/dev/teams/{world.team.id}/releases"

    response = swagger_request(
        client, world, "POST", url, {**prefilled, "productId": str(world.product.id)}
    )

    assert response.status_code == 201, response.json()
    release = Release.objects.get(pk=response.json()["data"]["id"])
    assert without_timestamp(response.json()) == {
        "data": release_json(release),
        "result": {"valid": True, "details": "Release created"},
    }
    assert (release.version, release.latest, response.json()["data"]["file"]) == (
        "1.2.0",
        True,
        None,
    )


def test_a_real_release_response_is_valid_against_the_seeds_product_data(client, world):
    """A client generated from the seed requires ``createdByUserId`` to be a UUID: every
    product has one (products made before it was recorded were given the unknown operator's)."""
    response = client.get(
        f"/api/v1/dev/teams/{world.team.id}/releases/{world.release.id}",
        HTTP_AUTHORIZATION=f"Bearer {world.key}",
    )
    product_data = {
        "type": "object",
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "name": {"type": "string"},
            "url": {"type": "string", "nullable": True},
            "teamId": {"type": "string", "format": "uuid"},
            "createdByUserId": {"type": "string", "format": "uuid"},
            "createdAt": {"type": "string", "format": "date-time"},
            "updatedAt": {"type": "string", "format": "date-time"},
        },
        "required": ["id", "name", "url", "teamId", "createdByUserId", "createdAt", "updatedAt"],
    }  # the seed's ProductData, as published

    product = response.json()["data"]["product"]
    OAS30Validator(product_data, format_checker=oas30_format_checker).validate(product)
