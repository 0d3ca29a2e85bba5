"""Swagger UI prefilled for the demo team (releases/demo_openapi.py): with the summary that
``make run`` keeps, every prefilled read answers 200 as it comes, the prefilled update of the
demo release changes nothing, and creates do not collide; without it, the document is the
generic one."""

import json
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.core.management import call_command

from releases.models import Release
from tests.test_settings_env import GOOD, load_settings


@pytest.fixture
def demo(db, tmp_path: Path, settings) -> dict:
    summary_file = tmp_path / "demo.json"
    call_command("seed_demo", "--reuse", str(summary_file), "--json", stdout=open("/dev/null", "w"))
    settings.DEMO_SUMMARY_FILE = str(summary_file)
    return json.loads(summary_file.read_text())


def document(client) -> dict:
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    return json.loads(response.content)


def operations(doc: dict) -> dict[str, tuple[str, str, dict]]:
    return {
        operation["operationId"]: (path, method, operation)
        for path, item in doc["paths"].items()
        for method, operation in item.items()
    }


def prefilled_parameters(doc: dict, operation: dict) -> dict[str, dict]:
    found = {}
    for parameter in operation.get("parameters", []):
        if "$ref" in parameter:
            parameter = doc["components"]["parameters"][parameter["$ref"].split("/")[-1]]
        found[parameter["name"]] = parameter
    return found


def prefilled_request(doc: dict, operation_id: str) -> tuple[str, str, dict | None]:
    """The method, URL and body example of ``operation_id`` as Swagger UI fills them in."""
    path, method, operation = operations(doc)[operation_id]
    query = {}
    for name, parameter in prefilled_parameters(doc, operation).items():
        if parameter["in"] == "path":
            path = path.replace("{" + name + "}", str(parameter["example"]))
        elif parameter["in"] == "query" and parameter.get("required"):
            query[name] = parameter.get("example", parameter["schema"].get("example"))
    content = operation.get("requestBody", {}).get("content", {})
    body = None
    if "multipart/form-data" in content:
        body = content["multipart/form-data"]["schema"]["properties"]["data"]["example"]
    elif "application/json" in content:
        body = content["application/json"]["example"]
    url = path + ("?" + urlencode(query) if query else "")
    return method, url, body


def test_without_a_demo_summary_the_document_has_the_generic_examples(db, client, settings):
    settings.DEMO_SUMMARY_FILE = None
    doc = document(client)

    team = prefilled_parameters(doc, operations(doc)["listReleases"][2])["teamId"]
    assert team["example"] == "123e4567-e89b-12d3-a456-426614174000"


def test_every_id_is_the_demo_teams(demo, client):
    doc = document(client)

    for operation_id, (_, _, operation) in operations(doc).items():
        parameters = prefilled_parameters(doc, operation)
        assert parameters["teamId"]["example"] == demo["teamId"], operation_id
    get_release = prefilled_parameters(doc, operations(doc)["getRelease"][2])
    assert get_release["releaseId"]["example"] == demo["releases"][1]["id"]
    latest = prefilled_parameters(doc, operations(doc)["getLatestRelease"][2])
    assert latest["licenseKey"]["example"] == demo["licenseKey"]
    assert latest["productId"]["example"] == demo["products"][0]["id"]
    # Shared components keep their generic example: only the operations' copies changed.
    assert doc["components"]["parameters"]["TeamId"]["example"] != demo["teamId"]
    # The API key is never in the document.
    assert demo["apiKey"] not in json.dumps(doc)


@pytest.mark.parametrize(
    "operation_id",
    [
        "listReleases",
        "getRelease",
        "listProducts",
        "getProduct",
        "listBranches",
        "getBranch",
        "listWebhooks",
        "getLatestRelease",
        "downloadRelease",
        "getClassloader",
    ],
)
def test_each_prefilled_read_answers_200_as_it_comes(demo, client, operation_id):
    method, url, _ = prefilled_request(document(client), operation_id)

    response = client.get(url, HTTP_AUTHORIZATION=f"Bearer {demo['apiKey']}")

    assert method == "get"
    assert response.status_code in (200, 302), (operation_id, response.content[:300])


def test_the_prefilled_update_changes_nothing_about_the_demo_release(demo, client):
    release = Release.objects.get(pk=demo["releases"][1]["id"])
    before = (release.version, release.status, release.latest, release.branch_id)
    latest_before = set(Release.objects.filter(latest=True).values_list("pk", flat=True))

    method, url, body = prefilled_request(document(client), "updateRelease")
    response = client.put(
        url,
        data=_multipart({"data": json.dumps(body)}),
        content_type="multipart/form-data; boundary=BOUNDARY",
        HTTP_AUTHORIZATION=f"Bearer {demo['apiKey']}",
    )

    assert (method, response.status_code) == ("put", 200), response.content
    release.refresh_from_db()
    assert (release.version, release.status, release.latest, release.branch_id) == before
    assert set(Release.objects.filter(latest=True).values_list("pk", flat=True)) == latest_before


def test_the_prefilled_update_follows_the_release_as_it_is_now(demo, client):
    """After the README's example published 1.1.0 as latest, the prefill keeps it so."""
    release = Release.objects.get(pk=demo["releases"][1]["id"])
    Release.objects.filter(product=release.product, branch=None).update(latest=False)
    Release.objects.filter(pk=release.pk).update(status="PUBLISHED", latest=True)

    _, _, body = prefilled_request(document(client), "updateRelease")

    assert (body["version"], body["status"], body["setAsLatest"]) == ("1.1.0", "PUBLISHED", True)


def test_prefilled_creates_work_and_deletes_target_only_what_was_made(demo, client):
    auth = {"HTTP_AUTHORIZATION": f"Bearer {demo['apiKey']}"}
    doc = document(client)
    # Before anything was made, the delete is not prefilled with a demo object.
    delete_params = prefilled_parameters(doc, operations(doc)["deleteRelease"][2])
    seeded = {item["id"] for item in demo["releases"]}
    assert delete_params["releaseId"]["example"] not in seeded

    _, url, body = prefilled_request(doc, "createProduct")
    created = client.post(url, data=body, content_type="application/json", **auth)
    assert created.status_code == 201, created.content
    _, url, _ = prefilled_request(document(client), "deleteProduct")
    deleted = client.delete(url, **auth)

    assert deleted.status_code == 200, deleted.content
    assert json.loads(deleted.content)["data"]["name"] == body["name"]


def test_the_summary_file_is_refused_when_debug_is_off():
    result = load_settings({**GOOD, "DEBUG": "false", "DEMO_SUMMARY_FILE": "var/demo.json"})

    assert result.returncode != 0
    assert "DEMO_SUMMARY_FILE" in result.stderr.strip().splitlines()[-1]


def _multipart(fields: dict[str, str]) -> bytes:
    parts = [
        f'--BOUNDARY\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ]
    return ("".join(parts) + "--BOUNDARY--\r\n").encode()
