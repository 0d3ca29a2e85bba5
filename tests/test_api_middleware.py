"""Requests under /api/v1/ go past the site's middleware (sessions, CSRF cookie, Django's user,
messages, the admin's login throttle): none of it serves an API request, and it cost the
cheapest answers a large share of their CPU. Everything else keeps every layer."""

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings

from lukittu.middleware import SiteOnlyStart
from tests.helpers import release_url

SITE_ONLY = ("session", "_messages", "user", "csrf_cookie_needs_reset")
API_HEADERS = {"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff"}


def site_layers(request) -> set[str]:
    """What the site's middleware leaves on a request (DRF sets ``user`` itself once a key
    authenticates, so the unauthenticated answers below show it too)."""
    return {name for name in SITE_ONLY if name in request.__dict__}


def test_the_api_404_skips_the_sites_middleware_and_keeps_its_headers(db):
    response = Client().get("/api/v1/nothing", HTTP_COOKIE="sessionid=abc; csrftoken=x")
    assert response.status_code == 404
    assert site_layers(response.wsgi_request) == set()
    assert "CSRF_COOKIE" not in response.wsgi_request.META
    for name, value in API_HEADERS.items():
        assert response.headers[name] == value
    assert response.headers["Content-Length"] == str(len(response.content))
    assert "Vary" not in response.headers and not response.cookies


def test_an_api_call_with_a_key_gets_no_session_or_messages(client, world):
    response = client.get(
        release_url(world.team.id, world.release.id), HTTP_AUTHORIZATION=f"Bearer {world.key}"
    )
    assert response.status_code == 200
    assert {"session", "_messages"} & site_layers(response.wsgi_request) == set()
    assert response.headers["X-Frame-Options"] == "DENY"


def test_the_admin_keeps_sessions_csrf_messages_and_the_login_throttle(db):
    User.objects.create_superuser("operator", "op@example.com", "pw-for-tests-only")
    browser = Client(enforce_csrf_checks=True)
    page = browser.get("/admin/login/")
    assert page.status_code == 200
    assert {"session", "_messages", "user"} <= site_layers(page.wsgi_request)
    token = page.cookies["csrftoken"].value
    # Without the CSRF token the login is refused, as before.
    refused = browser.post("/admin/login/", {"username": "operator", "password": "x"})
    assert refused.status_code == 403
    signed_in = browser.post(
        "/admin/login/?next=/admin/",
        {"username": "operator", "password": "pw-for-tests-only", "csrfmiddlewaretoken": token},
    )
    assert signed_in.status_code == 302 and "sessionid" in signed_in.cookies


@pytest.mark.parametrize("path", ["/api/docs/", "/api/schema/"])
def test_the_api_pages_keep_every_layer(db, path):
    response = Client().get(path)
    assert response.status_code == 200
    assert {"session", "_messages"} <= site_layers(response.wsgi_request)


def test_the_end_marker_must_follow_the_start():
    with override_settings(
        MIDDLEWARE=["lukittu.middleware.SiteOnlyStart", "lukittu.middleware.RequestIdMiddleware"]
    ):
        from django.core.exceptions import ImproperlyConfigured
        from django.core.handlers.base import BaseHandler

        with pytest.raises(ImproperlyConfigured, match="SiteOnlyEnd"):
            BaseHandler().load_middleware()
    assert SiteOnlyStart.__doc__
