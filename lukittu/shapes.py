"""Wire shapes, each declared once.

A ``Shape`` lists its fields in wire order: each says what it is (its OpenAPI schema) and where
its value comes from (an attribute, a function of the object, or a value the caller gives).
From that one declaration come both

- the dict the API sends: ``Shape.dump(obj)``, a function written once per class (one dict
  display), so a call costs what a hand-written dict does (Get Release and the Client API
  build one per request); and
- the OpenAPI component drf-spectacular puts in the document: a ``Shape`` class can be given
  wherever ``extend_schema`` takes a serializer, and ``ShapeSchema`` maps it, registering every
  shape it refers to under its own component name.

A shape declared with ``extends=True`` is documented as ``allOf`` its parent's component and
its own fields (the seed's ``ReleaseResponse`` is written that way); ``envelope`` and ``page``
wrap a shape in the ``{data, result}`` envelope.
"""

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from functools import cache
from typing import Any, ClassVar, Protocol

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.plumbing import ResolvedComponent

Schema = dict[str, Any]
Reader = Callable[[Any], Any]


def iso_utc(moment: datetime) -> str:
    """``2026-01-02T03:04:05.678Z``: UTC, milliseconds, a ``Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


class Resolver(Protocol):
    """What a schema needs from the document being made."""

    def shape(self, shape: type["Shape"]) -> Schema:
        """The reference to a shape's component (registered on first use)."""

    def named(self, name: str, schema: Schema) -> Schema:
        """The reference to a component made of ``schema`` (registered on first use)."""


class Field:
    """One field of a shape: its schema, where its value comes from and how it is written.

    ``source`` is an attribute path (``"product.name"``), a function of the object, or
    ``None`` for a value the caller gives to ``dump``; ``convert`` turns the value into JSON
    (not called on ``None`` when the field is ``nullable``). ``required=False`` leaves it out
    of the schema's ``required`` (where a composed schema only narrows a field)."""

    convert: Callable[[Any], Any] | None = None

    def __init__(
        self,
        source: str | Reader | None = None,
        *,
        schema: Schema | None = None,
        nullable: bool = False,
        description: str | None = None,
        component: str | None = None,
        required: bool = True,
    ) -> None:
        self.source = source
        self.nullable = nullable
        self.description = description
        self.component = component
        self.required = required
        self._schema = schema or {}
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def value_schema(self, resolve: Resolver) -> Schema:
        """The schema of the value, before ``nullable`` and ``description``."""
        return dict(self._schema)

    def schema(self, resolve: Resolver) -> Schema:
        """The field's schema; with ``component``, a reference to it under that name."""
        schema = self.value_schema(resolve)
        if self.nullable:
            schema["nullable"] = True
        if self.description:
            schema["description"] = self.description
        return resolve.named(self.component, schema) if self.component else schema

    def takes_none(self) -> bool:
        """Whether ``None`` is written as it is (not converted)."""
        return self.nullable

    def expression(self, value: str, env: dict[str, Any], tag: str) -> str:
        """Python source for this field's JSON value, given the source of its raw ``value``;
        what the source names is put in ``env`` under names ending in ``tag``."""
        if self.convert is None:
            return value
        env[f"c_{tag}"] = self.convert
        if self.takes_none():
            return f"(None if (v_{tag} := {value}) is None else c_{tag}(v_{tag}))"
        return f"c_{tag}({value})"


class Text(Field):
    def value_schema(self, resolve: Resolver) -> Schema:
        return {"type": "string", **self._schema}


class Boolean(Field):
    def value_schema(self, resolve: Resolver) -> Schema:
        return {"type": "boolean", **self._schema}


class Integer(Field):
    def value_schema(self, resolve: Resolver) -> Schema:
        return {"type": "integer", **self._schema}


class Time(Field):
    """A datetime, written ``2026-01-02T03:04:05.678Z``."""

    convert = staticmethod(iso_utc)

    def value_schema(self, resolve: Resolver) -> Schema:
        return {"type": "string", "format": "date-time", **self._schema}


class Uuid(Field):
    """A UUID, as text; documented as the seed's ``UUID`` component, or inline where it says
    more (OpenAPI 3.0 ignores a ``$ref``'s siblings: ``nullable``, a description)."""

    convert = staticmethod(str)

    def value_schema(self, resolve: Resolver) -> Schema:
        if self.nullable or self.description or self._schema:
            return {"type": "string", "format": "uuid", **self._schema}
        return ref("UUID")


class Choice(Field):
    def __init__(self, choices: Iterable[str], source: str | Reader | None = None, **kw: Any):
        super().__init__(source, **kw)
        self.choices = list(choices)

    def value_schema(self, resolve: Resolver) -> Schema:
        return {"type": "string", "enum": list(self.choices), **self._schema}


class Named(Field):
    """A value documented by a shared component of that name (the seed's ``Version``, which
    the request bodies use too)."""

    def __init__(self, name: str, source: str | Reader | None = None, **kw: Any):
        super().__init__(source, **kw)
        self.ref_name = name

    def value_schema(self, resolve: Resolver) -> Schema:
        return ref(self.ref_name)


class One(Field):
    """A nested shape: its component (or, ``inline``, its schema in place)."""

    def __init__(
        self,
        shape: type["Shape"],
        source: str | Reader | None = None,
        *,
        inline: bool = False,
        built: bool = False,
        **kw: Any,
    ) -> None:
        super().__init__(source, **kw)
        self.shape = shape
        self.inline = inline
        # ``built``: the value is the shape's dict already (made with its ``dump``).
        self.convert = None if built else shape.dump

    def takes_none(self) -> bool:
        # A shape that may be null (its component says so) takes None as it is.
        return self.nullable or self.shape.nullable

    def value_schema(self, resolve: Resolver) -> Schema:
        return self.shape.schema(resolve) if self.inline else resolve.shape(self.shape)


class Many(Field):
    """A list of one field's values (``Uuid()``, ``One(Shape)``...), in the order given."""

    def __init__(self, item: Field, source: str | Reader | None = None, **kw: Any) -> None:
        super().__init__(source, **kw)
        self.item = item

    def expression(self, value: str, env: dict[str, Any], tag: str) -> str:
        item = self.item.expression(f"x_{tag}", env, f"{tag}_")
        if self.nullable:
            listed = f"[{item} for x_{tag} in v_{tag}]"
            return f"(None if (v_{tag} := {value}) is None else {listed})"
        return f"[{item} for x_{tag} in {value}]"

    def value_schema(self, resolve: Resolver) -> Schema:
        return {"type": "array", "items": self.item.schema(resolve), **self._schema}


def _compile_dump(shape: type["Shape"]) -> Callable[..., dict[str, Any]]:
    """``dump(obj, *, <given fields>)``: the shape's dict for ``obj``, as one dict display
    written for this shape (the speed of a hand-written one: no loop, no call per field but
    its conversion), its fields in declaration order. Fields without a source are keyword
    arguments, each required."""
    env: dict[str, Any] = {}
    given: list[str] = []
    items: list[str] = []
    for index, (name, field) in enumerate(shape.fields.items()):
        tag = str(index)
        if field.source is None:
            if not name.isidentifier():
                raise TypeError(f"{shape.__name__}.{name} needs a source")
            given.append(name)
            value = name
        elif isinstance(field.source, str):
            if not all(part.isidentifier() for part in field.source.split(".")):
                raise TypeError(f"{shape.__name__}.{name}: bad source {field.source!r}")
            value = f"obj.{field.source}"
        else:
            env[f"r_{tag}"] = field.source
            value = f"r_{tag}(obj)"
        items.append(f"{name!r}: {field.expression(value, env, tag)}")
    keywords = f", *, {', '.join(given)}" if given else ""
    source = f"def dump(obj{keywords}):\n    return {{{', '.join(items)}}}\n"
    exec(compile(source, f"<shape {shape.__name__}>", "exec"), env)  # noqa: S102
    dump = env["dump"]
    dump.__qualname__ = f"{shape.__name__}.dump"
    dump.__doc__ = f"The {shape.component} dict of ``obj``."
    return dump


class Shape:
    """A wire shape (see the module's docstring). Subclasses declare ``Field`` attributes;
    class keywords: ``component`` (its name in the document; the class name by default),
    ``extends`` (documented as ``allOf`` the parent's component and its own fields),
    ``nullable`` (the component itself may be ``null``, as the seed's ``ReleaseFileData``)
    and ``description``."""

    fields: ClassVar[dict[str, Field]] = {}
    own_fields: ClassVar[dict[str, Field]] = {}
    component: ClassVar[str] = ""
    extends: ClassVar[bool] = False
    nullable: ClassVar[bool] = False
    description: ClassVar[str | None] = None
    dump: ClassVar[Callable[..., dict[str, Any]]]

    def __init_subclass__(
        cls,
        *,
        component: str | None = None,
        extends: bool = False,
        nullable: bool = False,
        description: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        cls.component = component or cls.__name__
        cls.extends = extends
        cls.nullable = nullable
        cls.description = description
        cls.own_fields = {
            name: value for name, value in vars(cls).items() if isinstance(value, Field)
        }
        cls.fields = {**cls.fields, **cls.own_fields}
        cls.dump = _compile_dump(cls)

    @classmethod
    def schema(cls, resolve: Resolver) -> Schema:
        """The component's schema; ``resolve`` gives the reference to another shape."""
        own = cls.own_fields if cls.extends else cls.fields
        schema: Schema = {
            "type": "object",
            "properties": {name: field.schema(resolve) for name, field in own.items()},
        }
        required = [name for name, field in own.items() if field.required]
        if required:
            schema["required"] = required
        if cls.nullable:
            schema["nullable"] = True
        if cls.extends:
            parent = next(base for base in cls.__mro__[1:] if issubclass(base, Shape))
            schema = {"allOf": [resolve.shape(parent), schema]}
        return {"description": cls.description, **schema} if cls.description else schema


# --- The envelope ------------------------------------------------------------------------------
# ``{data, result}``, built by ``lukittu.api.envelope`` (its error half is declared there, next
# to the error codes).


class StandardResult(Shape):
    timestamp = Time(
        "timestamp", description="Timestamp when the response was generated (UTC, with a Z)"
    )
    valid = Boolean("valid", description="Indicates whether the operation was successful")
    details = Text("details", description="Human-readable description of the result")


def valid_always(value: bool) -> Boolean:
    """``result.valid`` narrowed to ``value``: the success and the error results."""
    kind = "success" if value else "error"
    return Boolean(
        "valid",
        schema={"enum": [value]},
        description=f"Always {str(value).lower()} for {kind} responses",
        required=False,
    )


class SuccessResult(StandardResult, extends=True):
    valid = valid_always(True)


class SuccessResponse(Shape):
    """The seed's ``SuccessResponse``: every success's ``{data, result}``."""

    data = Field(schema={"type": "object"}, description="Response data")
    result = One(SuccessResult, inline=True)


class Envelope(Shape):
    """``{data, result}`` whose ``data`` is ``data_field``'s: documented as the seed's
    ``allOf`` with ``SuccessResponse``. Made by ``envelope`` and ``page``; never dumped (the
    envelope is ``lukittu.api.envelope``'s)."""

    data_field: ClassVar[Field]

    @classmethod
    def schema(cls, resolve: Resolver) -> Schema:
        data = cls.data_field.schema(resolve)
        return {
            "allOf": [
                resolve.shape(SuccessResponse),
                {"type": "object", "properties": {"data": data}, "required": ["data"]},
            ]
        }


@cache
def envelope(shape: type[Shape], component: str | None = None) -> type[Envelope]:
    """The success envelope of one ``shape``: the component ``<shape>Response`` (without the
    shape's ``Data``) by default; one class per shape, as drf-spectacular knows a component by
    its class."""
    name = component or f"{shape.component.removesuffix('Data')}Response"
    made = type(name, (Envelope,), {}, component=name)
    made.data_field = One(shape)
    return made


class Page(Envelope):
    """A page of one shape: ``{<key>: [...], hasNextPage, totalResults}``."""

    @classmethod
    def data(cls, items: Iterable[Any], total: int, has_next: bool) -> dict[str, Any]:
        """The page's ``data`` for ``items`` (objects the item shape reads)."""
        body = cls.data_field.shape  # type: ignore[attr-defined]
        key = next(iter(body.fields))
        return body.dump(None, **{key: items, "hasNextPage": has_next, "totalResults": total})


@cache
def page(
    shape: type[Shape], key: str, component: str | None = None, total: str | None = None
) -> type[Page]:
    """The success envelope of a page of ``shape``s under ``key``, with ``hasNextPage`` and
    ``totalResults`` (described as ``total``); the component ``<shape>Page`` by default."""
    name = component or f"{shape.component.removesuffix('Data')}Page"
    body = type(
        f"{name}Data",
        (Shape,),
        {
            key: Many(One(shape)),
            "hasNextPage": Boolean(),
            "totalResults": Integer(schema={"minimum": 0}, description=total),
        },
        component=f"{name}Data",
    )
    made = type(name, (Page,), {}, component=name)
    made.data_field = One(body, inline=True)
    return made


class ShapeSchema(OpenApiSerializerExtension):
    """drf-spectacular's mapping of a ``Shape``: its component, named as it says."""

    target_class = Shape
    match_subclasses = True

    def get_name(self, auto_schema: Any, direction: str) -> str:
        return self.target.component

    def map_serializer(self, auto_schema: Any, direction: str) -> Schema:
        return self.target.schema(_Components(auto_schema, direction))


class _Components:
    """A ``Resolver`` over drf-spectacular's registry of the document being made."""

    def __init__(self, auto_schema: Any, direction: str) -> None:
        self.auto_schema = auto_schema
        self.direction = direction

    def shape(self, shape: type[Shape]) -> Schema:
        return self.auto_schema.resolve_serializer(shape, self.direction).ref

    def named(self, name: str, schema: Schema) -> Schema:
        component = ResolvedComponent(
            name=name, type=ResolvedComponent.SCHEMA, object=name, schema=schema
        )
        self.auto_schema.registry.register_on_missing(component)
        return component.ref
