"""The admin for licenses that say what they open and for team key pairs: the public key on
the team's page, a license's products, limits, seats and downloads, freeing seats, the
download counts of releases, and the read-only download and seat lists."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from delivery.models import Download, Seat, hwid_digest
from releases.models import Release
from teams.keys import public_key_base64
from teams.models import AuditLog, License, Team, TeamKeyPair
from tests.helpers import make_download

BROWSER = "Mozilla/5.0 (license admin test)"
OPERATOR = "operator:operator"


@pytest.fixture
def staff(db: None) -> Client:
    user = User.objects.create_superuser("operator", "op@example.com", "pw-for-tests-only")
    client = Client(HTTP_USER_AGENT=BROWSER, REMOTE_ADDR="192.0.2.7")
    client.force_login(user)
    return client


def seat(license: License, kind: str, value: str, minutes_ago: int = 0) -> Seat:
    seen = timezone.now() - timedelta(minutes=minutes_ago)
    return Seat.objects.create(
        license=license, kind=kind, value=value, first_seen_at=seen, last_seen_at=seen
    )


def checkbox_values(page: str, name: str) -> set[str]:
    return set(re.findall(rf'<input type="checkbox" name="{name}" value="([^"]+)"', page))


def change_data(license: License, **overrides) -> dict:
    """The license change form as posted back unchanged."""
    data = {
        "products": [str(pk) for pk in license.products.values_list("pk", flat=True)],
        "suspended": "on" if license.suspended else "",
        "expires_at_0": "",
        "expires_at_1": "",
        "ip_limit": license.ip_limit or "",
        "hwid_limit": license.hwid_limit or "",
    }
    data.update(overrides)
    return {name: value for name, value in data.items() if value != ""}


# --- Teams: the public key and the seat timeout ----------------------------------------------


def test_the_team_page_shows_its_public_key_as_pem_and_base64(staff, world, outsider):
    pem = TeamKeyPair.objects.get(team=world.team).public_key_pem.strip()

    page = staff.get(f"/admin/teams/team/{world.team.pk}/change/").content.decode()

    pem_shown = re.search(r"<pre[^>]*>(-----BEGIN PUBLIC KEY-----.*?)</pre>", page, re.S)
    assert pem_shown and pem_shown.group(1).strip() == pem
    assert re.search(rf"<code[^>]*>{re.escape(public_key_base64(pem))}</code>", page)
    other = TeamKeyPair.objects.get(team=outsider.team).public_key_pem
    assert public_key_base64(other) not in page
    assert "PRIVATE" not in page
    assert TeamKeyPair.objects.get(team=world.team).private_key_sealed not in page


def test_a_team_without_a_key_pair_says_how_to_make_one(staff, db):
    team = Team.objects.create(name="Made elsewhere")

    page = staff.get(f"/admin/teams/team/{team.pk}/change/").content.decode()

    assert "manage.py team_public_key" in page and "BEGIN PUBLIC KEY" not in page
    assert not TeamKeyPair.objects.filter(team=team).exists()  # looking writes nothing


def test_a_team_added_in_the_admin_has_a_key_pair(staff, db):
    staff.post(
        "/admin/teams/team/add/",
        {
            "name": "Acme",
            "storage_limit_mb": 100,
            "max_releases_per_product": 100,
            "max_branches_per_product": 10,
        },
    )
    team = Team.objects.get(name="Acme")
    pem = TeamKeyPair.objects.get(team=team).public_key_pem
    page = staff.get(f"/admin/teams/team/{team.pk}/change/").content.decode()
    assert public_key_base64(pem) in page


def test_the_seat_timeout_is_editable_and_audited(staff, world):
    form = {"name": world.team.name, "storage_limit_mb": 100, "file_uploads_enabled": "on"}
    form["max_releases_per_product"] = 100
    form["max_branches_per_product"] = 10

    response = staff.post(
        f"/admin/teams/team/{world.team.pk}/change/", {**form, "seat_timeout_minutes": 45}
    )

    assert response.status_code == 302
    world.team.refresh_from_db()
    assert world.team.seat_timeout_minutes == 45
    entry = AuditLog.objects.get(action="team.update")
    assert (entry.actor, entry.request_data) == (OPERATOR, {"seat_timeout_minutes": 45})

    refused = staff.post(
        f"/admin/teams/team/{world.team.pk}/change/", {**form, "seat_timeout_minutes": 0}
    )
    assert refused.status_code == 200  # the form again, with its error
    world.team.refresh_from_db()
    assert world.team.seat_timeout_minutes == 45


# --- Licenses: products and limits -------------------------------------------------------------


def test_adding_a_license_for_the_teams_products_with_limits(staff, world):
    response = staff.post(
        "/admin/teams/license/add/",
        {
            "team": world.team.pk,
            "products": [world.product.pk, world.other_product.pk],
            "ip_limit": 4,
            "hwid_limit": 2,
        },
        follow=True,
    )

    shown = [str(m) for m in get_messages(response.wsgi_request)]
    plain = next(m for m in shown if "Copy its key now" in m).rsplit(" ", 1)[-1]
    license = world.team.licenses.order_by("-created_at").first()
    assert license.matches(plain)
    assert set(license.products.all()) == {world.product, world.other_product}
    assert (license.ip_limit, license.hwid_limit) == (4, 2)
    entry = AuditLog.objects.get(action="license.create")
    assert entry.actor == OPERATOR
    assert entry.request_data["products"] == sorted(
        [str(world.product.pk), str(world.other_product.pk)]
    )


def test_the_add_form_refuses_another_teams_product_saying_why(staff, world, outsider):
    before = License.objects.count()

    response = staff.post(
        "/admin/teams/license/add/",
        {"team": world.team.pk, "products": [world.product.pk, outsider.product.pk]},
    )

    assert response.status_code == 200  # the form again
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["products"]
    [message] = errors["products"]
    assert outsider.product.name in message and "another team" in message
    assert "is a product of another team" in response.content.decode()
    assert License.objects.count() == before
    assert not AuditLog.objects.exists()


def test_the_add_form_opened_for_a_team_offers_only_its_products(staff, world, outsider):
    everything = staff.get("/admin/teams/license/add/").content.decode()
    assert {str(world.product.pk), str(outsider.product.pk)} <= checkbox_values(
        everything, "products"
    )
    assert f"{world.product.name} · {world.team}" in everything  # the team tells them apart

    page = staff.get(f"/admin/teams/license/add/?team={world.team.pk}").content.decode()

    assert checkbox_values(page, "products") == {
        str(world.product.pk),
        str(world.other_product.pk),
    }
    assert f'<option value="{world.team.pk}" selected>' in page
    # The team's page links to it.
    team_page = staff.get(f"/admin/teams/team/{world.team.pk}/change/").content.decode()
    assert f"/admin/teams/license/add/?team={world.team.pk}" in team_page


def test_the_change_form_offers_the_teams_products_and_changes_them(staff, world, outsider):
    license = world.licenses[0]
    license.products.set([world.product])
    url = f"/admin/teams/license/{license.pk}/change/"

    page = staff.get(url).content.decode()
    assert checkbox_values(page, "products") == {
        str(world.product.pk),
        str(world.other_product.pk),
    }
    assert re.search(rf'value="{world.product.pk}"[^>]*checked', page)

    response = staff.post(
        url, change_data(license, products=[str(world.other_product.pk)], ip_limit=3)
    )

    assert response.status_code == 302
    assert list(license.products.all()) == [world.other_product]
    license.refresh_from_db()
    assert license.ip_limit == 3
    entry = AuditLog.objects.get(action="license.update")
    assert entry.request_data == {"ip_limit": 3, "products": [str(world.other_product.pk)]}

    # Another team's product is not a choice here at all.
    refused = staff.post(url, change_data(license, products=[str(outsider.product.pk)]))
    assert refused.status_code == 200
    assert "products" in refused.context["adminform"].form.errors
    assert list(license.products.all()) == [world.other_product]


def test_saving_an_unchanged_license_records_nothing(staff, world):
    license = world.licenses[0]
    license.products.set([world.product])

    response = staff.post(f"/admin/teams/license/{license.pk}/change/", change_data(license))

    assert response.status_code == 302
    assert not AuditLog.objects.exists()


# --- Licenses: seats, downloads, freeing seats ----------------------------------------------


def test_the_license_page_shows_its_seats_active_and_idle(staff, world):
    Team.objects.filter(pk=world.team.pk).update(seat_timeout_minutes=60)
    license = world.licenses[0]
    License.objects.filter(pk=license.pk).update(hwid_limit=2)
    seat(license, Seat.Kind.IP, "192.0.2.10", minutes_ago=5)
    seat(license, Seat.Kind.HWID, hwid_digest("old-device"), minutes_ago=120)
    seat(world.licenses[1], Seat.Kind.IP, "198.51.100.99")  # another license's

    page = staff.get(f"/admin/teams/license/{license.pk}/change/").content.decode()

    rows = re.findall(r"<tr><td>(.*?)</td></tr>", page, re.S)
    seat_rows = [row for row in rows if "IP address" in row or "hardware identifier" in row]
    assert len(seat_rows) == 2
    [ip_row] = [row for row in seat_rows if "192.0.2.10" in row]
    [hwid_row] = [row for row in seat_rows if hwid_digest("old-device")[:12] in row]
    assert "active" in ip_row and "idle" not in ip_row
    assert "idle" in hwid_row
    assert "198.51.100.99" not in page
    assert "Active: 0 of 2 devices, 1 of unlimited IP addresses" in page
    assert f"/admin/delivery/seat/?license__id__exact={license.pk}" in page


def test_without_a_seat_timeout_every_seat_is_active(staff, world):
    license = world.licenses[0]
    seat(license, Seat.Kind.IP, "192.0.2.10", minutes_ago=60 * 24 * 365)

    page = staff.get(f"/admin/teams/license/{license.pk}/change/").content.decode()

    assert "idle" not in page and "none (seats are kept until freed)" in page


def test_the_license_page_shows_its_20_most_recent_downloads(staff, world):
    license, other = world.licenses[:2]
    for minute in range(25):  # 9.0.0 is the oldest, 9.0.24 the newest
        make_download(world.release, license, f"9.0.{minute}", minutes_ago=100 - minute)
    make_download(world.release, other, "7.7.7")

    page = staff.get(f"/admin/teams/license/{license.pk}/change/").content.decode()

    shown = set(re.findall(r"<td>(9\.0\.\d+)</td>", page))
    assert shown == {f"9.0.{minute}" for minute in range(5, 25)}
    assert "7.7.7" not in page
    assert f"/admin/delivery/download/?license__id__exact={license.pk}" in page


def test_the_free_seats_action_frees_them_and_is_audited(staff, world):
    first, second, untouched = world.licenses
    seat(first, Seat.Kind.IP, "192.0.2.1")
    seat(first, Seat.Kind.HWID, hwid_digest("device"))
    seat(second, Seat.Kind.IP, "192.0.2.2")
    seat(untouched, Seat.Kind.IP, "192.0.2.3")

    response = staff.post(
        "/admin/teams/license/",
        {"action": "free_seats", "_selected_action": [str(first.pk), str(second.pk)]},
        follow=True,
    )

    assert "3 seat(s) freed." in [str(m) for m in get_messages(response.wsgi_request)]
    assert list(Seat.objects.values_list("license_id", flat=True)) == [untouched.pk]
    entries = AuditLog.objects.filter(action="license.free_seats")
    assert {(e.target_id, e.result["freed"]) for e in entries} == {
        (str(first.pk), 2),
        (str(second.pk), 1),
    }
    for entry in entries:
        assert (entry.actor, entry.ip_address, entry.user_agent) == (
            OPERATOR,
            "192.0.2.7",
            BROWSER,
        )


# --- Releases: download counts and recent downloads ------------------------------------------


def test_the_release_list_counts_downloads_in_one_query(staff, world):
    license = world.licenses[0]
    for _ in range(3):
        make_download(world.release, license, "1.0.0")
    make_download(world.other_release, license, "0.9.0")

    def list_page():
        with CaptureQueriesContext(connection) as queries:
            # Sorted by the download column (index 7 of list_display), most downloaded first.
            response = staff.get("/admin/releases/release/", {"o": "-7"})
        return response, len(queries)

    response, few = list_page()
    counts = [(r.version, r.download_total) for r in response.context["cl"].result_list]
    assert counts == [("1.0.0", 3), ("0.9.0", 1)]
    assert '<th scope="col" class="sortable column-download_count' in response.content.decode()

    for index in range(10):
        Release.objects.create(team=world.team, product=world.product, version=f"2.{index}.0")
    _, many = list_page()
    assert many == few  # no query per row


def test_the_release_page_shows_its_20_most_recent_downloads(staff, world):
    license = world.licenses[0]
    for minute in range(22):
        make_download(
            world.release, license, "1.0.0", minutes_ago=100 - minute, ip=f"10.0.0.{minute}"
        )
    make_download(world.other_release, license, "0.9.0", ip="10.9.9.9")

    page = staff.get(f"/admin/releases/release/{world.release.pk}/change/").content.decode()

    shown = set(re.findall(r"<td>(10\.0\.0\.\d+)</td>", page))
    assert shown == {f"10.0.0.{minute}" for minute in range(2, 22)}
    assert "10.9.9.9" not in page
    assert f"/admin/delivery/download/?release__id__exact={world.release.pk}" in page


# --- The download and seat lists ----------------------------------------------------------------


def test_the_download_list_filters_by_endpoint_and_team_and_searches_versions(
    staff, world, outsider
):
    make_download(world.release, world.licenses[0], "1.0.0", endpoint=Download.Endpoint.CLASSLOADER)
    make_download(world.release, world.licenses[0], "1.0.0-rc1")
    make_download(outsider.release, outsider.licenses[0], "5.5.5")

    def listed(**params) -> list[str]:
        response = staff.get("/admin/delivery/download/", params)
        assert response.status_code == 200
        return sorted(d.version for d in response.context["cl"].result_list)

    assert listed() == ["1.0.0", "1.0.0-rc1", "5.5.5"]
    assert listed(endpoint__exact="CLASSLOADER") == ["1.0.0"]
    assert listed(team__id__exact=str(outsider.team.pk)) == ["5.5.5"]
    assert listed(q="rc1") == ["1.0.0-rc1"]


def test_downloads_are_read_only(staff, world):
    row = make_download(world.release, world.licenses[0], "1.0.0")
    assert staff.get("/admin/delivery/download/add/").status_code == 403
    page = staff.get(f"/admin/delivery/download/{row.pk}/change/")
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    staff.post(f"/admin/delivery/download/{row.pk}/delete/", {"post": "yes"})
    assert Download.objects.filter(pk=row.pk).exists()


def test_the_seat_list_filters_by_kind_and_finds_a_hardware_id(staff, world):
    ip = seat(world.licenses[0], Seat.Kind.IP, "192.0.2.1")
    device = seat(world.licenses[0], Seat.Kind.HWID, hwid_digest("customer-pc-42"))

    def listed(**params) -> list[int]:
        response = staff.get("/admin/delivery/seat/", params)
        assert response.status_code == 200
        return sorted(s.pk for s in response.context["cl"].result_list)

    assert listed() == sorted([ip.pk, device.pk])
    assert listed(kind__exact="IP") == [ip.pk]
    assert listed(kind__exact="HWID") == [device.pk]
    assert listed(q="customer-pc-42") == [device.pk]  # the id the customer gives, not its digest
    assert listed(q="192.0.2.1") == [ip.pk]
    assert staff.get("/admin/delivery/seat/add/").status_code == 403


def test_deleting_a_seat_frees_it_through_the_audited_service(staff, world):
    license = world.licenses[0]
    freed = seat(license, Seat.Kind.IP, "192.0.2.1")
    kept = seat(license, Seat.Kind.IP, "192.0.2.2")

    response = staff.post(f"/admin/delivery/seat/{freed.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert list(Seat.objects.all()) == [kept]
    entry = AuditLog.objects.get(action="license.free_seats")
    assert (entry.actor, entry.target_id) == (OPERATOR, str(license.pk))
    assert entry.request_data == {"kind": "IP", "seat": freed.pk, "value": "192.0.2.1"}

    staff.post(
        "/admin/delivery/seat/",
        {"action": "delete_selected", "_selected_action": [str(kept.pk)], "post": "yes"},
    )
    assert not Seat.objects.exists()
    assert AuditLog.objects.filter(action="license.free_seats").count() == 2
