"""Schemathesis hooks for scripts/conformance.sh.

Two rules of the ``data`` JSON cannot be written in OpenAPI 3.0's JSON Schema, so the schema
states them in words: metadata keys are unique in the list, and an update may not give
licenses to a release that is latest and stays PUBLISHED (which depends on the stored release).
Nor can the rule that names are printable beyond U+FFFF (the pattern covers the rest).
Schema-valid (positive) test cases are adjusted to follow them, so that they are valid by every
documented rule. Nothing is filtered out and no check changes.

Conditional and idempotent writes have two: every case's well-formed Idempotency-Key is made
fresh (``fresh_idempotency_key``), and a positive case carries no If-Match / If-None-Match, whose
meaning depends on stored state.

The Client API has three such rules. A classloader request needs a session key that decrypts
with the team's private key: positive cases get a fresh one, encrypted with the team's public
key (CONFORMANCE_PUBLIC_KEY names its PEM file) as a loader would. ``deviceIdentifier``, the
old name of ``hardwareIdentifier``, must equal it when both are given: positive cases that give
both get the same value twice. And the old name stands in for a missing (or empty)
``hardwareIdentifier``, which a schema cannot say of two parameters: a negative case that lacks
``hardwareIdentifier`` lacks its old name too, so it is as invalid as it was meant to be.

One more rule belongs to the transport, not to any parameter: the request line must fit in
gunicorn's limit (4,094 bytes), which a schema cannot state, while the parameters' own limits
(1,000 characters of any non-space text, as Lukittu has them; 255 for a list's search) add up
to far more once percent-encoded. A case of any operation whose request line would not fit,
positive or negative, has the characters that need percent-encoding replaced by ``x``, except
the first whitespace or control character of a value, which is what may make it invalid:
lengths and validity stay as they were; a parameter given many times (a list where one value is
expected) that still does not fit keeps its first two values. Other negative cases are left
alone."""

import functools
import os
import re
import unicodedata
import uuid
from pathlib import Path
from urllib.parse import quote, urlencode

import schemathesis
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from schemathesis.generation.modes import GenerationMode

CLASSLOADER_PATH = "/verification/classloader"
CLIENT_PREFIX = "/api/v1/client/"
# gunicorn's limit_request_line (its default, and lukittu/gunicorn_conf.py's).
REQUEST_LINE_LIMIT = 4094
# What a URL carries as it is (RFC 3986's unreserved characters).
UNRESERVED = re.compile(r"[A-Za-z0-9._~-]")
# What the service takes as an Idempotency-Key (teams/conditions.py).
WELL_FORMED_KEY = re.compile(r"[\x20-\x7e]{1,255}")


def unique_metadata_keys(data):
    metadata = data.get("metadata")
    if not isinstance(metadata, list):
        return
    seen = set()
    for index, item in enumerate(metadata):
        if not (isinstance(item, dict) and isinstance(item.get("key"), str)):
            continue
        key, suffix = item["key"], index
        while key in seen:
            key = f"{item['key'][:240]}~{suffix}"
            suffix += 1
        item["key"] = key
        seen.add(key)


def printable_name(body):
    # Names are printable (Python's str.isprintable()); the schema's pattern can say so only up
    # to U+FFFF, so a positive case's unprintable character beyond it becomes an "x".
    name = body.get("name")
    if isinstance(name, str) and not name.isprintable():
        body["name"] = "".join(c if c.isprintable() else "x" for c in name)


def no_licenses_for_a_latest_release(data):
    # The release may be latest (seeded, or made so earlier in the run): with licenses it must
    # not stay PUBLISHED.
    if data.get("licenseIds") and data.get("status") == "PUBLISHED":
        data["status"] = "DRAFT"


@functools.cache
def team_public_key():
    pem = Path(os.environ["CONFORMANCE_PUBLIC_KEY"]).read_bytes()
    return serialization.load_pem_public_key(pem)


def fresh_session_key():
    """What a loader sends: a random key, RSA-OAEP (SHA-1) encrypted, as hex."""
    sha1 = hashes.SHA1()  # noqa: S303  (the protocol's choice; see delivery/crypto.py)
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=sha1), algorithm=sha1, label=None)
    return team_public_key().encrypt(os.urandom(32), oaep).hex()


def request_line(case):
    path = case.path
    for name, value in (case.path_parameters or {}).items():
        path = path.replace(f"{{{name}}}", quote(str(value), safe=""))
    return f"GET {path}?{urlencode(case.query, doseq=True)} HTTP/1.1"


def breaks_the_rules(character):
    # Whitespace by Python's or JavaScript's definition, or a control character.
    return character.isspace() or character == "\ufeff" or unicodedata.category(character) == "Cc"


def shrunk(value):
    if not isinstance(value, str):
        return value
    kept_one = False
    characters = []
    for character in value:
        if UNRESERVED.match(character):
            characters.append(character)
        elif breaks_the_rules(character) and not kept_one:
            characters.append(character)
            kept_one = True
        else:
            characters.append("x")
    return "".join(characters)


def fit_the_request_line(case):
    if len(request_line(case)) <= REQUEST_LINE_LIMIT:
        return
    for name, value in case.query.items():
        case.query[name] = [shrunk(v) for v in value] if isinstance(value, list) else shrunk(value)
    if len(request_line(case)) <= REQUEST_LINE_LIMIT:
        return
    # Still too long: a parameter given many times (a list where the schema wants one value).
    # Its first two values say as much: it stays a list, and as invalid as it was.
    for name, value in case.query.items():
        if isinstance(value, list) and len(value) > 2:
            case.query[name] = value[:2]


def client_case(case, positive):
    query = case.query
    if not isinstance(query, dict):
        return
    fit_the_request_line(case)
    if not positive:
        if not query.get("hardwareIdentifier"):
            query.pop("deviceIdentifier", None)
        return
    if query.get("deviceIdentifier") and query.get("hardwareIdentifier"):
        query["deviceIdentifier"] = query["hardwareIdentifier"]
    if case.path.endswith(CLASSLOADER_PATH):
        query["sessionKey"] = fresh_session_key()


def fresh_idempotency_key(case):
    """An Idempotency-Key names one request: the same key with another request is the
    documented 422, which depends on what was sent before, not on the schema. A well-formed key
    is made fresh in every case, positive or negative: what makes a negative case invalid is
    then elsewhere (or in a malformed key, which is kept), so its validity is unchanged. Two
    generated cases (say a negative one the generator could not make invalid, which is checked
    as a positive one) no longer share a short key like "0"."""
    headers = case.headers
    for name in list(headers or ()):
        if name.lower() == "idempotency-key" and WELL_FORMED_KEY.fullmatch(str(headers[name])):
            headers[name] = f"conformance-{uuid.uuid4()}"


def no_entity_tags(case):
    """If-Match / If-None-Match name the resource's current ETag (any other is the documented
    412, or a full 200): positive cases carry none."""
    headers = case.headers
    for name in list(headers or ()):
        if name.lower() in ("if-match", "if-none-match"):
            del headers[name]


@schemathesis.hook
def map_case(ctx, case):
    meta = case.meta
    if meta is None:
        return case
    positive = meta.generation.mode == GenerationMode.POSITIVE
    if case.path.startswith(CLIENT_PREFIX):
        client_case(case, positive)
        return case
    if isinstance(case.query, dict) and case.query:
        fit_the_request_line(case)  # the transport's limit, as for the Client API
    fresh_idempotency_key(case)
    if not positive:
        return case
    no_entity_tags(case)
    body = case.body
    if isinstance(body, dict) and ("/products" in case.path or "/branches" in case.path):
        printable_name(body)
    data = body.get("data") if isinstance(body, dict) else None
    if isinstance(data, dict):
        unique_metadata_keys(data)
        if case.method.upper() == "PUT":  # updateRelease
            no_licenses_for_a_latest_release(data)
    return case


@schemathesis.hook
def before_add_examples(ctx, examples):
    # The Examples phase's cases (schema-valid, built from the documented examples) do not
    # pass through map_case.
    for case in examples:
        if case.path.startswith(CLIENT_PREFIX):
            client_case(case, positive=True)
