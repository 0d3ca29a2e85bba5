"""The classloader's wire format, byte for byte as Lukittu's loaders expect it.

1. The loader makes a random session key, encrypts it with the team's RSA public key
   (RSA-OAEP, SHA-1 for both the hash and MGF1, no label) and sends the ciphertext as hex.
2. The server decrypts it with the team's private key. The AES-256-GCM key is the SHA-256 of
   the *lower-case hex text* of the decrypted bytes (not of the bytes themselves).
3. The file goes out as a sequence of frames, one per 64 KiB chunk of it (the last shorter)::

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
FRAME_OVERHEAD = FRAME_HEADER.size + IV_BYTES + TAG_BYTES

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


def encrypt_frame(aead: AESGCM, chunk: bytes | memoryview) -> bytes:
    iv = os.urandom(IV_BYTES)
    # The ciphertext followed by the tag; sliced as views, so the chunk is copied once, into
    # the frame.
    sealed = memoryview(aead.encrypt(iv, chunk, None))
    ciphertext, tag = sealed[:-TAG_BYTES], sealed[-TAG_BYTES:]
    return b"".join(
        (FRAME_HEADER.pack(IV_BYTES + TAG_BYTES + len(ciphertext)), iv, tag, ciphertext)
    )


def frames_length(size: int, frame_plaintext: int) -> int:
    """The length of the frames of ``size`` bytes cut into ``frame_plaintext``-byte chunks."""
    return size + -(-size // frame_plaintext) * FRAME_OVERHEAD


def encrypt_blocks(blocks: Iterable[bytes], key: bytes, frame_plaintext: int) -> Iterator[bytes]:
    """The frames of each block, cut into ``frame_plaintext``-byte chunks (a block's length is a
    multiple of it, but the last block's), joined: one write to the client per block rather
    than per frame."""
    aead = AESGCM(key)
    for block in blocks:
        view = memoryview(block)
        yield b"".join(
            encrypt_frame(aead, view[offset : offset + frame_plaintext])
            for offset in range(0, len(view), frame_plaintext)
        )


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
