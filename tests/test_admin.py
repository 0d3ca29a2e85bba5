"""The admin: operators inspect everything, create and revoke keys, download files."""

import re

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from delivery.models import Download, Seat, hwid_digest
from lukittu.admin import format_bytes
from releases.models import LedgerEntry, Release, ReleaseFile
from releases.services import Actor, ReleaseChanges, release_update
from releases.storage import release_storage
from releases.uploads import upload_from_bytes
from teams.models import ApiKey, AuditLog, License, Team
from tests.helpers import make_jar, put_release, update_data


@pytest.fixture
def release_with_file(world):
    jar = make_jar()
    release_update(
        actor=Actor(team=world.team, label="operator:test"),
        release_id=world.release.pk,
        changes=ReleaseChanges(
            version="1.0.0",
            product_id=world.product.pk,
            status="PUBLISHED",
            set_as_latest=False,
            keep_existing_file=True,
            branch_id=None,
            metadata=[{"key": "channel", "value": "stable", "locked": True}],
            license_ids=[],
        ),
        upload=upload_from_bytes("app.jar", jar),
        max_file_bytes=1024 * 1024,
    )
    return Release.objects.select_related("file").get(pk=world.release.pk), jar


@pytest.mark.parametrize(
    "model",
    [
        "teams/team",
        "teams/apikey",
        "teams/license",
        "teams/auditlog",
        "releases/product",
        "releases/branch",
        "releases/release",
        "releases/releasefile",
        "releases/ledgerentry",
        "delivery/download",
        "delivery/seat",
    ],
)
def test_every_changelist_renders(staff, release_with_file, model):
    response = staff.get(f"/admin/{model}/")
    assert response.status_code == 200


def test_release_list_shows_the_columns_and_filters(staff, release_with_file):
    release, _ = release_with_file
    response = staff.get("/admin/releases/release/", {"status__exact": "PUBLISHED", "q": "1.0"})
    page = response.content.decode()
    assert release.version in page and "PUBLISHED" in page
    assert str(format_bytes(release.file.size)) in page
    assert str(release.team) in page  # the team column
    assert (
        staff.get("/admin/releases/release/", {"q": "no-such"}).content.decode().count("1.0.0") == 0
    )


def test_release_page_shows_metadata_and_file_details(staff, release_with_file):
    release, _ = release_with_file
    page = staff.get(f"/admin/releases/release/{release.pk}/change/").content.decode()
    for text in (
        "channel",
        "stable",
        release.file.name,
        release.file.checksum,
        release.file.sha256,
        "com.example.Main",
        f"{release.file.pk}/download/",
    ):
        assert text in page


def test_download_streams_the_stored_bytes_to_staff_only(staff, release_with_file):
    release, jar = release_with_file
    url = reverse("admin:releases_releasefile_download", args=[release.file.pk])
    response = staff.get(url)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == jar
    assert "attachment" in response["Content-Disposition"]
    anonymous = Client().get(url)
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]


def test_download_of_a_missing_object_is_404(staff, release_with_file):
    release, _ = release_with_file
    release_storage().delete(release.file.key)
    url = reverse("admin:releases_releasefile_download", args=[release.file.pk])
    assert staff.get(url).status_code == 404


def test_api_key_is_shown_once_and_works(staff, world, client):
    response = staff.post(
        "/admin/teams/apikey/add/", {"team": world.team.pk, "name": "ci"}, follow=True
    )
    assert response.status_code == 200
    shown = [str(m) for m in get_messages(response.wsgi_request)]
    plain = next(m for m in shown if "Copy it now" in m).rsplit(" ", 1)[-1]
    key = ApiKey.objects.get(name="ci")
    assert plain.startswith(key.prefix)
    assert plain not in {key.stem, key.digest, key.name}
    # The key works, and the key's page never shows it again.
    result = put_release(
        client, world.team.id, world.release.id, key=plain, data=update_data(world.release)
    )
    assert result.status_code == 200
    assert plain not in staff.get(f"/admin/teams/apikey/{key.pk}/change/").content.decode()


def test_revoking_a_key_stops_it(staff, world, client):
    key = ApiKey.objects.get(team=world.team)
    staff.post(
        "/admin/teams/apikey/",
        {"action": "revoke", "_selected_action": [str(key.pk)], "post": "yes"},
    )
    key.refresh_from_db()
    assert key.revoked_at is not None
    result = put_release(
        client, world.team.id, world.release.id, key=world.key, data=update_data(world.release)
    )
    assert result.status_code == 401


def test_license_key_is_shown_once_and_stored_as_a_digest(staff, world):
    response = staff.post("/admin/teams/license/add/", {"team": world.team.pk}, follow=True)
    shown = [str(m) for m in get_messages(response.wsgi_request)]
    plain = next(m for m in shown if "Copy its key now" in m).rsplit(" ", 1)[-1]
    license = world.team.licenses.order_by("-created_at").first()
    assert license.matches(plain)
    assert plain not in (license.key_digest, license.key_hint)


def test_team_flags_and_limits_are_editable(staff, world):
    response = staff.post(
        f"/admin/teams/team/{world.team.pk}/change/",
        {
            "name": "Renamed",
            "storage_limit_mb": 5,
            "file_uploads_enabled": "",
            "max_releases_per_product": 7,
            "max_branches_per_product": 10,
        },
    )
    assert response.status_code == 302
    world.team.refresh_from_db()
    assert (world.team.name, world.team.storage_limit_bytes) == ("Renamed", 5 * 1024 * 1024)
    assert world.team.max_releases_per_product == 7
    assert world.team.file_uploads_enabled is False


def test_audit_log_is_read_only(staff, world, client):
    put_release(
        client, world.team.id, world.release.id, key=world.key, data=update_data(world.release)
    )
    entry = AuditLog.objects.get()
    assert staff.get("/admin/teams/auditlog/add/").status_code == 403
    page = staff.get(f"/admin/teams/auditlog/{entry.pk}/change/")
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    staff.post(f"/admin/teams/auditlog/{entry.pk}/delete/", {"post": "yes"})
    assert AuditLog.objects.filter(pk=entry.pk).exists()


def test_releases_and_files_cannot_be_edited_in_the_admin(staff, release_with_file):
    release, _ = release_with_file
    staff.post(
        f"/admin/releases/release/{release.pk}/change/", {"version": "9.9.9", "status": "DRAFT"}
    )
    release.refresh_from_db()
    assert release.version == "1.0.0"
    staff.post(f"/admin/releases/releasefile/{release.file.pk}/delete/", {"post": "yes"})
    assert ReleaseFile.objects.filter(pk=release.file.pk).exists()


# --- Polish: sizes, the license icon, "View site", widths ----------------------------------


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (0, "0 B"),
        (1023, "1,023 B"),
        (1536, "1.5 KB"),
        (1024 * 1024, "1 MB"),
        (100 * 1024 * 1024, "100 MB"),
        (5 * 1024**3, "5,120 MB"),  # MB stays the unit: a limit entered in MB reads in MB
    ],
)
def test_sizes_are_shown_one_way(size, shown):
    assert format_bytes(size) == f'<span title="{size:,} bytes">{shown}</span>'
    assert format_bytes(None) == "-"


def test_the_storage_limit_goes_in_and_comes_out_in_megabytes(staff, world):
    response = staff.post(
        "/admin/teams/team/add/",
        {
            "name": "Acme",
            "storage_limit_mb": 250,
            "max_releases_per_product": 100,
            "max_branches_per_product": 10,
        },
    )

    assert response.status_code == 302
    team = Team.objects.get(name="Acme")
    assert team.storage_limit_bytes == 250 * 1024 * 1024
    form = staff.get(f"/admin/teams/team/{team.pk}/change/").content.decode()
    assert 'name="storage_limit_mb" value="250"' in form
    assert ">250 MB</span>" in staff.get("/admin/teams/team/").content.decode()


def test_an_untouched_limit_that_is_not_whole_megabytes_is_kept(staff, world):
    Team.objects.filter(pk=world.team.pk).update(storage_limit_bytes=5 * 1024 * 1024 + 1)

    staff.post(
        f"/admin/teams/team/{world.team.pk}/change/",
        {
            "name": "Renamed",
            "storage_limit_mb": 5,
            "max_releases_per_product": 100,
            "max_branches_per_product": 10,
        },
    )

    world.team.refresh_from_db()
    assert (world.team.name, world.team.storage_limit_bytes) == ("Renamed", 5 * 1024 * 1024 + 1)


def test_storage_used_is_shown_in_the_same_units(staff, release_with_file):
    release, _ = release_with_file
    team = Team.objects.get(pk=release.team_id)
    used = str(format_bytes(team.storage_used_bytes))
    assert team.storage_used_bytes > 0
    assert used in staff.get("/admin/teams/team/").content.decode()
    assert used in staff.get(f"/admin/teams/team/{team.pk}/change/").content.decode()
    file_page = staff.get(f"/admin/releases/releasefile/{release.file.pk}/change/")
    assert str(format_bytes(release.file.size)) in file_page.content.decode()


def test_a_suspended_license_shows_the_red_icon(staff, world):
    suspended, active, _ = world.licenses
    License.objects.filter(pk=suspended.pk).update(suspended=True)

    page = staff.get("/admin/teams/license/").content.decode()

    def row_of(license):
        start = page.index(f"/admin/teams/license/{license.pk}/change/")
        return page[start : page.index("</tr>", start)]

    assert "icon-no.svg" in row_of(suspended) and "icon-yes.svg" not in row_of(suspended)
    assert "icon-yes.svg" in row_of(active)
    assert '<th scope="col" class="column-active">' in page


def test_view_site_leads_to_the_page_at_the_root(staff):
    page = staff.get("/admin/").content.decode()
    assert '<a href="/">View site</a>' in page


LONGEST_UNBROKEN = 32  # characters a cell may hold without a space, e.g. a key prefix (28)


@pytest.mark.parametrize(
    "model",
    [
        "teams/team",
        "teams/apikey",
        "teams/license",
        "teams/auditlog",
        "releases/product",
        "releases/branch",
        "releases/release",
        "releases/releasefile",
        "releases/ledgerentry",
        "delivery/download",
        "delivery/seat",
    ],
)
def test_list_rows_stay_narrow(staff, release_with_file, model):
    """At 1400 px, a list holds at most 8 columns and no cell holds a long unbreakable token
    (a full UUID, a storage key): those widen the table past the screen."""
    team = release_with_file[0].team
    LedgerEntry.objects.create(
        key=release_with_file[0].file.key + ".old", state="DELETING", team=team, reason="replaced"
    )
    license = team.licenses.first()
    ipv6 = "2001:db8:1234:5678:9abc:def0:1234:5678"  # 38 characters, nothing to compress
    Seat.objects.create(license=license, kind=Seat.Kind.IP, value=ipv6)
    Seat.objects.create(license=license, kind=Seat.Kind.HWID, value=hwid_digest("device"))
    Download.objects.create(
        team=team,
        release=release_with_file[0],
        version=release_with_file[0].version,
        file_sha256=release_with_file[0].file.sha256,
        license=license,
        hwid_digest=hwid_digest("device"),
        ip_address=ipv6,
        endpoint=Download.Endpoint.CLASSLOADER,
    )
    response = staff.get(f"/admin/{model}/")
    rows = response.context["cl"].result_list
    assert rows, "the list should show something"
    assert len(response.context["cl"].list_display) <= 9  # the action checkbox plus 8 columns
    page = response.content.decode()
    start = page.index('<table id="result_list">')
    body = page[page.index("<tbody>", start) : page.index("</table>", start)]
    unbroken = []
    for attributes, cell in re.findall(r"<(?:td|th)\b([^>]*)>(.*?)</(?:td|th)>", body, re.S):
        text = re.sub(r"<[^>]+>", " ", cell).split()
        # Django keeps date cells on one line ("nowrap"): the whole text is one piece.
        unbroken += [" ".join(text)] if "nowrap" in attributes else text
    longest = max(unbroken, key=len)
    assert len(longest) <= LONGEST_UNBROKEN, longest
