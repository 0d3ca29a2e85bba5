"""The multipart parser for release writes: DRF's, made strict about what a complete body is.

Django's parser stops quietly where the body stops: a file part cut off by a client that
vanished, a short body, or a missing closing boundary would come through as "no file". Here a
body counts only when every byte its ``Content-Length`` announced arrived and the closing
boundary was among them; anything less is "Incomplete request body" and nothing is written.
"""

from typing import Any

from django.http.multipartparser import MultiPartParser as DjangoMultiPartParser
from django.http.multipartparser import MultiPartParserError
from django.utils.http import parse_header_parameters
from rest_framework.exceptions import ParseError
from rest_framework.parsers import DataAndFiles, MultiPartParser

from lukittu.api import ApiError, Code


def incomplete_body() -> ApiError:
    return ApiError(400, Code.BAD_REQUEST, "Incomplete request body")


class _BodyEndedEarly(Exception):
    pass


class CompleteBody:
    """Reads the request body for the parser, counting the bytes and watching for the closing
    boundary (``--boundary--``, which cannot occur inside a part: the boundary never does)."""

    def __init__(self, stream: Any, *, length: int, boundary: bytes) -> None:
        self.stream = stream
        self.length = length
        self.received = 0
        self.closing = b"--" + boundary + b"--"
        self.closed_properly = False
        self._tail = b""

    def read(self, size: int = -1) -> bytes:
        try:
            chunk = self.stream.read(size)
        except Exception as error:
            # A reset connection or a server-side read timeout: the client is gone.
            raise _BodyEndedEarly from error
        self.received += len(chunk)
        if not self.closed_properly and chunk:
            keep = len(self.closing) - 1
            # Across the seam with the previous chunk, then within this one: no copy of the
            # whole chunk.
            self.closed_properly = (
                self.closing in self._tail + chunk[:keep] or self.closing in chunk
            )
            self._tail = (self._tail + chunk)[-keep:] if len(chunk) < keep else chunk[-keep:]
        return chunk

    @property
    def complete(self) -> bool:
        return self.closed_properly and self.received == self.length


class _KeepEveryFilePart(DjangoMultiPartParser):
    """A file part the client sent is a file: Django drops parts whose name cleans down to
    nothing (``.``, ``..``, ``dir/``); here they stay, under a name without an extension, and
    the service refuses them for having none."""

    def sanitize_file_name(self, file_name: str) -> str | None:
        return super().sanitize_file_name(file_name) or "unnamed"


def _normalised_content_type(content_type: str) -> str:
    """The media type compares case-insensitively; the boundary parameter is kept as sent."""
    media_type, separator, parameters = content_type.partition(";")
    return media_type.strip().lower() + separator + parameters


class ReleaseMultiPartParser(MultiPartParser):
    def parse(
        self, stream: Any, media_type: str | None = None, parser_context: Any = None
    ) -> DataAndFiles:
        request = parser_context["request"]
        meta = dict(request.META)
        meta["CONTENT_TYPE"] = _normalised_content_type(meta.get("CONTENT_TYPE", ""))
        _, parameters = parse_header_parameters(meta["CONTENT_TYPE"])
        body = CompleteBody(
            stream,
            # The view has refused a missing or malformed Content-Length already.
            length=int(meta.get("CONTENT_LENGTH") or 0),
            boundary=parameters.get("boundary", "").encode("ascii", "replace"),
        )
        handlers = request.upload_handlers
        try:
            data, files = _KeepEveryFilePart(
                meta, body, handlers, parser_context.get("encoding")
            ).parse()
        except _BodyEndedEarly:
            _discard(handlers)
            raise incomplete_body() from None
        except MultiPartParserError:
            _discard(handlers)
            if body.received and not body.complete:
                raise incomplete_body() from None
            raise ParseError("Malformed multipart body") from None
        except BaseException:
            _discard(handlers)
            raise
        if not body.complete:
            _discard(handlers)
            for upload in files.values():
                upload.close()
            raise incomplete_body()
        return DataAndFiles(data, files)


def _discard(handlers: list[Any]) -> None:
    """Remove a temporary file a handler was still writing when the body failed."""
    for handler in handlers:
        handler.upload_interrupted()
