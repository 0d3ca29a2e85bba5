"""Product, Branch, Release, ReleaseMetadata, ReleaseLicense and ReleaseFile.

The invariants clients rely on live in the database: one version per product and branch, and
at most one latest release per product and branch. A null branch is the product's main line;
since SQL treats NULLs as distinct, each rule is two partial unique indexes (one for a branch,
one for no branch), which SQLite and PostgreSQL both enforce.
"""

import functools
import re
import sys
import uuid
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils.deconstruct import deconstructible

from teams.models import FixedFieldsModel, License, Team, unknown_creator


@functools.cache
def unprintable_ranges() -> tuple[tuple[int, int], ...]:
    """The code points ``str.isprintable()`` refuses, as (first, last) ranges: control,
    format, surrogate, private-use and unassigned characters, and every separator but the
    space (U+2028 and U+2029 included). Python's Unicode tables decide."""
    # One byte per code point (1: printable), and the runs of zeros in it: C loops, as this
    # runs at every start.
    printable = bytes(map(str.isprintable, map(chr, range(sys.maxunicode + 1))))
    return tuple((run.start(), run.end() - 1) for run in re.finditer(b"\x00+", printable))


def _name_pattern() -> str:
    """The rule as a JSON Schema pattern, exact for the Basic Multilingual Plane: each code
    point there that ``str.isprintable()`` refuses, as a \\uXXXX escape, which Python's re
    and ECMA-262 read alike. Beyond it no pattern is read alike (without ECMA-262's u flag a
    character there is two UTF-16 units, and a range of them no range at all), so there the
    schema states the rule in words."""
    members = "".join(
        f"\\u{first:04x}" + (f"-\\u{min(last, 0xFFFF):04x}" if last > first else "")
        for first, last in unprintable_ranges()
        if first <= 0xFFFF
    )
    return f"^[^{members}]*$"


# Names travel in HTTP headers (the classloader's X-Product-Name) and in logs, so only
# printable characters: a line break, or U+2028 (which Python's header encoding splits a line
# at), would end a header. NAME_PATTERN is the same rule as the OpenAPI document states it.
NAME_PATTERN = _name_pattern()
NAME_RULE = (
    "Printable characters only, as Python's str.isprintable() has them: no control, format, "
    "private-use, surrogate or unassigned character, and no separator but the space (the "
    "pattern states the rule up to U+FFFF)"
)


@deconstructible
class PrintableValidator:
    """Refuses text with any character ``str.isprintable()`` refuses (the space is fine)."""

    message = (
        "Must not contain control characters (line breaks, tabs) or other unprintable "
        "characters (line or paragraph separators, format, private-use or unassigned ones)."
    )
    code = "invalid"

    def __call__(self, value: str) -> None:
        if not value.isprintable():
            raise ValidationError(self.message, code=self.code)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PrintableValidator)

    def __hash__(self) -> int:
        return hash(PrintableValidator)


no_control_characters = PrintableValidator()


class Product(FixedFieldsModel):
    """A team's product. Its team is fixed at creation: its releases, files and storage are
    counted against that team."""

    fixed_fields = ("team",)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="products")
    name = models.CharField(max_length=255, validators=[no_control_characters])
    url = models.URLField(max_length=500, null=True, blank=True)
    created_by_user_id = models.UUIDField(
        default=unknown_creator,
        editable=False,
        help_text=(
            "Who created it: the API key's id, or a stable id per operator "
            "(teams.models.operator_creator_id)."
        ),
    )
    licenses = models.ManyToManyField(
        License,
        blank=True,
        related_name="products",
        help_text="The licenses valid for this product: only they download its releases.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Branch(FixedFieldsModel):
    """A product's branch. Its product is fixed at creation, so a branch never changes team."""

    fixed_fields = ("product",)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="branches")
    name = models.CharField(max_length=255, validators=[no_control_characters])
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "branches"
        constraints = [
            models.UniqueConstraint(fields=["product", "name"], name="branch_unique_name")
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def team(self) -> Team:
        """Its product's: the team the audit log files the branch's changes under."""
        return self.product.team


class ReleaseStatus(models.TextChoices):
    PUBLISHED = "PUBLISHED"
    DRAFT = "DRAFT"
    DEPRECATED = "DEPRECATED"
    ARCHIVED = "ARCHIVED"


_DIGITS = re.compile(r"(\d+)")


def version_sort_key(version: str) -> str:
    """A key whose plain (binary) order is the version's natural order: each run of digits
    compares as a number (1.10.0 after 1.9.0), by prefixing it with its length."""
    parts = []
    for index, part in enumerate(_DIGITS.split(version.lower())):
        if index % 2:
            digits = part.lstrip("0") or "0"
            part = f"{len(digits):03d}{digits}"
        parts.append(part)
    return "".join(parts)


VERSION_CONFLICT_CONSTRAINTS = ("release_unique_version_on_branch", "release_unique_version_main")


class Release(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="releases")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="releases")
    branch = models.ForeignKey(
        Branch, null=True, blank=True, on_delete=models.PROTECT, related_name="releases"
    )
    version = models.CharField(max_length=255)
    version_sort_key = models.CharField(max_length=1024, editable=False, default="")
    status = models.CharField(
        max_length=16, choices=ReleaseStatus.choices, default=ReleaseStatus.DRAFT
    )
    latest = models.BooleanField(default=False)
    licenses = models.ManyToManyField(
        License, through="ReleaseLicense", related_name="releases", blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["team", "product"], name="release_team_product"),
            models.Index(fields=["product", "version_sort_key"], name="release_product_version"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["product", "branch", "version"],
                condition=Q(branch__isnull=False),
                name=VERSION_CONFLICT_CONSTRAINTS[0],
            ),
            models.UniqueConstraint(
                fields=["product", "version"],
                condition=Q(branch__isnull=True),
                name=VERSION_CONFLICT_CONSTRAINTS[1],
            ),
            models.UniqueConstraint(
                fields=["product", "branch"],
                condition=Q(latest=True, branch__isnull=False),
                name="release_one_latest_on_branch",
            ),
            models.UniqueConstraint(
                fields=["product"],
                condition=Q(latest=True, branch__isnull=True),
                name="release_one_latest_main",
            ),
            models.CheckConstraint(
                condition=Q(latest=False) | Q(status=ReleaseStatus.PUBLISHED),
                name="release_latest_is_published",
            ),
        ]

    def __str__(self) -> str:
        return self.version

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.version_sort_key = version_sort_key(self.version)
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "version" in update_fields:
            kwargs["update_fields"] = {*update_fields, "version_sort_key"}
        super().save(*args, **kwargs)

    @property
    def current_file(self) -> "ReleaseFile | None":
        try:
            return self.file
        except ReleaseFile.DoesNotExist:
            return None


class ReleaseMetadata(models.Model):
    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="metadata")
    position = models.PositiveSmallIntegerField(default=0)
    key = models.CharField(max_length=255)
    value = models.CharField(max_length=255)
    locked = models.BooleanField(default=False)

    class Meta:
        ordering = ["position", "id"]
        verbose_name_plural = "metadata"
        constraints = [
            models.UniqueConstraint(fields=["release", "key"], name="release_metadata_unique_key")
        ]

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


class ReleaseLicense(models.Model):
    """A license allowed to download the release."""

    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="license_links")
    license = models.ForeignKey(License, on_delete=models.CASCADE, related_name="release_links")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["release", "license"], name="release_license_unique")
        ]

    def __str__(self) -> str:
        return f"{self.release_id} → {self.license_id}"


class ReleaseFile(models.Model):
    """The build attached to a release. ``key`` is the storage object's name, made by the
    server and unique per file; ``name`` is the client's file name, kept for display only."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="release_files")
    release = models.OneToOneField(Release, on_delete=models.CASCADE, related_name="file")
    key = models.CharField(max_length=512, unique=True)
    size = models.BigIntegerField()
    name = models.CharField(max_length=255)
    checksum = models.CharField(max_length=32, help_text="MD5, hex")
    sha256 = models.CharField(max_length=64)
    main_class_name = models.CharField(max_length=512, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class LedgerEntry(models.Model):
    """A stored object that no ReleaseFile row accounts for: an upload in flight, or an object
    due for deletion. Rows are written before the object is (``UPLOADING``, in its own short
    transaction) and in the same transaction that makes an object unreferenced
    (``DELETING``), so committed rows alone say what every object under ``releases/`` is:

    - referenced by a ReleaseFile row: keep it;
    - ``UPLOADING``: an upload in flight; its bytes are reserved against the team's storage
      limit while its lease holds (``lease_expires_at``, renewed while its request runs). Once
      the lease has lapsed its request is gone or has given up: the reservation no longer
      counts, it can never be settled, and the upload is abandoned and deleted;
    - ``DELETING``: delete it (unless a ReleaseFile row references it), then drop the row;
    - none of these: an orphan, deleted after the grace period.

    ``manage.py reconcile_storage`` finishes whatever a dead or timed-out process left.
    """

    class State(models.TextChoices):
        UPLOADING = "UPLOADING"
        DELETING = "DELETING"

    key = models.CharField(max_length=512, unique=True)
    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="ledger_entries"
    )
    state = models.CharField(max_length=16, choices=State.choices)
    size = models.BigIntegerField(default=0, help_text="Bytes reserved while UPLOADING.")
    lease_expires_at = models.DateTimeField(
        null=True, blank=True, help_text="An UPLOADING entry's reservation holds until then."
    )
    reason = models.CharField(max_length=255)
    attempts = models.PositiveIntegerField(default=0, help_text="Failed deletes so far.")
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]
        verbose_name_plural = "ledger entries"
        indexes = [models.Index(fields=["team", "state"], name="ledger_team_state")]

    def __str__(self) -> str:
        return f"{self.state} {self.key}"
