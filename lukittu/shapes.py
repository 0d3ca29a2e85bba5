"""Wire shapes, each declared once.

A ``Shape`` lists its fields in wire order: each says what it is (its OpenAPI schema) and where
its value comes from (an attribute, a function of the object, or a value the caller gives).
From that one declaration come both

- the dict the API sends: ``Shape.dump(obj)``, a plan of readers built once per class, so a
  call costs about what a hand-written dict literal does (the Get Release and Client API paths
  build one per request); and
- the OpenAPI component drf-spectacular puts in the document: a ``Shape`` class can be given
  wherever ``extend_schema`` takes a serializer, and ``ShapeSchema`` maps it, registering every
  shape it refers to under its own component name.

A shape declared with ``extends=True`` is documented as ``allOf`` its parent's component and
its own fields (the seed's ``ReleaseResponse`` is written that way); ``envelope`` and ``page``
wrap a shape in the ``{data, result}`` envelope.
"""

from collections.abc import Callable, Iterable
from functools import cache
from operator import attrgetter
from typing import Any, ClassVar

from drf_spectacular.extensions import OpenApiSerializerExtension

from lukittu.api import iso_utc

Schema = dict[str, Any]
Reader = Callable[[Any], Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


class Field:
    """One field of a shape: its schema, where its value comes from and how it is written.

    ``source`` is an attribute path (``"product.name"``), a function of the object, or
    ``None`` for a value the caller gives to ``dump``; ``convert`` turns the value into JSON
    (not called on ``None`` when the field is ``nullable``)."""

    convert: Callable[[Any], Any] | None = None

    def __init__(
        self,
        source: str | Reader | None = None,
        *,
        schema: Schema | None = None,
        nullable: bool = False,
        description: str | None = None,
    ) -> None:
        self.source = source
        self.nullable = nullable
        self.description = description
        self._schema = schema or {}
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def value_schema(self, resolve: Callable[[type["Shape"]], Schema]) -> Schema:
        """The schema of the value, before ``nullable`` and ``description``."""
        return dict(self._schema)

    def schema(self, resolve: Callable[[type["Shape"]], Schema]) -> Schema:
        schema = self.value_schema(resolve)
        if self.nullable:
            schema["nullable"] = True
        if self.description:
            schema["description"] = self.description
        return schema

    def writer(self) -> Callable[[Any], Any] | None:
        """What turns a value into JSON (``None``: the value as it is)."""
        convert = self.convert
        if convert is None or not self.nullable:
            return convert
        return lambda value: None if value is None else convert(value)

    def reader(self) -> Reader:
        """The value of this field, read from the object and written as JSON."""
        source = self.source
        assert source is not None, f"{self.name} is given to dump(), not read"
        read: Reader = attrgetter(source) if isinstance(source, str) else source
        write = self.writer()
        if write is None:
            return read
        return lambda obj: write(read(obj))


class Text(Field):
    def value_schema(self, resolve: Callable[[type["Shape"]], Schema]) -> Schema:
        return {"type": "string", **self._schema}


class Boolean(Field):
    def value_schema(self, resolve: Callable[[type["Shape"]], Schema]) -> Schema:
        return {"type": "boolean", **self._schema}


class Integer(Field):
    def value_schema(self, resolve: Callable[[type["Shape"]], Schema]) -> Schema:
        return {"type": "integer", **self._schema}


class Time(Field):
    """A datetime, written ``2026-01-02T03:04:05.678Z``."""

    convert = staticmethod(iso_utc)

    def value_schema(self, resolve: Callable[[type["Shape"]], Schema]) -> Schema:
        return {"type": "string", "format": "date-time", **self._schema}


class Uuid(Field):
    """A UUID, as text; documented as the seed's ``UUID`` component."""

    convert = staticmethod(str)

    def value_schema(self, resolve: Callable[[type["Shape"]], Schema]) -> Schema:
        return ref("UUID")


class Choice(Field):
    def __init__(self, choices: Iterable[str], source: str | Reader | None = None, **kw: Any):
        super().__init__(source, **kw)
        self.choices = list(choices)

    def value_schema(self, resolve: Callable[[type["Shape"]], Schema]) -> Schema:
        return {"type": "string", "enum": list(self.choices), **self._schema}


class Named(Field):
    """A value documented by a shared component of that name (the seed's ``Version``)."""

    def __init__(self, component: str, source: str | Reader | None = None, **kw: Any):
        super().__init__(source, **kw)
        self.component = component

    def value_schema(self, resolve: Callable[[type["Shape"]], Schema]) -> Schema:
        return ref(self.component)


class One(Field):
    """A nested shape: its component (or, ``inline``, its schema in place)."""

    def __init__(
        self,
        shape: type["Shape"],
        source: str | Reader | None = None,
        *,
        inline: bool = False,
        **kw: Any,
    ) -> None:
        super().__init__(source, **kw)
        self.shape = shape
        self.inline = inline
        self.convert = shape.dump

    def writer(self) -> Callable[[Any], Any] | None:
        # A shape that may be null (its component says so) takes None as it is.
        if self.shape.nullable and not self.nullable:
            dump = self.shape.dump
            return lambda value: None if value is None else dump(value)
        return super().writer()

    def value_schema(self, resolve: Callable[[type["Shape"]], Schema]) -> Schema:
        return self.shape.schema(resolve) if self.inline else resolve(self.shape)


class Many(Field):
    """A list of one field's values (``Uuid()``, ``One(Shape)``...), in the order given."""

    def __init__(self, item: Field, source: str | Reader | None = None, **kw: Any) -> None:
        super().__init__(source, **kw)
        self.item = item
        write = item.writer()
        self.convert = list if write is None else lambda values: [write(v) for v in values]

    def value_schema(self, resolve: Callable[[type["Shape"]], Schema]) -> Schema:
        return {"type": "array", "items": self.item.schema(resolve), **self._schema}


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
    _plan: ClassVar[tuple[tuple[str, Reader], ...]] = ()
    _given: ClassVar[dict[str, Callable[[Any], Any] | None]] = {}

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
        cls._plan = tuple(
            (name, field.reader()) for name, field in cls.fields.items() if field.source
        )
        cls._given = {
            name: field.writer() for name, field in cls.fields.items() if not field.source
        }

    @classmethod
    def dump(cls, obj: Any, **given: Any) -> dict[str, Any]:
        """The shape's dict for ``obj``; fields without a source take their value from
        ``given`` (each, and only those)."""
        data = {name: read(obj) for name, read in cls._plan}
        if given or cls._given:
            if given.keys() != cls._given.keys():
                raise TypeError(
                    f"{cls.__name__} is given {sorted(cls._given)}, not {sorted(given)}"
                )
            for name, write in cls._given.items():
                data[name] = given[name] if write is None else write(given[name])
            # In declaration order, as the document lists them.
            data = {name: data[name] for name in cls.fields}
        return data

    @classmethod
    def schema(cls, resolve: Callable[[type["Shape"]], Schema]) -> Schema:
        """The component's schema; ``resolve`` gives the reference to another shape."""
        own = cls.own_fields if cls.extends else cls.fields
        schema: Schema = {"type": "object"}
        if cls.description:
            schema["description"] = cls.description
        schema["properties"] = {name: field.schema(resolve) for name, field in own.items()}
        schema["required"] = list(own)
        if cls.nullable:
            schema["nullable"] = True
        if cls.extends:
            parent = next(base for base in cls.__mro__[1:] if issubclass(base, Shape))
            return {"allOf": [resolve(parent), schema]}
        return schema


# --- The envelope ------------------------------------------------------------------------------


class Envelope(Shape):
    """``{data, result}`` whose ``data`` is ``data_field``'s: documented as the seed's
    ``allOf`` with ``SuccessResponse``. Made by ``envelope`` and ``page``; never dumped (the
    envelope is ``lukittu.api.envelope``'s)."""

    data_field: ClassVar[Field]

    @classmethod
    def schema(cls, resolve: Callable[[type[Shape]], Schema]) -> Schema:
        data = cls.data_field.schema(resolve)
        return {
            "allOf": [
                ref("SuccessResponse"),
                {"type": "object", "properties": {"data": data}, "required": ["data"]},
            ]
        }


@cache
def envelope(shape: type[Shape], component: str | None = None) -> type[Envelope]:
    """The success envelope of one ``shape`` (by default the component ``<shape>Response``,
    without the shape's ``Data``);
    one class per shape, as drf-spectacular knows a component by its class."""
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
def page(shape: type[Shape], key: str, component: str | None = None) -> type[Page]:
    """The success envelope of a page of ``shape``s under ``key``, with ``hasNextPage`` and
    ``totalResults`` (the component ``<shape>Page`` by default)."""
    name = component or f"{shape.component.removesuffix('Data')}Page"
    body = type(
        f"{name}Data",
        (Shape,),
        {
            key: Many(One(shape)),
            "hasNextPage": Boolean(),
            "totalResults": Integer(schema={"minimum": 0}),
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
        def resolve(shape: type[Shape]) -> Schema:
            return auto_schema.resolve_serializer(shape, direction).ref

        return self.target.schema(resolve)
