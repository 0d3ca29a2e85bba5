"""The classloader's wire format, byte for byte as Lukittu's loaders expect it.

1. The loader makes a random session key, encrypts it with the team's RSA public key
   (RSA-OAEP, SHA-1 for both the hash and MGF1, no label) and sends the ciphertext as hex.
2. The server decrypts it with the team's private key. The AES-256-GCM key is the SHA-256 of
   the *lower-case hex text* of the decrypted bytes (not of the bytes themselves).
3. The file goes out as a sequence of frames, one per chunk read from storage::

       uint32 big-endian  length of what follows (12 + 16 + len(ciphertext))
       12 bytes           random IV
       16 bytes           GCM tag
       n bytes            ciphertext of the chunk (no associated data)

   Frame boundaries carry no meaning beyond the length prefix: a reader decrypts each frame
   and concatenates the plaintexts.
"""

import hashlib
import os
import struct
from collections.abc import Iterable, Iterator

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

IV_BYTES = 12
TAG_BYTES = 16
FRAME_HEADER = struct.Struct(">I")

# SHA-1 is the protocol's choice (Node's OAEP default, which Lukittu's loaders use); in OAEP it
# serves as a mask generator, where collisions do not matter.
_SHA1 = hashes.SHA1()  # noqa: S303
OAEP_SHA1 = padding.OAEP(mgf=padding.MGF1(algorithm=_SHA1), algorithm=_SHA1, label=None)


class InvalidSessionKey(Exception):
    """Not hex, or not an OAEP ciphertext for this team's key."""


def decrypt_session_key(private_key: rsa.RSAPrivateKey, session_key_hex: str) -> bytes:
    try:
        ciphertext = bytes.fromhex(session_key_hex)
    except ValueError:
        raise InvalidSessionKey("not hex") from None
    try:
        return private_key.decrypt(ciphertext, OAEP_SHA1)
    except ValueError:
        raise InvalidSessionKey("does not decrypt with the team's key") from None


def frame_key(session_key: bytes) -> bytes:
    """The AES-256 key of the frames: SHA-256 of the session key's lower-case hex text."""
    return hashlib.sha256(session_key.hex().encode()).digest()


def encrypt_frame(aead: AESGCM, chunk: bytes) -> bytes:
    iv = os.urandom(IV_BYTES)
    sealed = aead.encrypt(iv, chunk, None)  # ciphertext followed by the tag
    ciphertext, tag = sealed[:-TAG_BYTES], sealed[-TAG_BYTES:]
    return b"".join(
        (FRAME_HEADER.pack(IV_BYTES + TAG_BYTES + len(ciphertext)), iv, tag, ciphertext)
    )


def encrypt_frames(chunks: Iterable[bytes], key: bytes) -> Iterator[bytes]:
    """One frame per non-empty chunk, produced as the chunks arrive."""
    aead = AESGCM(key)
    for chunk in chunks:
        if chunk:
            yield encrypt_frame(aead, chunk)


def decrypt_frames(stream: bytes, key: bytes) -> bytes:
    """What a loader does with the body: the concatenated plaintexts. Raises ValueError on a
    short frame and ``cryptography.exceptions.InvalidTag`` on a tampered one."""
    aead = AESGCM(key)
    plain = bytearray()
    offset = 0
    while offset < len(stream):
        if offset + FRAME_HEADER.size > len(stream):
            raise ValueError("truncated frame header")
        (length,) = FRAME_HEADER.unpack_from(stream, offset)
        offset += FRAME_HEADER.size
        frame = stream[offset : offset + length]
        if len(frame) != length or length < IV_BYTES + TAG_BYTES:
            raise ValueError("truncated frame")
        offset += length
        iv, tag, ciphertext = frame[:IV_BYTES], frame[IV_BYTES:][:TAG_BYTES], frame[28:]
        plain += aead.decrypt(iv, ciphertext + tag, None)
    return bytes(plain)
