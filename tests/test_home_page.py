"""The page at /: a small HTML page with the way in (API docs, admin, docs, probes), outside
the API's envelope, and nothing loaded from another site."""

import re

from django.test import override_settings


def test_the_root_is_a_page_linking_the_docs_the_admin_and_the_probes(client):
    response = client.get("/")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    page = response.content.decode()
    links = set(re.findall(r'href="([^"]+)"', page))
    assert {"/api/docs/", "/api/schema/", "/admin/", "/healthz", "/readyz"} <= links
    # Without DOCS_URL, the documentation is the repository's docs/ folder.
    assert "make docs" in page
    # No envelope, and nothing from another site (no CDN): every link and source is local.
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r'(src|href)="(https?:)?//', page)


@override_settings(DOCS_URL="https://docs.example.com/lukittu/")
def test_the_documentation_link_is_the_configured_site(client):
    page = client.get("/").content.decode()

    assert '<a href="https://docs.example.com/lukittu/">Documentation</a>' in page


def test_only_reads_are_answered(client):
    assert client.head("/").status_code == 200
    assert client.post("/").status_code == 405


def test_an_unknown_page_outside_the_api_is_still_a_404(client):
    assert client.get("/no-such-page").status_code == 404
