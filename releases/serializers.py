"""Validation of the ``data`` JSON (strict: JSON types only, no unknown keys), and the release's
answer built by its shape (``releases.shapes.Release``) from a model or a ``ReleaseRow``."""

import re
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any, NamedTuple

from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail

from lukittu.fields import (
    MAX_PAGE,
    PAGE_SIZES,
    ClosedSerializer,
    StrictBooleanField,
    StrictCharField,
    StrictChoiceField,
    StrictPageField,
    StrictUUIDField,
)
from releases import shapes
from releases.models import Release, ReleaseFile, ReleaseMetadata, ReleaseStatus

MAX_METADATA = 20
MAX_LICENSES = 30
MAX_LICENSE_ENTRIES = 1000
# "No whitespace" in a version: whitespace to JSON Schema's (JavaScript's) \s, as in the
# published pattern, and to Python's (which adds U+001C-U+001F and U+0085, and lacks U+FEFF).
WHITESPACE = r"\s\u001c-\u001f\u0085\ufeff"
# The OpenAPI document's patterns. DRF's CharField refuses NUL characters (PostgreSQL cannot
# store them), so no text field takes one.
TEXT_PATTERN = r"^[^\u0000]*$"
VERSION_PATTERN = f"^[^{WHITESPACE}\\u0000]+$"
NO_WHITESPACE = re.compile(f"^[^{WHITESPACE}]+\\Z")  # \Z: "$" would let a trailing newline in


class MetadataItemSerializer(ClosedSerializer):
    key = StrictCharField(min_length=1, max_length=255)
    value = StrictCharField(min_length=1, max_length=255)
    locked = StrictBooleanField(required=False, default=False)


class MetadataListSerializer(serializers.ListSerializer):
    def to_internal_value(self, data: Any) -> list[dict[str, Any]]:
        items = super().to_internal_value(data)
        seen: set[str] = set()
        errors: list[dict[str, Any]] = []
        for item in items:
            if item["key"] in seen:
                errors.append({"key": [ErrorDetail("Duplicate key.", "unique")]})
            else:
                errors.append({})
            seen.add(item["key"])
        if any(errors):
            raise serializers.ValidationError(errors)
        return items


class LicenseIdsField(serializers.ListField):
    """Up to 30 distinct license ids; a repeated id counts once."""

    child = StrictUUIDField()
    default_error_messages = {"too_many": f"At most {MAX_LICENSES} distinct license ids."}

    def to_internal_value(self, data: Any) -> list[uuid.UUID]:
        # Repeats are allowed, but not without bound: hostile input is refused before any work.
        if isinstance(data, list) and len(data) > MAX_LICENSE_ENTRIES:
            self.fail("too_many")
        ids = list(dict.fromkeys(super().to_internal_value(data)))
        if len(ids) > MAX_LICENSES:
            self.fail("too_many")
        return ids


class ReleaseUpdateSerializer(ClosedSerializer):
    version = StrictCharField(min_length=3, max_length=255)
    productId = StrictUUIDField()  # the wire format is camelCase
    status = StrictChoiceField(choices=ReleaseStatus.values)
    setAsLatest = StrictBooleanField()
    keepExistingFile = StrictBooleanField()
    branchId = StrictUUIDField(allow_null=True)
    metadata = MetadataListSerializer(
        child=MetadataItemSerializer(), max_length=MAX_METADATA, allow_empty=True
    )
    licenseIds = LicenseIdsField(allow_empty=True)

    def validate_version(self, value: str) -> str:
        if not NO_WHITESPACE.match(value):
            raise serializers.ValidationError("Must not contain whitespace.")
        return value


class ReleaseCreateSerializer(ReleaseUpdateSerializer):
    """Create takes the update's fields, with the lists, the branch and ``setAsLatest``
    optional, and no ``keepExistingFile`` (there is no file to keep)."""

    setAsLatest = StrictBooleanField(required=False, default=False)
    keepExistingFile = None
    branchId = StrictUUIDField(allow_null=True, required=False, default=None)
    metadata = MetadataListSerializer(
        child=MetadataItemSerializer(), max_length=MAX_METADATA, required=False, default=list
    )
    licenseIds = LicenseIdsField(required=False, default=list)


SORT_COLUMNS = ("version", "createdAt", "updatedAt", "latest")


class ReleaseListQuerySerializer(serializers.Serializer):
    """The list's query parameters. A bad value is an error, never silently ignored."""

    productId = StrictUUIDField(required=False)
    page = StrictPageField(min_value=1, max_value=MAX_PAGE, default=1)
    pageSize = serializers.ChoiceField(choices=PAGE_SIZES, default=25)
    sortColumn = serializers.ChoiceField(choices=SORT_COLUMNS, default="createdAt")
    sortDirection = serializers.ChoiceField(choices=("asc", "desc"), default="desc")
    search = serializers.CharField(max_length=255, required=False, allow_blank=True)
    status = serializers.ChoiceField(choices=ReleaseStatus.values, required=False)


def release_payload(release: Release) -> dict[str, Any]:
    """The seed's ``ReleaseResponse.data``. Reads only what is loaded: ``product``, ``branch``,
    ``file`` and the prefetched ``metadata`` and ``license_links``."""
    return release_payload_from(
        release,
        file=release.current_file,
        metadata=release.metadata.all(),
        # In the order they were given: the links carry no ordering of their own, and the
        # database would otherwise return them in whatever order its plan reads them.
        license_ids=[
            link.license_id
            for link in sorted(release.license_links.all(), key=lambda link: link.pk)
        ],
    )


def release_payload_from(
    release: Release,
    *,
    file: ReleaseFile | None,
    metadata: Iterable[ReleaseMetadata],
    license_ids: Iterable[uuid.UUID],
) -> dict[str, Any]:
    """The seed's ``ReleaseResponse.data`` from the release, its loaded product and branch,
    and the file, metadata and license ids given (a write passes the rows it just wrote)."""
    return shapes.Release.dump(release, file=file, metadata=metadata, licenseIds=license_ids)


class _Item(NamedTuple):
    key: str
    value: str
    locked: bool


class _RowProduct(NamedTuple):
    id: Any
    name: str
    url: str | None
    team_id: Any
    created_by_user_id: Any
    created_at: datetime
    updated_at: datetime


class _RowBranch(NamedTuple):
    id: Any
    name: str


class _RowFile(NamedTuple):
    id: Any
    key: str
    size: int
    name: str
    checksum: str
    sha256: str
    main_class_name: str | None
    created_at: datetime


class ReleaseRow(NamedTuple):
    """A release as ``selectors.release_detail`` reads it: its columns, its product's and
    branch's (``branch_name`` None without a branch), its file's (all None without a file), and
    its metadata and license links as JSON arrays (None or ``[]`` when there are none): one
    ``[position, id, key, value, locked]`` per metadata item and one ``[id, license id]`` per
    link, in no particular order. Values are as the fields' converters give them
    (``lukittu.sql``: UUIDs, aware datetimes, booleans, the arrays parsed); inside the arrays
    they are as the database writes JSON (on SQLite a UUID is 32 hex digits, a boolean 0 or 1)."""

    id: Any
    version: str
    status: str
    latest: bool
    product_id: Any
    branch_id: Any
    team_id: Any
    created_at: datetime
    updated_at: datetime
    product_name: str
    product_url: str | None
    product_team_id: Any
    product_created_by_user_id: Any
    product_created_at: datetime
    product_updated_at: datetime
    branch_name: str | None
    file_id: Any
    file_key: str | None
    file_size: int | None
    file_name: str | None
    file_checksum: str | None
    file_sha256: str | None
    file_main_class_name: str | None
    file_created_at: datetime | None
    metadata: Any
    license_links: Any

    # What the ``Release`` shape reads of a release besides its own columns.
    @property
    def product(self) -> _RowProduct:
        return _RowProduct(
            self.product_id,
            self.product_name,
            self.product_url,
            self.product_team_id,
            self.product_created_by_user_id,
            self.product_created_at,
            self.product_updated_at,
        )

    @property
    def branch(self) -> _RowBranch | None:
        return None if self.branch_id is None else _RowBranch(self.branch_id, self.branch_name)


def _uuid_text(value: Any) -> str:
    return str(value if isinstance(value, uuid.UUID) else uuid.UUID(value))


def release_payload_from_row(row: ReleaseRow) -> dict[str, Any]:
    """``release_payload`` from a ``ReleaseRow``: the same shape and values, key for key
    (tests/test_get_release_read.py compares the two), with the metadata in their order
    (position, then id) and the license ids in the order they were given (link id)."""
    file = None
    if row.file_id is not None:
        file = _RowFile(
            row.file_id,
            row.file_key,
            row.file_size,
            row.file_name,
            row.file_checksum,
            row.file_sha256,
            row.file_main_class_name,
            row.file_created_at,
        )
    return shapes.Release.dump(
        row,
        file=file,
        metadata=[
            _Item(key, value, bool(locked))
            for _, _, key, value, locked in sorted(row.metadata or [])
        ],
        licenseIds=[_uuid_text(license_id) for _, license_id in sorted(row.license_links or [])],
    )
