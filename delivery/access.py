"""Who gets which build: the client endpoints' checks, in the order the README's error table
lists them. Each check either passes or raises the ``ApiError`` the client receives.

``resolve`` runs the checks that only read; ``seats.take`` (the last two checks, under the
license's lock) and the session-key replay check write.
"""

import hashlib
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from delivery.crypto import InvalidSessionKey, decrypt_session_key
from delivery.models import SessionKeyUse
from delivery.params import ClientQuery
from lukittu import throttling
from lukittu.api import ApiError, Code
from releases.models import Branch, Product, Release, ReleaseFile, ReleaseStatus
from teams.keys import KeySealError, key_pair_for, private_key_of
from teams.models import License, Team

logger = logging.getLogger("lukittu.delivery")

SESSION_KEY_WINDOW = timedelta(minutes=15)


@dataclass(frozen=True)
class Grant:
    """Everything a delivery needs once every check before the seats has passed."""

    team: Team
    license: License
    product: Product
    release: Release
    file: ReleaseFile
    latest_version: str | None


def rate_limited() -> ApiError:
    return ApiError(429, Code.RATE_LIMIT, "Rate limited")


def check_rate_limits(team_id: uuid.UUID, license_key: str, ip: str | None) -> None:
    """Per client IP and per license key, counted in the shared cache; fails open."""
    ip_limit, ip_period = throttling.parse_rate(settings.CLIENT_IP_RATE)
    if ip is not None and not throttling.hit("client-ip", ip, ip_limit, ip_period).allowed:
        raise rate_limited()
    # The key itself never goes into the cache: a digest of it with the team's id.
    identity = hashlib.sha256(f"{team_id}:{license_key}".encode()).hexdigest()
    key_limit, key_period = throttling.parse_rate(settings.CLIENT_LICENSE_RATE)
    if not throttling.hit("client-license", identity, key_limit, key_period).allowed:
        raise rate_limited()


def live_team(team_id: uuid.UUID) -> Team:
    team = Team.objects.filter(pk=team_id, deleted_at__isnull=True).first()
    if team is None:
        raise ApiError(404, Code.TEAM_NOT_FOUND, "Team not found")
    if not team.file_uploads_enabled:
        raise ApiError(
            403,
            Code.FORBIDDEN,
            "Using classloader requires a higher plan. Either upgrade or contact support.",
        )
    return team


def open_session_key(team: Team, session_key_hex: str) -> bytes:
    """The decrypted session key, used here for the first time in the replay window."""
    try:
        private_key = private_key_of(key_pair_for(team))
    except KeySealError:
        logger.error("The private key of team %s does not open: TEAM_KEYS_SECRET changed?", team.pk)
        raise
    try:
        session_key = decrypt_session_key(private_key, session_key_hex)
    except InvalidSessionKey:
        raise ApiError(400, Code.INVALID_SESSION_KEY, "Invalid session key") from None
    _claim_session_key(team, hashlib.sha256(session_key).hexdigest())
    return session_key


def _claim_session_key(team: Team, digest: str) -> None:
    """One row per key and team; a second claim inside the window fails on the unique
    constraint, so two requests racing with one key cannot both pass."""
    cutoff = timezone.now() - SESSION_KEY_WINDOW
    with transaction.atomic():
        SessionKeyUse.objects.filter(team=team, used_at__lt=cutoff).delete()
    try:
        with transaction.atomic():
            SessionKeyUse.objects.create(team=team, digest=digest)
    except IntegrityError:
        raise rate_limited() from None


def find_license(team: Team, license_key: str) -> License:
    probe = License(team=team)
    probe.set_key(license_key)
    license = License.objects.filter(team=team, key_digest=probe.key_digest).first()
    if license is None:
        raise ApiError(404, Code.LICENSE_NOT_FOUND, "License not found")
    return license


def licensed_product(team: Team, license: License, product_id: uuid.UUID) -> Product:
    product = Product.objects.filter(pk=product_id, team=team, licenses=license).first()
    if product is None:
        raise ApiError(404, Code.PRODUCT_NOT_FOUND, "Product not found")
    return product


def release_not_found(details: str = "Release not found") -> ApiError:
    return ApiError(404, Code.RELEASE_NOT_FOUND, details)


def choose_release(product: Product, query: ClientQuery) -> tuple[Release, str | None]:
    """The release to deliver and the version of the line's latest. Only releases with a file
    count; without ``branch`` only the main line (no branch) is considered."""
    branch = None
    if query.branch is not None:
        branch = Branch.objects.filter(product=product, name=query.branch).first()
        if branch is None:
            raise release_not_found("Branch not found")
    line = Release.objects.filter(product=product, branch=branch, file__isnull=False)
    latest = line.filter(latest=True).select_related("file", "branch").first()
    if query.version is None:
        chosen = latest
    else:
        chosen = line.filter(version=query.version).select_related("file", "branch").first()
    if chosen is None:
        raise release_not_found()
    return chosen, latest.version if latest is not None else None


def check_release_open_to(release: Release, license: License) -> None:
    if release.status == ReleaseStatus.ARCHIVED:
        raise ApiError(403, Code.RELEASE_ARCHIVED, "Release is archived")
    if release.status == ReleaseStatus.DRAFT:
        raise ApiError(403, Code.RELEASE_DRAFT, "Release is draft")
    allowed = set(release.license_links.values_list("license_id", flat=True))
    if allowed and license.pk not in allowed:
        raise ApiError(
            403, Code.NO_ACCESS_TO_RELEASE, "License does not have access to this release"
        )


def check_license_standing(license: License) -> None:
    if license.suspended:
        raise ApiError(403, Code.LICENSE_SUSPENDED, "License suspended")
    if license.expires_at is not None and license.expires_at <= timezone.now():
        raise ApiError(403, Code.LICENSE_EXPIRED, "License expired")


def resolve(team: Team, query: ClientQuery) -> Grant:
    """The checks from the license on, up to (not including) the seats."""
    license = find_license(team, query.license_key)
    product = licensed_product(team, license, query.product_id)
    release, latest_version = choose_release(product, query)
    check_release_open_to(release, license)
    check_license_standing(license)
    return Grant(
        team=team,
        license=license,
        product=product,
        release=release,
        file=release.file,
        latest_version=latest_version,
    )
