"""What delivery remembers: the seats a license's devices take, the session keys already
used, and one row per build handed out.

A hardware identifier is stored only as its SHA-256 (it identifies a customer's machine; the
service needs to recognise it, not to read it). IP addresses are stored as they are, because
operators free seats by them."""

import hashlib

from django.db import models
from django.utils import timezone

from releases.models import Release
from teams.models import License, Team


def hwid_digest(hardware_identifier: str) -> str:
    return hashlib.sha256(hardware_identifier.encode()).hexdigest()


class Seat(models.Model):
    """A device or address that downloaded with a license. It counts against the license's
    limit of its kind until it has been idle for the team's ``seat_timeout_minutes`` (if set)
    or until an operator frees it."""

    class Kind(models.TextChoices):
        HWID = "HWID", "hardware identifier"
        IP = "IP", "IP address"

    id = models.BigAutoField(primary_key=True)
    license = models.ForeignKey(License, on_delete=models.CASCADE, related_name="seats")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    value = models.CharField(
        max_length=64, help_text="The hardware identifier's SHA-256, or the IP address."
    )
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-last_seen_at"]
        constraints = [
            models.UniqueConstraint(fields=["license", "kind", "value"], name="seat_unique")
        ]
        indexes = [models.Index(fields=["license", "kind", "last_seen_at"], name="seat_active")]

    def __str__(self) -> str:
        shown = self.value if self.kind == self.Kind.IP else f"{self.value[:12]}…"
        return f"{self.get_kind_display()} {shown}"


class SessionKeyUse(models.Model):
    """A classloader session key already used: the same key again within the replay window is
    refused. Keyed by the SHA-256 of the decrypted key, never the key itself."""

    id = models.BigAutoField(primary_key=True)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    digest = models.CharField(max_length=64)
    used_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "digest"], name="session_key_unique")
        ]

    def __str__(self) -> str:
        return f"{self.digest[:12]}… at {self.used_at:%Y-%m-%d %H:%M:%S}"


class Download(models.Model):
    """One build handed out. Rows outlive the release, file and license they name (the
    references become null; the version and the file's digest stay)."""

    class Endpoint(models.TextChoices):
        CLASSLOADER = "CLASSLOADER", "classloader"
        DOWNLOAD = "DOWNLOAD", "plain download"

    id = models.BigAutoField(primary_key=True)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="downloads")
    release = models.ForeignKey(
        Release, null=True, blank=True, on_delete=models.SET_NULL, related_name="downloads"
    )
    version = models.CharField(max_length=255)
    file_id = models.UUIDField(null=True, blank=True)
    file_sha256 = models.CharField(max_length=64)
    license = models.ForeignKey(
        License, null=True, blank=True, on_delete=models.SET_NULL, related_name="downloads"
    )
    hwid_digest = models.CharField(max_length=64)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    endpoint = models.CharField(max_length=16, choices=Endpoint.choices)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["release", "-created_at"], name="download_release_recent"),
            models.Index(fields=["license", "-created_at"], name="download_license_recent"),
            models.Index(fields=["team", "-created_at"], name="download_team_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.version} ({self.get_endpoint_display()})"
