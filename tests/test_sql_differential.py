"""Each hand-written statement (``lukittu.sql``) reads what its ORM equivalent reads from the
same rows, edge values included: NULLs, datetimes stored from another zone, UUIDs, booleans,
JSON, Decimal and non-ASCII text. Run on SQLite and on PostgreSQL (``DATABASE_URL``)."""

import itertools
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from django.db.models import DecimalField, F
from django.db.models.functions import Cast
from django.utils import timezone as django_timezone

from delivery import access
from delivery.lookup import FILE, KEY_PAIR, LICENSE, PRODUCT, RELEASE, TEAM, Found, lookup
from delivery.models import Seat, SessionKeyUse
from delivery.seats import Device, Standing, active_seats, standing
from lukittu.sql import Statement, Writer, instance, param
from releases.models import (
    Branch,
    Product,
    Release,
    ReleaseLicense,
    ReleaseMetadata,
    ReleaseStatus,
)
from releases.selectors import _RELEASE_ROW, release_detail
from releases.serializers import release_payload
from teams.authentication import key_for
from teams.models import ApiKey, AuditLog, License, Team, TeamKeyPair
from teams.services import license_create
from tests.helpers import attach_file

ELSEWHERE = timezone(timedelta(hours=5, minutes=30))


def values_of(instance, names=None) -> dict | None:
    if instance is None:
        return None
    names = names or [field.name for field in type(instance)._meta.concrete_fields]
    fields = [type(instance)._meta.get_field(name) for name in names]
    return {field.attname: getattr(instance, field.attname) for field in fields}


# --- The mechanism, on the model with JSON columns --------------------------------------------


def _write_audit(sql: Writer, variant: object):
    names = [field.name for field in AuditLog._meta.concrete_fields]
    places = DecimalField(max_digits=12, decimal_places=2)
    selected = [*sql.columns("a", names)]
    selected.append(sql.computed(f"CAST({sql.col('a.id')} AS NUMERIC(12, 2)) / 4", places))
    text = f"SELECT {sql.select(selected)} FROM {sql.table('a')} ORDER BY {sql.col('a.id')}"
    return text, selected


AUDIT = Statement({"a": AuditLog}, _write_audit)


def test_json_decimal_and_datetimes_read_as_the_orm_reads_them(world):
    """The columns a hand-conversion gets wrong: JSON (text on SQLite), Decimal, a datetime
    stored from another zone, NULLs, and non-ASCII text."""
    common = {"team": world.team, "action": "ä.test", "target_type": "t", "target_id": "1"}
    AuditLog.objects.create(
        **common,
        actor="Zoë 🚀",
        request_data={"name": "Zoë 🚀", "n": 1.5, "list": [1, None, True], "none": None},
        result=["a", {"b": False}],
        created_at=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=ELSEWHERE),
        ip_address="2001:db8::1",
    )
    AuditLog.objects.create(**common, actor="op", request_data=None, result="plain text")
    names = [field.name for field in AuditLog._meta.concrete_fields]

    rows = AUDIT.rows([])
    expected = AuditLog.objects.order_by("id").annotate(
        quarter=Cast(F("id"), DecimalField(max_digits=12, decimal_places=2)) / 4
    )

    assert [values_of(instance(AuditLog, names, row[:-1])) for row in rows] == [
        values_of(log) for log in expected
    ]
    assert [row[-1] for row in rows] == [log.quarter for log in expected]
    assert all(isinstance(row[-1], Decimal) for row in rows)
    assert rows[0][names.index("request_data")]["name"] == "Zoë 🚀"
    assert rows[0][names.index("created_at")] == datetime(2026, 1, 1, 21, 34, 5, 678901, UTC)


def test_a_parameter_is_prepared_by_its_field(world):
    """An aware datetime from another zone matches the row the ORM stored."""
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=ELSEWHERE)
    Seat.objects.create(license=world.licenses[0], kind="IP", value="1.2.3.4", last_seen_at=at)

    def write(sql: Writer, variant: object):
        selected = [sql.column("s.value")]
        text = f"SELECT {sql.select(selected)} FROM {sql.table('s')} "
        return text + f"WHERE {sql.col('s.last_seen_at')} = %s", selected

    assert Statement({"s": Seat}, write).rows([param(Seat, "last_seen_at", at)]) == [["1.2.3.4"]]


# --- The API key with its team ----------------------------------------------------------------


def test_the_key_lookup_reads_as_select_related(world):
    Team.objects.filter(pk=world.team.pk).update(name="Équipe 🚀", seat_timeout_minutes=None)
    ApiKey.objects.filter(pk__isnull=False).update(
        expires_at=datetime(2030, 1, 1, tzinfo=ELSEWHERE), last_used_at=None
    )

    key = key_for(world.key)
    expected = ApiKey.objects.select_related("team").get(stem=ApiKey.stem_of(world.key))

    assert key is not None
    assert (values_of(key), values_of(key.team)) == (values_of(expected), values_of(expected.team))
    assert key.team.name == "Équipe 🚀" and key.last_used_at is None


# --- The Client API's lookup ------------------------------------------------------------------


def orm_lookup(team_id, digest, product_id, branch, version, *, key_pair, product) -> Found:
    """What ``delivery.lookup`` reads, one ORM query per part."""
    team = Team.objects.filter(pk=team_id, deleted_at__isnull=True).first()
    if team is None:
        return Found(None, None, None, None, None, None, None)
    pair = TeamKeyPair.objects.filter(team=team).first() if key_pair else None
    license = License.objects.filter(team=team, key_digest=digest).first()
    if license is not None:
        license.opens_product = Product.licenses.through.objects.filter(
            license=license, product_id=product_id, product__team=team
        ).exists()
    branch_row = (
        None
        if branch is None
        else Branch.objects.filter(product_id=product_id, name=branch).first()
    )
    line = Release.objects.filter(product_id=product_id, file__isnull=False)
    line = line.filter(branch=branch_row) if branch_row else line.filter(branch__isnull=True)
    if branch is not None and branch_row is None:
        line = line.none()
    chosen = line.filter(team=team).filter(
        **({"version": version} if version else {"latest": True})
    )
    release = chosen.select_related("file", "product").first()
    if release is not None:
        release.limited = ReleaseLicense.objects.filter(release=release).exists()
    latest = line.filter(latest=True).values_list("version", flat=True).first()
    return Found(
        team=team,
        key_pair=pair,
        license=license,
        branch=branch_row,
        release=release,
        product=release.product if release is not None and product else None,
        latest_version=latest if version else (release.version if release else None),
    )


def summary(found: Found) -> dict:
    release = found.release
    return {
        "team": values_of(found.team, TEAM[2]),
        "key_pair": values_of(found.key_pair, KEY_PAIR[2]),
        "license": values_of(found.license, LICENSE[2]),
        "opens": getattr(found.license, "opens_product", None),
        "branch": values_of(found.branch, ("id", "product", "name")),
        "release": values_of(release, RELEASE[2]),
        "limited": getattr(release, "limited", None),
        "file": values_of(release.file, FILE[2]) if release else None,
        "product": values_of(found.product, PRODUCT[2]),
        "latest_version": found.latest_version,
    }


def client_world(world, outsider):
    """Every case the lookup distinguishes: licenses that open the product or not, suspended
    and expiring ones; a Unicode branch; releases with and without files, limited to licenses
    or not, on the main line and on the branch; and another team's product."""
    team, product = world.team, world.product
    open_license = license_create(
        team=team, products=[product], ip_limit=2, expires_at=datetime(2031, 5, 6, tzinfo=ELSEWHERE)
    )[0]
    shut_license = license_create(team=team, suspended=True)[0]
    unicode_branch = Branch.objects.create(product=product, name="ß-ünïcode")
    attach_file(world.other_release, "main.jar", b"main")  # 0.9.0, latest on the main line
    on_branch = Release.objects.create(
        team=team,
        product=product,
        branch=unicode_branch,
        version="2.0.0-ä",
        status=ReleaseStatus.PUBLISHED,
        latest=True,
    )
    attach_file(on_branch, "branch.jar", b"branch", main_class_name="com.ünï.Main")
    ReleaseLicense.objects.create(release=on_branch, license=open_license)
    ReleaseMetadata.objects.create(release=on_branch, position=0, key="k", value="v")
    digests = [open_license.key_digest, shut_license.key_digest, "0" * 64]
    return digests, [product.id, world.other_product.id, outsider.product.id]


def test_every_shape_of_the_lookup_reads_as_the_orm_reads_it(world, outsider):
    digests, products = client_world(world, outsider)
    Team.objects.filter(pk=outsider.team.pk).update(deleted_at=django_timezone.now())
    teams = [world.team.id, outsider.team.id]
    cases = itertools.product(
        teams,
        digests,
        products,
        [None, "beta", "ß-ünïcode", "nope"],
        [None, "0.9.0", "2.0.0-ä", "1.0.0"],
        [False, True],
        [False, True],
    )
    checked = 0
    for team_id, digest, product_id, branch, version, key_pair, with_product in cases:
        args = (team_id, digest, product_id, branch, version)
        options = {"key_pair": key_pair, "product": with_product}
        assert summary(lookup(*args, **options)) == summary(orm_lookup(*args, **options)), args
        checked += 1
    found = lookup(
        world.team.id, digests[0], world.product.id, "ß-ünïcode", None, key_pair=True, product=True
    )
    assert (found.release.version, found.release.limited, found.license.opens_product) == (
        "2.0.0-ä",
        True,
        True,
    )
    assert found.license.expires_at == datetime(2031, 5, 5, 18, 30, tzinfo=UTC)
    assert checked == 2 * 3 * 3 * 4 * 4 * 2 * 2


# --- Seats --------------------------------------------------------------------------------------


def orm_standing(team, license, device, now) -> dict[str, Standing]:
    result = {}
    for kind, value in device.wanted():
        active = active_seats(team, license, kind, now)
        result[kind] = Standing(
            active=active.count(),
            held=Seat.objects.filter(license=license, kind=kind, value=value).exists(),
            held_active=active.filter(value=value).exists(),
        )
    return result


def test_seat_standing_reads_as_the_orm_counts(world):
    license, other = world.licenses[:2]
    now = django_timezone.now()
    mine = Device("hwid-ünï 🚀", "2001:db8::7")
    stale, fresh = now - timedelta(hours=3), now - timedelta(minutes=1)
    seats = [
        (license, "IP", "2001:db8::7", stale),
        (license, "IP", "10.0.0.1", fresh),
        (license, "HWID", mine.hwid_digest, fresh.astimezone(ELSEWHERE)),
        (license, "HWID", "f" * 64, stale),
        (other, "IP", "10.0.0.2", fresh),
    ]
    for owner, kind, value, seen in seats:
        Seat.objects.create(license=owner, kind=kind, value=value, last_seen_at=seen)
    devices = [mine, Device("someone else", None), Device("hwid-ünï 🚀", None)]
    for timeout, device, owner in itertools.product([None, 60], devices, [license, other]):
        world.team.seat_timeout_minutes = timeout
        assert standing(world.team, owner, device, now) == orm_standing(
            world.team, owner, device, now
        )
    world.team.seat_timeout_minutes = 60
    assert standing(world.team, license, mine, now) == {
        "IP": Standing(active=1, held=True, held_active=False),
        "HWID": Standing(active=1, held=True, held_active=True),
    }


# --- The session-key claim ----------------------------------------------------------------------


def orm_claim(team, digest, now, cutoff) -> bool:
    use = SessionKeyUse.objects.filter(team=team, digest=digest).first()
    if use is None:
        SessionKeyUse.objects.create(team=team, digest=digest, used_at=now)
        return True
    if use.used_at < cutoff:
        SessionKeyUse.objects.filter(pk=use.pk).update(used_at=now)
        return True
    return False


def claim(team, digest, now, cutoff) -> bool:
    params = [
        param(SessionKeyUse, "team", team.pk),
        digest,
        param(SessionKeyUse, "used_at", now),
        param(SessionKeyUse, "used_at", cutoff),
    ]
    return access._CLAIM.row(params) is not None


def test_the_session_key_claim_does_what_the_orm_version_does(world, outsider):
    start = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=ELSEWHERE)
    window = access.SESSION_KEY_WINDOW
    steps = [("a", 0), ("a", 1), ("b", 2), ("a", 16), ("a", 20), ("b", 40), ("b", 41)]
    outcomes = {}
    for team, claims in ((world.team, claim), (outsider.team, orm_claim)):
        outcomes[team.pk] = [
            claims(
                team,
                digest * 64,
                start + timedelta(minutes=m),
                start + timedelta(minutes=m) - window,
            )
            for digest, m in steps
        ]
    stored = {
        team.pk: sorted(SessionKeyUse.objects.filter(team=team).values_list("digest", "used_at"))
        for team in (world.team, outsider.team)
    }

    assert outcomes[world.team.pk] == outcomes[outsider.team.pk]
    assert outcomes[world.team.pk] == [True, False, True, True, False, True, False]
    assert stored[world.team.pk] == stored[outsider.team.pk]


# --- Get Release --------------------------------------------------------------------------------


def test_get_release_reads_as_the_orm_reads_it_edge_values(world):
    """Non-ASCII text, a product without URL or creator, one with both, datetimes stored from
    another zone, a locked item, a release without a branch or file."""
    created = datetime(2026, 2, 3, 4, 5, 6, 789012, tzinfo=ELSEWHERE)
    Product.objects.filter(pk=world.product.pk).update(name="Äpp 🚀", url=None, created_at=created)
    release = world.release
    Release.objects.filter(pk=release.pk).update(version="1.0.0-ß", branch=world.branch)
    attach_file(release, "plugïn.jar", b"bytes", main_class_name="com.ünï.Main")
    for position, (key, value) in enumerate([("ключ", "значение"), ("emoji", "🚀"), ("", "x")]):
        ReleaseMetadata.objects.create(
            release=release, position=position, key=key, value=value, locked=bool(position % 2)
        )
    ReleaseLicense.objects.create(release=release, license=world.licenses[1])

    for target in (release, world.other_release):
        loaded = (
            Release.objects.select_related("product", "branch", "file")
            .prefetch_related("metadata", "license_links")
            .get(pk=target.pk)
        )
        assert release_detail(team_id=world.team.id, release_id=target.id) == release_payload(
            loaded
        )
    row = _RELEASE_ROW.row(
        [param(Release, "id", release.id), param(Release, "team", world.team.id)]
    )
    paths = ["id", "version", "status", "latest", "product", "branch", "team", "created_at"]
    paths += ["updated_at", "product__name", "product__url", "product__team"]
    paths += ["product__created_by_user_id", "product__created_at", "product__updated_at"]
    paths += ["branch__name", "file__id", "file__key", "file__size", "file__name"]
    paths += ["file__checksum", "file__sha256", "file__main_class_name", "file__created_at"]
    assert row[:-2] == list(Release.objects.values_list(*paths).get(pk=release.pk))
    assert sorted(item[2] for item in row[-2]) == ["", "emoji", "ключ"]
    # Inside the JSON arrays the values are as the database writes them (a UUID is 32 hex
    # digits on SQLite): ``release_payload_from_row`` reads them.
    [(link_id, license_id)] = row[-1]
    link = ReleaseLicense.objects.get(release=release)
    assert (link_id, uuid.UUID(license_id)) == (link.pk, world.licenses[1].pk)


# --- The team's active webhook endpoints (every write asks) ------------------------------------


def test_active_endpoints_read_as_the_orm_reads_them(world, outsider):
    from webhooks.events import active_endpoints
    from webhooks.models import WebhookEndpoint

    assert active_endpoints(world.team) == []
    stamp = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=ELSEWHERE)
    made = [
        WebhookEndpoint.objects.create(
            team=world.team,
            url=f"https://hooks.example.com/{n}",
            events=["release.updated", "ünïcode"] if n else [],
            active=n != 1,
            secret=f"whsec_{n}",
            previous_secret="whsec_old" if n == 2 else "",
            previous_secret_expires_at=stamp if n == 2 else None,
            failing_since=stamp if n == 3 else None,
            disabled_reason="Zeitüberschreitung" if n == 3 else "",
        )
        for n in range(4)
    ]
    WebhookEndpoint.objects.create(team=outsider.team, url="https://x.example.com", secret="s")
    # Two with one creation time: the id decides, as the ORM's ordering says.
    WebhookEndpoint.objects.filter(pk__in=[made[2].pk, made[3].pk]).update(created_at=stamp)

    expected = list(WebhookEndpoint.objects.filter(team=world.team, active=True))
    found = active_endpoints(world.team)

    assert [values_of(endpoint) for endpoint in found] == [values_of(e) for e in expected]
    assert len(found) == 3 and found[0].events == []
    by_url = {endpoint.url: endpoint for endpoint in found}
    assert by_url["https://hooks.example.com/2"].previous_secret_expires_at == stamp
