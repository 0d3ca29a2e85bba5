"""Bearer authentication: the API key is the principal, and it only opens its own team's URLs."""

from datetime import timedelta
from typing import Any

from django.utils import timezone
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from lukittu.api import ApiError, invalid_api_key, too_many_auth_failures
from lukittu.sql import Output, Statement, Writer, instance
from lukittu.throttling import count_auth_failure
from teams.models import ApiKey, Team

LAST_USED_RESOLUTION = timedelta(minutes=1)
MAX_HEADER_LENGTH = 256


_KEY_FIELDS = tuple(field.name for field in ApiKey._meta.concrete_fields)
_TEAM_FIELDS = tuple(field.name for field in Team._meta.concrete_fields)


def _write_key_query(sql: Writer, variant: object) -> tuple[str, list[Output]]:
    """``ApiKey.objects.select_related("team").filter(stem=...)``: every request of the
    Developer API starts with this lookup, and building it with the ORM cost more than running
    it. Every concrete field of both models, so fields added later are loaded too."""
    outputs = sql.columns("k", _KEY_FIELDS) + sql.columns("t", _TEAM_FIELDS)
    # S608: only the models' quoted table and column names; the stem is a parameter.
    text = (
        f"SELECT {sql.select(outputs)} FROM {sql.table('k')} "  # noqa: S608
        f"INNER JOIN {sql.table('t')} ON {sql.col('t.id')} = {sql.col('k.team')} "
        f"WHERE {sql.col('k.stem')} = %s"
    )
    return text, outputs


_KEY_WITH_TEAM = Statement({"k": ApiKey, "t": Team}, _write_key_query)


def _key_with_team(stem: str) -> ApiKey | None:
    """The key whose stem is ``stem`` (unique), its team loaded with it, in one statement."""
    row = _KEY_WITH_TEAM.row([stem])
    if row is None:
        return None
    split = len(_KEY_FIELDS)
    key = instance(ApiKey, _KEY_FIELDS, row[:split])
    team = instance(Team, _TEAM_FIELDS, row[split:])
    assert key is not None and team is not None  # the primary keys are never NULL here
    # What select_related does: the team is the key's cached related object.
    ApiKey._meta.get_field("team").set_cached_value(key, team)
    return key


def key_for(plain: str) -> ApiKey | None:
    """The usable key (not expired, not revoked, its team not deleted) whose text is
    ``plain``, or None."""
    stem = ApiKey.stem_of(plain)
    if stem is None:
        return None
    key = _key_with_team(stem)
    if key is None or not key.matches(plain) or not key.is_usable() or key.team.is_deleted:
        return None
    return key


def refused(request: Request) -> ApiError:
    """The answer to a key that does not open this URL: 401, counted against the caller's
    address; 429 with ``Retry-After`` once the address is over ``DEV_API_AUTH_FAILURE_RATE``
    (which then refuses its valid keys too: ``ApiKeyRateThrottle``)."""
    counted = count_auth_failure(request)
    if counted is None or counted.allowed:
        return invalid_api_key()
    return too_many_auth_failures(counted.reset, counted.headers())


class ApiKeyAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[None, ApiKey] | None:
        header = get_authorization_header(request)
        if not header:
            return None
        parts = header.split()
        if (
            len(header) > MAX_HEADER_LENGTH
            or len(parts) != 2
            or parts[0].lower() != self.keyword.lower().encode()
        ):
            raise refused(request)
        try:
            plain = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise refused(request) from None
        key = key_for(plain)
        if key is None:
            raise refused(request)
        now = timezone.now()
        if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
            # A cheap single-row update, at most once a minute per key.
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
            key.last_used_at = now
        return (None, key)

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class IsTeamApiKey(BasePermission):
    """The key's team must be the team in the URL; any other key is simply invalid here."""

    def has_permission(self, request: Request, view: Any) -> bool:
        key = request.auth
        if not isinstance(key, ApiKey):
            return False
        # ``team_id`` is the URL's teamId, already parsed as a UUID by the view.
        if key.team_id != getattr(view, "team_id", None):
            raise refused(request)
        return True
