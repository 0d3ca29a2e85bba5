"""Identifiers sent by clients: a UUID is accepted only in its canonical form."""

import re
import uuid

# ASCII only: uuid.UUID alone also takes other scripts' digits (it parses with int(x, 16)),
# braces, a "urn:uuid:" prefix, and hyphens anywhere.
_CANONICAL_UUID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)


def parse_uuid(value: str) -> uuid.UUID:
    """The UUID written as ``8-4-4-4-12`` ASCII hex digits (any case); ValueError otherwise."""
    if not isinstance(value, str) or not _CANONICAL_UUID.fullmatch(value):
        raise ValueError(f"not a canonical UUID: {value!r}")
    return uuid.UUID(value)
