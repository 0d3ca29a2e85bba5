"""The Client API: builds for licensed software. No API key: the license is the credential.

- ``classloader``: Lukittu's encrypted download for Java loaders (``delivery.crypto``);
- ``download``: the plain build (a presigned S3 URL, or the file streamed from local storage);
- ``latest``: what ``download`` would deliver, as an envelope, for updaters to decide first.

Each runs the checks of ``delivery.access`` in the README's order; a delivered build takes its
seats and leaves a ``Download`` row (``delivery.seats.take``) before its first byte.
"""

import base64
from collections.abc import Callable
from typing import Any

from django.http import HttpResponseBase, HttpResponseRedirect, StreamingHttpResponse
from django.utils.http import content_disposition_header
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from delivery import access, openapi, seats
from delivery.crypto import encrypt_blocks, frame_key, frames_length
from delivery.models import Download
from delivery.params import ClientQuery, parse_client_query
from delivery.shapes import DeliverableRelease
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
from lukittu.views import client_ip
from releases.models import ReleaseFile


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
        self,
        request: Request,
        query: ClientQuery,
        grant: access.Grant,
        endpoint: str,
        respond: Callable[[OpenObject | None], HttpResponseBase],
    ) -> HttpResponseBase:
        """Take the device's seats and record the download (``seats.take``) in a transaction
        that commits only once the answer is built: ``respond`` gets the open build (None
        with ``opens_stored`` false: a presigned URL) and makes the response, headers and
        all, inside it. So whatever can still fail (opening the object, a header that cannot
        be sent, signing the URL) rolls the seats back: nothing runs after the commit."""
        pending = self.pending or (open_soon(grant.file.key) if self.opens_stored else None)
        self.pending = pending

        def answer() -> HttpResponseBase:
            return respond(pending.result() if pending is not None else None)

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
                answer,
            )
        except BaseException:
            # Closes the build if it was opened (whenever it is, on S3).
            self.abandon_build()
            raise

    def finalize_response(
        self, request: Request, response: HttpResponseBase, *args: Any, **kwargs: Any
    ) -> HttpResponseBase:
        """Every answer, errors included, is for this caller now: no cache keeps it."""
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Cache-Control"] = "no-store"
        return response


def header_text(value: str) -> str:
    """Text as a header value: each character ``str.isprintable()`` refuses becomes a space.
    A line break would end the header, and the MIME encoding Django gives a non-Latin-1 value
    breaks the line at U+2028 and the like, which gunicorn refuses. Names are refused with
    them on input; this covers rows written before that rule (and the JAR's main class)."""
    if value.isprintable():
        return value
    return "".join(character if character.isprintable() else " " for character in value)


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
        "X-Version": header_text(grant.release.version),
        "Content-Security-Policy": "default-src 'none'",
        "X-Content-Type-Options": "nosniff",
    }
    if grant.latest_version is not None:
        headers["X-Latest-Version"] = header_text(grant.latest_version)
    if grant.file.main_class_name:
        headers["X-Main-Class"] = header_text(grant.file.main_class_name)
    return headers


def streamed(chunks: Any, headers: dict[str, str]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(chunks, content_type="application/octet-stream")
    for name, value in headers.items():
        response[name] = value
    return response


class ClassloaderView(ClientApiView):
    with_session_key = True
    opens_early = True

    @openapi.classloader
    def get(self, request: Request, teamId: str) -> HttpResponseBase:
        query, grant = self.checked(request, teamId)
        size = grant.file.size

        def respond(stored: OpenObject | None) -> HttpResponseBase:
            assert stored is not None
            key = frame_key(self.session_key)
            headers = release_headers(grant)
            # Known in advance, so the body is not sent in HTTP chunks (and a loader can show
            # its progress).
            headers["Content-Length"] = str(frames_length(size, CHUNK))
            return streamed(encrypt_blocks(stored.blocks(size), key, CHUNK), headers)

        return self.hand_out(request, query, grant, Download.Endpoint.CLASSLOADER, respond)


def digest_headers(file: ReleaseFile) -> dict[str, str]:
    """The streamed file's SHA-256, in hex and as RFC 9530 has it. The presigned redirect
    carries the hex one too: a client checks the storage's bytes against the service's word,
    never the storage's (``Repr-Digest`` would describe the redirect's own empty body)."""
    return {
        "X-Checksum-SHA256": file.sha256,
        "Repr-Digest": f"sha-256=:{base64.b64encode(bytes.fromhex(file.sha256)).decode()}:",
    }


def presigned_redirect(grant: access.Grant, name: str) -> HttpResponseRedirect:
    """The plain download on S3: a redirect to a presigned URL, with the service's word on
    the bytes (the storage's own headers are not to be trusted for it)."""
    url = presigned_download_url(grant.file.key, name, PRESIGNED_SECONDS)
    response = HttpResponseRedirect(url)
    response["X-Checksum-SHA256"] = grant.file.sha256
    response["X-Version"] = header_text(grant.release.version)
    return response


class DownloadView(ClientApiView):
    @openapi.download
    def get(self, request: Request, teamId: str) -> HttpResponseBase:
        query, grant = self.checked(request, teamId)
        file = grant.file
        self.opens_stored = not uses_s3()
        name = header_text(file.name)
        # Signed before the seats' transaction: signing may fetch credentials over the network
        # (an instance role), which must not happen while the license's row is locked. A
        # refused request discards the URL.
        redirect = None if self.opens_stored else presigned_redirect(grant, name)

        def respond(stored: OpenObject | None) -> HttpResponseBase:
            if stored is None:
                assert redirect is not None
                return redirect
            headers = release_headers(grant)
            headers["Content-Length"] = str(file.size)
            headers["Content-Disposition"] = content_disposition_header(True, name)
            headers.update(digest_headers(file))
            return streamed(stored.blocks(file.size), headers)

        return self.hand_out(request, query, grant, Download.Endpoint.DOWNLOAD, respond)


class LatestView(ClientApiView):
    sends_release_headers = False

    @openapi.latest
    def get(self, request: Request, teamId: str) -> Response:
        query, grant = self.checked(request, teamId)
        seats.check(grant.team, grant.license, self.device(query))
        return success(DeliverableRelease.dump(grant), details="Release found")
