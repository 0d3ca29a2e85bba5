"""The Client API's reads up to the seats, in one statement: the team (and its key pair, for
the classloader), the team's license with the client's key and whether it opens the product,
the named branch, and the release to deliver with its file, product and whether it is limited
to licenses (and, when a version is asked for, the line's latest version).

Every request of the Client API makes these reads, and the ORM's version of them (a query for
each, with their joins and subqueries) spent most of its time building queries rather than
waiting for the database. The statement is written from the models' tables and columns
through ``lukittu.sql``, once per connection and shape, and its values are read through the
fields' own converters; ``delivery.access`` checks what it finds in the README's order. The
rows come back as deferred model instances: a field that was not read is loaded on first use
rather than wrong."""

import uuid
from dataclasses import dataclass
from typing import Any

from django.db.models import BooleanField, CharField, Model

from lukittu.sql import Output, Statement, Writer, instance, param
from releases.models import Branch, Product, Release, ReleaseFile, ReleaseLicense
from teams.models import License, Team, TeamKeyPair

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


def _write(sql: Writer, shape: Shape) -> tuple[str, list[Output]]:
    """The SQL for ``shape``, in standard SQL that PostgreSQL and SQLite both read. Its
    parameters, in order: the product id (opens), [the product id (the line's latest
    version)], the key's digest, [the product id and the branch's name], the product id (the
    release), [the version], the team id. S608 below: the text is made only of the models'
    table and column names, quoted; every value is a parameter."""
    table, col = sql.table, sql.col
    selected = [out for alias, _, names in shape.sources() for out in sql.columns(alias, names)]
    opens = (
        f"EXISTS (SELECT 1 FROM {table('o')} INNER JOIN {table('op')} "  # noqa: S608
        f"ON {col('op.id')} = {col('o.product')} WHERE {col('o.license')} = {col('l.id')} "
        f"AND {col('o.product')} = %s AND {col('op.team')} = {col('t.id')})"
    )
    limited = (
        f"EXISTS (SELECT 1 FROM {table('rl')} "  # noqa: S608
        f"WHERE {col('rl.release')} = {col('r.id')})"
    )
    selected += [sql.computed(opens, BooleanField()), sql.computed(limited, BooleanField())]
    if shape.version:
        latest_line = f"= {col('b.id')}" if shape.branch else "IS NULL"
        latest = (
            f"(SELECT {col('r2.version')} FROM {table('r2')} INNER JOIN {table('f2')} "  # noqa: S608
            f"ON {col('f2.release')} = {col('r2.id')} WHERE {col('r2.product')} = %s "
            f"AND {col('r2.branch')} {latest_line} AND {col('r2.latest')})"
        )
        selected.append(sql.computed(latest, CharField()))
    return (
        f"SELECT {sql.select(selected)} FROM {table('t')} "  # noqa: S608
        + " ".join(_joins(sql, shape))
        + f" WHERE {col('t.id')} = %s AND {col('t.deleted_at')} IS NULL"
    ), selected


def _joins(sql: Writer, shape: Shape) -> list[str]:
    table, col = sql.table, sql.col
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
    return joins


_LOOKUP = Statement(ALIASES, _write)


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
    product_value = param(Product, "id", product_id)
    params: list[Any] = [product_value]  # opens
    if shape.version:
        params.append(product_value)  # the latest version's subquery, in the SELECT list
    params.append(key_digest)
    if shape.branch:
        params += [product_value, branch]
    params.append(product_value)
    if shape.version:
        params.append(version)
    params.append(param(Team, "id", team_id))
    values = _LOOKUP.row(params, shape)
    if values is None:
        return Found(None, None, None, None, None, None, None)
    parts: dict[type[Model], Model | None] = {}
    for _, model, names in shape.sources():
        parts[model], values = instance(model, names, values[: len(names)]), values[len(names) :]
    opens, limited, *latest = values
    license = parts[License]
    if license is not None:
        license.opens_product = opens
    release = parts[Release]
    file = parts[ReleaseFile]
    branch_row = parts.get(Branch)
    if release is not None and file is not None:
        release.limited = limited
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
