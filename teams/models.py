"""Team, ApiKey, License and AuditLog, and the base of models whose owner is fixed."""

import hashlib
import hmac
import secrets
import uuid
from datetime import datetime
from typing import Any, ClassVar

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone

DEFAULT_STORAGE_LIMIT_MB = 100
DEFAULT_MAX_RELEASES_PER_PRODUCT = 100
# Lukittu's default.
DEFAULT_MAX_BRANCHES_PER_PRODUCT = 10
MEGABYTE = 1024 * 1024


# Ids of creators that are not API keys: uuid5 in this namespace of the operator's label.
CREATOR_NAMESPACE = uuid.UUID("5d0c9a1e-6f3b-4c8e-9a71-2b4d8e6f0c13")
UNKNOWN_CREATOR_LABEL = "operator:unknown"


def operator_creator_id(label: str) -> uuid.UUID:
    """A stable id for an operator (``operator:<username>``, ``operator:command-line``)."""
    return uuid.uuid5(CREATOR_NAMESPACE, label)


def unknown_creator() -> uuid.UUID:
    """The creator of rows made before creators were recorded, or by code that names none."""
    return operator_creator_id(UNKNOWN_CREATOR_LABEL)


class Team(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=255)
    file_uploads_enabled = models.BooleanField(
        default=False,
        help_text="The paid 'classloader' feature: release files may be uploaded.",
    )
    storage_limit_bytes = models.BigIntegerField(
        default=DEFAULT_STORAGE_LIMIT_MB * MEGABYTE,
        help_text="Total bytes of release files the team may store.",
    )
    storage_used_bytes = models.BigIntegerField(
        default=0,
        editable=False,
        help_text="Bytes of the team's release files, kept in step with them by every write.",
    )
    max_releases_per_product = models.PositiveIntegerField(
        default=DEFAULT_MAX_RELEASES_PER_PRODUCT,
        help_text="How many releases each of the team's products may have.",
    )
    max_branches_per_product = models.PositiveIntegerField(
        default=DEFAULT_MAX_BRANCHES_PER_PRODUCT,
        help_text="How many branches each of the team's products may have.",
    )
    seat_timeout_minutes = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text=(
            "After how many minutes without a download a license's device (hardware id or IP) "
            "stops taking a seat. Empty: seats are kept until freed."
        ),
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(
        null=True, blank=True, help_text="Soft delete: a deleted team's keys stop working."
    )

    class Meta:
        ordering = ["name"]
        # Admin actions that "change" is too coarse for; the roles grant them (teams/roles.py).
        permissions = [("soft_delete_team", "Can soft-delete a team")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(storage_limit_bytes__gte=0), name="team_storage_limit_gte_0"
            )
        ]

    def __str__(self) -> str:
        # Teams may share a name; the id's first characters tell them apart in every list,
        # filter and select.
        return f"{self.name} ({self.id.hex[:8]})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # The stored-bytes total moves only through F() updates in the writes that change
        # files; saving a team loaded earlier (an admin form) must not put an old total back.
        if not self._state.adding and kwargs.get("update_fields") is None:
            kwargs["update_fields"] = [
                field.name
                for field in self._meta.concrete_fields
                if not field.primary_key and field.name != "storage_used_bytes"
            ]
        super().save(*args, **kwargs)

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


class TeamKeyPair(models.Model):
    """The team's RSA-2048 key pair for the classloader: software embeds the public key and
    encrypts its session key with it. The private key is kept sealed (``teams.keys``): AES-GCM
    under a key derived from ``TEAM_KEYS_SECRET``, bound to the team's id."""

    team = models.OneToOneField(
        Team, primary_key=True, on_delete=models.CASCADE, related_name="key_pair"
    )
    public_key_pem = models.TextField(editable=False)
    private_key_sealed = models.TextField(editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "team key pair"

    def __str__(self) -> str:
        return f"key pair of {self.team_id}"


class FixedFieldError(ValidationError):
    """A write tried to change a field that is fixed once the row exists."""


class FixedFieldsQuerySet(models.QuerySet):
    # update() and bulk_update() skip save(), so they check here. They refuse a fixed field
    # even when its value would not change: telling those apart would cost a query per row.

    def update(self, **kwargs: Any) -> int:
        self._refuse_fixed(kwargs)
        return super().update(**kwargs)

    def bulk_update(self, objs: Any, fields: Any, batch_size: int | None = None) -> int:
        self._refuse_fixed(fields)  # before its transaction starts, which it would spoil
        return super().bulk_update(objs, fields, batch_size=batch_size)

    def _refuse_fixed(self, names: Any) -> None:
        refused = sorted(self.model.fixed_field_names() & set(names))
        if refused:
            raise FixedFieldError(f"{', '.join(refused)} cannot change after creation")


class FixedFieldsModel(models.Model):
    """A model whose ``fixed_fields`` (the owner: a product's team, a branch's product) are
    chosen when the row is created and never change: moving a row to another owner would
    carry its history and its access along. save(), clean(), QuerySet.update() and
    bulk_update() refuse a change; raw SQL is the only way round."""

    fixed_fields: ClassVar[tuple[str, ...]] = ()

    objects = FixedFieldsQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.check_fixed_fields(update_fields=kwargs.get("update_fields"))
        super().save(*args, **kwargs)

    def clean(self) -> None:
        super().clean()
        self.check_fixed_fields()

    @classmethod
    def fixed_field_names(cls) -> set[str]:
        """The fixed fields by name and by column attribute (``team`` and ``team_id``)."""
        names = set(cls.fixed_fields)
        return names | {cls._meta.get_field(name).attname for name in cls.fixed_fields}

    def check_fixed_fields(self, update_fields: Any = None) -> None:
        """Raise FixedFieldError if this existing row's fixed fields differ from the stored
        ones. Compared with the database, not with what was loaded, so a stale or hand-built
        instance cannot slip a change through."""
        if self._state.adding:
            return
        fields = [self._meta.get_field(name) for name in self.fixed_fields]
        if update_fields is not None:
            written = set(update_fields)
            fields = [f for f in fields if f.name in written or f.attname in written]
        if not fields:
            return
        stored = (
            type(self)._base_manager.filter(pk=self.pk).values(*(f.attname for f in fields)).first()
        )
        if stored is None:
            return  # not stored (yet): nothing to compare with
        changed = [f.name for f in fields if stored[f.attname] != getattr(self, f.attname)]
        if changed:
            raise FixedFieldError(
                {
                    name: f"The {name} of an existing {self._meta.verbose_name} cannot change."
                    for name in changed
                },
                code="fixed",
            )


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiKey(FixedFieldsModel):
    """A team's Bearer key. Only the stem (for lookup) and a SHA-256 digest are stored; the key
    itself is shown once, when it is made. Keys carry 256 bits of randomness, so a plain digest
    is enough: there is nothing to brute-force."""

    PREFIX = "lukittu_api_key_"
    STEM_LENGTH = 12
    # A key moved to another team would open that team's data to whoever holds it.
    fixed_fields = ("team",)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True)
    stem = models.CharField(max_length=32, unique=True, editable=False)
    digest = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"
        permissions = [("revoke_apikey", "Can revoke an API key")]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name or 'unnamed'})"

    @property
    def prefix(self) -> str:
        """The visible part of the key, safe to show and log."""
        return f"{self.PREFIX}{self.stem}"

    @classmethod
    def build(
        cls, *, team: Team, name: str = "", expires_at: datetime | None = None
    ) -> tuple["ApiKey", str]:
        """A new unsaved key and its plain text (shown once, never stored)."""
        stem = secrets.token_hex(cls.STEM_LENGTH // 2)
        plain = f"{cls.PREFIX}{stem}_{secrets.token_urlsafe(32)}"
        key = cls(team=team, name=name, stem=stem, digest=_digest(plain), expires_at=expires_at)
        return key, plain

    @classmethod
    def stem_of(cls, plain: str) -> str | None:
        if not plain.startswith(cls.PREFIX):
            return None
        stem, sep, secret = plain[len(cls.PREFIX) :].partition("_")
        if not sep or len(stem) != cls.STEM_LENGTH or not secret:
            return None
        return stem

    def matches(self, plain: str) -> bool:
        return hmac.compare_digest(self.digest, _digest(plain))

    def is_usable(self, now: datetime | None = None) -> bool:
        now = now or timezone.now()
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > now


class License(FixedFieldsModel):
    """A customer's license. The key is stored as a SHA-256 digest (for the download checks
    that look a key up) plus its last characters as a hint; the key is shown once."""

    fixed_fields = ("team",)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="licenses")
    key_digest = models.CharField(max_length=64, editable=False)
    key_hint = models.CharField(max_length=8, editable=False)
    suspended = models.BooleanField(default=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    ip_limit = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="How many IP addresses may download at once. Empty: unlimited.",
    )
    hwid_limit = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="How many devices (hardware ids) may download at once. Empty: unlimited.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [
            ("suspend_license", "Can suspend and reinstate a license"),
            ("free_seats", "Can free a license's seats"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["team", "key_digest"], name="license_unique_key"),
            models.CheckConstraint(
                condition=models.Q(ip_limit__isnull=True) | models.Q(ip_limit__gte=1),
                name="license_ip_limit_gte_1",
            ),
            models.CheckConstraint(
                condition=models.Q(hwid_limit__isnull=True) | models.Q(hwid_limit__gte=1),
                name="license_hwid_limit_gte_1",
            ),
        ]

    def __str__(self) -> str:
        return f"…{self.key_hint}"

    @staticmethod
    def generate_key() -> str:
        alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
        return "-".join("".join(secrets.choice(alphabet) for _ in range(5)) for _ in range(5))

    def set_key(self, plain: str) -> None:
        self.key_digest = _digest(plain.strip().upper())
        self.key_hint = plain.strip()[-5:]

    def matches(self, plain: str) -> bool:
        return hmac.compare_digest(self.key_digest, _digest(plain.strip().upper()))

    def is_active(self, now: datetime | None = None) -> bool:
        now = now or timezone.now()
        return not self.suspended and (self.expires_at is None or self.expires_at > now)


class AuditLog(models.Model):
    """One row per successful write: who (key or operator), from where, what they sent, and
    what resulted."""

    id = models.BigAutoField(primary_key=True)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="audit_logs")
    api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_logs"
    )
    actor = models.CharField(max_length=150, help_text="The key's prefix, or the operator.")
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=64)
    target_id = models.CharField(max_length=64)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    request_data = models.JSONField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["team", "-created_at"], name="audit_team_created")]

    def __str__(self) -> str:
        return f"{self.action} {self.target_type} {self.target_id}"


class IdempotencyKey(models.Model):
    """A write sent with an ``Idempotency-Key`` header, scoped to the API key, the method and
    the path (``teams.conditions``). Claimed in its own short transaction before the write
    runs; its answer is stored in the write's own transaction, so a committed write always
    has its answer here and a rolled-back one never does. Kept for 24 hours
    (``manage.py purge_idempotency_keys``)."""

    id = models.BigAutoField(primary_key=True)
    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=512)
    fingerprint = models.CharField(
        max_length=64, help_text="SHA-256 over the request's data and its file's SHA-256."
    )
    status_code = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Empty while the first request is still running."
    )
    response_body = models.JSONField(null=True, blank=True)
    response_headers = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["api_key", "key", "method", "path"], name="idempotency_key_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.path} [{self.key}]"
