"""Request ids on every response, the envelope for anything that escapes a view under /api/,
and a note when a request's X-Forwarded-For says ``NUM_PROXIES`` is wrong."""

import logging
import re
import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from lukittu.api import internal_error, json_error
from lukittu.checks import note_forwarded_for

logger = logging.getLogger("lukittu.api")
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestIdMiddleware:
    """Gives every request an id (the caller's ``X-Request-ID`` when it is safe) for the logs."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request.request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        response = self.get_response(request)
        response["X-Request-ID"] = request.request_id
        return response


class ForwardedForMiddleware:
    """Notes requests that come with ``X-Forwarded-For`` while ``NUM_PROXIES`` is 0, for the
    ``check --deploy`` warning and the log (``lukittu.checks``). Changes nothing else."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if settings.NUM_PROXIES == 0 and "HTTP_X_FORWARDED_FOR" in request.META:
            note_forwarded_for(request.path)
        return self.get_response(request)


class ApiErrorMiddleware:
    """Last line of defence: an exception under /api/ that no view handled becomes the 500
    envelope instead of Django's HTML page."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not request.path.startswith("/api/"):
            return None
        logger.error(
            "Unhandled error on %s (request id %s)",
            request.path,
            getattr(request, "request_id", "-"),
            exc_info=exception,
        )
        return json_error(internal_error())
