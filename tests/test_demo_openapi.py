"""Swagger UI prefilled for the demo team (releases/demo_openapi.py): with the summary that
``make run`` keeps, every prefilled read answers 200 as it comes, the prefilled update of the
demo release changes nothing, and creates do not collide; without it, the document is the
generic one."""

import io
import json
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.core.management import call_command

from releases.demo_openapi import TRY_IT_OUT
from releases.models import Branch, Product, Release
from tests.test_settings_env import GOOD, load_settings


@pytest.fixture
def demo(db, tmp_path: Path, settings) -> dict:
    summary_file = tmp_path / "demo.json"
    call_command(
        "seed_demo", "--reuse", str(summary_file), "--try-it-out", "--json", stdout=io.StringIO()
    )
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


def test_a_prefilled_create_then_delete_removes_what_was_made(demo, client):
    auth = {"HTTP_AUTHORIZATION": f"Bearer {demo['apiKey']}"}
    doc = document(client)

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


def test_every_prefilled_delete_works_as_it_comes_and_spares_the_demo(demo, client, tmp_path):
    auth = {"HTTP_AUTHORIZATION": f"Bearer {demo['apiKey']}"}
    demo_objects = (
        {r["id"] for r in demo["releases"]},
        {p["id"] for p in demo["products"]},
        {b["id"] for p in demo["products"] for b in p["branches"]},
    )
    doc = document(client)  # one page load: the operations in Swagger UI's order

    answers = {}
    for operation_id in ("deleteRelease", "deleteProduct", "deleteBranch"):
        _, url, _ = prefilled_request(doc, operation_id)
        answers[operation_id] = client.delete(url, **auth).status_code

    assert answers == {"deleteRelease": 200, "deleteProduct": 200, "deleteBranch": 200}
    releases = {str(pk) for pk in Release.objects.values_list("pk", flat=True)}
    products = {str(pk) for pk in Product.objects.values_list("pk", flat=True)}
    branches = {str(pk) for pk in Branch.objects.values_list("pk", flat=True)}
    assert demo_objects[0] <= releases and demo_objects[1] <= products
    assert demo_objects[2] <= branches
    # The next `make run` makes them again.
    call_command(
        "seed_demo",
        "--reuse",
        str(tmp_path / "demo.json"),
        "--try-it-out",
        "--json",
        stdout=io.StringIO(),
    )
    assert Release.objects.filter(product__name=TRY_IT_OUT, version="0.0.1-try").count() == 1
    assert Branch.objects.filter(product__name=TRY_IT_OUT, name="try-it-out").count() == 1
    assert Product.objects.filter(name=f"{TRY_IT_OUT} (empty)").count() == 1


def test_the_webhook_operations_work_once_a_webhook_is_made(demo, client, settings):
    """The demo has no webhook: Create Webhook as it comes, reload, and each of the webhook's
    operations works as it comes (a redelivery once a test event made a delivery)."""
    # As under `make run` (DEBUG): a plain http:// receiver on 127.0.0.1 is allowed.
    settings.DEBUG = True
    settings.WEBHOOKS_ALLOW_PRIVATE_DESTINATIONS = True
    auth = {"HTTP_AUTHORIZATION": f"Bearer {demo['apiKey']}"}

    def call(doc: dict, operation_id: str) -> int:
        method, url, body = prefilled_request(doc, operation_id)
        if body is None:
            return getattr(client, method)(url, **auth).status_code
        return getattr(client, method)(
            url, data=body, content_type="application/json", **auth
        ).status_code

    before = document(client)
    created = call(before, "createWebhook")
    after_create = document(client)  # the page reloaded
    answers = {
        operation_id: call(after_create, operation_id)
        for operation_id in (
            "getWebhook",
            "updateWebhook",
            "testWebhook",
            "rotateWebhookSecret",
            "listWebhookDeliveries",
        )
    }
    redelivered = call(document(client), "redeliverWebhookDelivery")
    deleted = call(document(client), "deleteWebhook")

    assert created == 201
    assert all(status in (200, 201, 202) for status in answers.values()), answers
    assert redelivered in (200, 201, 202)
    assert deleted == 200
    assert "make a webhook first" in operations(before)["getWebhook"][2]["description"]


def test_a_deleted_demo_release_leaves_the_generic_example(demo, client):
    """Deleted some other way (the README's examples delete releases), the demo release is no
    longer prefilled; the document is still served."""
    release = Release.objects.get(pk=demo["releases"][1]["id"])
    release.metadata.all().delete()
    release.delete()

    _, _, body = prefilled_request(document(client), "updateRelease")

    assert body["version"] == "1.2.0"  # the document's own example
