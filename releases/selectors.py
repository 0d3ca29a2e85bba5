"""Release reads, always inside one team."""

import functools
import uuid
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import F, Model, QuerySet
from django.db.models.functions import Collate

from lukittu.api import ApiError, Code
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


# Where each column of a ``ReleaseRow`` comes from: (table alias, model, field), in order.
_ROW_SOURCES: tuple[tuple[str, type[Model], str], ...] = (
    ("r", Release, "id"),
    ("r", Release, "version"),
    ("r", Release, "status"),
    ("r", Release, "latest"),
    ("r", Release, "product"),
    ("r", Release, "branch"),
    ("r", Release, "team"),
    ("r", Release, "created_at"),
    ("r", Release, "updated_at"),
    ("p", Product, "name"),
    ("p", Product, "url"),
    ("p", Product, "team"),
    ("p", Product, "created_by_user_id"),
    ("p", Product, "created_at"),
    ("p", Product, "updated_at"),
    ("b", Branch, "name"),
    ("f", ReleaseFile, "id"),
    ("f", ReleaseFile, "key"),
    ("f", ReleaseFile, "size"),
    ("f", ReleaseFile, "name"),
    ("f", ReleaseFile, "checksum"),
    ("f", ReleaseFile, "sha256"),
    ("f", ReleaseFile, "main_class_name"),
    ("f", ReleaseFile, "created_at"),
)


@functools.cache
def _release_row_sql(vendor: str) -> str:
    """The one statement of ``release_detail``, written from the models' tables and columns.
    The metadata and license links come as JSON arrays of arrays, whose order the caller
    restores (each carries its sort key), so the only difference between backends is the
    names of two JSON functions."""
    if len(_ROW_SOURCES) + 2 != len(ReleaseRow._fields):
        raise AssertionError("_ROW_SOURCES does not match ReleaseRow")
    if vendor == "postgresql":
        aggregate, array = "json_agg", "json_build_array"
    else:  # SQLite's JSON1 functions, which the audit log's JSONField already needs
        aggregate, array = "json_group_array", "json_array"
    quote = connection.ops.quote_name

    def table(model: type[Model]) -> str:
        return quote(model._meta.db_table)

    def column(alias: str, model: type[Model], name: str) -> str:
        return f"{alias}.{quote(model._meta.get_field(name).column)}"

    def metadata(name: str) -> str:
        return column("m", ReleaseMetadata, name)

    def link(name: str) -> str:
        return column("l", ReleaseLicense, name)

    # S608 below: the text is made only of the models' table and column names, quoted; the
    # two values (the ids) are parameters.
    release_id = column("r", Release, "id")
    selected = [column(*source) for source in _ROW_SOURCES]
    selected.append(
        f"(SELECT {aggregate}({array}("  # noqa: S608
        + ", ".join(metadata(name) for name in ("position", "id", "key", "value", "locked"))
        + f")) FROM {table(ReleaseMetadata)} m WHERE {metadata('release')} = {release_id})"
    )
    selected.append(
        f"(SELECT {aggregate}({array}({link('id')}, {link('license')})) "  # noqa: S608
        f"FROM {table(ReleaseLicense)} l WHERE {link('release')} = {release_id})"
    )
    return (
        f"SELECT {', '.join(selected)} FROM {table(Release)} r "  # noqa: S608
        f"INNER JOIN {table(Product)} p ON {column('p', Product, 'id')} = "
        f"{column('r', Release, 'product')} "
        f"LEFT OUTER JOIN {table(Branch)} b ON {column('b', Branch, 'id')} = "
        f"{column('r', Release, 'branch')} "
        f"LEFT OUTER JOIN {table(ReleaseFile)} f ON {column('f', ReleaseFile, 'release')} = "
        f"{release_id} "
        f"WHERE {release_id} = %s AND {column('r', Release, 'team')} = %s"
    )


def release_detail(*, team_id: uuid.UUID, release_id: uuid.UUID) -> dict[str, Any]:
    """Get Release's ``data``: the team's release with its product, branch, file, metadata and
    license ids, in one statement. Get Release is the API's most frequent read, and the ORM's
    version (a select_related query and two prefetches) spent most of its time building
    queries and model instances that are only turned into JSON; this reads plain values."""
    pk = Release._meta.pk
    params = [
        pk.get_db_prep_value(release_id, connection),
        Team._meta.pk.get_db_prep_value(team_id, connection),
    ]
    with connection.cursor() as cursor:
        cursor.execute(_release_row_sql(connection.vendor), params)
        row = cursor.fetchone()
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
