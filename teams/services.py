"""Team, API key and license write use cases, shared by the operator commands and the admin."""

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from teams.models import MEGABYTE, ApiKey, License, Team


def team_create(*, name: str, file_uploads: bool = False, storage_limit_mb: int = 100) -> Team:
    if storage_limit_mb < 0:
        raise ValueError("storage limit must not be negative")
    return Team.objects.create(
        name=name,
        file_uploads_enabled=file_uploads,
        storage_limit_bytes=storage_limit_mb * MEGABYTE,
    )


def api_key_create(
    *,
    team: Team,
    name: str = "",
    expires_in_days: int | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """A new key and its plain text, which is shown once and never stored."""
    if expires_in_days is not None:
        if expires_in_days < 1:
            raise ValueError("expiry must be at least one day")
        expires_at = timezone.now() + timedelta(days=expires_in_days)
    key, plain = ApiKey.build(team=team, name=name, expires_at=expires_at)
    key.save()
    return key, plain


def api_key_revoke(*, key: ApiKey) -> None:
    ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


def license_create(
    *, team: Team, suspended: bool = False, expires_at: datetime | None = None
) -> tuple[License, str]:
    """A new license and its key, shown once and stored only as a digest."""
    plain = License.generate_key()
    license = License(team=team, suspended=suspended, expires_at=expires_at)
    license.set_key(plain)
    license.save()
    return license, plain


@transaction.atomic
def team_soft_delete(*, team: Team) -> None:
    Team.objects.filter(pk=team.pk, deleted_at__isnull=True).update(deleted_at=timezone.now())
