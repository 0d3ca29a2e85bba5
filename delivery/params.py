"""The client endpoints' query parameters, checked in one place with messages that name the
parameter and the rule (the same wording as Lukittu's, where it has one)."""

import re
import uuid
from dataclasses import dataclass

from django.http import QueryDict

from lukittu.api import ApiError, Code
from lukittu.ids import parse_uuid
from releases.serializers import WHITESPACE

# The rules as patterns that Python's ``re`` (fullmatch) and JSON Schema (ECMA-262) read alike,
# so the OpenAPI document (``delivery.openapi``) publishes exactly what is checked here. "No
# spaces" is whitespace by either language's definition, as for a release's version (Python's
# \s alone would let U+FEFF through, which JavaScript's \S, Lukittu's rule, refuses).
LICENSE_KEY_PATTERN = "[A-Z0-9]{5}(?:-[A-Z0-9]{5}){4}"
NOT_SPACE = f"[^{WHITESPACE}]"
NO_SPACES_PATTERN = f"{NOT_SPACE}+"
# No spaces, no control characters.
VERSION_PATTERN = f"[^{WHITESPACE}\\u0000-\\u001f\\u007f]{{1,255}}"
BRANCH_PATTERN = "[^\\u0000-\\u001f\\u007f]{1,255}"
IDENTIFIER_MIN, IDENTIFIER_MAX = 10, 1000

LICENSE_KEY = re.compile(LICENSE_KEY_PATTERN)
NO_SPACES = re.compile(NO_SPACES_PATTERN)
VERSION = re.compile(VERSION_PATTERN)
BRANCH = re.compile(BRANCH_PATTERN)

COMMON = ("licenseKey", "productId", "hardwareIdentifier", "deviceIdentifier", "version", "branch")
CLASSLOADER = (*COMMON, "sessionKey", "customerId")
PLAIN = (*COMMON, "customerId")


@dataclass(frozen=True)
class ClientQuery:
    license_key: str
    product_id: uuid.UUID
    hardware_identifier: str
    version: str | None
    branch: str | None
    session_key: str | None


def bad(details: str) -> ApiError:
    return ApiError(400, Code.BAD_REQUEST, details)


def _single(query: QueryDict, name: str) -> str | None:
    values = query.getlist(name)
    if len(values) > 1:
        raise bad(f"Parameter {name} must be given once")
    # As Lukittu does: an empty value is no value.
    return values[0] if values and values[0] != "" else None


def _required(query: QueryDict, name: str, label: str) -> str:
    value = _single(query, name)
    if value is None:
        raise bad(f"{label} is required")
    return value


def _identifier(value: str, label: str) -> str:
    if len(value) < IDENTIFIER_MIN:
        raise bad(f"{label} must be at least {IDENTIFIER_MIN} characters")
    # Lukittu's wording; 1,000 itself is allowed (zod's max is inclusive).
    if len(value) > IDENTIFIER_MAX:
        raise bad(f"{label} must be less than {IDENTIFIER_MAX} characters")
    if not NO_SPACES.fullmatch(value):
        raise bad(f"{label} must not contain spaces")
    return value


def _hardware_identifier(query: QueryDict) -> str:
    current = _single(query, "hardwareIdentifier")
    legacy = _single(query, "deviceIdentifier")
    if current is not None and legacy is not None and current != legacy:
        raise bad("Give hardwareIdentifier or its old name deviceIdentifier, not both")
    value = current if current is not None else legacy
    if value is None:
        raise bad("Hardware identifier is required")
    return _identifier(value, "Hardware identifier")


def _uuid(value: str, label: str) -> uuid.UUID:
    try:
        return parse_uuid(value)
    except ValueError:
        raise bad(f"{label} must be a valid UUID") from None


def parse_client_query(query: QueryDict, *, with_session_key: bool) -> ClientQuery:
    allowed = CLASSLOADER if with_session_key else PLAIN
    unknown = sorted(set(query) - set(allowed))
    if unknown:
        raise bad(f"Unknown parameter {unknown[0]}: the parameters are {', '.join(allowed)}")
    license_key = _required(query, "licenseKey", "License key")
    if not LICENSE_KEY.fullmatch(license_key):
        raise bad("License key must be in the format of XXXXX-XXXXX-XXXXX-XXXXX-XXXXX")
    product_id = _uuid(_required(query, "productId", "Product UUID"), "Product UUID")
    session_key = None
    if with_session_key:
        session_key = _identifier(_required(query, "sessionKey", "Session key"), "Session key")
    hardware_identifier = _hardware_identifier(query)
    version = _single(query, "version")
    if version is not None and not VERSION.fullmatch(version):
        raise bad("Version must be 1 to 255 characters without spaces")
    branch = _single(query, "branch")
    if branch is not None and not BRANCH.fullmatch(branch):
        raise bad("Branch name must be 1 to 255 characters without control characters")
    customer_id = _single(query, "customerId")
    if customer_id is not None:
        _uuid(customer_id, "Customer UUID")
    return ClientQuery(
        license_key=license_key,
        product_id=product_id,
        hardware_identifier=hardware_identifier,
        version=version,
        branch=branch,
        session_key=session_key,
    )
