"""A client that does what a Java classloader built for Lukittu does: make a session key,
encrypt it with the team's public key (RSA-OAEP, SHA-1), ask for the build, read the frames
and decrypt them with SHA-256(hex(session key)).

Written from the protocol, independently of ``delivery.crypto``, so the two check each other.
"""

import hashlib
import os
import struct
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def classloader_url(team_id: Any) -> str:
    return f"/api/v1/client/teams/{team_id}/verification/classloader"


def download_url(team_id: Any) -> str:
    return f"/api/v1/client/teams/{team_id}/releases/download"


def latest_url(team_id: Any) -> str:
    return f"/api/v1/client/teams/{team_id}/releases/latest"


@dataclass
class Loader:
    public_key_pem: str
    session_key: bytes = field(default_factory=lambda: os.urandom(32))

    def session_key_hex(self) -> str:
        public_key = serialization.load_pem_public_key(self.public_key_pem.encode())
        ciphertext = public_key.encrypt(  # type: ignore[union-attr]
            self.session_key,
            padding.OAEP(
                mgf=padding.MGF1(algorithm=hashes.SHA1()),
                algorithm=hashes.SHA1(),
                label=None,
            ),
        )
        return ciphertext.hex()

    def decrypt(self, body: bytes) -> bytes:
        """The plaintext of the frames; asserts the framing is exact."""
        aead = AESGCM(hashlib.sha256(self.session_key.hex().encode()).digest())
        plain = []
        offset = 0
        while offset < len(body):
            (length,) = struct.unpack(">I", body[offset : offset + 4])
            frame = body[offset + 4 : offset + 4 + length]
            assert len(frame) == length, "truncated frame"
            iv, tag, ciphertext = frame[:12], frame[12:28], frame[28:]
            plain.append(aead.decrypt(iv, ciphertext + tag, None))
            offset += 4 + length
        return b"".join(plain)
