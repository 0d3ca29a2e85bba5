"""The Client API in the OpenAPI document: three public operations (``security: []``), their
query parameters with exactly the rules the service checks, the 200s as the service sends them
(a binary body with headers, a redirect, the envelope), and each error table in the order the
service checks it, with examples that are what the service sends."""

import re
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.http import QueryDict
from django.test import Client
from django.utils import timezone
from openapi_schema_validator import OAS30Validator, oas30_format_checker

from delivery import params, streams
from delivery.models import Seat, hwid_digest
from lukittu.api import ApiError
from releases.models import Release, ReleaseLicense, ReleaseStatus
from releases.storage import release_storage
from teams.models import License
from teams.services import license_create
from tests.helpers import attach_file
from tests.loader import Loader, classloader_url, download_url, latest_url
from tests.test_delivery import HWID, OTHER_HWID, Shop, body_of
from tests.test_openapi import (
    assert_ends_with_error_table,
    resolve,
    responses_by_status,
    without_timestamp,
)

CLASSLOADER_PATH = "/api/v1/client/teams/{teamId}/verification/classloader"
DOWNLOAD_PATH = "/api/v1/client/teams/{teamId}/releases/download"
LATEST_PATH = "/api/v1/client/teams/{teamId}/releases/latest"
OPERATIONS = {
    "getClassloader": CLASSLOADER_PATH,
    "downloadRelease": DOWNLOAD_PATH,
    "getLatestRelease": LATEST_PATH,
}
URLS = {"getClassloader": classloader_url, "downloadRelease": download_url}
URLS["getLatestRelease"] = latest_url
STANDARD_ERROR = {"$ref": "#/components/responses/StandardError"}


@pytest.fixture(autouse=True)
def _generous_rate_limits(settings: Any) -> None:
    settings.CLIENT_IP_RATE = "10000/minute"
    settings.CLIENT_LICENSE_RATE = "10000/minute"


@pytest.fixture
def document(client):
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()


@pytest.fixture
def shop(world) -> Shop:
    return Shop(world, b"PK\x03\x04 a build" * 5000)


def operation_of(document, operation_id):
    return document["paths"][OPERATIONS[operation_id]]["get"]


# --- The operations -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation_id", "summary", "statuses"),
    [
        (
            "getClassloader",
            "Classloader",
            ["200", "400", "403", "404", "414", "429", "500", "503"],
        ),
        (
            "downloadRelease",
            "Download Release",
            ["200", "302", "400", "403", "404", "414", "429", "500", "503"],
        ),
        ("getLatestRelease", "Latest Release", ["200", "400", "403", "404", "414", "429", "500"]),
    ],
)
def test_client_operations_are_public_and_list_every_status(
    document, operation_id, summary, statuses
):
    operation = operation_of(document, operation_id)

    assert document["paths"][OPERATIONS[operation_id]].keys() == {"get"}
    assert operation["operationId"] == operation_id
    assert operation["summary"] == summary
    assert operation["tags"] == ["Client - Releases"]
    # No API key: the license key in the query is the credential.
    assert operation["security"] == []
    assert list(operation["responses"]) == [*statuses, "4XX", "5XX"]
    assert operation["responses"]["4XX"] == STANDARD_ERROR
    assert operation["responses"]["5XX"] == STANDARD_ERROR
    for status in statuses:
        headers = resolve(document, operation["responses"][status]).get("headers", {})
        # 414 is gunicorn's (the request line is over its limit): no request id, no envelope.
        assert ("X-Request-ID" in headers) == (status != "414"), status
        # Not the Developer API's: no rate-limit headers, not even on a 429.
        assert "X-RateLimit-Limit" not in headers, status
    assert "Client - Releases" in [tag["name"] for tag in document["tags"]]


@pytest.mark.parametrize(
    ("operation_id", "names"),
    [
        (
            "getClassloader",
            [
                "licenseKey",
                "productId",
                "hardwareIdentifier",
                "deviceIdentifier",
                "sessionKey",
                "version",
                "branch",
                "customerId",
            ],
        ),
        (
            "downloadRelease",
            [
                "licenseKey",
                "productId",
                "hardwareIdentifier",
                "deviceIdentifier",
                "version",
                "branch",
                "customerId",
            ],
        ),
    ],
)
def test_every_query_parameter_is_documented(document, operation_id, names):
    operation = operation_of(document, operation_id)
    [team_id, *query] = resolve(document, operation["parameters"])

    assert operation["parameters"][0] == {"$ref": "#/components/parameters/ClientTeamId"}
    assert (team_id["name"], team_id["in"], team_id["required"]) == ("teamId", "path", True)
    assert "API key" not in team_id["description"]
    assert [parameter["name"] for parameter in query] == names
    assert set(names) == set(
        params.CLASSLOADER if operation_id == "getClassloader" else params.PLAIN
    )
    assert all(parameter["in"] == "query" for parameter in query)
    required = {parameter["name"] for parameter in query if parameter.get("required")}
    assert required == {"licenseKey", "productId", "hardwareIdentifier"} | (
        {"sessionKey"} if operation_id == "getClassloader" else set()
    )
    deprecated = {parameter["name"] for parameter in query if parameter.get("deprecated")}
    assert deprecated == {"deviceIdentifier"}
    for parameter in query:
        assert parameter["description"], parameter["name"]


def test_an_over_long_request_line_is_the_servers_414_as_documented(document):
    """The limit the document states is the one the repository's gunicorn config sets."""
    from delivery.openapi import REQUEST_LINE_LIMIT
    from lukittu import gunicorn_conf

    operation = operation_of(document, "getLatestRelease")
    documented = operation["responses"]["414"]

    assert gunicorn_conf.limit_request_line == REQUEST_LINE_LIMIT == 4094
    assert "4,094 bytes" in documented["description"]
    assert "4,094 bytes" in operation["description"]
    assert list(documented["content"]) == ["text/html"]


def test_download_and_latest_take_the_same_parameters(document):
    download = operation_of(document, "downloadRelease")["parameters"]
    latest = operation_of(document, "getLatestRelease")["parameters"]

    assert latest == download


# --- The documented rules are the checked rules ------------------------------------------------

KEY = "ABCDE-FGH23-JKLMN-PQRST-VWXYZ"
PRODUCT = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
GOOD = {
    "licenseKey": KEY,
    "productId": PRODUCT,
    "hardwareIdentifier": "machine-0001",
    "sessionKey": "ab" * 256,
}
# Values on each side of every rule, and the characters where Python's and JavaScript's ideas
# of whitespace differ (U+001C-U+001F and U+0085 are Python's only, U+FEFF JavaScript's only).
TRICKY = ["\u001c", "\u0085", "\ufeff", "\u00a0", "\u3000", "\n", "\t", " ", "\x00", "\x7f", "é"]
SAMPLES: dict[str, list[str]] = {
    "licenseKey": [
        KEY,
        KEY.lower(),
        KEY + "\n",
        KEY[:-1],
        KEY + "A",
        "ABCDE_FGH23_JKLMN_PQRST_VWXYZ",
        "ABCDE-FGH23-JKLMN-PQRST",
        "",
    ],
    "productId": [
        PRODUCT,
        PRODUCT.upper(),
        PRODUCT + "\n",
        PRODUCT.replace("-", ""),
        "١٢٣٤٥٦٧٨-1234-1234-1234-123456789012",
        "nope",
        "",
    ],
    "hardwareIdentifier": [
        "a" * 9,
        "a" * 10,
        "a" * 1000,
        "a" * 1001,
        *(f"machine{c}0001" for c in TRICKY),
        "machine-0001" + "\n",
        "",
    ],
    "deviceIdentifier": ["a" * 9, "machine-0002", "machine 0002", "machine-0002\ufeff", ""],
    "sessionKey": [
        "a" * 9,
        "a" * 10,
        "a" * 1000,
        "a" * 1001,
        "ab" * 20 + "\u0085",
        "ab\ufeffcdefghij",
    ],
    "version": [
        "1.0.0",
        "",
        "v" * 255,
        "v" * 256,
        *(f"1.0{c}1" for c in TRICKY),
        "1.0.0\n",
    ],
    "branch": ["beta", "", "b" * 255, "b" * 256, *(f"my{c}branch" for c in TRICKY), "beta\n"],
    "customerId": [PRODUCT, PRODUCT.upper(), "", "42", PRODUCT + "\n"],
}


def schema_accepts(schema: dict[str, Any], value: str) -> bool:
    """JSON Schema's reading (ECMA-262: ``$`` is the end of the text, and a pattern searches)."""
    if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", 10**9):
        return False
    pattern = schema["pattern"]
    assert pattern.startswith("^") and pattern.endswith("$")
    # In Python, "$" also matches before a final newline; "\Z" is ECMA-262's "$".
    return re.search(pattern[:-1] + r"\Z", value) is not None


def service_accepts(query: dict[str, str], *, with_session_key: bool) -> bool:
    data = QueryDict(mutable=True)
    for name, value in query.items():
        data[name] = value
    try:
        params.parse_client_query(data, with_session_key=with_session_key)
    except ApiError as error:
        assert error.status_code == 400
        return False
    return True


@pytest.mark.parametrize("name", list(SAMPLES))
def test_each_parameters_schema_accepts_exactly_what_the_service_accepts(document, name):
    operation = operation_of(document, "getClassloader")
    parameters = {p["name"]: p for p in resolve(document, operation["parameters"])}
    schema = parameters[name]["schema"]
    disagreements = []

    for value in SAMPLES[name]:
        query = {**GOOD, name: value}
        if name == "deviceIdentifier":
            del query["hardwareIdentifier"]  # the old name alone: its own rules apply
        documented = schema_accepts(schema, value) and (
            value != "" or not parameters[name].get("required")
        )
        if name == "deviceIdentifier" and value == "":
            documented = False  # then neither name is given, and one is required
        checked = service_accepts(query, with_session_key=True)
        if documented != checked:
            disagreements.append((value[:40], documented, checked))

    assert disagreements == []


def test_the_whitespace_rule_is_javascripts_and_pythons():
    # U+FEFF is whitespace to JavaScript (Lukittu's \S); U+001C to Python. Both are refused.
    for character in ("\ufeff", "\u001c", "\u0085"):
        assert not service_accepts(
            {**GOOD, "hardwareIdentifier": f"machine{character}0001"}, with_session_key=False
        )
        assert not service_accepts({**GOOD, "version": f"1.0{character}1"}, with_session_key=False)


def test_a_required_parameter_left_out_is_refused():
    for name in ("licenseKey", "productId", "hardwareIdentifier", "sessionKey"):
        query = {key: value for key, value in GOOD.items() if key != name}
        assert not service_accepts(query, with_session_key=True), name
    # The old name stands in for hardwareIdentifier; given with it, it must be equal.
    legacy = {**GOOD, "deviceIdentifier": GOOD["hardwareIdentifier"]}
    assert service_accepts(legacy, with_session_key=True)
    del legacy["hardwareIdentifier"]
    assert service_accepts(legacy, with_session_key=True)
    assert not service_accepts({**GOOD, "deviceIdentifier": "machine-0002"}, with_session_key=True)


# --- The 200s, as the service sends them ---------------------------------------------------


def assert_headers_documented(document, response_doc, response):
    for name, header in resolve(document, response_doc["headers"]).items():
        if header["required"]:
            assert name in response, name
        if name in response:
            value = response[name]
            if header["schema"].get("type") == "integer":
                value = int(value)
            OAS30Validator(header["schema"], format_checker=oas30_format_checker).validate(value)


def test_the_classloaders_200_is_as_documented(client, document, shop):
    documented = operation_of(document, "getClassloader")["responses"]["200"]

    response = shop.classloader(client)

    assert response.status_code == 200
    assert list(documented["content"]) == [response["Content-Type"]] == ["application/octet-stream"]
    assert documented["content"]["application/octet-stream"]["schema"] == {
        "type": "string",
        "format": "binary",
    }
    assert_headers_documented(document, documented, response)
    assert "X-Latest-Version" in response and "X-Main-Class" in response
    body = body_of(response)
    assert response["Content-Length"] == str(len(body))
    assert response.loader.decrypt(body) == shop.content


def test_the_downloads_200_is_as_documented(client, document, shop):
    documented = operation_of(document, "downloadRelease")["responses"]["200"]

    response = client.get(download_url(shop.team.id), shop.params())

    assert response.status_code == 200
    assert list(documented["content"]) == [response["Content-Type"]]
    assert {"Content-Length", "Content-Disposition", "X-Checksum-SHA256", "Repr-Digest"} <= set(
        documented["headers"]
    )
    assert_headers_documented(document, documented, response)
    assert body_of(response) == shop.content


def test_the_downloads_302_is_as_documented(client, document, world, s3):
    shop = Shop(world, b"a build on S3")
    documented = operation_of(document, "downloadRelease")["responses"]["302"]

    response = client.get(download_url(shop.team.id), shop.params())

    assert response.status_code == 302
    assert "content" not in documented
    assert_headers_documented(document, documented, response)
    assert "X-Amz-Expires=300" in response["Location"]


def test_latests_200_is_as_documented(client, document, shop):
    documented = operation_of(document, "getLatestRelease")["responses"]["200"]
    schema = resolve(document, documented["content"]["application/json"]["schema"])
    [example] = documented["content"]["application/json"]["examples"].values()

    response = client.get(latest_url(shop.team.id), shop.params())

    assert response.status_code == 200
    body = response.json()
    OAS30Validator(schema, format_checker=oas30_format_checker).validate(body)
    OAS30Validator(schema, format_checker=oas30_format_checker).validate(example["value"])
    assert body["result"]["details"] == example["value"]["result"]["details"] == "Release found"
    assert body["data"].keys() == example["value"]["data"].keys()
    assert body["data"]["file"].keys() == example["value"]["data"]["file"].keys()


def test_a_response_that_breaks_latests_shape_is_caught(document):
    documented = operation_of(document, "getLatestRelease")["responses"]["200"]
    schema = resolve(document, documented["content"]["application/json"]["schema"])
    [example] = documented["content"]["application/json"]["examples"].values()
    broken = {**example["value"], "data": {**example["value"]["data"], "status": "DRAFT"}}

    with pytest.raises(Exception, match="is not one of"):
        OAS30Validator(schema, format_checker=oas30_format_checker).validate(broken)


# --- Error tables ------------------------------------------------------------------------------

RATE_LIMITED = (429, "RATE_LIMIT", "Rate limited")
PARAMETER_ERRORS = [
    (400, "BAD_REQUEST", "Unknown parameter <name>: the parameters are <names>"),
    (400, "BAD_REQUEST", "Parameter <name> must be given once"),
    (400, "BAD_REQUEST", "License key is required"),
    (400, "BAD_REQUEST", "License key must be in the format of XXXXX-XXXXX-XXXXX-XXXXX-XXXXX"),
    (400, "BAD_REQUEST", "Product UUID is required"),
    (400, "BAD_REQUEST", "Product UUID must be a valid UUID"),
]
SESSION_KEY_FORM = [
    (400, "BAD_REQUEST", "Session key is required"),
    (400, "BAD_REQUEST", "Session key must be at least 10 characters"),
    (400, "BAD_REQUEST", "Session key must be less than 1000 characters"),
    (400, "BAD_REQUEST", "Session key must not contain spaces"),
]
IDENTIFIER_ERRORS = [
    (400, "BAD_REQUEST", "Give hardwareIdentifier or its old name deviceIdentifier, not both"),
    (400, "BAD_REQUEST", "Hardware identifier is required"),
    (400, "BAD_REQUEST", "Hardware identifier must be at least 10 characters"),
    (400, "BAD_REQUEST", "Hardware identifier must be less than 1000 characters"),
    (400, "BAD_REQUEST", "Hardware identifier must not contain spaces"),
    (400, "BAD_REQUEST", "Version must be 1 to 255 characters without spaces"),
    (400, "BAD_REQUEST", "Branch name must be 1 to 255 characters without control characters"),
    (400, "BAD_REQUEST", "Customer UUID must be a valid UUID"),
]
TEAM_ERRORS = [
    RATE_LIMITED,
    RATE_LIMITED,
    (404, "TEAM_NOT_FOUND", "Team not found"),
    (
        403,
        "FORBIDDEN",
        "Using classloader requires a higher plan. Either upgrade or contact support.",
    ),
]
SESSION_KEY_ERRORS = [(400, "INVALID_SESSION_KEY", "Invalid session key"), RATE_LIMITED]
RELEASE_ERRORS = [
    (404, "LICENSE_NOT_FOUND", "License not found"),
    (404, "PRODUCT_NOT_FOUND", "Product not found"),
    (404, "RELEASE_NOT_FOUND", "Branch not found"),
    (404, "RELEASE_NOT_FOUND", "Release not found"),
    (403, "RELEASE_ARCHIVED", "Release is archived"),
    (403, "RELEASE_DRAFT", "Release is draft"),
    (403, "NO_ACCESS_TO_RELEASE", "License does not have access to this release"),
    (403, "LICENSE_SUSPENDED", "License suspended"),
    (403, "LICENSE_EXPIRED", "License expired"),
    (403, "IP_LIMIT_REACHED", "IP limit reached"),
    (403, "HWID_LIMIT_REACHED", "HWID limit reached"),
]
STORAGE_ERRORS = [
    (500, "INTERNAL_SERVER_ERROR", "The release's file is missing from storage"),
    (503, "INTERNAL_SERVER_ERROR", "Storage unavailable"),
]
INTERNAL = (500, "INTERNAL_SERVER_ERROR", "Internal server error")
INVALID_TEAM = (400, "BAD_REQUEST", "Invalid team UUID")
# README's Client API table, row for row, per operation.
ERROR_TABLES = {
    "getClassloader": [
        INVALID_TEAM,
        *PARAMETER_ERRORS,
        *SESSION_KEY_FORM,
        *IDENTIFIER_ERRORS,
        *TEAM_ERRORS,
        *SESSION_KEY_ERRORS,
        *RELEASE_ERRORS,
        *STORAGE_ERRORS,
        INTERNAL,
    ],
    "downloadRelease": [
        INVALID_TEAM,
        *PARAMETER_ERRORS,
        *IDENTIFIER_ERRORS,
        *TEAM_ERRORS,
        *RELEASE_ERRORS,
        *STORAGE_ERRORS,
        INTERNAL,
    ],
    "getLatestRelease": [
        INVALID_TEAM,
        *PARAMETER_ERRORS,
        *IDENTIFIER_ERRORS,
        *TEAM_ERRORS,
        *RELEASE_ERRORS,
        INTERNAL,
    ],
}


@pytest.mark.parametrize("operation_id", list(OPERATIONS))
def test_the_description_ends_with_the_error_table_in_order(document, operation_id):
    assert_ends_with_error_table(operation_of(document, operation_id), ERROR_TABLES[operation_id])


@pytest.mark.parametrize("operation_id", list(OPERATIONS))
def test_each_status_lists_its_rows_in_order_with_an_example_of_each(document, operation_id):
    operation = operation_of(document, operation_id)
    table = ERROR_TABLES[operation_id]

    for status, rows, listed, media in responses_by_status(document, operation, table):
        assert listed == rows, status
        codes = [(example["value"]["result"]["code"]) for example in media["examples"].values()]
        assert codes == [code for code, _ in dict.fromkeys(rows)], status


# Each documented error, brought about for real. ``shop`` sells a product with a published
# latest release (0.9.0) and its file; ``fresh`` gives the same parameters with a new session key.


def _archived(shop: Shop, status: str) -> Release:
    release = Release.objects.create(
        team=shop.team, product=shop.world.product, version="2.0.0", status=status
    )
    attach_file(release, "app.jar", shop.content)
    return release


def _scenario(
    details: str, operation_id: str, shop: Shop, settings: Any
) -> tuple[Any, dict[str, Any]]:
    """(team id, query overrides, and setup done) for the documented error ``details``."""
    team_id: Any = shop.team.id
    query: dict[str, Any] = {}
    if details.startswith("Unknown parameter"):
        query["colour"] = "red"
    elif details == "License key is required":
        query["licenseKey"] = None
    elif details.startswith("License key must"):
        query["licenseKey"] = "abcde-12345"
    elif details == "Product UUID is required":
        query["productId"] = None
    elif details.startswith("Product UUID must"):
        query["productId"] = "nope"
    elif details == "Session key is required":
        query["sessionKey"] = None
    elif details.startswith("Session key must be at least"):
        query["sessionKey"] = "abc"
    elif details.startswith("Session key must be less"):
        query["sessionKey"] = "a" * 1001
    elif details == "Session key must not contain spaces":
        query["sessionKey"] = "abc def ghi jkl"
    elif details.startswith("Give hardwareIdentifier"):
        query["deviceIdentifier"] = OTHER_HWID
    elif details == "Hardware identifier is required":
        query["hardwareIdentifier"] = None
    elif details.startswith("Hardware identifier must be at least"):
        query["hardwareIdentifier"] = "short"
    elif details.startswith("Hardware identifier must be less"):
        query["hardwareIdentifier"] = "h" * 1001
    elif details == "Hardware identifier must not contain spaces":
        query["hardwareIdentifier"] = "has spaces in it"
    elif details.startswith("Version must"):
        query["version"] = "1 0"
    elif details.startswith("Branch name must"):
        query["branch"] = "beta\x01"
    elif details.startswith("Customer UUID"):
        query["customerId"] = "42"
    elif details == "Rate limited":
        settings.CLIENT_IP_RATE = "0/minute"
    elif details == "Team not found":
        team_id = uuid.uuid4()
    elif details.startswith("Using classloader"):
        shop.team.file_uploads_enabled = False
        shop.team.save()
    elif details == "Invalid session key":
        query["sessionKey"] = "zz" * 20
    elif details == "License not found":
        query["licenseKey"] = "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE"
    elif details == "Product not found":
        query["productId"] = str(shop.world.other_product.id)
    elif details == "Branch not found":
        query["branch"] = "no-such-branch"
    elif details == "Release not found":
        query["version"] = "9.9.9"
    elif details == "Release is archived":
        _archived(shop, ReleaseStatus.ARCHIVED)
        query["version"] = "2.0.0"
    elif details == "Release is draft":
        _archived(shop, ReleaseStatus.DRAFT)
        query["version"] = "2.0.0"
    elif details.startswith("License does not have access"):
        release = _archived(shop, ReleaseStatus.PUBLISHED)
        ReleaseLicense.objects.create(release=release, license=license_create(team=shop.team)[0])
        query["version"] = "2.0.0"
    elif details == "License suspended":
        License.objects.filter(pk=shop.license.pk).update(suspended=True)
    elif details == "License expired":
        License.objects.filter(pk=shop.license.pk).update(
            expires_at=timezone.now() - timedelta(days=1)
        )
    elif details == "IP limit reached":
        License.objects.filter(pk=shop.license.pk).update(ip_limit=1)
        Seat.objects.create(license=shop.license, kind=Seat.Kind.IP, value="10.9.9.9")
    elif details == "HWID limit reached":
        License.objects.filter(pk=shop.license.pk).update(hwid_limit=1)
        Seat.objects.create(
            license=shop.license, kind=Seat.Kind.HWID, value=hwid_digest(OTHER_HWID)
        )
    elif details.endswith("missing from storage"):
        release_storage().delete(shop.file.key)
    else:
        raise AssertionError(f"no scenario for {details!r}")
    return team_id, query


def send(client: Client, operation_id: str, shop: Shop, team_id: Any, query: dict[str, Any]) -> Any:
    values = shop.params()
    if operation_id == "getClassloader":
        values["sessionKey"] = Loader(shop.public_key_pem).session_key_hex()
    values.update(query)
    values = {name: value for name, value in values.items() if value is not None}
    return client.get(URLS[operation_id](team_id), values)


def documented_examples(operation_id: str) -> list[tuple[int, str]]:
    """Each distinct documented error this module can bring about in process (the storage
    outage, the replay and a generic 500 have tests of their own)."""
    elsewhere = {"Storage unavailable", "Internal server error", "Invalid team UUID"}
    elsewhere |= {"Parameter <name> must be given once"}
    rows = dict.fromkeys((status, details) for status, _, details in ERROR_TABLES[operation_id])
    return [row for row in rows if row[1] not in elsewhere]


@pytest.mark.parametrize(
    ("operation_id", "status", "details"),
    [
        (operation_id, status, details)
        for operation_id in OPERATIONS
        for status, details in documented_examples(operation_id)
    ],
)
def test_each_documented_error_is_what_the_service_sends(
    client, document, shop, settings, operation_id, status, details
):
    team_id, query = _scenario(details, operation_id, shop, settings)

    response = send(client, operation_id, shop, team_id, query)

    documented = resolve(document, operation_of(document, operation_id)["responses"][str(status)])
    examples = {
        example["value"]["result"]["details"]: example["value"]
        for example in documented["content"]["application/json"]["examples"].values()
    }
    sent = response.json()
    assert response.status_code == status, sent
    if "<name>" in details:
        assert sent["result"]["details"].startswith("Unknown parameter colour: the parameters are ")
    assert without_timestamp(sent) == without_timestamp(examples[sent["result"]["details"]])


def test_the_documented_examples_with_a_name_are_real_messages(client, document, shop):
    repeated = client.get(download_url(shop.team.id) + f"?licenseKey={KEY}&licenseKey={KEY}")
    documented = resolve(document, operation_of(document, "downloadRelease")["responses"]["400"])
    examples = {
        example["value"]["result"]["details"]: example["value"]
        for example in documented["content"]["application/json"]["examples"].values()
    }
    invalid_team = client.get(download_url("not-a-uuid"), shop.params())

    for response in (repeated, invalid_team):
        sent = response.json()
        assert without_timestamp(sent) == without_timestamp(examples[sent["result"]["details"]])


def test_the_replay_and_the_storage_outage_are_what_the_service_sends(
    client, document, shop, monkeypatch
):
    loader = Loader(shop.public_key_pem)
    params_once = shop.params(sessionKey=loader.session_key_hex())
    assert client.get(classloader_url(shop.team.id), params_once).status_code == 200
    replayed = client.get(classloader_url(shop.team.id), params_once)

    def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise OSError("the disk went away")

    # The module's own name ``open`` (it reads local files with the builtin).
    monkeypatch.setattr(streams, "open", unreachable, raising=False)
    outage = shop.classloader(client, hardwareIdentifier=HWID)
    monkeypatch.undo()

    responses = operation_of(document, "getClassloader")["responses"]
    for response, status in ((replayed, 429), (outage, 503)):
        documented = resolve(document, responses[str(status)])
        [example] = [
            example["value"]
            for example in documented["content"]["application/json"]["examples"].values()
            if example["value"]["result"]["details"] == response.json()["result"]["details"]
        ]
        assert response.status_code == status
        assert without_timestamp(response.json()) == without_timestamp(example)
