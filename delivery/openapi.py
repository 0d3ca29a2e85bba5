"""The Client API's part of the OpenAPI document: its three operations (no API key: the
license in the query is the credential), their query parameters with the rules
``delivery.params`` checks (the same patterns), the 200s drf-spectacular cannot describe (a
binary body with headers, a redirect), and each operation's error table in the order
``delivery.access`` and the views check it."""

from typing import Any

from django.conf import settings
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
)

from delivery import params
from delivery.access import rate_limited, release_not_found
from delivery.shapes import DeliverableReleaseResponse
from delivery.streams import CHUNK, PRESIGNED_SECONDS, missing_build
from lukittu.api import Code
from lukittu.openapi import (
    EXAMPLE_TIMESTAMP,
    INTERNAL_ERROR,
    REQUEST_ID_HEADER,
    ErrorCase,
    add_errors,
    add_responses,
    path_parameter,
    public_operation,
    register,
)
from releases.models import ReleaseStatus
from releases.storage import storage_unavailable

Schema = dict[str, Any]
TAG = "Client - Releases"
CLASSLOADER = "getClassloader"
DOWNLOAD = "downloadRelease"
LATEST = "getLatestRelease"
OPERATIONS = (CLASSLOADER, DOWNLOAD, LATEST)
# gunicorn's limit_request_line: its default, which lukittu/gunicorn_conf.py keeps.
REQUEST_LINE_LIMIT = 4094

EXAMPLE_TEAM_ID = "123e4567-e89b-12d3-a456-426614174000"
EXAMPLE_PRODUCT_ID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
EXAMPLE_LICENSE_KEY = "ABCDE-FGH23-JKLMN-PQRST-VWXYZ"

for operation_id in OPERATIONS:
    public_operation(operation_id)

path_parameter(
    "ClientTeamId",
    "teamId",
    "The UUID of the team that sells the product (the vendor's, built into its software).",
    EXAMPLE_TEAM_ID,
    operations=OPERATIONS,
)

# --- Query parameters ---------------------------------------------------------------------------


def anchored(pattern: str, *, optional: bool = False) -> str:
    """A ``delivery.params`` pattern for JSON Schema, which searches rather than matches; an
    optional parameter may also be empty (an empty value counts as not given)."""
    return f"^(?:{pattern})?$" if optional else f"^(?:{pattern})$"


UUID_PATTERN = "[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
IDENTIFIER = {
    "type": "string",
    "minLength": params.IDENTIFIER_MIN,
    "maxLength": params.IDENTIFIER_MAX,
    "pattern": anchored(params.NO_SPACES_PATTERN),
}
LICENSE_KEY = OpenApiParameter(
    "licenseKey",
    {
        "type": "string",
        "pattern": anchored(params.LICENSE_KEY_PATTERN),
        "example": EXAMPLE_LICENSE_KEY,
    },
    required=True,
    description="The customer's license key: five groups of five capital letters or digits.",
)
PRODUCT_ID = OpenApiParameter(
    "productId",
    {
        "type": "string",
        "format": "uuid",
        "pattern": anchored(UUID_PATTERN),
        "example": EXAMPLE_PRODUCT_ID,
    },
    required=True,
    description="The product to deliver; the license must open it.",
)
HARDWARE_IDENTIFIER = OpenApiParameter(
    "hardwareIdentifier",
    {**IDENTIFIER, "example": "9f86d081884c7d65-workstation"},
    required=True,
    description=(
        f"The customer's machine: {params.IDENTIFIER_MIN} to {params.IDENTIFIER_MAX:,} "
        "characters, no whitespace. Each one takes a seat of the license (stored only as its "
        "SHA-256). `deviceIdentifier` may stand in for it."
    ),
)
DEVICE_IDENTIFIER = OpenApiParameter(
    "deviceIdentifier",
    {
        "type": "string",
        "maxLength": params.IDENTIFIER_MAX,
        # The length rule inside the pattern: empty (not given) is allowed too.
        "pattern": anchored(
            f"{params.NOT_SPACE}{{{params.IDENTIFIER_MIN},{params.IDENTIFIER_MAX}}}",
            optional=True,
        ),
    },
    deprecated=True,
    description=(
        "The old name of `hardwareIdentifier`, with its rules; it is used when "
        "`hardwareIdentifier` is not given. Given with it, it must be equal to it."
    ),
)
VERSION = OpenApiParameter(
    "version",
    {
        "type": "string",
        "maxLength": 255,
        "pattern": anchored(params.VERSION_PATTERN, optional=True),
    },
    description=(
        "A version to deliver instead of the line's latest: 1 to 255 characters, no whitespace "
        "or control characters. Empty is the same as not given."
    ),
)
BRANCH = OpenApiParameter(
    "branch",
    {"type": "string", "maxLength": 255, "pattern": anchored(params.BRANCH_PATTERN, optional=True)},
    description=(
        "The name of a branch of the product (1 to 255 characters, no control characters); "
        "without it, only the main line (releases on no branch) is considered. Empty is the "
        "same as not given."
    ),
)
CUSTOMER_ID = OpenApiParameter(
    "customerId",
    {"type": "string", "pattern": anchored(UUID_PATTERN, optional=True)},
    description=(
        "A UUID, checked for its form only (customers are not modelled here). Empty is the "
        "same as not given."
    ),
)
SESSION_KEY = OpenApiParameter(
    "sessionKey",
    IDENTIFIER,
    required=True,
    description=(
        "The hex of the RSA-OAEP (SHA-1 hash and MGF1, no label) ciphertext of a random session "
        "key, encrypted with the team's public key: 512 hex digits for its 2048-bit key. "
        f"{params.IDENTIFIER_MIN} to {params.IDENTIFIER_MAX:,} characters, no whitespace; good "
        "for one request in 15 minutes."
    ),
)
COMMON_PARAMETERS = [LICENSE_KEY, PRODUCT_ID, HARDWARE_IDENTIFIER, DEVICE_IDENTIFIER]
LINE_PARAMETERS = [VERSION, BRANCH, CUSTOMER_ID]

# --- Responses ----------------------------------------------------------------------------------

DATE_TIME = {"type": "string", "format": "date-time"}


def header(name: str, description: str, schema: Schema, *, required: bool = True) -> Schema:
    return register(
        "headers", name, {"description": description, "required": required, "schema": schema}
    )


RELEASE_HEADERS = {
    "X-File-Size": header("X-File-Size", "The file's size in bytes", {"type": "integer"}),
    "X-Product-Name": header("X-Product-Name", "The product's name", {"type": "string"}),
    "X-Release-Status": header(
        "X-Release-Status",
        "The delivered release's status (never DRAFT or ARCHIVED)",
        {"type": "string", "enum": [ReleaseStatus.PUBLISHED, ReleaseStatus.DEPRECATED]},
    ),
    "X-Release-Created-At": header(
        "X-Release-Created-At", "When the release was created (UTC, with a Z)", DATE_TIME
    ),
    "X-File-Created-At": header(
        "X-File-Created-At", "When the file was uploaded (UTC, with a Z)", DATE_TIME
    ),
    "X-Version": header("X-Version", "The delivered release's version", {"type": "string"}),
    "X-Latest-Version": header(
        "X-Latest-Version",
        "The version of the line's latest release; absent when the line has no latest with a file",
        {"type": "string"},
        required=False,
    ),
    "X-Main-Class": header(
        "X-Main-Class",
        "The JAR's main class; absent for files without one",
        {"type": "string"},
        required=False,
    ),
    "Content-Security-Policy": header(
        "Content-Security-Policy", "`default-src 'none'`", {"type": "string"}
    ),
    "X-Content-Type-Options": header(
        "X-Content-Type-Options", "`nosniff`", {"type": "string", "enum": ["nosniff"]}
    ),
    "Cache-Control": header(
        "Cache-Control", "`no-store`: a build is for this caller", {"type": "string"}
    ),
    "X-Request-ID": REQUEST_ID_HEADER,
}
CHECKSUM_HEADER = header(
    "X-Checksum-SHA256",
    "The file's SHA-256 (hex): of the streamed file, or of the one the presigned URL leads to",
    {"type": "string", "pattern": "^[0-9a-f]{64}$"},
)
BINARY = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}

add_responses(
    CLASSLOADER,
    {
        "200": {
            "description": (
                "The build, encrypted for the caller: one frame per chunk of the file (at most "
                f"{CHUNK // 1024} KiB of plaintext each), each a 4-byte big-endian "
                "length of what follows, a 12-byte IV, the 16-byte GCM tag and the ciphertext. "
                "The AES-256-GCM key is the SHA-256 of the session key's lower-case hex text. "
                "Streamed as it is read from storage; the seats are taken and the download "
                "recorded before the first byte."
            ),
            "headers": {
                **RELEASE_HEADERS,
                # Not components: each operation's Content-Length counts something else.
                "Content-Length": {
                    "description": (
                        "The frames' length: the file's size plus 32 bytes a frame "
                        f"(`X-File-Size + 32 * ceil(X-File-Size / {CHUNK})`)"
                    ),
                    "required": True,
                    "schema": {"type": "integer", "minimum": 0},
                },
            },
            "content": BINARY,
        }
    },
)
add_responses(
    DOWNLOAD,
    {
        "200": {
            "description": (
                "On local storage: the file itself, streamed, with its size, name and digests."
            ),
            "headers": {
                **RELEASE_HEADERS,
                "Content-Length": {
                    "description": "The file's size in bytes",
                    "required": True,
                    "schema": {"type": "integer", "minimum": 0},
                },
                "Content-Disposition": header(
                    "Content-Disposition",
                    'The file\'s name: `attachment; filename="app.jar"`',
                    {"type": "string"},
                ),
                "X-Checksum-SHA256": CHECKSUM_HEADER,
                "Repr-Digest": header(
                    "Repr-Digest",
                    "The file's SHA-256 as RFC 9530 has it: `sha-256=:<base64>:`",
                    {"type": "string", "pattern": "^sha-256=:[A-Za-z0-9+/]{43}=:$"},
                ),
            },
            "content": BINARY,
        },
        "302": {
            "description": (
                "On S3: a redirect to a presigned URL of the object, valid for "
                f"{PRESIGNED_SECONDS} seconds, whose answer names the file in "
                "`Content-Disposition` and has `Cache-Control: no-store`. The seats are taken "
                "and the download recorded first. Check the bytes against this answer's "
                "`X-Checksum-SHA256`, not against a header of the storage's answer."
            ),
            "headers": {
                "Location": header(
                    "Location", "The presigned URL", {"type": "string", "format": "uri"}
                ),
                "X-Checksum-SHA256": CHECKSUM_HEADER,
                "X-Version": RELEASE_HEADERS["X-Version"],
                "Cache-Control": RELEASE_HEADERS["Cache-Control"],
                "X-Request-ID": REQUEST_ID_HEADER,
            },
        },
    },
)

LATEST_EXAMPLE = {
    "releaseId": "456e7890-e89b-12d3-a456-426614174111",
    "productId": EXAMPLE_PRODUCT_ID,
    "branch": None,
    "version": "1.1.0",
    "status": "PUBLISHED",
    "latest": True,
    "latestVersion": "1.1.0",
    "createdAt": "2023-09-15T14:30:00.000Z",
    "file": {
        "id": "9a1b2c3d-e89b-12d3-a456-426614174333",
        "name": "app-1.1.0.jar",
        "size": 48213,
        "md5": "9e107d9d372bb6826bd81d3542a419d6",
        "sha256": "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592",
        "mainClassName": "com.example.app.Main",
        "createdAt": "2023-09-15T14:35:00.000Z",
    },
}

# --- Errors, in the order they are checked ---------------------------------------------------

BAD = Code.BAD_REQUEST


def _parameter_errors(operation_id: str) -> list[ErrorCase]:
    """``delivery.params``' messages, in the order it checks (each parameter's "given once"
    is checked as that parameter is read)."""
    names = params.CLASSLOADER if operation_id == CLASSLOADER else params.PLAIN
    session_key = (
        [
            ErrorCase(400, BAD, "Session key is required", "no `sessionKey`"),
            *_identifier_errors("Session key", "sessionKey"),
        ]
        if operation_id == CLASSLOADER
        else []
    )
    return [
        ErrorCase(
            400,
            BAD,
            "Unknown parameter <name>: the parameters are <names>",
            "a query parameter this operation does not take (the first, by name)",
            example_details=f"Unknown parameter colour: the parameters are {', '.join(names)}",
        ),
        ErrorCase(
            400,
            BAD,
            "Parameter <name> must be given once",
            "a parameter is repeated (checked as each is read, in this table's order)",
            example_details="Parameter licenseKey must be given once",
        ),
        ErrorCase(400, BAD, "License key is required", "no `licenseKey`"),
        ErrorCase(
            400,
            BAD,
            "License key must be in the format of XXXXX-XXXXX-XXXXX-XXXXX-XXXXX",
            "`licenseKey` is not five groups of five capital letters or digits",
        ),
        ErrorCase(400, BAD, "Product UUID is required", "no `productId`"),
        ErrorCase(400, BAD, "Product UUID must be a valid UUID", "`productId` is not a UUID"),
        *session_key,
        ErrorCase(
            400,
            BAD,
            "Give hardwareIdentifier or its old name deviceIdentifier, not both",
            "both are given, and they differ",
        ),
        ErrorCase(400, BAD, "Hardware identifier is required", "neither of them is given"),
        *_identifier_errors("Hardware identifier", "hardwareIdentifier"),
        ErrorCase(
            400,
            BAD,
            "Version must be 1 to 255 characters without spaces",
            "`version` is over 255 characters or has whitespace or control characters",
        ),
        ErrorCase(
            400,
            BAD,
            "Branch name must be 1 to 255 characters without control characters",
            "`branch` is over 255 characters or has control characters",
        ),
        ErrorCase(400, BAD, "Customer UUID must be a valid UUID", "`customerId` is not a UUID"),
    ]


def _identifier_errors(label: str, name: str) -> list[ErrorCase]:
    return [
        ErrorCase(
            400,
            BAD,
            f"{label} must be at least {params.IDENTIFIER_MIN} characters",
            f"`{name}` is shorter",
        ),
        ErrorCase(
            400,
            BAD,
            f"{label} must be less than {params.IDENTIFIER_MAX} characters",
            f"`{name}` is over {params.IDENTIFIER_MAX:,} characters",
        ),
        ErrorCase(400, BAD, f"{label} must not contain spaces", f"`{name}` has whitespace"),
    ]


def client_errors(operation_id: str) -> list[ErrorCase]:
    """README's Client API table, row for row, for one operation."""
    rate_limit = ErrorCase.of(
        rate_limited(),
        f"more than `CLIENT_IP_RATE` ({settings.CLIENT_IP_RATE}) requests from the client's "
        "address, counted by every worker together (`Retry-After`: seconds until the window ends)",
    )
    license_rate_limit = ErrorCase.of(
        rate_limited(),
        f"more than `CLIENT_LICENSE_RATE` ({settings.CLIENT_LICENSE_RATE}) requests with the "
        "license key, from every address together (`Retry-After` as above)",
    )
    session_key = (
        [
            ErrorCase(
                400,
                Code.INVALID_SESSION_KEY,
                "Invalid session key",
                "`sessionKey` is not hex, or does not decrypt with the team's private key",
            ),
            ErrorCase.of(rate_limited(), "the session key was used in the last 15 minutes"),
        ]
        if operation_id == CLASSLOADER
        else []
    )
    reads_storage = (
        [
            ErrorCase.of(
                missing_build(),
                "the release's file names an object the store does not have (logged; no seat "
                "is taken and nothing is recorded)"
                + ("" if operation_id == CLASSLOADER else "; on local storage only"),
            ),
            ErrorCase.of(
                storage_unavailable(),
                "the store did not answer"
                + ("" if operation_id == CLASSLOADER else "; on local storage only"),
            ),
        ]
        if operation_id != LATEST
        else []
    )
    return [
        ErrorCase(
            400,
            BAD,
            "Invalid team UUID",
            "`teamId` is not a UUID (36 characters, ASCII hex digits and hyphens)",
        ),
        *_parameter_errors(operation_id),
        rate_limit,
        license_rate_limit,
        ErrorCase(404, Code.TEAM_NOT_FOUND, "Team not found", "no such team, or it is deleted"),
        ErrorCase(
            403,
            Code.FORBIDDEN,
            "Using classloader requires a higher plan. Either upgrade or contact support.",
            'the team does not have file uploads (the paid "classloader" feature)',
        ),
        *session_key,
        ErrorCase(
            404,
            Code.LICENSE_NOT_FOUND,
            "License not found",
            "the team has no such license (another team's license is not found either)",
        ),
        ErrorCase(
            404,
            Code.PRODUCT_NOT_FOUND,
            "Product not found",
            "the license does not open the product",
        ),
        ErrorCase.of(
            release_not_found("Branch not found"), "`branch` is not a branch of the product"
        ),
        ErrorCase.of(
            release_not_found(),
            "no release of that version with a file on the line, or no latest with a file",
        ),
        ErrorCase(403, Code.RELEASE_ARCHIVED, "Release is archived", "the release is ARCHIVED"),
        ErrorCase(403, Code.RELEASE_DRAFT, "Release is draft", "the release is a DRAFT"),
        ErrorCase(
            403,
            Code.NO_ACCESS_TO_RELEASE,
            "License does not have access to this release",
            "the release is limited to licenses (`licenseIds`) other than this one",
        ),
        ErrorCase(403, Code.LICENSE_SUSPENDED, "License suspended", "the license is suspended"),
        ErrorCase(403, Code.LICENSE_EXPIRED, "License expired", "the license has expired"),
        ErrorCase(
            403,
            Code.IP_LIMIT_REACHED,
            "IP limit reached",
            "a new address, and the license's active IP seats are at its `ipLimit`",
        ),
        ErrorCase(
            403,
            Code.HWID_LIMIT_REACHED,
            "HWID limit reached",
            "a new hardware identifier, and the license's active HWID seats are at its `hwidLimit`",
        ),
        *reads_storage,
        INTERNAL_ERROR,
    ]


for operation_id in OPERATIONS:
    add_errors(operation_id, lambda operation_id=operation_id: client_errors(operation_id))

# --- The operations -----------------------------------------------------------------------------

CHECKS = (
    "No API key: the license is the credential. Rate-limited per client address and per "
    "license key. Without `version`, the line's latest release with a file is delivered "
    "(without `branch`, the main line's); PUBLISHED and DEPRECATED releases are delivered, "
    "DRAFT and ARCHIVED never. Each hardware identifier and address takes a seat of the "
    "license, up to its limits; a refused request takes no seat and records nothing, and "
    "neither does one whose answer cannot be made. Every answer, errors included, has "
    "`Cache-Control: no-store`.\n\n"
    f"The request line (the path and the percent-encoded query) must fit in "
    f"{REQUEST_LINE_LIMIT:,} bytes, the HTTP server's limit: within each parameter's own "
    "limits a real client's request is far shorter, but several identifiers of 1,000 "
    "characters outside ASCII are not. A longer one is answered 414 by the server itself, "
    "outside the envelope."
)
# A response of gunicorn's, not the service's (``limit_request_line`` in
# lukittu/gunicorn_conf.py).
TOO_LONG = {
    "description": (
        f"The request line is over {REQUEST_LINE_LIMIT:,} bytes: refused by the HTTP server "
        "before the service sees it (an HTML page, not the envelope)"
    ),
    "content": {"text/html": {"schema": {"type": "string"}}},
}
for operation_id in OPERATIONS:
    add_responses(operation_id, {"414": TOO_LONG})

classloader = extend_schema(
    operation_id=CLASSLOADER,
    summary="Classloader",
    description=(
        "The build, encrypted for a Java loader built for Lukittu, byte for byte as Lukittu "
        "sends it. The loader encrypts a random session key with the team's public key and "
        "sends it as `sessionKey`; the answer is AES-256-GCM frames it decrypts with the "
        "SHA-256 of the session key's hex. A session key is good for one request in 15 "
        f"minutes.\n\n{CHECKS}"
    ),
    tags=[TAG],
    parameters=[*COMMON_PARAMETERS, SESSION_KEY, *LINE_PARAMETERS],
    responses={200: OpenApiResponse(description="The encrypted build")},
)

download = extend_schema(
    operation_id=DOWNLOAD,
    summary="Download Release",
    description=(
        "The build itself: streamed from local storage with its size, name and digests, or a "
        f"redirect to a presigned S3 URL valid for {PRESIGNED_SECONDS} seconds.\n\n{CHECKS}"
    ),
    tags=[TAG],
    parameters=[*COMMON_PARAMETERS, *LINE_PARAMETERS],
    responses={200: OpenApiResponse(description="The build")},
)

latest = extend_schema(
    operation_id=LATEST,
    summary="Latest Release",
    description=(
        "What `download` would deliver with the same parameters, for an updater to decide "
        "first: version, status, dates and the file's name, size and digests. It applies the "
        f"same checks, seats included, but takes no seat and records nothing.\n\n{CHECKS}"
    ),
    tags=[TAG],
    parameters=[*COMMON_PARAMETERS, *LINE_PARAMETERS],
    responses={
        200: OpenApiResponse(
            response=DeliverableReleaseResponse,
            description="The release that would be delivered",
            examples=[
                OpenApiExample(
                    "Release found",
                    value={
                        "data": LATEST_EXAMPLE,
                        "result": {
                            "timestamp": EXAMPLE_TIMESTAMP,
                            "valid": True,
                            "details": "Release found",
                        },
                    },
                )
            ],
        )
    },
)
