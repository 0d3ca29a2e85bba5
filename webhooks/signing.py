"""Secrets and signatures.

A secret is ``whsec_`` + base64 of 32 random bytes (Standard Webhooks' form). Each request
carries two signatures over the same body:

- Standard Webhooks: ``webhook-signature: v1,<base64 HMAC-SHA256>`` of
  ``<webhook-id>.<webhook-timestamp>.<body>``, keyed with the secret's **decoded** bytes (what
  follows ``whsec_``, base64-decoded), made by the ``standardwebhooks`` package. During a
  rotation's grace period the old secret signs too: the header then holds both signatures,
  space-separated, and a verifier accepts either.
- Lukittu: ``X-Lukittu-Signature: <hex HMAC-SHA256>`` of ``<X-Lukittu-Timestamp>.<body>``
  (the timestamp in milliseconds), keyed with the secret's **text as shown**, ``whsec_``
  prefix included, encoded as UTF-8: what a Lukittu receiver does with the secret it was given
  (``createHmac('sha256', secret)``). It is one value, as Lukittu's receivers expect; during a
  grace period the old secret's signature is in ``X-Lukittu-Previous-Signature``.
"""

import base64
import hashlib
import hmac
import os
from datetime import datetime

from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"
USER_AGENT = "lukittu-releases-webhooks/1.0"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(os.urandom(32)).decode()


def lukittu_event_name(event_type: str) -> str:
    """``X-Lukittu-Event``: ``release.updated`` -> ``RELEASE_UPDATED``."""
    return event_type.upper().replace(".", "_")


def lukittu_signature(secret: str, timestamp_ms: int, body: str) -> str:
    message = f"{timestamp_ms}.{body}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_headers(
    *, message_id: str, event_type: str, body: str, secrets: list[str], now: datetime
) -> dict[str, str]:
    """The headers of one attempt, signed with ``secrets`` (the current one first). The
    timestamps are the attempt's own, so a retry passes a receiver's freshness check."""
    seconds = int(now.timestamp())
    millis = int(now.timestamp() * 1000)
    standard = " ".join(
        Webhook(secret).sign(msg_id=message_id, timestamp=now, data=body) for secret in secrets
    )
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(seconds),
        "webhook-signature": standard,
        "X-Lukittu-Event": lukittu_event_name(event_type),
        "X-Lukittu-Timestamp": str(millis),
        "X-Lukittu-Signature": lukittu_signature(secrets[0], millis, body),
    }
    if len(secrets) > 1:
        headers["X-Lukittu-Previous-Signature"] = lukittu_signature(secrets[1], millis, body)
    return headers
