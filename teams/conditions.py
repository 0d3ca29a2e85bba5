"""Conditional and idempotent writes for the Developer API.

**ETags.** A release's, product's or branch's ETag is a digest of its representation without
``updatedAt``, so a retried identical update (which only moves ``updatedAt``) keeps the ETag
its client holds. GET, POST and PUT answer with it; GET honours ``If-None-Match`` (304); PUT
and DELETE honour ``If-Match`` (412 with the current ETag), checked by the write itself under
the lock it writes under, so nothing can change between the check and the write. A write that
has no current representation to compare (a create, a test event, a redelivery) cannot match
any ``If-Match``, ``*`` included (RFC 9110 13.1.1): it is refused with 412 inside its own
transaction (``record``), so nothing it did is kept, whichever write forgot to check.

**Idempotency-Key** (after Stripe and the IETF httpapi draft), on POST, PUT and DELETE:

1. ``begin`` claims the key (scoped to the API key, the method and the canonical path: the
   URL rebuilt from its parsed ids, so a team id in upper case is the same scope) in its own
   short transaction, with a fingerprint of the request (its ``data`` and its file's SHA-256). A key
   already answered replays that answer (``Idempotent-Replayed: true``); the same key with a
   different request is 422; a key whose first request is still running is 409 with
   ``Retry-After``.
2. The write stores its answer on the claim **in its own transaction** (``Conditions.commit``
   runs the write's transaction and records the answer in it), so a committed write always has
   its answer stored and a rolled-back one never has.
3. A write refused with a 4xx rolled back: the claim is dropped and a retry runs afresh. After
   any other failure the committed state decides (``Conditions.settle``): a claim with an
   answer committed, and that answer is returned instead of the error; a claim without one
   did not, and is dropped. If the database cannot be asked, the claim stays; since an answer
   is stored with every commit, a claim still without one once ``IDEMPOTENCY_STALE_SECONDS``
   have passed belongs to a request that died without committing, and the next request with
   the key takes it over.

**One protocol.** Every write of the Developer API (releases, products, branches, webhooks) is
answered through ``run_write``: the view gives the fingerprint, the write (which returns the
payload of its answer), the status and the text; ``run_write`` does the rest.
"""

import hashlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response

from lukittu.api import ApiError, Code, envelope
from lukittu.ids import parse_uuid
from teams.models import ApiKey, IdempotencyKey

# The name the log lines have always carried, so operators' filters keep matching.
logger = logging.getLogger("lukittu.conditions")

IDEMPOTENCY_TTL = timedelta(hours=24)
IDEMPOTENCY_HEADER = "Idempotency-Key"
# Printable ASCII, 1 to 255 characters (RFC 9110 field values, without controls).
_KEY = re.compile(r"[\x20-\x7e]{1,255}")
_ETAG = re.compile(r'\s*(W/)?("[^"]*")\s*(?:,|$)')
STORED_HEADERS = ("ETag",)
Payload = TypeVar("Payload", bound=dict[str, Any])


def etag_of(payload: dict[str, Any]) -> str:
    stable = {name: value for name, value in payload.items() if name != "updatedAt"}
    text = json.dumps(stable, sort_keys=True, separators=(",", ":"), default=str)
    return f'"{hashlib.sha256(text.encode()).hexdigest()[:32]}"'


def _entity_tags(header: str) -> list[tuple[bool, str]] | None:
    """``[(weak, tag)]`` of a list of entity tags; None for ``*``; [] when malformed."""
    if header.strip() == "*":
        return None
    tags, position = [], 0
    while position < len(header):
        match = _ETAG.match(header, position)
        if match is None:
            return []
        tags.append((bool(match.group(1)), match.group(2)))
        position = match.end()
    return tags


def if_none_match(request: Request, etag: str) -> bool:
    """True when the client's copy is current (weak comparison, RFC 9110 13.1.2). A value
    that is neither ``*`` nor entity tags is a 400, like a malformed If-Match."""
    header = request.headers.get("If-None-Match")
    if header is None:
        return False
    tags = _entity_tags(header)
    if tags == []:
        raise ApiError(400, Code.BAD_REQUEST, 'Malformed If-None-Match: send "<etag>" as received')
    return tags is None or any(tag == etag for _, tag in tags)


def not_modified(etag: str) -> Response:
    return Response(status=304, headers={"ETag": etag})


def conditional_get(request: Request, payload: dict[str, Any], details: str) -> Response:
    """A GET's answer with its ETag, or 304 when the client's copy is current."""
    etag = etag_of(payload)
    if if_none_match(request, etag):
        return not_modified(etag)
    return Response(envelope(payload, details=details), headers={"ETag": etag})


def precondition_failed(current: str | None) -> ApiError:
    return ApiError(
        412,
        Code.BAD_REQUEST,
        "Precondition failed: the resource has changed; GET it again for its current ETag",
        headers={"ETag": current} if current else {},
    )


def nothing_to_match() -> ApiError:
    """412 for ``If-Match`` on a write with no current representation (RFC 9110 13.1.1)."""
    return ApiError(
        412,
        Code.BAD_REQUEST,
        "Precondition failed: If-Match cannot match a resource that has no current "
        "representation; send it only to update or delete",
    )


def idempotency_stale_after() -> timedelta:
    return timedelta(seconds=settings.IDEMPOTENCY_STALE_SECONDS)


def fingerprint(data: Any, file_sha256: str | None = None) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{text}\n{file_sha256 or '-'}".encode()).hexdigest()


@dataclass
class Conditions:
    """What a write must honour: the ``If-Match`` tags (None: no condition) and the
    idempotency claim (None: no key), and how it answers (``status``, ``details``). Passed to
    the write, which calls ``check_current`` under its lock and runs its transaction through
    ``commit``. A write called without a request (the admin, the demo seed) gets empty ones."""

    if_match: list[tuple[bool, str]] | None = None
    any_match: bool = False
    claim: IdempotencyKey | None = None
    replay: Response | None = None
    status: int = 200
    details: str = ""
    answered: dict[str, Any] | None = field(default=None)
    # Set by ``check_current``: the write compared the client's tags with a representation.
    evaluated: bool = False
    # Set by ``commit`` once the answer is stored: all that is left is the COMMIT itself.
    commit_sent: bool = False

    def check_current(self, current: Callable[[], dict[str, Any] | None]) -> None:
        """412 unless the resource's current ETag is one the client named (strong
        comparison: a weak tag never matches)."""
        if self.if_match is None and not self.any_match:
            return
        self.evaluated = True
        payload = current()
        etag = etag_of(payload) if payload is not None else None
        if self.any_match:
            if etag is None:
                raise precondition_failed(None)
            return
        if etag is None or not any(not weak and tag == etag for weak, tag in self.if_match or []):
            raise precondition_failed(etag)

    def commit(self, write: Callable[[], Payload]) -> Payload:
        """Run ``write`` in one transaction and store its answer, the payload it returns, in
        that same transaction. Returns the payload once committed."""
        with transaction.atomic():
            payload = write()
            self.record(payload)
            self.commit_sent = True
        return payload

    def record(self, payload: dict[str, Any]) -> None:
        """The answer, stored on the claim in the write's transaction (``commit``). A write
        that never compared an ``If-Match`` it was sent had nothing to compare it with: 412,
        raised here so its transaction rolls back."""
        if (self.if_match is not None or self.any_match) and not self.evaluated:
            raise nothing_to_match()
        body = envelope(payload, details=self.details)
        headers = {"ETag": etag_of(payload)}
        if self.claim is not None:
            IdempotencyKey.objects.filter(pk=self.claim.pk).update(
                status_code=self.status,
                response_body=body,
                response_headers=headers,
                completed_at=timezone.now(),
            )
        self.answered = {"status": self.status, "body": body, "headers": headers}

    def respond(self) -> Response:
        """The answer ``record`` made, exactly as stored."""
        assert self.answered is not None, "the write did not record its answer"
        return Response(
            self.answered["body"], status=self.answered["status"], headers=self.answered["headers"]
        )

    def release(self) -> bool:
        """Drop the claim unless it has an answer; True if it was dropped. Conditional, so a
        commit still in flight (which holds the claim's row) wins: once it lands, the row has
        its answer and is not deleted."""
        if self.claim is None:
            return False
        deleted, _ = IdempotencyKey.objects.filter(
            pk=self.claim.pk, status_code__isnull=True
        ).delete()
        return bool(deleted)

    def settle(self) -> Response | None:
        """After a write failed unexpectedly, ask the committed state what happened to it.

        - The claim has an answer: the write committed (its answer is stored in the same
          transaction) although its caller saw an error, such as a COMMIT whose reply was
          lost. That answer is the truth: return it.
        - The claim has none: the write did not commit, so the claim is dropped and a retry
          runs afresh (``release``).
        - The database cannot be asked: keep the claim; it goes stale and is taken over.
        """
        if self.claim is None:
            return None
        try:
            connection.close_if_unusable_or_obsolete()
            if self.release():
                return None
            stored = IdempotencyKey.objects.filter(pk=self.claim.pk).first()
        except DatabaseError:
            logger.exception("Could not settle Idempotency-Key claim %s", self.claim.pk)
            return None
        if stored is None or stored.status_code is None:
            return None
        # This request's own answer, as its write committed it: not a replay.
        return _replay(stored, replayed=False)


def _if_match(request: Request) -> tuple[list[tuple[bool, str]] | None, bool]:
    header = request.headers.get("If-Match")
    if header is None:
        return None, False
    tags = _entity_tags(header)
    if tags is None:
        return None, True
    if not tags:
        raise ApiError(400, Code.BAD_REQUEST, 'Malformed If-Match: send "<etag>" as received')
    return tags, False


def _replay(record: IdempotencyKey, *, replayed: bool = True) -> Response:
    headers = dict(record.response_headers)
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return Response(record.response_body, status=record.status_code, headers=headers)


def _claim(api_key: ApiKey, key: str, method: str, path: str, print_: str) -> Any:
    """The new claim, or the stored answer to replay. Raises 409 or 422."""
    now = timezone.now()
    scope = {"api_key": api_key, "key": key, "method": method, "path": path}
    for _ in range(3):
        existing = IdempotencyKey.objects.filter(**scope).first()
        if existing is not None and existing.created_at < now - IDEMPOTENCY_TTL:
            IdempotencyKey.objects.filter(pk=existing.pk).delete()
            existing = None
        if existing is None:
            try:
                with transaction.atomic():
                    return IdempotencyKey.objects.create(fingerprint=print_, **scope)
            except IntegrityError:
                continue  # another request claimed it first: look again
        if existing.fingerprint != print_:
            raise ApiError(
                422,
                Code.BAD_REQUEST,
                "This Idempotency-Key was already used with a different request",
            )
        if existing.status_code is not None:
            return _replay(existing)
        if existing.created_at >= now - idempotency_stale_after():
            raise ApiError(
                409,
                Code.BAD_REQUEST,
                "A request with this Idempotency-Key is still being processed",
                headers={"Retry-After": "1"},
            )
        # Unanswered past the stale limit: its request died before committing. Take it over.
        taken = IdempotencyKey.objects.filter(pk=existing.pk, status_code__isnull=True).update(
            created_at=now
        )
        if taken:
            existing.created_at = now
            return existing
    raise ApiError(
        409, Code.BAD_REQUEST, "Idempotency-Key contention", headers={"Retry-After": "1"}
    )


def canonical_path(request: Request) -> str:
    """The path an Idempotency-Key is scoped to: the route rebuilt from its arguments, each
    UUID in its canonical lower-case form, so every spelling of one resource's URL is one
    scope. The raw path when the route cannot be rebuilt."""
    match = request.resolver_match
    if match is None or match.args:
        return request.path
    arguments = {}
    for name, value in match.kwargs.items():
        try:
            arguments[name] = str(parse_uuid(value))
        except ValueError:
            arguments[name] = value
    try:
        return reverse(match.view_name, kwargs=arguments)
    except NoReverseMatch:
        return request.path


def idempotency_key(request: Request) -> str | None:
    value = request.headers.get(IDEMPOTENCY_HEADER)
    if value is None:
        return None
    if not _KEY.fullmatch(value):
        raise ApiError(
            400, Code.BAD_REQUEST, "Idempotency-Key must be 1 to 255 printable ASCII characters"
        )
    return value


def begin(request: Request, print_: Callable[[], str]) -> Conditions:
    """The conditions of this write: ``If-Match`` and the idempotency claim. When the key
    was answered before, ``replay`` holds that answer and nothing must be written.
    ``print_`` makes the request's fingerprint, only when there is a key to compare it with
    (a file's SHA-256 may still be being computed)."""
    if_match, any_match = _if_match(request)
    conditions = Conditions(if_match=if_match, any_match=any_match)
    key = idempotency_key(request)
    if key is None:
        return conditions
    claimed = _claim(request.auth, key, request.method, canonical_path(request), print_())
    if isinstance(claimed, Response):
        conditions.replay = claimed
    else:
        conditions.claim = claimed
    return conditions


def purge_expired(now: Any = None) -> int:
    now = now or timezone.now()
    deleted, _ = IdempotencyKey.objects.filter(created_at__lt=now - IDEMPOTENCY_TTL).delete()
    return deleted


def run_write(
    request: Request,
    print_: Callable[[], str],
    write: Callable[[Conditions], dict[str, Any]],
    *,
    status: int,
    details: str,
    opens_transaction: bool = False,
) -> Response:
    """The write protocol: run ``write`` under this request's conditions, store its answer
    (``status``, ``details`` and the payload ``write`` returns) in the write's transaction and
    answer it; or answer as an earlier request with the same Idempotency-Key was answered.

    ``write`` calls ``conditions.check_current`` under its lock. It runs in a transaction
    opened here, unless it ``opens_transaction`` itself through ``conditions.commit``: a release
    write stores its file before it takes any lock or opens its transaction."""
    conditions = begin(request, print_)
    if conditions.replay is not None:
        return conditions.replay
    conditions.status, conditions.details = status, details
    try:
        if opens_transaction:
            write(conditions)
        else:
            conditions.commit(lambda: write(conditions))
    except ApiError as error:
        if error.status_code < 500:
            conditions.release()
            raise
        settled = conditions.settle()
        if settled is not None:
            return settled
        raise
    except Exception:
        settled = conditions.settle()
        if settled is not None:
            return settled
        raise
    return conditions.respond()
