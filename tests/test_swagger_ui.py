"""Swagger UI does not keep the API key in the browser's localStorage unless the operator asks
for it (``SWAGGER_UI_PERSIST_AUTH``): the rendered page's configuration says so."""

import json
import re

import pytest

from tests.test_settings_env import GOOD, load_settings

SETTINGS_IN_PAGE = re.compile(r"const swaggerSettings = (\{.*?\});", re.DOTALL)
PRINT_PERSIST = (
    "import lukittu.settings as s; "
    "print(s.SPECTACULAR_SETTINGS['SWAGGER_UI_SETTINGS']['persistAuthorization'])"
)


def page_settings(client) -> dict:
    response = client.get("/api/docs/")
    assert response.status_code == 200
    found = SETTINGS_IN_PAGE.search(response.content.decode())
    assert found, response.content[:2000]
    return json.loads(found.group(1))


def test_the_docs_page_does_not_persist_the_key(client):
    assert page_settings(client)["persistAuthorization"] is False


@pytest.mark.parametrize(("value", "expected"), [(None, "False"), ("true", "True")])
def test_the_setting_is_read_from_the_environment(value, expected):
    env = GOOD if value is None else {**GOOD, "SWAGGER_UI_PERSIST_AUTH": value}

    result = load_settings(env, PRINT_PERSIST)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected
