"""Release reads, always inside one team."""

import uuid
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import F, JSONField, QuerySet
from django.db.models.functions import Collate

from lukittu.api import ApiError, Code
from lukittu.sql import Output, Statement, Writer, param
from releases.models import (
    Branch,
    Product,
    Release,
    ReleaseFile,
    ReleaseLicense,
    ReleaseMetadata,
)
from releases.serializers import ReleaseRow, release_payload_from_row
from teams.models import Team

SORT_FIELDS = {
    "version": "version_sort_key",
    "createdAt": "created_at",
    "updatedAt": "updated_at",
    "latest": "latest",
}


@dataclass(frozen=True)
class ReleasePage:
    releases: list[Release]
    total: int
    has_next_page: bool


def _with_payload_relations(queryset: QuerySet[Release]) -> QuerySet[Release]:
    """Everything ``release_payload`` reads, in a fixed number of queries."""
    return queryset.select_related("product", "branch", "file").prefetch_related(
        "metadata", "license_links"
    )


# Where each column of a ``ReleaseRow`` comes from: (table alias, field), in order.
_ROW_SOURCES: tuple[tuple[str, str], ...] = (
    ("r", "id"),
    ("r", "version"),
    ("r", "status"),
    ("r", "latest"),
    ("r", "product"),
    ("r", "branch"),
    ("r", "team"),
    ("r", "created_at"),
    ("r", "updated_at"),
    ("p", "name"),
    ("p", "url"),
    ("p", "team"),
    ("p", "created_by_user_id"),
    ("p", "created_at"),
    ("p", "updated_at"),
    ("b", "name"),
    ("f", "id"),
    ("f", "key"),
    ("f", "size"),
    ("f", "name"),
    ("f", "checksum"),
    ("f", "sha256"),
    ("f", "main_class_name"),
    ("f", "created_at"),
)


def _write_release_row(sql: Writer, variant: object) -> tuple[str, list[Output]]:
    """The one statement of ``release_detail``. The metadata and license links come as JSON
    arrays of arrays, whose order the caller restores (each carries its sort key), so the only
    difference between backends is the names of two JSON functions (on PostgreSQL the jsonb
    ones, which the driver hands over as text for ``JSONField`` to read, as it reads a column)."""
    if len(_ROW_SOURCES) + 2 != len(ReleaseRow._fields):
        raise AssertionError("_ROW_SOURCES does not match ReleaseRow")
    if sql.vendor == "postgresql":
        aggregate, array = "jsonb_agg", "jsonb_build_array"
    else:  # SQLite's JSON1 functions, which the audit log's JSONField already needs
        aggregate, array = "json_group_array", "json_array"
    table, col = sql.table, sql.col
    selected = [sql.column(f"{alias}.{name}") for alias, name in _ROW_SOURCES]
    metadata = ", ".join(col(f"m.{name}") for name in ("position", "id", "key", "value", "locked"))
    # S608 below: the text is made only of the models' table and column names, quoted; the
    # two values (the ids) are parameters.
    aggregates = (
        f"(SELECT {aggregate}({array}({metadata})) FROM {table('m')} "  # noqa: S608
        f"WHERE {col('m.release')} = {col('r.id')})",
        f"(SELECT {aggregate}({array}({col('l.id')}, {col('l.license')})) "  # noqa: S608
        f"FROM {table('l')} WHERE {col('l.release')} = {col('r.id')})",
    )
    selected += [sql.computed(text, JSONField()) for text in aggregates]
    text = (
        f"SELECT {sql.select(selected)} FROM {table('r')} "  # noqa: S608
        f"INNER JOIN {table('p')} ON {col('p.id')} = {col('r.product')} "
        f"LEFT OUTER JOIN {table('b')} ON {col('b.id')} = {col('r.branch')} "
        f"LEFT OUTER JOIN {table('f')} ON {col('f.release')} = {col('r.id')} "
        f"WHERE {col('r.id')} = %s AND {col('r.team')} = %s"
    )
    return text, selected


_RELEASE_ROW = Statement(
    {
        "r": Release,
        "p": Product,
        "b": Branch,
        "f": ReleaseFile,
        "m": ReleaseMetadata,
        "l": ReleaseLicense,
    },
    _write_release_row,
)


def release_detail(*, team_id: uuid.UUID, release_id: uuid.UUID) -> dict[str, Any]:
    """Get Release's ``data``: the team's release with its product, branch, file, metadata and
    license ids, in one statement. Get Release is the API's most frequent read, and the ORM's
    version (a select_related query and two prefetches) spent most of its time building
    queries and model instances that are only turned into JSON; this reads plain values."""
    params = [param(Release, "id", release_id), param(Release, "team", team_id)]
    row = _RELEASE_ROW.row(params)
    if row is None:
        raise ApiError(404, Code.RELEASE_NOT_FOUND, "Release not found")
    return release_payload_from_row(ReleaseRow._make(row))


def _sort_expression(field: str) -> F | Collate:
    # The version key is built to sort right byte by byte; PostgreSQL's default collation may
    # be a locale that ignores punctuation, so compare it in the "C" collation there.
    if field == "version_sort_key" and connection.vendor == "postgresql":
        return Collate(F(field), "C")
    return F(field)


def release_list(
    *,
    team: Team,
    product_id: uuid.UUID | None = None,
    status: str | None = None,
    search: str = "",
    sort_column: str = "createdAt",
    sort_direction: str = "desc",
    page: int = 1,
    page_size: int = 25,
) -> ReleasePage:
    """One page of the team's releases. Ties are broken by id, so the order is stable."""
    queryset = Release.objects.filter(team=team)
    if product_id is not None:
        if not Product.objects.filter(team=team, pk=product_id).exists():
            raise ApiError(404, Code.PRODUCT_NOT_FOUND, "Product not found")
        queryset = queryset.filter(product_id=product_id)
    if status:
        queryset = queryset.filter(status=status)
    if search:
        queryset = queryset.filter(version__icontains=search)
    total = queryset.count()
    descending = sort_direction == "desc"
    order = [
        _sort_expression(SORT_FIELDS[sort_column]),
        F("id"),
    ]
    ordered = queryset.order_by(*(expr.desc() if descending else expr.asc() for expr in order))
    offset = (page - 1) * page_size
    releases = list(_with_payload_relations(ordered)[offset : offset + page_size])
    return ReleasePage(releases, total, offset + len(releases) < total)
