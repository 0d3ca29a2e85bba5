"""What an operator does in a real browser against gunicorn: sign in to the admin, find a
release and download its file, create an API key and revoke it (and see both in the audit
log and the key's history), confirm or take back the actions that cannot be undone, fail to
move a product to another team, read the delivery log on a 1280 px screen, and update a
release from Swagger UI; and what a newcomer does after `make run`: open / and follow its
links, and use Swagger UI's Try it out as it comes, prefilled for the demo team.

One Chromium serves the whole module; each test has a gunicorn of its own, since emptying the
database between tests recreates rows (content types) that a server process keeps cached. On a
failure, the screenshot and HTML of the page are kept in the test's temporary folder and their
paths printed."""

import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.contrib.auth.models import User
from django.core.management import call_command
from django.utils import timezone
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from delivery.models import Download, Seat, hwid_digest
from releases.models import Product, Release, ReleaseFile
from teams.models import ApiKey, AuditLog, License, Team
from tests.browser import (
    NOT_INSTALLED,
    admin_login,
    click,
    paste_text,
    replace_text,
    reset,
    save_evidence,
    session_of,
    shown,
    start_chromium,
    until,
)
from tests.conftest import World
from tests.helpers import make_download, make_jar, release_url, releases_url, update_data
from tests.live import LiveServer, live_server
from tests.test_webhooks_helpers import make_endpoint
from webhooks.events import emit
from webhooks.models import WebhookAttempt, WebhookDelivery

pytestmark = pytest.mark.skipif(NOT_INSTALLED is not None, reason=NOT_INSTALLED or "")

OPERATOR = "alice"
PASSWORD = "browser-tests-only-pw"
REQUEST_SECONDS = 30


@pytest.fixture
def server(transactional_db: None, tmp_path: Path) -> Iterator[LiveServer]:
    # Production's cookie settings (Secure) stay on: Chromium treats http://127.0.0.1 as a
    # secure origin, so the admin's session and CSRF cookies work over plain HTTP.
    with live_server(tmp_path, threads=4) as running:
        yield running


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    driver = start_chromium(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def password_hash() -> str:
    # The server checks passwords with Django's default hasher; the test settings' fast MD5
    # hasher is unknown to it. Hashed once for the module.
    hasher = PBKDF2PasswordHasher()
    return hasher.encode(PASSWORD, hasher.salt())


@pytest.fixture
def driver(
    browser: WebDriver, server: LiveServer, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[WebDriver]:
    """The module's browser, with a clean slate; the page is kept as evidence on failure."""
    reset(browser, server.url)
    failed_before = request.session.testsfailed
    yield browser
    # The call's report is counted before its fixtures are torn down.
    if request.session.testsfailed > failed_before:
        paths = save_evidence(browser, tmp_path)
        print(f"browser at {browser.current_url}; evidence: {', '.join(map(str, paths))}")


@pytest.fixture
def operator(transactional_db: None, password_hash: str) -> User:
    return User.objects.create(
        username=OPERATOR, password=password_hash, is_staff=True, is_superuser=True
    )


@pytest.fixture
def signed_in(driver: WebDriver, server: LiveServer, operator: User) -> WebDriver:
    admin_login(driver, server.url, OPERATOR, PASSWORD)
    return driver


def api(server: LiveServer, method: str, path: str, key: str, **kwargs) -> requests.Response:
    return requests.request(
        method,
        server.url + path,
        headers={"Authorization": f"Bearer {key}"},
        timeout=REQUEST_SECONDS,
        **kwargs,
    )


def upload(server: LiveServer, world: World, content: bytes) -> dict:
    """Give the release a file through the live API, so the server stores it."""
    response = api(
        server,
        "PUT",
        release_url(world.team.id, world.release.id),
        world.key,
        data={"data": json.dumps(update_data(world.release, keepExistingFile=False))},
        files={"file": ("app.jar", content, "application/java-archive")},
    )
    assert response.status_code == 200, response.text
    return response.json()["data"]["file"]


# --- The admin --------------------------------------------------------------------------------


def test_find_a_release_and_download_its_file(transactional_db, world, server, signed_in):
    driver = signed_in
    jar = make_jar()
    stored = upload(server, world, jar)
    # The admin's stylesheet arrived (WhiteNoise serves /static/): the header has its colour.
    header = driver.find_element(By.ID, "header")
    assert header.value_of_css_property("background-color") != "rgba(0, 0, 0, 0)"

    driver.get(f"{server.url}/admin/releases/release/")
    shown(driver, "#searchbar").send_keys(world.release.version, Keys.ENTER)
    until(
        driver,
        lambda: len(driver.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")) == 1,
        "the search should leave one release",
    )
    click(driver, "#result_list tbody th.field-version a")
    link = shown(driver, ".field-file_download a")
    shown_sha256 = driver.find_element(By.CSS_SELECTOR, ".field-file_sha256 .readonly").text

    response = session_of(driver).get(link.get_attribute("href"), timeout=REQUEST_SECONDS)

    assert response.status_code == 200
    assert "attachment" in response.headers["Content-Disposition"]
    file = ReleaseFile.objects.get(release=world.release)
    assert str(file.id) == stored["id"]
    assert hashlib.sha256(response.content).hexdigest() == file.sha256 == shown_sha256
    assert response.content == jar


def create_api_key(driver: WebDriver, server: LiveServer, team: Team, name: str) -> str:
    """Add a key with the admin's form; the plain key, read from the confirmation message."""
    driver.get(f"{server.url}/admin/teams/apikey/add/")
    Select(shown(driver, "#id_team")).select_by_value(str(team.pk))
    driver.find_element(By.ID, "id_name").send_keys(name)
    click(driver, "input[name=_save]")
    message = until(
        driver,
        lambda: next(
            (
                m.text
                for m in driver.find_elements(By.CSS_SELECTOR, ".messagelist li")
                if "Copy it now" in m.text
            ),
            None,
        ),
        "no message with the new key",
    )
    return message.rsplit(" ", 1)[-1]


def run_action(driver: WebDriver, server: LiveServer, changelist: str, pk: Any, action: str):
    """Tick the row in the list and run the action."""
    driver.get(f"{server.url}/admin/{changelist}/")
    click(driver, f"#result_list input.action-select[value='{pk}']")
    Select(shown(driver, "select[name=action]")).select_by_value(action)
    click(driver, "button[name=index]")


def revoke_api_key(driver: WebDriver, server: LiveServer, key: ApiKey) -> None:
    """Tick the key in the list, run the "Revoke" action and confirm it."""
    run_action(driver, server, "teams/apikey", key.pk, "revoke")
    click(driver, "#confirm-action input[type=submit]")
    until(
        driver,
        lambda: any(
            "1 key(s) revoked" in m.text
            for m in driver.find_elements(By.CSS_SELECTOR, ".messagelist li")
        ),
        "no confirmation of the revocation",
    )


def test_an_api_key_made_in_the_admin_works_until_revoked(
    transactional_db, world, server, signed_in
):
    list_path = releases_url(world.team.id)

    plain = create_api_key(signed_in, server, world.team, "from the browser")
    key = ApiKey.objects.get(team=world.team, name="from the browser")
    assert plain.startswith(key.prefix)
    working = api(server, "GET", list_path, plain)
    revoke_api_key(signed_in, server, key)
    revoked = api(server, "GET", list_path, plain)

    assert working.status_code == 200, working.text
    assert working.json()["result"]["valid"] is True
    assert revoked.status_code == 401
    assert revoked.json()["result"]["code"] == "UNAUTHORIZED"
    key.refresh_from_db()
    assert key.revoked_at is not None
    # The key's own page never shows it again.
    signed_in.get(f"{server.url}/admin/teams/apikey/{key.pk}/change/")
    assert plain not in shown(signed_in, "#content").text


def test_the_audit_log_names_the_operator_for_the_key_changes(
    transactional_db, world, server, signed_in
):
    create_api_key(signed_in, server, world.team, "audited")
    key = ApiKey.objects.get(team=world.team, name="audited")
    revoke_api_key(signed_in, server, key)

    signed_in.get(f"{server.url}/admin/teams/auditlog/?target_type=api_key&target_id={key.pk}")
    shown(signed_in, "#result_list")
    rows = {
        (
            row.find_element(By.CSS_SELECTOR, ".field-actor").text,
            row.find_element(By.CSS_SELECTOR, ".field-action").text,
        )
        for row in signed_in.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")
    }

    operator_label = f"operator:{OPERATOR}"
    assert rows == {(operator_label, "api_key.create"), (operator_label, "api_key.revoke")}
    assert sorted(
        AuditLog.objects.filter(target_id=str(key.pk)).values_list("actor", "action")
    ) == [(operator_label, "api_key.create"), (operator_label, "api_key.revoke")]


def test_a_product_cannot_be_moved_to_another_team(
    transactional_db, world, outsider, server, signed_in
):
    driver = signed_in
    driver.get(f"{server.url}/admin/releases/product/{world.product.pk}/change/")
    shown(driver, "#product_form")

    # The team is shown, not offered for editing.
    assert driver.find_elements(By.CSS_SELECTOR, "#product_form [name=team]") == []
    assert world.team.name in driver.find_element(By.CSS_SELECTOR, ".field-team .readonly").text
    # A forged field in the submitted form changes nothing either.
    driver.execute_script(
        "const field = document.createElement('input');"
        "field.type = 'hidden'; field.name = 'team'; field.value = arguments[0];"
        "document.getElementById('product_form').appendChild(field);",
        str(outsider.team.pk),
    )
    click(driver, "#product_form input[name=_save]")
    shown(driver, ".messagelist li.success")

    product = Product.objects.get(pk=world.product.pk)
    assert product.team_id == world.team.pk
    assert not Product.objects.filter(team=outsider.team, name=world.product.name).exists()


# --- Swagger UI -------------------------------------------------------------------------------


def test_update_a_release_from_swagger_ui(transactional_db, world, server, driver):
    data = {
        "version": "1.0.1",
        "productId": str(world.product.id),
        "status": "PUBLISHED",
        "setAsLatest": True,
        "keepExistingFile": True,
        "branchId": None,
        "metadata": [{"key": "channel", "value": "browser"}],
        "licenseIds": [],
    }
    driver.get(f"{server.url}/api/docs/")

    # Authorize with the key, then close the dialog.
    click(driver, ".swagger-ui .btn.authorize")
    replace_text(shown(driver, ".modal-ux #auth-bearer-value"), world.key)
    click(driver, ".modal-ux .auth-btn-wrapper .btn.authorize")
    click(driver, ".modal-ux .btn-done")
    until(driver, lambda: not driver.find_elements(By.CSS_SELECTOR, ".modal-ux"), "dialog open")

    # Open the update operation, "Try it out", fill the form as it comes, execute.
    operation = "div.opblock[id$='-updateRelease']"
    click(driver, f"{operation} .opblock-summary-control")
    click(driver, f"{operation} .try-out__btn")
    replace_text(shown(driver, f"{operation} tr[data-param-name=teamId] input"), str(world.team.id))
    replace_text(
        shown(driver, f"{operation} tr[data-param-name=releaseId] input"), str(world.release.id)
    )
    data_field = shown(driver, f"{operation} tr[data-property-name=data] textarea")
    paste_text(driver, data_field, json.dumps(data, indent=2))
    click(driver, f"{operation} button.execute")
    status = until(
        driver,
        lambda: "".join(
            cell.text
            for cell in driver.find_elements(
                By.CSS_SELECTOR,
                f"{operation} .live-responses-table tr.response .response-col_status",
            )
        ),
        "no response in Swagger UI",
    )
    body = driver.find_element(
        By.CSS_SELECTOR, f"{operation} .live-responses-table tr.response .response-col_description"
    ).text

    assert status == "200", body
    assert "Release updated" in body
    release = Release.objects.get(pk=world.release.pk)
    assert (release.version, release.status, release.latest) == ("1.0.1", "PUBLISHED", True)
    assert list(release.metadata.values_list("key", "value")) == [("channel", "browser")]
    assert not Release.objects.get(pk=world.other_release.pk).latest
    assert not ReleaseFile.objects.filter(release=release).exists()


CHANGELISTS = (
    "teams/team",
    "teams/apikey",
    "teams/license",
    "teams/auditlog",
    "releases/product",
    "releases/branch",
    "releases/release",
    "releases/releasefile",
    "delivery/download",
    "delivery/seat",
)


def test_nothing_is_cut_off_at_1400_pixels(transactional_db, world, server, signed_in):
    """Every list with rows in it fits a 1400 px wide window: no column scrolled out of view."""
    driver = signed_in
    upload(server, world, make_jar())  # a file row, an audit entry
    license = world.licenses[0]
    ipv6 = "2001:db8:1234:5678:9abc:def0:1234:5678"  # as long as an address gets
    Seat.objects.create(license=license, kind=Seat.Kind.IP, value=ipv6)
    Seat.objects.create(license=license, kind=Seat.Kind.HWID, value=hwid_digest("device"))
    make_download(
        world.release,
        license,
        world.release.version,
        hwid="device",
        ip=ipv6,
        endpoint=Download.Endpoint.CLASSLOADER,
        user_agent="Java/17",
    )
    # The browser's window is 1400 px wide (tests/browser.py).
    assert driver.execute_script("return window.outerWidth") == 1400
    for changelist in CHANGELISTS:
        driver.get(f"{server.url}/admin/{changelist}/")
        results = shown(driver, "#changelist .results")
        widths = driver.execute_script(
            "return [arguments[0].scrollWidth, arguments[0].clientWidth,"
            " document.documentElement.scrollWidth, window.innerWidth]",
            results,
        )
        table, visible, page, window = widths
        assert table <= visible, f"{changelist}: the list scrolls sideways ({widths})"
        assert page <= window, f"{changelist}: the page is wider than the window ({widths})"
    # The pages with the long one-line things: the public key in base64, the seats and
    # downloads tables.
    for page_path in (
        f"teams/team/{world.team.pk}/change/",
        f"teams/license/{license.pk}/change/",
        f"releases/release/{world.release.pk}/change/",
    ):
        driver.get(f"{server.url}/admin/{page_path}")
        shown(driver, "#content-main")
        page, window = driver.execute_script(
            "return [document.documentElement.scrollWidth, window.innerWidth]"
        )
        assert page <= window, f"{page_path}: the page is wider than the window ({page, window})"
        # Nothing scrolls inside its box or reaches past the window (where the admin's boxes
        # hide it) either: the whole key must be there to copy.
        cut = driver.execute_script(
            "return [...document.querySelectorAll('#content-main .readonly, #content-main pre')]"
            ".filter(e => e.scrollWidth > e.clientWidth + 1"
            " || e.getBoundingClientRect().right > window.innerWidth)"
            ".map(e => e.outerHTML.slice(0, 80))"
        )
        assert cut == [], f"{page_path}: cut off inside the page: {cut}"


# --- The admin: history, confirmations, the delivery log ---------------------------------------


def test_history_opens_the_audit_trail(transactional_db, world, server, signed_in):
    driver = signed_in
    upload(server, world, make_jar())  # a write through the API, with the team's key
    create_api_key(driver, server, world.team, "with history")
    key = ApiKey.objects.get(team=world.team, name="with history")
    revoke_api_key(driver, server, key)

    trails = {}
    for change_page in (
        f"releases/release/{world.release.pk}/change/",
        f"teams/apikey/{key.pk}/change/",
    ):
        driver.get(f"{server.url}/admin/{change_page}")
        click(driver, "a.historylink")
        shown(driver, "#change-history")
        trails[change_page.split("/")[1]] = [
            (
                row.find_element(By.CSS_SELECTOR, ".field-actor").text,
                row.find_element(By.CSS_SELECTOR, ".field-action").text,
            )
            for row in driver.find_elements(By.CSS_SELECTOR, "#change-history tbody tr")
        ]

    team_key = ApiKey.objects.get(team=world.team, name="tests")
    operator = f"operator:{OPERATOR}"
    assert trails == {
        "release": [(team_key.prefix, "release.update")],
        "apikey": [(operator, "api_key.revoke"), (operator, "api_key.create")],
    }


def test_irreversible_actions_ask_first_and_can_be_taken_back(
    transactional_db, world, server, signed_in
):
    driver = signed_in
    key = ApiKey.objects.get(team=world.team)
    license = world.licenses[0]
    asked = {}

    def state() -> tuple:
        return (
            ApiKey.objects.get(pk=key.pk).revoked_at,
            License.objects.get(pk=license.pk).suspended,
            Team.objects.get(pk=world.team.pk).deleted_at,
            AuditLog.objects.count(),
        )

    for changelist, pk, action in (
        ("teams/apikey", key.pk, "revoke"),
        ("teams/license", license.pk, "suspend"),
        ("teams/team", world.team.pk, "soft_delete"),
    ):
        # Asked, and taken back: nothing changes.
        before = state()
        run_action(driver, server, changelist, pk, action)
        asked[action] = shown(driver, "#content h1").text
        click(driver, "#confirm-action a.cancel-link")
        shown(driver, "#result_list")
        assert state() == before, action
        # Asked again, and confirmed.
        run_action(driver, server, changelist, pk, action)
        click(driver, "#confirm-action input[type=submit]")
        shown(driver, ".messagelist li.info, .messagelist li.success")

    assert asked == {
        "revoke": "Revoke these API keys?",
        "suspend": "Suspend these licenses?",
        "soft_delete": "Delete these teams?",
    }
    assert ApiKey.objects.get(pk=key.pk).revoked_at is not None
    assert License.objects.get(pk=license.pk).suspended
    assert Team.objects.get(pk=world.team.pk).deleted_at is not None


def test_the_delivery_log_fits_1280_pixels(transactional_db, world, server, signed_in):
    driver = signed_in
    long_url = "https://hooks.example.com/" + "deliveries/of-a-long-path/" * 6
    make_endpoint(world.team, long_url)
    error = "ConnectError: " + "the name did not resolve, and the message goes on " * 4
    for number in range(3):
        emit(world.team, "release.updated", {"id": str(number)})
    for delivery in WebhookDelivery.objects.all():
        WebhookAttempt.objects.create(
            delivery=delivery,
            number=1,
            url=long_url,
            attempted_at=timezone.now(),
            duration_ms=10_000,
            status_code=None,
            error=error,
        )
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            attempt_count=1, last_error=error, last_status_code=None
        )

    driver.set_window_size(1280, 1000)
    try:
        driver.get(f"{server.url}/admin/webhooks/webhookdelivery/")
        results = shown(driver, "#changelist .results")
        widths = driver.execute_script(
            "return [arguments[0].scrollWidth, arguments[0].clientWidth,"
            " document.documentElement.scrollWidth, window.innerWidth, window.outerWidth]",
            results,
        )
        rows = driver.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")
        sent_to = rows[0].find_element(By.CSS_SELECTOR, ".field-sent_to span")
        hover = sent_to.get_attribute("title")
    finally:
        driver.set_window_size(1400, 1000)

    table, visible, page, window, outer = widths
    assert outer == 1280
    assert len(rows) == 3
    assert table <= visible, f"the list scrolls sideways ({widths})"
    assert page <= window, f"the page is wider than the window ({widths})"
    assert hover == long_url  # the whole URL on hover


# --- A first run: the page at /, and Swagger UI prefilled for the demo team ---------------------


def test_the_root_page_leads_to_the_api_docs_the_admin_and_the_probes(
    transactional_db, server, driver
):
    driver.get(f"{server.url}/")
    heading = shown(driver, "h1").text
    links = {
        a.text: a.get_attribute("href") for a in driver.find_elements(By.CSS_SELECTOR, "#links a")
    }
    # Everything the page loaded came from the service itself (no CDN).
    loaded = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    click(driver, "#links a[href='/api/docs/']")
    title = shown(driver, ".swagger-ui .info .title").text
    driver.back()
    click(driver, "#links a[href='/admin/']")
    shown(driver, "#login-form")
    driver.get(f"{server.url}/")
    click(driver, "#links a[href='/readyz']")
    readiness = json.loads(shown(driver, "body").text)

    assert heading == "Lukittu-compatible release service"
    assert {"API docs", "Admin", "/healthz", "/readyz"} <= set(links)
    assert all(url.startswith(server.url) for url in links.values())
    assert all(url.startswith(server.url) for url in loaded), loaded
    assert title.startswith("Lukittu-compatible release service")
    assert readiness["status"] == "ok"


@pytest.fixture
def demo(transactional_db: None, tmp_path: Path) -> Iterator[tuple[dict, LiveServer]]:
    """The demo team as `make run` seeds it, and a server that prefills Swagger UI with it
    (DEMO_SUMMARY_FILE, which needs DEBUG)."""
    summary_file = tmp_path / "demo.json"
    call_command(
        "seed_demo", "--reuse", str(summary_file), "--try-it-out", "--json", stdout=io.StringIO()
    )
    extra_env = {"DEBUG": "true", "DEMO_SUMMARY_FILE": str(summary_file)}
    with live_server(tmp_path, threads=4, extra_env=extra_env) as running:
        yield json.loads(summary_file.read_text()), running


def try_it_out(driver: WebDriver, operation_id: str) -> tuple[str, str, dict[str, str]]:
    """Open the operation, "Try it out", execute it as it comes: its status, its answer and
    the values its parameters were prefilled with."""
    operation = f"div.opblock[id$='-{operation_id}']"
    click(driver, f"{operation} .opblock-summary-control")
    click(driver, f"{operation} .try-out__btn")
    prefilled = {}
    for row in driver.find_elements(By.CSS_SELECTOR, f"{operation} tr[data-param-name]"):
        for field in row.find_elements(By.CSS_SELECTOR, "input"):
            prefilled[row.get_attribute("data-param-name")] = field.get_attribute("value")
    click(driver, f"{operation} button.execute")
    status = until(
        driver,
        lambda: "".join(
            cell.text
            for cell in driver.find_elements(
                By.CSS_SELECTOR,
                f"{operation} .live-responses-table tr.response .response-col_status",
            )
        ),
        f"no response to {operation_id} in Swagger UI",
    )
    body = driver.find_element(
        By.CSS_SELECTOR, f"{operation} .live-responses-table tr.response .response-col_description"
    ).text
    return status, body, prefilled


def test_swagger_ui_try_it_out_works_as_it_comes_for_the_demo_team(demo, driver):
    summary, server = demo
    demo_release = Release.objects.get(pk=summary["releases"][1]["id"])
    before = (demo_release.version, demo_release.status, demo_release.latest)
    latest_before = set(Release.objects.filter(latest=True).values_list("pk", flat=True))
    driver.get(f"{server.url}/api/docs/")

    # Authorize with the key `make run` printed, then close the dialog.
    click(driver, ".swagger-ui .btn.authorize")
    replace_text(shown(driver, ".modal-ux #auth-bearer-value"), summary["apiKey"])
    click(driver, ".modal-ux .auth-btn-wrapper .btn.authorize")
    click(driver, ".modal-ux .btn-done")
    until(driver, lambda: not driver.find_elements(By.CSS_SELECTOR, ".modal-ux"), "dialog open")

    read_status, read_body, read_prefilled = try_it_out(driver, "getRelease")
    update_status, update_body, _ = try_it_out(driver, "updateRelease")

    assert read_prefilled == {
        "teamId": summary["teamId"],
        "releaseId": summary["releases"][1]["id"],
        "If-None-Match": "",
    }
    assert read_status == "200", read_body
    assert '"version": "1.1.0"' in read_body
    assert update_status == "200", update_body
    assert "Release updated" in update_body
    # Nothing renamed, nothing published, "latest" where it was.
    demo_release.refresh_from_db()
    assert (demo_release.version, demo_release.status, demo_release.latest) == before
    assert set(Release.objects.filter(latest=True).values_list("pk", flat=True)) == latest_before
