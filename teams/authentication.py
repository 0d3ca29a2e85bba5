"""Bearer authentication: the API key is the principal, and it only opens its own team's URLs."""

from datetime import timedelta
from typing import Any

from django.utils import timezone
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from lukittu.api import invalid_api_key
from teams.models import ApiKey

LAST_USED_RESOLUTION = timedelta(minutes=1)
MAX_HEADER_LENGTH = 256


def key_for(plain: str) -> ApiKey | None:
    """The usable key (not expired, not revoked, its team not deleted) whose text is
    ``plain``, or None."""
    stem = ApiKey.stem_of(plain)
    if stem is None:
        return None
    key = ApiKey.objects.select_related("team").filter(stem=stem).first()
    if key is None or not key.matches(plain) or not key.is_usable() or key.team.is_deleted:
        return None
    return key


class ApiKeyAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[None, ApiKey] | None:
        header = get_authorization_header(request)
        if not header:
            return None
        parts = header.split()
        if (
            len(header) > MAX_HEADER_LENGTH
            or len(parts) != 2
            or parts[0].lower() != self.keyword.lower().encode()
        ):
            raise invalid_api_key()
        try:
            plain = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise invalid_api_key() from None
        key = key_for(plain)
        if key is None:
            raise invalid_api_key()
        now = timezone.now()
        if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
            # A cheap single-row update, at most once a minute per key.
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
            key.last_used_at = now
        return (None, key)

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class IsTeamApiKey(BasePermission):
    """The key's team must be the team in the URL; any other key is simply invalid here."""

    def has_permission(self, request: Request, view: Any) -> bool:
        key = request.auth
        if not isinstance(key, ApiKey):
            return False
        # ``team_id`` is the URL's teamId, already parsed as a UUID by the view.
        if key.team_id != getattr(view, "team_id", None):
            raise invalid_api_key()
        return True
