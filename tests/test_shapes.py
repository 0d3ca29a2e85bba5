"""``lukittu.shapes``: one declaration gives the dict an answer carries and the component the
document shows, field for field."""

import uuid
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from lukittu.shapes import Boolean, Many, One, Shape, Text, Time, Uuid, envelope, page
from releases.shapes import Release, ReleaseFileData
from webhooks.shapes import WebhookWithSecret

MOMENT = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


class Child(Shape, nullable=True):
    name = Text("name")


class Parent(Shape):
    id = Uuid("id")
    when = Time("when", nullable=True)
    label = Text(lambda obj: obj.label.upper())
    child = One(Child, "child")
    tags = Many(Text(), "tags")
    note = Text(description="given by the caller")


class Grown(Parent, extends=True):
    extra = Boolean("extra")


class Components:
    """A ``Resolver`` that refers to every component by its name."""

    def shape(self, shape):
        return {"$ref": f"#/components/schemas/{shape.component}"}

    def named(self, name, schema):
        return {"$ref": f"#/components/schemas/{name}"}


def an_object(**changes):
    values = {
        "id": uuid.UUID(int=1),
        "when": MOMENT,
        "label": "abc",
        "child": SimpleNamespace(name="kid"),
        "tags": ("a", "b"),
        "extra": True,
    }
    return SimpleNamespace(**{**values, **changes})


def test_dump_converts_each_field_in_declaration_order():
    data = Parent.dump(an_object(), note="hi")

    assert data == {
        "id": "00000000-0000-0000-0000-000000000001",
        "when": "2026-01-02T03:04:05.678Z",
        "label": "ABC",
        "child": {"name": "kid"},
        "tags": ["a", "b"],
        "note": "hi",
    }
    assert list(data) == list(Parent.fields)


def test_null_stays_null_where_the_shape_allows_it():
    data = Parent.dump(an_object(when=None, child=None), note="hi")

    assert data["when"] is None
    assert data["child"] is None


@pytest.mark.parametrize("given", [{}, {"note": "hi", "other": 1}])
def test_the_given_fields_are_each_required_and_nothing_else(given):
    with pytest.raises(TypeError):
        Parent.dump(an_object(), **given)


def test_a_source_that_is_not_an_attribute_path_is_refused_when_declared():
    with pytest.raises(TypeError, match="bad source"):
        type("Broken", (Shape,), {"name": Text("name; import os")})


def test_the_schema_lists_every_field_as_dumped():
    schema = Parent.schema(Components())
    dumped = Parent.dump(an_object(), note="hi")

    assert list(schema["properties"]) == list(dumped)
    assert schema["required"] == list(dumped)
    assert schema["properties"]["id"] == {"$ref": "#/components/schemas/UUID"}
    assert schema["properties"]["when"] == {
        "type": "string",
        "format": "date-time",
        "nullable": True,
    }
    assert schema["properties"]["child"] == {"$ref": "#/components/schemas/Child"}
    assert Child.schema(Components())["nullable"] is True
    assert schema["properties"]["note"] == {"type": "string", "description": "given by the caller"}


def test_an_extension_is_its_parent_and_its_own_fields():
    schema = Grown.schema(Components())

    assert schema["allOf"][0] == {"$ref": "#/components/schemas/Parent"}
    assert list(schema["allOf"][1]["properties"]) == ["extra"]
    assert list(Grown.dump(an_object(), note="hi")) == [*Parent.fields, "extra"]


def test_envelopes_and_pages_are_made_once_per_shape():
    assert envelope(Parent) is envelope(Parent)
    assert envelope(Parent).component == "ParentResponse"
    assert page(Parent, "parents") is page(Parent, "parents")
    assert page(Child, "children").data([SimpleNamespace(name="a")], 3, True) == {
        "children": [{"name": "a"}],
        "hasNextPage": True,
        "totalResults": 3,
    }


def test_the_seeds_components_keep_their_names():
    assert Release.component == "Release"
    assert ReleaseFileData.component == "ReleaseFileData"
    assert ReleaseFileData.nullable is True
    assert envelope(Release).component == "ReleaseResponse"
    assert WebhookWithSecret.schema(Components())["allOf"][0] == {
        "$ref": "#/components/schemas/WebhookData"
    }
