"""The Client API: builds for licensed software. No API key: the license is the credential.

- ``classloader``: Lukittu's encrypted download for Java loaders (``delivery.crypto``);
- ``download``: the plain build (a presigned S3 URL, or the file streamed from local storage);
- ``latest``: what ``download`` would deliver, as an envelope, for updaters to decide first.

Each runs the checks of ``delivery.access`` in the README's order; a delivered build takes its
seats and leaves a ``Download`` row (``delivery.seats.take``) before its first byte.
"""

import base64
import re
from typing import Any

from django.http import HttpResponseRedirect, StreamingHttpResponse
from django.utils.http import content_disposition_header
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from delivery import access, openapi, seats
from delivery.crypto import encrypt_blocks, frame_key, frames_length
from delivery.models import Download
from delivery.params import ClientQuery, parse_client_query
from delivery.streams import (
    CHUNK,
    PRESIGNED_SECONDS,
    OpenObject,
    PendingObject,
    open_soon,
    presigned_download_url,
    uses_s3,
)
from lukittu.api import ApiError, Code, iso_utc, success
from lukittu.ids import parse_uuid
from releases.views import client_ip


class ClientApiView(APIView):
    authentication_classes = ()
    permission_classes = ()
    throttle_classes = ()
    # GET only: a HEAD would spend a session key and take a seat without delivering anything.
    http_method_names = ["get"]
    with_session_key = False
    # Start opening the build while the session key is checked (it has one to check).
    opens_early = False
    # The build is read by this service (not a presigned URL's client).
    opens_stored = True
    pending: PendingObject | None = None
    # The release headers name the product; without them no product row is needed.
    sends_release_headers = True

    def checked(self, request: Request, team_id_text: str) -> tuple[ClientQuery, access.Grant]:
        """Every check up to the seats, in order. A classloader request's build starts
        opening as soon as the checks that only read have passed (``opens_early``), while
        the session key is decrypted and claimed; the checks' outcome is computed early and
        reported in order."""
        try:
            team_id = parse_uuid(team_id_text)
        except ValueError:
            raise ApiError(400, Code.BAD_REQUEST, "Invalid team UUID") from None
        query = parse_client_query(request.query_params, with_session_key=self.with_session_key)
        self.ip = client_ip(request)
        access.check_rate_limits(team_id, query.license_key, self.ip)
        found = access.admit(
            team_id,
            query,
            with_key_pair=self.with_session_key,
            with_product=self.sends_release_headers,
        )
        try:
            grant, refusal = access.resolve(found, query), None
        except ApiError as error:
            grant, refusal = None, error
        if grant is not None and self.opens_early:
            self.pending = open_soon(grant.file.key)
        try:
            if query.session_key is not None:
                assert found.team is not None  # admit checked it
                self.session_key = access.open_session_key(
                    found.team, found.key_pair, query.session_key
                )
            if refusal is not None:
                raise refusal
        except BaseException:
            self.abandon_build()
            raise
        assert grant is not None
        return query, grant

    def device(self, query: ClientQuery) -> seats.Device:
        return seats.Device(hardware_identifier=query.hardware_identifier, ip_address=self.ip)

    def abandon_build(self) -> None:
        if self.pending is not None:
            self.pending.abandon()
            self.pending = None

    def hand_out(
        self, request: Request, query: ClientQuery, grant: access.Grant, endpoint: str
    ) -> OpenObject | None:
        """Take the device's seats and record the download (``seats.take``), in a
        transaction that commits only once the build is open, which is returned: a build that
        cannot be read takes no seat. With ``opens_stored`` false (a presigned URL), nothing
        is opened and None is returned."""
        pending = self.pending or (open_soon(grant.file.key) if self.opens_stored else None)
        self.pending = pending
        try:
            return seats.take(
                grant.team,
                grant.license,
                self.device(query),
                seats.Handout(
                    release_id=grant.release.pk,
                    version=grant.release.version,
                    file_id=grant.file.pk,
                    file_sha256=grant.file.sha256,
                    endpoint=endpoint,
                    user_agent=request.headers.get("User-Agent", ""),
                ),
                pending.result if pending is not None else lambda: None,
            )
        except BaseException:
            self.abandon_build()
            raise


CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def header_text(value: str) -> str:
    """Text as a header value: a control character (a line break would end the header, and
    Django refuses one) becomes a space. Names are refused with them on input; this covers
    rows written before that rule."""
    return CONTROL_CHARACTERS.sub(" ", value)


def release_headers(grant: access.Grant) -> dict[str, str]:
    """The headers Lukittu's classloader sends with a build."""
    product = grant.product
    assert product is not None, "resolved with_product"
    headers = {
        "X-File-Size": str(grant.file.size),
        "X-Product-Name": header_text(product.name),
        "X-Release-Status": grant.release.status,
        "X-Release-Created-At": iso_utc(grant.release.created_at),
        "X-File-Created-At": iso_utc(grant.file.created_at),
        "X-Version": grant.release.version,
        "Content-Security-Policy": "default-src 'none'",
        "X-Content-Type-Options": "nosniff",
    }
    if grant.latest_version is not None:
        headers["X-Latest-Version"] = grant.latest_version
    if grant.file.main_class_name:
        headers["X-Main-Class"] = header_text(grant.file.main_class_name)
    return headers


def streamed(chunks: Any, headers: dict[str, str]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(chunks, content_type="application/octet-stream")
    for name, value in headers.items():
        response[name] = value
    response["Cache-Control"] = "no-store"
    return response


class ClassloaderView(ClientApiView):
    with_session_key = True
    opens_early = True

    @openapi.classloader
    def get(self, request: Request, teamId: str) -> StreamingHttpResponse:
        query, grant = self.checked(request, teamId)
        stored = self.hand_out(request, query, grant, Download.Endpoint.CLASSLOADER)
        assert stored is not None
        size = grant.file.size
        frames = encrypt_blocks(stored.blocks(size), frame_key(self.session_key), CHUNK)
        headers = release_headers(grant)
        # Known in advance, so the body is not sent in HTTP chunks (and a loader can show its
        # progress).
        headers["Content-Length"] = str(frames_length(size, CHUNK))
        return streamed(frames, headers)


class DownloadView(ClientApiView):
    @openapi.download
    def get(self, request: Request, teamId: str) -> Any:
        query, grant = self.checked(request, teamId)
        file = grant.file
        self.opens_stored = not uses_s3()
        stored = self.hand_out(request, query, grant, Download.Endpoint.DOWNLOAD)
        if stored is None:
            url = presigned_download_url(file.key, file.name, PRESIGNED_SECONDS)
            response = HttpResponseRedirect(url)
            response["Cache-Control"] = "no-store"
            return response
        headers = release_headers(grant)
        headers.update(
            {
                "Content-Length": str(file.size),
                "Content-Disposition": content_disposition_header(True, file.name),
                "X-Checksum-SHA256": file.sha256,
                "Repr-Digest": f"sha-256=:{base64.b64encode(bytes.fromhex(file.sha256)).decode()}:",
            }
        )
        return streamed(stored.blocks(file.size), headers)


def latest_payload(grant: access.Grant) -> dict[str, Any]:
    release, file = grant.release, grant.file
    return {
        "releaseId": str(release.id),
        "productId": str(release.product_id),
        "branch": release.branch.name if release.branch_id else None,
        "version": release.version,
        "status": release.status,
        "latest": release.latest,
        "latestVersion": grant.latest_version,
        "createdAt": iso_utc(release.created_at),
        "file": {
            "id": str(file.id),
            "name": file.name,
            "size": file.size,
            "md5": file.checksum,
            "sha256": file.sha256,
            "mainClassName": file.main_class_name,
            "createdAt": iso_utc(file.created_at),
        },
    }


class LatestView(ClientApiView):
    sends_release_headers = False

    @openapi.latest
    def get(self, request: Request, teamId: str) -> Response:
        query, grant = self.checked(request, teamId)
        seats.check(grant.team, grant.license, self.device(query))
        return success(latest_payload(grant), details="Release found")
