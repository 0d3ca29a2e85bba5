"""The Developer API's release endpoints: thin views over the services."""

import json
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.files.uploadedfile import UploadedFile
from rest_framework.request import Request
from rest_framework.response import Response

from lukittu.api import ApiError, Code, success, unsupported_media_type
from lukittu.fields import error_list
from lukittu.views import TeamApiView, parse_query
from releases import openapi
from releases.parsers import ReleaseMultiPartParser, incomplete_body
from releases.selectors import release_detail, release_list
from releases.serializers import (
    ReleaseCreateSerializer,
    ReleaseListQuerySerializer,
    ReleaseUpdateSerializer,
    release_payload,
)
from releases.services import (
    ReleaseChanges,
    check_upload_allowed,
    file_too_large,
    release_create,
    release_delete,
    release_update,
)
from releases.uploads import HashingUploadHandler, ReleaseUpload
from teams.conditions import Conditions, conditional_get, fingerprint, run_write
from teams.services import api_actor

MEGABYTE = 1024 * 1024


def max_file_bytes() -> int:
    return settings.MAX_RELEASE_FILE_MB * MEGABYTE


def _reject_constant(name: str) -> None:
    raise ValueError(name)


def parse_data_field(raw: str) -> dict[str, Any]:
    """The ``data`` field as a JSON object (no NaN or Infinity)."""
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, dict):
        raise ApiError(400, Code.BAD_REQUEST, "Invalid JSON in data field")
    return value


class MultipartUploadMixin:
    """Refuses what is not multipart (415), bodies over the file limit plus 1 MiB for the
    other fields (413, before the body is read) and bodies of unannounced length (411), then
    streams the file part to disk; ``ReleaseMultiPartParser`` refuses an incomplete body."""

    parser_classes = [ReleaseMultiPartParser]
    upload_methods: tuple[str, ...] = ()

    def check_upload(self, request: Request) -> None:
        if request.method not in self.upload_methods:
            return
        content_type = request.META.get("CONTENT_TYPE", "")
        if not content_type.lower().startswith("multipart/form-data"):
            raise unsupported_media_type()
        limit = max_file_bytes()
        announced = request.META.get("CONTENT_LENGTH") or ""
        if not announced.strip():
            # A chunked body: its size is unknown until it has been read.
            raise ApiError(411, Code.BAD_REQUEST, "Length required")
        if not announced.strip().isascii() or not announced.strip().isdigit():
            raise ApiError(400, Code.BAD_REQUEST, "Invalid Content-Length")
        length = int(announced)
        if length > limit + MEGABYTE:
            raise file_too_large(limit)
        if length == 0:
            raise incomplete_body()
        request._request.upload_handlers = [HashingUploadHandler(request, max_bytes=limit)]


def read_data_part(part: UploadedFile) -> str:
    """The text of ``data`` sent as a file part (``curl -F data=@data.json``), which the upload
    handler streamed to a temporary file like any file part. It is held to the size Django
    allows a text field (``DATA_UPLOAD_MAX_MEMORY_SIZE``) and refused the same way beyond it."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    try:
        # ``too_large``: past the file limit the handler dropped the bytes, only counting them.
        if getattr(part, "too_large", False) or (limit is not None and part.size > limit):
            raise RequestDataTooBig("The data file part is over DATA_UPLOAD_MAX_MEMORY_SIZE.")
        part.seek(0)
        content = part.read()  # at most the limit, checked above
    finally:
        part.close()  # its temporary file is not needed past this point
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        # JSON is UTF-8 (RFC 8259): anything else is not JSON.
        raise ApiError(400, Code.BAD_REQUEST, "Invalid JSON in data field") from None


@dataclass(frozen=True)
class ReleaseBody:
    """The multipart body of a create or update: the raw ``data`` object, its validated
    changes, and the uploaded file if one was sent."""

    data: dict[str, Any]
    changes: ReleaseChanges
    upload: ReleaseUpload | None

    def fingerprint(self) -> str:
        """What makes two writes the same request for Idempotency-Key: the ``data`` object and
        the file's SHA-256 (computed while the upload arrived)."""
        return fingerprint(self.data, self.upload.sha256 if self.upload is not None else None)


def release_body(request: Request, serializer_class: type[ReleaseUpdateSerializer]) -> ReleaseBody:
    """The body of a create or update, its errors in the contract's order; the upload is
    checked too (size, the team's plan) before any Idempotency-Key is claimed, as these are
    the request's own errors."""
    texts = request.POST.getlist("data")
    # ``-F data=@data.json`` sends the JSON as a file part: read it rather than call it missing.
    parts = request.FILES.getlist("data")
    files = request.FILES.getlist("file")
    if not texts and not parts:
        raise ApiError(400, Code.BAD_REQUEST, "Missing data field")
    if len(texts) + len(parts) > 1:
        raise ApiError(400, Code.BAD_REQUEST, "Send the data field once")
    data = parse_data_field(texts[0] if texts else read_data_part(parts[0]))
    serializer = serializer_class(data=data)
    if not serializer.is_valid():
        raise ApiError(
            400,
            Code.BAD_REQUEST,
            "Invalid request body",
            data={"errors": error_list(serializer.errors)},
        )
    if len(files) > 1:
        raise ApiError(400, Code.BAD_REQUEST, "Send at most one file")
    # A text ``file`` field: empty is no file (what a browser sends when none was chosen, as a
    # part with an empty file name); anything else is a mistake to point out.
    if any(value != "" for value in request.POST.getlist("file")):
        raise ApiError(400, Code.BAD_REQUEST, "The file field must be a file upload")
    upload = files[0] if files else None
    check_upload_allowed(actor=api_actor(request), upload=upload, max_file_bytes=max_file_bytes())
    return ReleaseBody(data, ReleaseChanges.from_validated(serializer.validated_data), upload)


def write_release(
    request: Request,
    body: ReleaseBody,
    *,
    release_id: uuid.UUID | None = None,
    status: int,
    details: str,
) -> Response:
    """Create (no ``release_id``) or update a release through the write protocol. The write
    stores its file before it opens its transaction, so it opens that itself."""

    def write(conditions: Conditions) -> dict[str, Any]:
        arguments = {
            "actor": api_actor(request),
            "changes": body.changes,
            "upload": body.upload,
            "max_file_bytes": max_file_bytes(),
            "request_data": body.data,
            "conditions": conditions,
        }
        if release_id is None:
            return release_create(**arguments)
        return release_update(release_id=release_id, **arguments)

    return run_write(
        request, body.fingerprint, write, status=status, details=details, opens_transaction=True
    )


class ReleaseListView(MultipartUploadMixin, TeamApiView):
    """``/teams/{teamId}/releases``: list (GET) and create (POST)."""

    upload_methods = ("POST",)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        self.check_upload(request)

    @openapi.list_releases
    def get(self, request: Request, **kwargs: Any) -> Response:
        query = parse_query(request, ReleaseListQuerySerializer)
        page = release_list(
            team=request.auth.team,
            product_id=query.get("productId"),
            status=query.get("status"),
            search=query.get("search", "").strip(),
            sort_column=query["sortColumn"],
            sort_direction=query["sortDirection"],
            page=query["page"],
            page_size=query["pageSize"],
        )
        return success(
            {
                "releases": [release_payload(release) for release in page.releases],
                "hasNextPage": page.has_next_page,
                "totalResults": page.total,
            },
            details="Releases found",
        )

    @openapi.create_release
    def post(self, request: Request, **kwargs: Any) -> Response:
        body = release_body(request, ReleaseCreateSerializer)
        return write_release(request, body, status=201, details="Release created")


class ReleaseDetailView(MultipartUploadMixin, TeamApiView):
    """``/teams/{teamId}/releases/{releaseId}``: get, update (PUT) and delete."""

    upload_methods = ("PUT",)
    path_ids = {"teamId": "team_id", "releaseId": "release_id"}

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        self.check_upload(request)

    @openapi.get_release
    def get(self, request: Request, **kwargs: Any) -> Response:
        data = release_detail(team_id=request.auth.team_id, release_id=self.release_id)
        return conditional_get(request, data, "Release found")

    @openapi.update_release
    def put(self, request: Request, **kwargs: Any) -> Response:
        body = release_body(request, ReleaseUpdateSerializer)
        return write_release(
            request, body, release_id=self.release_id, status=200, details="Release updated"
        )

    @openapi.delete_release
    def delete(self, request: Request, **kwargs: Any) -> Response:
        def write(conditions: Conditions) -> dict[str, Any]:
            return release_delete(
                actor=api_actor(request), release_id=self.release_id, conditions=conditions
            )

        return run_write(
            request,
            lambda: fingerprint(None),
            write,
            status=200,
            details="Release deleted",
            opens_transaction=True,
        )
