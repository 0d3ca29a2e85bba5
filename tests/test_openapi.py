"""The OpenAPI document at /api/schema/ and Swagger UI at /api/docs/: the update operation as the
seed publishes it, the other operations to the same standard, real responses valid against
the documented shapes, and docs that need no internet."""

import json
import re

import pytest
from django.contrib.staticfiles import finders
from drf_spectacular.validation import validate_schema
from openapi_schema_validator import OAS30Validator, oas30_format_checker

from lukittu.api import Code
from releases.models import ReleaseFile
from tests.helpers import error, make_jar, put_release, release_url, result_of, update_data

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
    assert {(path, method) for path, item in document["paths"].items() for method in item} == {
        (LIST_PATH, "get"),
        (LIST_PATH, "post"),
        (UPDATE_PATH, "get"),
        (UPDATE_PATH, "put"),
        (UPDATE_PATH, "delete"),
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
    assert operation["parameters"] == [
        {"$ref": "#/components/parameters/TeamId"},
        {"$ref": "#/components/parameters/ReleaseIdPath"},
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

    assert standard_error["content"] == {
        "application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}
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
    ("path", "method", "operation_id", "status"),
    [
        (LIST_PATH, "get", "listReleases", "200"),
        (LIST_PATH, "post", "createRelease", "201"),
        (UPDATE_PATH, "get", "getRelease", "200"),
        (UPDATE_PATH, "put", "updateRelease", "200"),
        (UPDATE_PATH, "delete", "deleteRelease", "200"),
    ],
)
def test_every_operation_is_documented(document, path, method, operation_id, status):
    operation = document["paths"][path][method]

    assert operation["operationId"] == operation_id
    assert operation["summary"]
    assert operation["description"]
    assert operation["security"] == [{"bearerAuth": []}]
    assert set(operation["responses"]) == {status, "401", "429", "4XX", "5XX"}
    assert operation["responses"]["4XX"] == STANDARD_ERROR
    assert operation["responses"]["5XX"] == STANDARD_ERROR
    assert operation["responses"]["401"] == {"$ref": "#/components/responses/Unauthorized"}
    assert operation["responses"]["429"] == {"$ref": "#/components/responses/RateLimited"}
    assert set(operation["responses"][status]["headers"]) == {
        "X-RateLimit-Limit",
        "X-RateLimit-Remaining",
        "X-RateLimit-Reset",
        "X-Request-ID",
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
