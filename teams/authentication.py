"""Bearer authentication: the API key is the principal, and it only opens its own team's URLs."""

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field
from django.utils import timezone
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from lukittu.api import ApiError, invalid_api_key, too_many_auth_failures
from lukittu.throttling import count_auth_failure
from teams.models import ApiKey, Team

LAST_USED_RESOLUTION = timedelta(minutes=1)
MAX_HEADER_LENGTH = 256


@dataclass(frozen=True)
class _KeyQuery:
    """``ApiKey.objects.select_related("team").filter(stem=...)`` written out once: its SQL,
    the fields of each model in column order, and each column's converters (Django's own, so
    values reach the models as the ORM would hand them over)."""

    sql: str
    key_fields: tuple[str, ...]
    team_fields: tuple[str, ...]
    converters: tuple[tuple[Any, tuple[Callable[..., Any], ...]], ...]


def _build_key_query(db: BaseDatabaseWrapper) -> _KeyQuery:
    """Every request of the Developer API starts with this lookup, and building it with the
    ORM cost more than running it: it is made once per connection from the models' metadata
    (every concrete field of both, so fields added later are loaded too)."""
    quote = db.ops.quote_name
    columns: list[tuple[str, Field]] = [("k", field) for field in ApiKey._meta.concrete_fields]
    columns += [("t", field) for field in Team._meta.concrete_fields]
    team_id = ApiKey._meta.get_field("team").column
    stem = ApiKey._meta.get_field("stem").column
    # S608: only the models' quoted table and column names; the stem is a parameter.
    sql = (
        "SELECT "  # noqa: S608
        + ", ".join(f"{alias}.{quote(field.column)}" for alias, field in columns)
        + f" FROM {quote(ApiKey._meta.db_table)} k INNER JOIN {quote(Team._meta.db_table)} t"
        f" ON t.{quote(Team._meta.pk.column)} = k.{quote(team_id)}"
        f" WHERE k.{quote(stem)} = %s"
    )
    converters = []
    for alias, field in columns:
        column = field.get_col(alias)
        functions = db.ops.get_db_converters(column) + column.get_db_converters(db)
        converters.append((column, tuple(functions)))
    return _KeyQuery(
        sql=sql,
        key_fields=tuple(field.attname for field in ApiKey._meta.concrete_fields),
        team_fields=tuple(field.attname for field in Team._meta.concrete_fields),
        converters=tuple(converters),
    )


# Per connection, as the ORM's converters are: some are bound to their connection's
# operations. Connections are per thread and live as long as their thread.
_key_queries: "weakref.WeakKeyDictionary[BaseDatabaseWrapper, _KeyQuery]" = (
    weakref.WeakKeyDictionary()
)


def _key_with_team(stem: str) -> ApiKey | None:
    """The key whose stem is ``stem`` (unique), its team loaded with it, in one statement."""
    db = connections[DEFAULT_DB_ALIAS]
    query = _key_queries.get(db)
    if query is None:
        query = _key_queries[db] = _build_key_query(db)
    with db.cursor() as cursor:
        cursor.execute(query.sql, [stem])
        row = cursor.fetchone()
    if row is None:
        return None
    values = []
    for value, (column, functions) in zip(row, query.converters, strict=True):
        for convert in functions:
            value = convert(value, column, db)
        values.append(value)
    split = len(query.key_fields)
    key = ApiKey.from_db(db.alias, query.key_fields, values[:split])
    team = Team.from_db(db.alias, query.team_fields, values[split:])
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
