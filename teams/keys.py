"""Team key pairs: made, sealed at rest, and opened.

Each team has an RSA-2048 key pair (Lukittu's size and encodings: SPKI PEM public key, PKCS#8
PEM private key). Software built for the team embeds the public key; the classloader decrypts
session keys with the private key.

The private key is stored sealed: ``v1:`` then base64 of a 12-byte nonce and the AES-256-GCM
ciphertext of the PEM, whose key is derived from ``TEAM_KEYS_SECRET`` with HKDF-SHA256 and
whose associated data is the team's id, so a sealed key copied onto another team's row does
not open. Without the secret the database alone gives away no private key.
"""

import base64
import enum
import functools
import os
import uuid

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import IntegrityError, transaction

from teams.models import Team, TeamKeyPair

KEY_SIZE = 2048
PUBLIC_EXPONENT = 65537
SEAL_VERSION = "v1"
_HKDF_INFO = b"lukittu team private keys v1"


class KeySealError(Exception):
    """A sealed private key that does not open: a changed TEAM_KEYS_SECRET, or a sealed key
    moved to another team."""


@functools.lru_cache(maxsize=4)
def _sealing_key(secret: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
        secret.encode()
    )


def seal(private_pem: bytes, team_id: uuid.UUID, secret: str | None = None) -> str:
    """Sealed with ``secret`` (default: TEAM_KEYS_SECRET)."""
    nonce = os.urandom(12)
    sealed = AESGCM(_sealing_key(secret or settings.TEAM_KEYS_SECRET)).encrypt(
        nonce, private_pem, team_id.bytes
    )
    return f"{SEAL_VERSION}:{base64.b64encode(nonce + sealed).decode()}"


def unseal(sealed: str, team_id: uuid.UUID, secret: str | None = None) -> bytes:
    """Opened with ``secret`` (default: TEAM_KEYS_SECRET)."""
    version, _, body = sealed.partition(":")
    if version != SEAL_VERSION:
        raise KeySealError(f"unknown seal version {version!r}")
    try:
        raw = base64.b64decode(body, validate=True)
        return AESGCM(_sealing_key(secret or settings.TEAM_KEYS_SECRET)).decrypt(
            raw[:12], raw[12:], team_id.bytes
        )
    except Exception as error:  # InvalidTag, binascii.Error, short input
        raise KeySealError("the team's private key does not open with TEAM_KEYS_SECRET") from error


class Resealed(enum.Enum):
    CURRENT = "already sealed with TEAM_KEYS_SECRET"
    RESEALED = "resealed from the old secret"
    UNOPENED = "opens with neither secret"


def reseal(key_pair: TeamKeyPair, old_secret: str) -> Resealed:
    """Seal the team's private key with TEAM_KEYS_SECRET if it opens with ``old_secret``
    (after the secret was changed). The row is updated only if nobody changed it meanwhile,
    so a key pair made or resealed concurrently is never overwritten."""
    try:
        unseal(key_pair.private_key_sealed, key_pair.team_id)
        return Resealed.CURRENT
    except KeySealError:
        pass
    try:
        private_pem = unseal(key_pair.private_key_sealed, key_pair.team_id, old_secret)
    except KeySealError:
        return Resealed.UNOPENED
    updated = TeamKeyPair.objects.filter(
        pk=key_pair.pk, private_key_sealed=key_pair.private_key_sealed
    ).update(private_key_sealed=seal(private_pem, key_pair.team_id))
    if not updated:
        key_pair.refresh_from_db()
        return reseal(key_pair, old_secret)
    return Resealed.RESEALED


def _generate_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=KEY_SIZE)


def new_key_pair(team_id: uuid.UUID) -> TeamKeyPair:
    """An unsaved key pair for the team with this id."""
    private = _generate_private_key()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return TeamKeyPair(
        team_id=team_id,
        public_key_pem=public_pem.decode(),
        private_key_sealed=seal(private_pem, team_id),
    )


def key_pair_for(team: Team) -> TeamKeyPair:
    """The team's key pair, made now if the team has none yet (a team created other than
    through ``teams.services.team_create``). Two callers racing both get the one stored."""
    existing = TeamKeyPair.objects.filter(team_id=team.pk).first()
    if existing is not None:
        return existing
    made = new_key_pair(team.pk)
    try:
        with transaction.atomic():
            made.save(force_insert=True)
    except IntegrityError:
        return TeamKeyPair.objects.get(team_id=team.pk)
    return made


def public_key_base64(public_key_pem: str) -> str:
    """The bare base64 form (the PEM's body on one line), as Lukittu shows it and as Java's
    ``X509EncodedKeySpec`` takes it after decoding."""
    lines = [line.strip() for line in public_key_pem.strip().splitlines()]
    return "".join(line for line in lines if line and not line.startswith("-----"))


@functools.lru_cache(maxsize=256)
def _load_private(sealed: str, team_id: uuid.UUID) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(unseal(sealed, team_id), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeySealError("the team's private key is not an RSA key")
    return key


def private_key_of(key_pair: TeamKeyPair) -> rsa.RSAPrivateKey:
    """The opened private key. Cached per process by the sealed text: parsing a PEM key costs
    about a millisecond, and a new seal (a new key pair) is a new cache entry."""
    return _load_private(key_pair.private_key_sealed, key_pair.team_id)
