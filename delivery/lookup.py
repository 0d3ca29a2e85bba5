"""The Client API's reads up to the seats, in one statement: the team (and its key pair, for
the classloader), the team's license with the client's key and whether it opens the product,
the named branch, and the release to deliver with its file, product and whether it is limited
to licenses (and, when a version is asked for, the line's latest version).

Every request of the Client API makes these reads, and the ORM's version of them (a query for
each, with their joins and subqueries) spent most of its time building queries rather than
waiting for the database. The statement is written from the models' tables and columns, once
per backend and shape; ``delivery.access`` checks what it finds in the README's order. The
rows come back as deferred model instances: a field that was not read is loaded on first use
rather than wrong."""

import functools
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from django.db import connection
from django.db.models import Model

from releases.models import Branch, Product, Release, ReleaseFile, ReleaseLicense
from teams.models import License, Team, TeamKeyPair

M = TypeVar("M", bound=Model)

# What each row brings, per model: (table alias, model, field names), in the SELECT's order.
TEAM = ("t", Team, ("id", "file_uploads_enabled", "seat_timeout_minutes"))
KEY_PAIR = ("k", TeamKeyPair, ("team", "public_key_pem", "private_key_sealed"))
LICENSE = ("l", License, ("id", "team", "suspended", "expires_at", "ip_limit", "hwid_limit"))
BRANCH = ("b", Branch, ("id", "product", "name"))
RELEASE = (
    "r",
    Release,
    ("id", "team", "product", "branch", "version", "status", "latest", "created_at"),
)
FILE = (
    "f",
    ReleaseFile,
    (
        *("id", "team", "release", "key", "size", "name"),
        *("checksum", "sha256", "main_class_name", "created_at"),
    ),
)
PRODUCT = ("p", Product, ("id", "team", "name"))


@dataclass(frozen=True)
class Shape:
    """Which parts a request needs: each combination is its own cached statement."""

    key_pair: bool
    branch: bool
    version: bool
    product: bool

    def sources(self) -> list[tuple[str, type[Model], tuple[str, ...]]]:
        sources = [TEAM, *([KEY_PAIR] if self.key_pair else []), LICENSE]
        sources += [*([BRANCH] if self.branch else []), RELEASE, FILE]
        return sources + ([PRODUCT] if self.product else [])


@dataclass
class Found:
    """What the statement found; None where nothing matched. ``license.opens_product`` and
    ``release.limited`` are set; ``release.file``, ``release.branch`` (and ``release.product``
    when asked for) are the related rows. ``branch`` is None when none was named."""

    team: Team | None
    key_pair: TeamKeyPair | None
    license: License | None
    branch: Branch | None
    release: Release | None
    product: Product | None  # the release's, when asked for
    latest_version: str | None


THROUGH = Product.licenses.through
# Every table alias of the statement, and its model.
ALIASES: dict[str, type[Model]] = {
    "t": Team,
    "k": TeamKeyPair,
    "l": License,
    "b": Branch,
    "r": Release,
    "f": ReleaseFile,
    "p": Product,
    "o": THROUGH,  # the license's products, for "opens"
    "op": Product,
    "rl": ReleaseLicense,
    "r2": Release,  # the line's latest, beside an asked-for version
    "f2": ReleaseFile,
}


def table(alias: str) -> str:
    return f"{connection.ops.quote_name(ALIASES[alias]._meta.db_table)} {alias}"


def col(reference: str) -> str:
    """``"l.key_digest"``: the alias and the field's column, quoted."""
    alias, name = reference.split(".")
    column = ALIASES[alias]._meta.get_field(name).column
    return f"{alias}.{connection.ops.quote_name(column)}"


@functools.cache
def _statement(vendor: str, shape: Shape) -> str:
    """The SQL for ``shape``, in standard SQL that PostgreSQL and SQLite both read (``vendor``
    only keys the cache: the quoting is the connection's). Its parameters, in order: the
    product id (opens), [the product id (the line's latest version)], the key's digest, [the
    product id and the branch's name], the product id (the release), [the version], the team
    id. S608 below: the text is made only of the models' table and column names, quoted; every
    value is a parameter."""
    selected = [col(f"{alias}.{name}") for alias, _, names in shape.sources() for name in names]
    selected.append(
        f"EXISTS (SELECT 1 FROM {table('o')} INNER JOIN {table('op')} "  # noqa: S608
        f"ON {col('op.id')} = {col('o.product')} WHERE {col('o.license')} = {col('l.id')} "
        f"AND {col('o.product')} = %s AND {col('op.team')} = {col('t.id')})"
    )
    selected.append(
        f"EXISTS (SELECT 1 FROM {table('rl')} "  # noqa: S608
        f"WHERE {col('rl.release')} = {col('r.id')})"
    )
    if shape.version:
        latest_line = f"= {col('b.id')}" if shape.branch else "IS NULL"
        selected.append(
            f"(SELECT {col('r2.version')} FROM {table('r2')} INNER JOIN {table('f2')} "  # noqa: S608
            f"ON {col('f2.release')} = {col('r2.id')} WHERE {col('r2.product')} = %s "
            f"AND {col('r2.branch')} {latest_line} AND {col('r2.latest')})"
        )
    joins = []
    if shape.key_pair:
        joins.append(f"LEFT OUTER JOIN {table('k')} ON {col('k.team')} = {col('t.id')}")
    joins.append(
        f"LEFT OUTER JOIN {table('l')} ON {col('l.team')} = {col('t.id')} "
        f"AND {col('l.key_digest')} = %s"
    )
    if shape.branch:
        joins.append(
            f"LEFT OUTER JOIN {table('b')} ON {col('b.product')} = %s AND {col('b.name')} = %s"
        )
    line = f"= {col('b.id')}" if shape.branch else "IS NULL"
    wanted = f"{col('r.version')} = %s" if shape.version else col("r.latest")
    # Only a release with a file counts: the file's join is inner, inside the release's.
    joins.append(
        f"LEFT OUTER JOIN ({table('r')} INNER JOIN {table('f')} "
        f"ON {col('f.release')} = {col('r.id')}) ON {col('r.product')} = %s "
        f"AND {col('r.team')} = {col('t.id')} AND {col('r.branch')} {line} AND {wanted}"
    )
    if shape.product:
        joins.append(f"LEFT OUTER JOIN {table('p')} ON {col('p.id')} = {col('r.product')}")
    return (
        f"SELECT {', '.join(selected)} FROM {table('t')} "  # noqa: S608
        + " ".join(joins)
        + f" WHERE {col('t.id')} = %s AND {col('t.deleted_at')} IS NULL"
    )


def _prepared(model: type[Model], name: str, value: Any) -> Any:
    return model._meta.get_field(name).get_db_prep_value(value, connection)


def _python(value: Any) -> Any:
    """A value as the ORM would give it: on SQLite a UUID column is 32 hex digits and a
    datetime is naive UTC."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


@functools.cache
def _plan(model: type[Model], names: tuple[str, ...]) -> tuple[list[str], list[str], list[int]]:
    """For ``names`` read in this order: their attnames, how to convert each ("uuid", "bool"
    or ""), and the order of the model's concrete fields among them (what ``from_db`` takes)."""
    fields = [model._meta.get_field(name) for name in names]
    attnames = [field.attname for field in fields]
    kinds = []
    for field in fields:
        target = field.target_field if field.is_relation else field
        kind = target.get_internal_type()
        kinds.append({"UUIDField": "uuid", "BooleanField": "bool"}.get(kind, ""))
    order = [
        attnames.index(f.attname) for f in model._meta.concrete_fields if f.attname in attnames
    ]
    return attnames, kinds, order


def _instance(model: type[M], names: tuple[str, ...], values: list[Any]) -> M | None:
    """A model instance from the row's values for ``names`` (None if its primary key is NULL:
    the outer join matched nothing); the fields not read are deferred."""
    if values[0] is None:  # the primary key comes first
        return None
    attnames, kinds, order = _plan(model, names)
    converted = []
    for kind, value in zip(kinds, values, strict=True):
        if value is not None:
            if kind == "uuid" and not isinstance(value, uuid.UUID):
                value = uuid.UUID(value)
            elif kind == "bool":
                value = bool(value)
        converted.append(_python(value))
    return model.from_db(connection.alias, attnames, [converted[index] for index in order])


def lookup(
    team_id: uuid.UUID,
    key_digest: str,
    product_id: uuid.UUID,
    branch: str | None,
    version: str | None,
    *,
    key_pair: bool,
    product: bool,
) -> Found:
    shape = Shape(
        key_pair=key_pair, branch=branch is not None, version=version is not None, product=product
    )
    product_value = _prepared(Product, "id", product_id)
    params: list[Any] = [product_value]  # opens
    if shape.version:
        params.append(product_value)  # the latest version's subquery, in the SELECT list
    params.append(key_digest)
    if shape.branch:
        params += [product_value, branch]
    params.append(product_value)
    if shape.version:
        params.append(version)
    params.append(_prepared(Team, "id", team_id))
    with connection.cursor() as cursor:
        cursor.execute(_statement(connection.vendor, shape), params)
        row = cursor.fetchone()
    if row is None:
        return Found(None, None, None, None, None, None, None)
    values = list(row)
    parts: dict[type[Model], Model | None] = {}
    for _, model, names in shape.sources():
        parts[model], values = _instance(model, names, values[: len(names)]), values[len(names) :]
    opens, limited, *latest = values
    license = parts[License]
    if license is not None:
        license.opens_product = bool(opens)
    release = parts[Release]
    file = parts[ReleaseFile]
    branch_row = parts.get(Branch)
    if release is not None and file is not None:
        release.limited = bool(limited)
        release.file = file
        release.branch = branch_row
        if shape.product:
            release.product = parts[Product]
    else:
        release = None
    return Found(
        team=parts[Team],  # type: ignore[arg-type]
        key_pair=parts.get(TeamKeyPair),  # type: ignore[arg-type]
        license=license,  # type: ignore[arg-type]
        branch=branch_row,  # type: ignore[arg-type]
        release=release,  # type: ignore[arg-type]
        product=release.product if release is not None and shape.product else None,
        latest_version=latest[0] if latest else (release.version if release else None),
    )
