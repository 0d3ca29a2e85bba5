"""The release endpoints' part of the OpenAPI document: the seed's release components, the
``data`` JSON of create and update with realistic examples (what Swagger UI prefills), the
list's query parameters, each operation's ``extend_schema``, and each operation's error table
in the order the service checks it. The limits come from the serializers' constants, so they
cannot drift."""

from typing import Any

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiRequest,
    OpenApiResponse,
    extend_schema,
)

from lukittu.api import Code, database_unavailable, unsupported_media_type
from lukittu.fields import MAX_PAGE, PAGE_SIZES
from lukittu.openapi import (
    IDEMPOTENCY_ERRORS,
    INTERNAL_ERROR,
    INVALID_TEAM_ID,
    MALFORMED_IF_NONE_MATCH,
    PRECONDITION_FAILED,
    RATE_LIMITED,
    UNAUTHORIZED,
    UUID,
    ErrorCase,
    add_errors,
    add_links,
    path_parameter,
    ref,
    register,
    success_example,
)
from lukittu.shapes import envelope
from releases.ledger import reservation_lapsed
from releases.models import ReleaseStatus
from releases.serializers import (
    MAX_LICENSES,
    MAX_METADATA,
    SORT_COLUMNS,
    TEXT_PATTERN,
    VERSION_PATTERN,
)
from releases.services import file_too_large
from releases.shapes import Release, ReleaseListResponse
from releases.storage import StorageBusy, storage_unavailable

Schema = dict[str, Any]
TAG = "Dev - Releases"
TEXT_255 = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": TEXT_PATTERN}


def nullable_uuid(description: str, example: str | None = None) -> Schema:
    # Not ``{"$ref": UUID, "nullable": true}``: OpenAPI 3.0 ignores a $ref's siblings.
    schema = {"type": "string", "format": "uuid", "nullable": True, "description": description}
    return {**schema, "example": example} if example else schema


def uuid_with_example(description: str, example: str) -> Schema:
    # Inline for the same reason: a description or example beside a $ref would be ignored.
    return {"type": "string", "format": "uuid", "description": description, "example": example}


# Ids in the prefilled ``data`` (of the UUID v4 form). Swagger UI's users replace them with
# their own; a generated sample would be no closer to real.
EXAMPLE_PRODUCT_ID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
EXAMPLE_BRANCH_ID = "f47ac10b-58cc-4372-a567-0e02b2c3d479"
EXAMPLE_LICENSE_ID = "9b2e4c1a-3d5f-4a6b-8c7d-1e2f3a4b5c6d"


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
        # Without it, Swagger UI makes a sample from the pattern: a random-looking string.
        "example": "1.2.0",
    },
)
register(
    "schemas",
    "ReleaseStatus",
    {
        "type": "string",
        "enum": list(ReleaseStatus.values),
        "description": "Status of a product release",
        "example": "PUBLISHED",
    },
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
            "key": {**TEXT_255, "example": "channel"},
            "value": {**TEXT_255, "example": "stable"},
            "locked": {"type": "boolean", "default": False},
        },
        "required": ["key", "value"],
        "additionalProperties": False,
    },
    "example": [{"key": "channel", "value": "stable"}],
}
_LICENSE_IDS_INPUT = {
    "type": "array",
    "maxItems": MAX_LICENSES,
    "items": UUID,
    "description": (
        f"At most {MAX_LICENSES} UUIDs of the team's licenses (a repeated id counts once); "
        "replaces the release's licenses. Must be empty for a latest release."
    ),
    "example": [EXAMPLE_LICENSE_ID],
}
_DATA_FIELDS: Schema = {
    "version": ref("Version"),
    "productId": uuid_with_example("UUID of a product of the team", EXAMPLE_PRODUCT_ID),
    "status": ref("ReleaseStatus"),
    "setAsLatest": {
        "type": "boolean",
        "description": "Make this the latest release of its product and branch (if PUBLISHED)",
        # False beside licenseIds' example: a latest release may have no licenses.
        "example": False,
    },
    "keepExistingFile": {
        "type": "boolean",
        "description": "With no `file`: true keeps the current file, false removes it",
        "example": True,
    },
    "branchId": nullable_uuid(
        "UUID of a branch of that product, or null for the main line", EXAMPLE_BRANCH_ID
    ),
    "metadata": _METADATA_INPUT,
    "licenseIds": _LICENSE_IDS_INPUT,
}
# What Swagger UI prefills in the ``data`` box: a release one can send once productId names a
# product of the team (published as the latest of the main line, so no licenses).
UPDATE_DATA_EXAMPLE = {
    "version": "1.2.0",
    "productId": EXAMPLE_PRODUCT_ID,
    "status": "PUBLISHED",
    "setAsLatest": True,
    "keepExistingFile": True,
    "branchId": None,
    "metadata": [{"key": "channel", "value": "stable"}],
    "licenseIds": [],
}
CREATE_DATA_EXAMPLE = {
    name: value for name, value in UPDATE_DATA_EXAMPLE.items() if name != "keepExistingFile"
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


def multipart_body(
    data_component: str, data_example: Schema, file_description: str
) -> dict[str, OpenApiRequest]:
    """``data`` is a JSON object in a form field: an ``object`` property of a multipart body,
    which OpenAPI 3.0 sends as ``application/json`` by default. (Declaring that ``encoding``
    explicitly would make Swagger UI send ``data`` as a file part; the service reads that too,
    but a form field is what the contract describes.) ``file`` is an optional file part."""
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
                            "JSON object with the release's fields, sent as a form field "
                            "(`curl -F 'data={...}'` or `-F 'data=<data.json'`) or as a file "
                            "part holding it (`-F data=@data.json`)."
                        ),
                        # Swagger UI prefills the box with this.
                        "example": data_example,
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


def release_response(description: str, details: str) -> OpenApiResponse:
    """The release in the envelope, with an example whose ``details`` is ``details``."""
    return OpenApiResponse(
        response=envelope(Release),
        description=description,
        examples=[success_example(details, RELEASE_EXAMPLE)],
    )


# --- Errors, in the order the service checks them ----------------------------------------------
#
# README's Update Release table and its Create paragraph, row for row, plus what Django itself
# refuses while parsing the body. Built with the document: the 413 names MAX_RELEASE_FILE_MB.

MEBIBYTE = 1024 * 1024
INVALID_RELEASE_ID = ErrorCase(
    400, Code.BAD_REQUEST, "Invalid releaseId", "`releaseId` is not a UUID"
)
RELEASE_NOT_FOUND = ErrorCase(
    404, Code.RELEASE_NOT_FOUND, "Release not found", "the release is not the team's"
)
PRODUCT_NOT_FOUND = ErrorCase(
    404, Code.PRODUCT_NOT_FOUND, "Product not found", "the product is not the team's"
)
LATEST_RULE = "Cannot set as latest release when license IDs are provided"
STORAGE_UNAVAILABLE = ErrorCase.of(storage_unavailable(), "the storage fails or times out")
STORAGE_BUSY = ErrorCase.of(
    StorageBusy(),
    "no storage slot of the process came free within `STORAGE_BUSY_WAIT` seconds (the storage "
    "is slow or hung); nothing was recorded",
)
RESERVATION_LAPSED = ErrorCase.of(
    reservation_lapsed(),
    "the upload's reservation lapsed before its write could commit (not renewed for "
    "`STORAGE_LEASE_SECONDS`); nothing references the new file",
)
DATABASE_UNAVAILABLE = ErrorCase.of(
    database_unavailable(),
    "the database cannot be reached or did not answer in time, including a commit whose "
    "answer was lost",
)


def _file_too_large(when: str) -> ErrorCase:
    return ErrorCase.of(file_too_large(settings.MAX_RELEASE_FILE_MB * MEBIBYTE), when)


def _form_limits() -> list[ErrorCase]:
    """What Django's own multipart parser refuses, where its limits are set."""
    memory = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    fields = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
    files = settings.DATA_UPLOAD_MAX_NUMBER_FILES
    limits = []
    if memory is not None:
        limits.append(
            ErrorCase(
                413,
                Code.BAD_REQUEST,
                "Request body too large",
                f"the text fields together are over {memory / MEBIBYTE:g} MiB",
            )
        )
    if fields is not None or files is not None:
        counts = [
            f"more than {limit:,} {what}"
            for limit, what in ((fields, "text fields"), (files, "file parts"))
            if limit is not None
        ]
        limits.append(
            ErrorCase(
                400, Code.BAD_REQUEST, "Too many fields in the request body", " or ".join(counts)
            )
        )
    return limits


def _body_errors() -> list[ErrorCase]:
    """Create's and update's rows for the multipart body, up to the upload feature."""
    memory = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    data_part_too_large = (
        []
        if memory is None
        else [
            ErrorCase(
                413,
                Code.BAD_REQUEST,
                "Request body too large",
                f"`data` sent as a file part is over {memory / MEBIBYTE:g} MiB",
            )
        ]
    )
    return [
        ErrorCase.of(
            unsupported_media_type(),
            "the body is not `multipart/form-data` (the media type compares case-insensitively); "
            "`data.errors` says what to send",
        ),
        _file_too_large(
            "`Content-Length` is over the file limit plus 1 MiB: refused before the body is read"
        ),
        ErrorCase(411, Code.BAD_REQUEST, "Length required", "no `Content-Length` (a chunked body)"),
        ErrorCase(
            400, Code.BAD_REQUEST, "Invalid Content-Length", "`Content-Length` is not a number"
        ),
        ErrorCase(
            400,
            Code.BAD_REQUEST,
            "Incomplete request body",
            "the body ends before its `Content-Length`, the multipart body has no closing "
            "boundary, or the client went away mid-body",
        ),
        ErrorCase(
            400,
            Code.BAD_REQUEST,
            "Malformed multipart body",
            "the multipart body cannot be parsed (no boundary parameter, broken part headers)",
        ),
        *_form_limits(),
        ErrorCase(
            400,
            Code.BAD_REQUEST,
            "Missing data field",
            "no `data` part (a text field, or a file part holding the JSON)",
        ),
        ErrorCase(400, Code.BAD_REQUEST, "Send the data field once", "`data` sent twice"),
        *data_part_too_large,
        ErrorCase(
            400,
            Code.BAD_REQUEST,
            "Invalid JSON in data field",
            "`data` is not JSON (in UTF-8), or not a JSON object",
        ),
        ErrorCase(
            400,
            Code.BAD_REQUEST,
            "Invalid request body",
            "`data` breaks the field rules; `data.errors` lists every problem with its path",
            data={
                "errors": [
                    {
                        "message": "Ensure this field has at least 3 characters.",
                        "path": ["version"],
                    },
                    {"message": "Unknown field.", "path": ["metadata", 0, "colour"]},
                ]
            },
        ),
        ErrorCase(400, Code.BAD_REQUEST, "Send at most one file", "more than one file part"),
        ErrorCase(
            400,
            Code.BAD_REQUEST,
            "The file field must be a file upload",
            "a text `file` field that is not empty (an empty one means no file)",
        ),
        _file_too_large("the file is over the file limit (`MAX_RELEASE_FILE_MB`)"),
        ErrorCase(
            403,
            Code.FORBIDDEN,
            "File uploads require a paid subscription",
            'a file is sent and the team lacks file uploads (the paid "classloader" feature)',
        ),
    ]


def _reference_errors() -> list[ErrorCase]:
    """The ids ``data`` names, after the release itself (update) or first (create)."""
    return [
        PRODUCT_NOT_FOUND,
        ErrorCase(
            404,
            Code.RELEASE_NOT_FOUND,
            "Branch not found",
            "the branch is not a branch of that product",
        ),
        ErrorCase(
            404,
            Code.LICENSE_NOT_FOUND,
            "One or more license IDs not found",
            "a license id is not the team's",
        ),
    ]


VERSION_TAKEN = ErrorCase(
    409,
    Code.BAD_REQUEST,
    "A release with this version already exists for this product and branch",
    "another release of that product and branch has this version (the main line included)",
)


def _file_content_errors() -> list[ErrorCase]:
    return [
        ErrorCase(
            400,
            Code.BAD_REQUEST,
            "File must have an extension",
            "the file name has no extension (1 to 16 letters or digits after the last dot), "
            "including a name that is only a path (`.`, `..`, `dir/`)",
        ),
        ErrorCase(
            400,
            Code.BAD_REQUEST,
            "Invalid JAR file",
            "a `.jar` (any case) that is not a readable ZIP archive, or whose descriptors are "
            "compressed with anything but deflate",
        ),
        ErrorCase(
            400, Code.BAD_REQUEST, "Main class not found in JAR file", "a `.jar` with no main class"
        ),
        ErrorCase(
            400,
            Code.BAD_REQUEST,
            "Storage limit reached",
            "the team's stored bytes, plus its uploads in flight, would pass its storage limit "
            "(the replaced file's bytes are freed first)",
        ),
    ]


def update_errors() -> list[ErrorCase]:
    return [
        INVALID_TEAM_ID,
        INVALID_RELEASE_ID,
        UNAUTHORIZED,
        RATE_LIMITED,
        *_body_errors(),
        *IDEMPOTENCY_ERRORS,
        RELEASE_NOT_FOUND,
        PRECONDITION_FAILED,
        *_reference_errors(),
        ErrorCase(
            400,
            Code.BAD_REQUEST,
            LATEST_RULE,
            "`licenseIds` is not empty, and `setAsLatest` is true or the release is latest and "
            "stays `PUBLISHED`",
        ),
        VERSION_TAKEN,
        *_file_content_errors(),
        STORAGE_BUSY,
        STORAGE_UNAVAILABLE,
        RESERVATION_LAPSED,
        DATABASE_UNAVAILABLE,
        INTERNAL_ERROR,
    ]


def create_errors() -> list[ErrorCase]:
    return [
        INVALID_TEAM_ID,
        UNAUTHORIZED,
        RATE_LIMITED,
        *_body_errors(),
        *IDEMPOTENCY_ERRORS,
        *_reference_errors(),
        ErrorCase(
            400,
            Code.BAD_REQUEST,
            LATEST_RULE,
            "`licenseIds` is not empty and `setAsLatest` is true",
        ),
        ErrorCase(
            403,
            Code.FORBIDDEN,
            "Max releases per product reached",
            "the product has as many releases as its team allows (`max_releases_per_product`, "
            "100 by default)",
        ),
        VERSION_TAKEN,
        *_file_content_errors(),
        STORAGE_BUSY,
        STORAGE_UNAVAILABLE,
        RESERVATION_LAPSED,
        DATABASE_UNAVAILABLE,
        INTERNAL_ERROR,
    ]


def release_errors() -> list[ErrorCase]:
    """Get's."""
    return [
        INVALID_TEAM_ID,
        INVALID_RELEASE_ID,
        UNAUTHORIZED,
        RATE_LIMITED,
        RELEASE_NOT_FOUND,
        MALFORMED_IF_NONE_MATCH,
        INTERNAL_ERROR,
    ]


def delete_errors() -> list[ErrorCase]:
    return [
        INVALID_TEAM_ID,
        INVALID_RELEASE_ID,
        UNAUTHORIZED,
        RATE_LIMITED,
        *IDEMPOTENCY_ERRORS,
        RELEASE_NOT_FOUND,
        PRECONDITION_FAILED,
        INTERNAL_ERROR,
    ]


def list_errors() -> list[ErrorCase]:
    return [
        INVALID_TEAM_ID,
        UNAUTHORIZED,
        RATE_LIMITED,
        ErrorCase(
            400,
            Code.BAD_REQUEST,
            "Invalid query parameter: <names>",
            "a query parameter has a bad value, is repeated or is unknown; `<names>` lists "
            "them and `data.errors` has each problem",
            data={
                "errors": [
                    {"message": '"20" is not a valid choice.', "path": ["pageSize"]},
                    {"message": "Unknown parameter.", "path": ["productID"]},
                ]
            },
            example_details="Invalid query parameter: pageSize, productID",
        ),
        ErrorCase(
            404,
            Code.PRODUCT_NOT_FOUND,
            "Product not found",
            "`productId` is not a product of the team",
        ),
        INTERNAL_ERROR,
    ]


add_errors("updateRelease", update_errors)
add_errors("createRelease", create_errors)
add_errors("getRelease", release_errors)
add_errors("deleteRelease", delete_errors)
add_errors("listReleases", list_errors)


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
        "naturally (1.10.0 after 1.9.0); ties are broken by id, so pages are stable. A bad, "
        "repeated or unknown parameter is a 400 naming each, never silently ignored."
    ),
    tags=[TAG],
    parameters=LIST_PARAMETERS,
    responses={
        200: OpenApiResponse(
            response=ReleaseListResponse,
            description="A page of releases",
            examples=[
                success_example(
                    "Releases found",
                    {"releases": [RELEASE_EXAMPLE], "hasNextPage": False, "totalResults": 1},
                )
            ],
        )
    },
)

create_release = extend_schema(
    operation_id="createRelease",
    summary="Create Release",
    description=(
        "Create a release of one of the team's products, optionally with its file, sent as "
        "`multipart/form-data`: `data` (required) is the release's JSON and `file` (optional) "
        "the build."
    ),
    tags=[TAG],
    request=multipart_body(
        "ReleaseCreateData",
        CREATE_DATA_EXAMPLE,
        "Optional file for the release (max 10 MB by default). Must have a file extension.",
    ),
    responses={201: release_response("Release created", "Release created")},
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
    responses={200: release_response("The release", "Release found")},
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
        UPDATE_DATA_EXAMPLE,
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
    responses={200: release_response("Release deleted: the release as it was", "Release deleted")},
)
