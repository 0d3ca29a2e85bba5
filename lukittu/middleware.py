"""Request ids on every response, the envelope for anything that escapes a view under /api/,
a note when a request's X-Forwarded-For says ``NUM_PROXIES`` is wrong, and the API's way past
the browser's middleware."""

import logging
import re
import threading
import uuid
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
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


# The JSON API: its requests carry a Bearer key or a license key, never a session or a CSRF
# cookie. Swagger UI (/api/docs/) and the OpenAPI document are pages and keep every middleware.
API_PREFIX = "/api/v1/"
_site_only_inner = threading.local()


class SiteOnlyEnd:
    """Marks the end of the site's own middleware (``SiteOnlyStart`` to here in
    ``MIDDLEWARE``): sessions, CSRF, authentication, messages and the admin's login throttle.
    It hands what follows it (the view) to the ``SiteOnlyStart`` that Django builds next, and
    otherwise passes every request on."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        # Django builds the chain from the innermost middleware out, in one thread.
        _site_only_inner.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)


class SiteOnlyStart:
    """Sends requests under ``API_PREFIX`` straight past the site's middleware to the view:
    an API request has no session to load, no messages, no CSRF cookie, no Django user and no
    admin login to throttle, and those five layers were a large part of the API's cheapest
    answers. Their entries stay in ``MIDDLEWARE``, in the order Django asks for, so every
    other page (the admin above all) and Django's system checks see them as before. Their
    view hook (CSRF's) still runs for every view: the API's views are exempt, as before."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        inner = getattr(_site_only_inner, "get_response", None)
        if inner is None:
            raise ImproperlyConfigured("SiteOnlyEnd must follow SiteOnlyStart in MIDDLEWARE")
        del _site_only_inner.get_response
        self.api_response = inner

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith(API_PREFIX):
            return self.api_response(request)
        return self.get_response(request)
