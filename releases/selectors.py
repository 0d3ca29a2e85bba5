"""Release reads, always inside one team."""

import uuid
from dataclasses import dataclass

from django.db import connection
from django.db.models import F, QuerySet
from django.db.models.functions import Collate

from lukittu.api import ApiError, Code
from releases.models import Product, Release
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


def release_get(*, team: Team, release_id: uuid.UUID) -> Release:
    release = _with_payload_relations(Release.objects.filter(team=team, pk=release_id)).first()
    if release is None:
        raise ApiError(404, Code.RELEASE_NOT_FOUND, "Release not found")
    return release


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
