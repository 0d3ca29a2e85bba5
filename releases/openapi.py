"""The release endpoints' part of the OpenAPI document: the seed's release components, the
``data`` JSON of create and update, the list's query parameters, and each operation's
``extend_schema``. The limits come from the serializers' constants, so they cannot drift."""

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiRequest,
    OpenApiResponse,
    extend_schema,
)

from lukittu.openapi import UUID, add_links, envelope_schema, path_parameter, ref, register
from releases.models import ReleaseStatus
from releases.serializers import (
    MAX_LICENSES,
    MAX_METADATA,
    MAX_PAGE,
    PAGE_SIZES,
    SORT_COLUMNS,
    TEXT_PATTERN,
    VERSION_PATTERN,
)

Schema = dict[str, Any]
TAG = "Dev - Releases"
TEXT_255 = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": TEXT_PATTERN}
DATE_TIME = {"type": "string", "format": "date-time"}


def nullable_uuid(description: str) -> Schema:
    # Not ``{"$ref": UUID, "nullable": true}``: OpenAPI 3.0 ignores a $ref's siblings.
    return {"type": "string", "format": "uuid", "nullable": True, "description": description}


# --- Path parameters ---------------------------------------------------------------------------

path_parameter(
    "TeamId",
    "teamId",
    "Your team's UUID. The API key must belong to this team.",
    "123e4567-e89b-12d3-a456-426614174000",
)
path_parameter(
    "ReleaseIdPath",
    "releaseId",
    "The unique identifier (UUID v4) of the release.",
    "456e7890-e89b-12d3-a456-426614174111",
)

# --- Release shapes (the seed's names) ----------------------------------------------------------

register(
    "schemas",
    "Version",
    {
        "type": "string",
        "minLength": 3,
        "maxLength": 255,
        "pattern": VERSION_PATTERN,
        "description": (
            "Software version identifier (no spaces allowed: no whitespace by JavaScript's or "
            "Python's definition, and no NUL)"
        ),
    },
)
register(
    "schemas",
    "ReleaseStatus",
    {
        "type": "string",
        "enum": list(ReleaseStatus.values),
        "description": "Status of a product release",
    },
)
register(
    "schemas",
    "ReleaseData",
    {
        "type": "object",
        "properties": {
            "id": UUID,
            "version": ref("Version"),
            "status": ref("ReleaseStatus"),
            "latest": {
                "type": "boolean",
                "description": "Whether this is the latest release for the product/branch",
            },
            "productId": UUID,
            "branchId": nullable_uuid("Branch this release belongs to; null for the main line"),
            "teamId": UUID,
            "createdAt": DATE_TIME,
            "updatedAt": DATE_TIME,
        },
        "required": [
            "id",
            "version",
            "status",
            "latest",
            "productId",
            "branchId",
            "teamId",
            "createdAt",
            "updatedAt",
        ],
    },
)
register(
    "schemas",
    "Metadata",
    {
        "type": "array",
        "description": "Key-value metadata pairs",
        "items": {
            "type": "object",
            "properties": {
                "key": {"type": "string", "description": "Metadata key"},
                "value": {"type": "string", "description": "Metadata value"},
                "locked": {
                    "type": "boolean",
                    "description": "Whether this metadata field is locked from client modification",
                },
            },
            "required": ["key", "value", "locked"],
        },
    },
)
register(
    "schemas",
    "ProductData",
    {
        "type": "object",
        "properties": {
            "id": UUID,
            "name": {"type": "string", "description": "Product name"},
            "url": {"type": "string", "nullable": True, "description": "Product URL or homepage"},
            "teamId": UUID,
            "createdByUserId": nullable_uuid(
                "User who created this product; null for products made by operator commands"
            ),
            "createdAt": {**DATE_TIME, "description": "Product creation timestamp"},
            "updatedAt": {**DATE_TIME, "description": "Product last update timestamp"},
        },
        "required": ["id", "name", "url", "teamId", "createdByUserId", "createdAt", "updatedAt"],
    },
)
register(
    "schemas",
    "ReleaseFileData",
    {
        "type": "object",
        "nullable": True,
        "properties": {
            "id": UUID,
            "key": {
                "type": "string",
                "description": (
                    "Storage key, made by the server: releases/{teamId}/{releaseId}/{fileId}.{ext}"
                ),
            },
            "size": {"type": "integer", "minimum": 0, "description": "File size in bytes"},
            "name": {"type": "string", "description": "Original file name, without any path"},
            "checksum": {"type": "string", "description": "MD5 checksum of the file (hex)"},
            "sha256": {"type": "string", "description": "SHA-256 of the file (hex)"},
            "mainClassName": {
                "type": "string",
                "nullable": True,
                "description": "Main class name (for JAR files)",
            },
            "createdAt": {**DATE_TIME, "description": "When this file was uploaded"},
        },
        "required": [
            "id",
            "key",
            "size",
            "name",
            "checksum",
            "sha256",
            "mainClassName",
            "createdAt",
        ],
    },
)
RELEASE = register(
    "schemas",
    "Release",
    {
        "description": "A release with its metadata, product, branch, file and licenses.",
        "allOf": [
            ref("ReleaseData"),
            {
                "type": "object",
                "properties": {
                    "metadata": ref("Metadata"),
                    "product": ref("ProductData"),
                    "branch": {
                        "type": "object",
                        "nullable": True,
                        "properties": {"id": UUID, "name": {"type": "string"}},
                        "required": ["id", "name"],
                    },
                    "file": ref("ReleaseFileData"),
                    "licenseIds": {
                        "type": "array",
                        "items": UUID,
                        "description": "Licenses allowed to download this release; [] for any",
                    },
                },
                "required": ["metadata", "product", "branch", "file", "licenseIds"],
            },
        ],
    },
)
RELEASE_RESPONSE = register("schemas", "ReleaseResponse", envelope_schema(RELEASE))
RELEASE_LIST_RESPONSE = register(
    "schemas",
    "ReleaseListResponse",
    envelope_schema(
        {
            "type": "object",
            "properties": {
                "releases": {"type": "array", "items": RELEASE},
                "hasNextPage": {"type": "boolean"},
                "totalResults": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Releases matching the filters, on all pages",
                },
            },
            "required": ["releases", "hasNextPage", "totalResults"],
        }
    ),
)

# --- The `data` field of create and update -----------------------------------------------------

_METADATA_INPUT = {
    "type": "array",
    "maxItems": MAX_METADATA,
    "description": (
        f"At most {MAX_METADATA} pairs, keys unique in the list; replaces the release's metadata"
    ),
    "items": {
        "type": "object",
        "properties": {
            "key": TEXT_255,
            "value": TEXT_255,
            "locked": {"type": "boolean", "default": False},
        },
        "required": ["key", "value"],
        "additionalProperties": False,
    },
}
_LICENSE_IDS_INPUT = {
    "type": "array",
    "maxItems": MAX_LICENSES,
    "items": UUID,
    "description": (
        f"At most {MAX_LICENSES} UUIDs of the team's licenses (a repeated id counts once); "
        "replaces the release's licenses. Must be empty for a latest release."
    ),
}
_DATA_FIELDS: Schema = {
    "version": ref("Version"),
    "productId": {**UUID, "description": "UUID of a product of the team"},
    "status": ref("ReleaseStatus"),
    "setAsLatest": {
        "type": "boolean",
        "description": "Make this the latest release of its product and branch (if PUBLISHED)",
    },
    "keepExistingFile": {
        "type": "boolean",
        "description": "With no `file`: true keeps the current file, false removes it",
    },
    "branchId": nullable_uuid("UUID of a branch of that product, or null for the main line"),
    "metadata": _METADATA_INPUT,
    "licenseIds": _LICENSE_IDS_INPUT,
}
# The contract's "Cannot set as latest release when license IDs are provided", as far as a
# schema can say it: ``setAsLatest`` true needs ``licenseIds`` empty. (Update also refuses
# licenses for a release that is latest and stays PUBLISHED, which depends on stored state.)
_NOT_LATEST_WITH_LICENSES = {
    "anyOf": [
        {"properties": {"setAsLatest": {"enum": [False]}}},
        {"properties": {"licenseIds": {"maxItems": 0}}},
    ]
}
register(
    "schemas",
    "ReleaseUpdateData",
    {
        "type": "object",
        "description": (
            "The `data` field of Update Release: every field required, no others. "
            "`licenseIds` must be empty when `setAsLatest` is true, or when the release is "
            "latest and stays PUBLISHED."
        ),
        "properties": _DATA_FIELDS,
        "required": list(_DATA_FIELDS),
        "additionalProperties": False,
        **_NOT_LATEST_WITH_LICENSES,
    },
)
_CREATE_FIELDS = {
    name: schema for name, schema in _DATA_FIELDS.items() if name != "keepExistingFile"
}
register(
    "schemas",
    "ReleaseCreateData",
    {
        "type": "object",
        "description": (
            "The `data` field of Create Release. `branchId` (default null), `setAsLatest` "
            "(default false), `metadata` and `licenseIds` (default []) may be left out. "
            "`licenseIds` must be empty when `setAsLatest` is true."
        ),
        "properties": _CREATE_FIELDS,
        "required": ["version", "productId", "status"],
        "additionalProperties": False,
        **_NOT_LATEST_WITH_LICENSES,
    },
)


def multipart_body(data_component: str, file_description: str) -> dict[str, OpenApiRequest]:
    """``data`` is a JSON object in a form field: an ``object`` property of a multipart body,
    which OpenAPI 3.0 sends as ``application/json`` by default. (Declaring that ``encoding``
    explicitly would make Swagger UI send ``data`` as a file part, which is not a form field.)
    ``file`` is an optional file part."""
    return {
        "multipart/form-data": OpenApiRequest(
            request={
                "type": "object",
                "required": ["data"],
                "properties": {
                    "data": {
                        "type": "object",
                        "allOf": [ref(data_component)],
                        "description": (
                            "JSON object with the release's fields, sent as a form field (not "
                            "a file part), e.g. `curl -F 'data={...}'`."
                        ),
                    },
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "description": file_description,
                    },
                },
            },
            encoding={
                "file": {
                    "headers": {
                        "Content-Disposition": {
                            "description": (
                                "The part's file name must have an extension (1 to 16 letters "
                                "or digits after the last dot). A `.jar` must be a readable "
                                "ZIP archive with a main class."
                            ),
                            "required": True,
                            "schema": {
                                "type": "string",
                                "pattern": 'filename="[^"]*\\.[A-Za-z0-9]{1,16}"',
                            },
                            "example": 'form-data; name="file"; filename="app-1.1.0.zip"',
                        }
                    }
                },
            },
        )
    }


RELEASE_EXAMPLE = {
    "id": "456e7890-e89b-12d3-a456-426614174111",
    "version": "1.1.0",
    "status": "PUBLISHED",
    "latest": True,
    "productId": "789e0123-e89b-12d3-a456-426614174222",
    "branchId": None,
    "teamId": "123e4567-e89b-12d3-a456-426614174000",
    "createdAt": "2023-09-15T14:30:00.000Z",
    "updatedAt": "2023-09-15T14:35:00.000Z",
    "metadata": [{"key": "channel", "value": "stable", "locked": False}],
    "product": {
        "id": "789e0123-e89b-12d3-a456-426614174222",
        "name": "My Product",
        "url": None,
        "teamId": "123e4567-e89b-12d3-a456-426614174000",
        "createdByUserId": None,
        "createdAt": "2023-09-01T09:00:00.000Z",
        "updatedAt": "2023-09-01T09:00:00.000Z",
    },
    "branch": None,
    "file": {
        "id": "9a1b2c3d-e89b-12d3-a456-426614174333",
        "key": (
            "releases/123e4567-e89b-12d3-a456-426614174000/456e7890-e89b-12d3-a456-426614174111/"
            "9a1b2c3d-e89b-12d3-a456-426614174333.jar"
        ),
        "size": 48213,
        "name": "app-1.1.0.jar",
        "checksum": "9e107d9d372bb6826bd81d3542a419d6",
        "sha256": "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592",
        "mainClassName": "com.example.app.Main",
        "createdAt": "2023-09-15T14:35:00.000Z",
    },
    "licenseIds": [],
}


def release_response(description: str, details: str | None = None) -> OpenApiResponse:
    """The release in the envelope; with an example (of ``details``) if given."""
    examples = [
        OpenApiExample(
            details,
            value={
                "data": RELEASE_EXAMPLE,
                "result": {
                    "timestamp": "2023-09-15T14:35:00.000Z",
                    "valid": True,
                    "details": details,
                },
            },
        )
    ]
    return OpenApiResponse(
        response=RELEASE_RESPONSE, description=description, examples=examples if details else []
    )


LIST_PARAMETERS = [
    OpenApiParameter(
        "productId",
        OpenApiTypes.UUID,
        description="Only this product's releases (404 if not the team's)",
    ),
    OpenApiParameter("status", ref("ReleaseStatus"), description="Only releases in this status"),
    OpenApiParameter(
        "search",
        {"type": "string", "maxLength": 255, "pattern": TEXT_PATTERN},
        description="Only versions containing this text (case-insensitive)",
    ),
    OpenApiParameter(
        "sortColumn", str, enum=list(SORT_COLUMNS), default="createdAt", description="Sort key"
    ),
    OpenApiParameter("sortDirection", str, enum=["asc", "desc"], default="desc"),
    OpenApiParameter(
        "page",
        {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
        default=1,
        description="1-based page number",
    ),
    OpenApiParameter(
        "pageSize",
        {"type": "integer", "enum": list(PAGE_SIZES)},
        default=25,
        description="Releases per page",
    ),
]

list_releases = extend_schema(
    operation_id="listReleases",
    summary="List Releases",
    description=(
        "The team's releases, one page at a time, newest first by default. `version` sorts "
        "naturally (1.10.0 after 1.9.0); ties are broken by id, so pages are stable. A bad "
        "parameter is a 400 listing every problem, never silently ignored."
    ),
    tags=[TAG],
    parameters=LIST_PARAMETERS,
    responses={
        200: OpenApiResponse(response=RELEASE_LIST_RESPONSE, description="A page of releases")
    },
)

create_release = extend_schema(
    operation_id="createRelease",
    summary="Create Release",
    description=(
        "Create a release of one of the team's products, optionally with its file, sent as "
        "`multipart/form-data`: `data` (required) is the release's JSON and `file` (optional) "
        "the build. Errors follow Update Release's table."
    ),
    tags=[TAG],
    request=multipart_body(
        "ReleaseCreateData",
        "Optional file for the release (max 10 MB by default). Must have a file extension.",
    ),
    responses={201: release_response("Release created")},
)

# The created release's id opens Get and Delete (Swagger UI shows these links; schemathesis
# follows them and expects the release there). Update takes it too, but is not linked: its 404
# can also mean a product, branch or license named in ``data`` is missing, which a link
# follower would read as the release having gone.
add_links(
    "createRelease",
    "201",
    {
        operation: {
            "operationId": operation,
            "parameters": {
                "teamId": "$request.path.teamId",
                "releaseId": "$response.body#/data/id",
            },
            "description": f"`{operation}` on the created release",
        }
        for operation in ("getRelease", "deleteRelease")
    },
)

get_release = extend_schema(
    operation_id="getRelease",
    summary="Get Release",
    description="One release of the team.",
    tags=[TAG],
    responses={200: release_response("The release")},
)

update_release = extend_schema(
    operation_id="updateRelease",
    summary="Update Release",
    description=(
        "Update an existing release. Supports optional file upload/replacement via "
        "multipart/form-data.\n\n"
        "The request body must be sent as `multipart/form-data` with:\n"
        "- `data` field (required): JSON string containing the release configuration\n"
        "- `file` field (optional): Binary file to attach to the release (max 10 MB)\n\n"
        "**File handling:**\n"
        "- To upload a new file (replacing any existing): include the `file` field\n"
        "- To keep the existing file unchanged: omit the `file` field and set "
        "`keepExistingFile` to `true`\n"
        "- To remove the existing file without uploading a new one: omit the `file` field "
        "and set `keepExistingFile` to `false`\n\n"
        "File uploads require the team to have the classloader feature enabled (paid "
        "subscription). If the request fails, nothing changes: the release, its metadata, "
        "licenses and file are as before."
    ),
    tags=[TAG],
    request=multipart_body(
        "ReleaseUpdateData",
        "Optional file to attach to the release (max 10 MB). Must have a file extension. "
        "Replaces any existing file.",
    ),
    responses={200: release_response("Release updated successfully", "Release updated")},
)

delete_release = extend_schema(
    operation_id="deleteRelease",
    summary="Delete Release",
    description=(
        "Delete a release with its metadata, licenses and file; the stored file is removed "
        "after the deletion commits. The response is the release as it was."
    ),
    tags=[TAG],
    responses={200: release_response("Release deleted: the release as it was")},
)
