"""The Developer API's strict input fields, shared by every app's bodies and queries: JSON types
only (DRF would coerce 123 to "123" and "yes" to true), no unknown keys, and DRF's nested errors
as the envelope's ``[{"message", "path"}]`` list."""

import re
import uuid
from typing import Any

from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail

from lukittu.api import field_error
from lukittu.ids import parse_uuid


class StrictCharField(serializers.CharField):
    """A string and nothing else: DRF would turn 123 into "123"."""

    default_error_messages = {"invalid": "Must be a string."}

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """``true`` or ``false``: DRF would also accept "yes", 1 and "on"."""

    default_error_messages = {"invalid": "Must be a boolean."}

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class StrictUUIDField(serializers.UUIDField):
    default_error_messages = {"invalid": "Must be a UUID."}

    def to_internal_value(self, data: Any) -> uuid.UUID:
        # Not DRF's parser: it also takes integers, 32 bare hex digits and other scripts' digits.
        try:
            return parse_uuid(data)
        except ValueError:
            self.fail("invalid")


class StrictChoiceField(serializers.ChoiceField):
    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid_choice", input=data)
        return super().to_internal_value(data)


class ClosedSerializer(serializers.Serializer):
    """Rejects keys it does not declare, each reported at its own path."""

    default_error_messages = {"invalid": "Must be an object."}

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            raise serializers.ValidationError(
                {"non_field_errors": [ErrorDetail(self.error_messages["invalid"], "invalid")]}
            )
        unknown = sorted(set(data) - set(self.fields))
        errors: dict[str, Any] = {}
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            errors.update(exc.detail)  # type: ignore[arg-type]
            value = None
        for key in unknown:
            errors[key] = [ErrorDetail("Unknown field.", "unknown")]
        if errors:
            raise serializers.ValidationError(errors)
        return value


PAGE_SIZES = (10, 25, 50, 100)
MAX_PAGE = 100_000


class StrictPageField(serializers.IntegerField):
    """Plain ASCII digits only: DRF would also take "1.0", "+3" or other scripts' digits."""

    def to_internal_value(self, data: Any) -> int:
        if not (isinstance(data, str) and re.fullmatch(r"-?[0-9]+", data)):
            self.fail("invalid")
        return super().to_internal_value(data)


def error_list(detail: Any, path: list[str | int] | None = None) -> list[dict[str, Any]]:
    """DRF's nested errors as ``[{"message", "path"}]``, one entry per problem."""
    path = path or []
    if isinstance(detail, dict):
        found: list[dict[str, Any]] = []
        for key, value in detail.items():
            if key == "non_field_errors":
                found += error_list(value, path)
            else:
                step: str | int = int(key) if isinstance(key, int) else key
                found += error_list(value, [*path, step])
        return found
    if isinstance(detail, list):
        if all(isinstance(item, str) for item in detail):
            return [field_error(str(item), path) for item in detail]
        found = []
        for index, item in enumerate(detail):
            if item:
                found += error_list(item, [*path, index])
        return found
    return [field_error(str(detail), path)]
