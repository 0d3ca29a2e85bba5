"""Hand-written SQL, in one style: a ``Statement`` is written once per connection (and
variant) from the models' tables and columns, quoted by that connection, and each row it reads
comes back through Django's own converters (``get_db_converters`` of the connection's
operations and of the field, as the ORM's compiler applies them), so JSON, Decimal, UUIDs,
booleans and datetimes come back exactly as the ORM gives them, on every backend.

A few reads run on every API request (the key lookup, Get Release, the Client API's checks
and seats), and building them with the ORM cost more than running them: only those are
written out; everything else uses the ORM.

Where the statements live: each stays in its app, beside the code that reads its result,
declared through this module (``Statement(aliases, write)``); this module imports no app and
takes the models as arguments. Their text never carries a value: every value is a parameter,
prepared by its field (``param``); the S608 waivers in the apps say so.
"""

import weakref
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model
from django.db.models.expressions import Expression, RawSQL

M = TypeVar("M", bound=Model)

# One selected column: its SQL text and the expression whose converters read it.
Output = tuple[str, Expression]
Converter = tuple[int, Expression, tuple[Callable[..., Any], ...]]


class Writer:
    """What a statement is written with: ``aliases`` names each table alias's model, and the
    quoting is the connection's."""

    def __init__(self, db: BaseDatabaseWrapper, aliases: dict[str, type[Model]]) -> None:
        self.vendor = db.vendor
        self.aliases = aliases
        self.quote = db.ops.quote_name

    def table(self, alias: str) -> str:
        """``"teams_team" t``: the alias's table, quoted, with its alias."""
        return f"{self.quote(self.aliases[alias]._meta.db_table)} {alias}"

    def table_name(self, alias: str) -> str:
        """The alias's table, quoted, alone (``INSERT INTO`` takes no alias)."""
        return self.quote(self.aliases[alias]._meta.db_table)

    def name(self, reference: str) -> str:
        """``"s.used_at"`` as ``"used_at"``: the field's column, quoted, without the alias."""
        alias, field = reference.split(".")
        return self.quote(self.aliases[alias]._meta.get_field(field).column)

    def col(self, reference: str) -> str:
        """``"l.key_digest"`` as ``l."key_digest"``: the field's column, quoted."""
        alias, name = reference.split(".")
        return f"{alias}.{self.quote(self.aliases[alias]._meta.get_field(name).column)}"

    def column(self, reference: str) -> Output:
        """A model field selected, read through the field's converters."""
        alias, name = reference.split(".")
        field = self.aliases[alias]._meta.get_field(name)
        return self.col(reference), field.get_col(alias)

    def columns(self, alias: str, names: Sequence[str]) -> list[Output]:
        return [self.column(f"{alias}.{name}") for name in names]

    def computed(self, text: str, output_field: Field) -> Output:
        """A computed column (``EXISTS``, ``COUNT``, a subquery), read as ``output_field``."""
        # S611: ``text`` is written by the statement from quoted names, never from a value.
        return text, RawSQL(text, (), output_field=output_field)  # noqa: S611

    @staticmethod
    def select(outputs: Sequence[Output]) -> str:
        return ", ".join(text for text, _ in outputs)


def param(model: type[Model], name: str, value: Any) -> Any:
    """``value`` as a parameter for ``model``'s field ``name``, prepared as the ORM would."""
    db = connections[DEFAULT_DB_ALIAS]
    return model._meta.get_field(name).get_db_prep_value(value, db)


@dataclass(frozen=True)
class Prepared:
    sql: str
    converters: tuple[Converter, ...]  # only the columns that have any


def _prepare(db: BaseDatabaseWrapper, text: str, outputs: Sequence[Output]) -> Prepared:
    converters = []
    for index, (_, expression) in enumerate(outputs):
        functions = db.ops.get_db_converters(expression) + expression.get_db_converters(db)
        if functions:
            converters.append((index, expression, tuple(functions)))
    return Prepared(sql=text, converters=tuple(converters))


Write = Callable[[Writer, Any], tuple[str, list[Output]]]


class Statement:
    """One hand-written statement. ``write(writer, variant)`` returns its text and its
    selected columns (``Writer.select`` joins them into the text); it runs once per
    connection and variant (hashable: which optional parts a call needs). Per connection, as
    the ORM's converters are: some are bound to their connection's operations, and
    connections are per thread."""

    def __init__(self, aliases: dict[str, type[Model]], write: Write) -> None:
        self.aliases = aliases
        self.write = write
        self._prepared: weakref.WeakKeyDictionary[BaseDatabaseWrapper, dict[Hashable, Prepared]] = (
            weakref.WeakKeyDictionary()
        )

    def prepared(self, db: BaseDatabaseWrapper, variant: Hashable = None) -> Prepared:
        per_variant = self._prepared.get(db)
        if per_variant is None:
            per_variant = self._prepared[db] = {}
        found = per_variant.get(variant)
        if found is None:
            text, outputs = self.write(Writer(db, self.aliases), variant)
            found = per_variant[variant] = _prepare(db, text, outputs)
        return found

    def rows(self, params: Sequence[Any], variant: Hashable = None) -> list[list[Any]]:
        """Every row, each value converted as the ORM converts its field's."""
        db = connections[DEFAULT_DB_ALIAS]
        prepared = self.prepared(db, variant)
        with db.cursor() as cursor:
            cursor.execute(prepared.sql, params)
            return [_converted(db, prepared, row) for row in cursor.fetchall()]

    def row(self, params: Sequence[Any], variant: Hashable = None) -> list[Any] | None:
        """The first row (the statements that use this read one), or None."""
        db = connections[DEFAULT_DB_ALIAS]
        prepared = self.prepared(db, variant)
        with db.cursor() as cursor:
            cursor.execute(prepared.sql, params)
            row = cursor.fetchone()
        return None if row is None else _converted(db, prepared, row)


def _converted(db: BaseDatabaseWrapper, prepared: Prepared, row: Sequence[Any]) -> list[Any]:
    values = list(row)
    for index, expression, functions in prepared.converters:
        value = values[index]
        for convert in functions:
            value = convert(value, expression, db)
        values[index] = value
    return values


def instance(model: type[M], names: Sequence[str], values: Sequence[Any]) -> M | None:
    """A ``model`` instance from ``values`` read for the fields ``names`` (the primary key
    first), as the ORM makes one (``from_db``): fields not read are deferred, loaded on first
    use. None when the primary key is NULL (an outer join that matched nothing)."""
    if values[0] is None:
        return None
    attnames, order = _plan(model, tuple(names))
    return model.from_db(
        connections[DEFAULT_DB_ALIAS].alias, attnames, [values[index] for index in order]
    )


_plans: dict[tuple[type[Model], tuple[str, ...]], tuple[list[str], list[int]]] = {}


def _plan(model: type[Model], names: tuple[str, ...]) -> tuple[list[str], list[int]]:
    """The attnames of ``names`` in the model's field order (what ``from_db`` takes), and
    where each one is among ``names``."""
    plan = _plans.get((model, names))
    if plan is None:
        attnames = [model._meta.get_field(name).attname for name in names]
        fields = [f.attname for f in model._meta.concrete_fields if f.attname in attnames]
        plan = _plans[(model, names)] = (fields, [attnames.index(name) for name in fields])
    return plan
