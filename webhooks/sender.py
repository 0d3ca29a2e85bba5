"""Sending deliveries: claim, send, record. Runs in the worker (``manage.py db_worker``), from
the task enqueued after commit and from the sweep of the delivery table.

1. **Claim**, in one conditional ``UPDATE``: a pending delivery whose ``next_attempt_at`` has
   come is moved one lease (``LEASE``) ahead under a fresh ``claim_token``. Of several workers
   (threads or processes) trying at once, exactly one matches; the others find it not due and
   leave it alone.
2. **Send**, holding no transaction and no row lock: resolve and check the destination
   (``webhooks/destinations.py``), POST the event's body with ``httpx`` (``TIMEOUT`` for the
   whole exchange, no redirects followed, no proxies from the environment), keep the first
   KiB of the answer.
3. **Record**, in one short transaction: the attempt row; the delivery delivered, failed, or
   pending again at its next retry (only by the claim's holder); the endpoint's health. The
   sender returns when the delivery is due again; enqueueing that retry's task is the
   caller's job (``webhooks.tasks``), so the sender never imports the tasks that run it.

**At least once.** A worker that dies after sending but before recording leaves the delivery
claimed; once the lease ends it is due again and is sent again, with the same ``webhook-id``.
Receivers deduplicate on ``webhook-id``. Nothing is ever sent twice by two live workers.
"""

import asyncio
import email.utils
import logging
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import httpx
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from teams.services import Actor, log_action
from webhooks.destinations import (
    Destination,
    DestinationRefused,
    resolve_destination,
    url_for_log,
)
from webhooks.models import DeliveryState, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from webhooks.selectors import webhook_payload
from webhooks.signing import signed_headers

logger = logging.getLogger("webhooks")

# The wait after each failed attempt: 8 attempts over about 42 hours.
SCHEDULE = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=24),
)
MAX_ATTEMPTS = len(SCHEDULE) + 1
JITTER = 0.1  # each wait is stretched or shrunk by up to 10%, so retries do not arrive in step
MAX_RETRY_AFTER = timedelta(hours=24)
# The whole exchange (connect, send, the status and headers, the first KiB of the body) has
# this many seconds; resolving the name has as many again (``destinations.RESOLVE_TIMEOUT``).
TIMEOUT = 10.0
# Far longer than an attempt can take (about 20 s), so a live worker's claim never lapses.
LEASE = timedelta(minutes=5)
RESPONSE_KEPT = 1024
DISABLE_AFTER = timedelta(days=3)


@dataclass(frozen=True)
class Outcome:
    """What one attempt got: a status (and the first KiB of the body) or an error."""

    attempted_at: datetime
    duration_ms: int
    # The URL the attempt was sent to, as the endpoint had it then.
    url: str = ""
    status_code: int | None = None
    response_body: str = ""
    error: str = ""
    retry_after: timedelta | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def retry_delay(attempt_number: int, retry_after: timedelta | None = None) -> timedelta:
    """The wait after failed attempt ``attempt_number`` (1-based), with jitter, and never
    shorter than what the receiver asked for with ``Retry-After``."""
    base = SCHEDULE[min(attempt_number, len(SCHEDULE)) - 1]
    delay = base * (1 + random.uniform(-JITTER, JITTER))  # noqa: S311 - not for secrets
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return delay


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """``Retry-After`` as seconds or an HTTP date (RFC 9110 10.2.3); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        # Capped before it becomes a timedelta (twenty digits of seconds overflow one) or even
        # an int (Python refuses to parse more than 4300 digits).
        cap = MAX_RETRY_AFTER.total_seconds()
        digits = value.lstrip("0")
        return timedelta(seconds=min(int(digits or "0"), cap) if len(digits) < 12 else cap)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(when - now, timedelta(0))


# --- 1. Claim ----------------------------------------------------------------------------------


def claim(delivery_id: uuid.UUID) -> tuple[WebhookDelivery, uuid.UUID] | None:
    """The delivery and this claim's token, if it was due and this caller won it."""
    now = timezone.now()
    token = uuid.uuid4()
    won = WebhookDelivery.objects.filter(
        pk=delivery_id, state=DeliveryState.PENDING, next_attempt_at__lte=now
    ).update(
        next_attempt_at=now + LEASE,
        claim_token=token,
        attempt_count=F("attempt_count") + 1,
        updated_at=now,
    )
    if not won:
        return None
    delivery = WebhookDelivery.objects.select_related("event", "endpoint").get(pk=delivery_id)
    return delivery, token


# --- 2. Send -----------------------------------------------------------------------------------


def _post(delivery: WebhookDelivery, now: datetime) -> tuple[httpx.Response, bytes]:
    """The answer (closed) and the first KiB of its body. Raises ``DestinationRefused``,
    ``httpx.HTTPError`` or ``TimeoutError`` (no answer within ``TIMEOUT``)."""
    endpoint, event = delivery.endpoint, delivery.event
    destination = resolve_destination(endpoint.url)
    headers = signed_headers(
        message_id=event.message_id,
        event_type=event.type,
        body=event.body,
        secrets=signing_secrets(endpoint, now),
        now=now,
    )
    # The checked address in the URL; the host name for Host and for TLS (SNI, certificate).
    headers["Host"] = destination.host_header
    # The answer's body is only kept for the log: never ask for it compressed (and never
    # decompress it, whatever Content-Encoding says: ``_read_head``).
    headers["Accept-Encoding"] = "identity"
    # httpx's timeouts bound each read and write, not the whole exchange: a receiver dripping
    # its headers a byte at a time would hold the attempt past its lease. asyncio bounds it.
    return asyncio.run(_exchange(destination, headers, event.body.encode()))


async def _exchange(
    destination: Destination, headers: dict[str, str], body: bytes
) -> tuple[httpx.Response, bytes]:
    """POST ``body`` to the checked address; the answer must start within ``TIMEOUT``."""
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    extensions = {"sni_hostname": destination.host} if destination.scheme == "https" else {}
    # No redirects (a 3xx is a failure), and no proxy from the environment: a proxy would
    # connect wherever the name resolves for it, past the address check.
    async with httpx.AsyncClient(
        timeout=TIMEOUT, follow_redirects=False, trust_env=False
    ) as client:
        request = client.build_request(
            "POST", destination.url, content=body, headers=headers, extensions=extensions
        )
        async with asyncio.timeout_at(deadline):
            response = await client.send(request, stream=True)
        try:
            return response, await _read_head(response, deadline)
        finally:
            await response.aclose()


async def _read_head(response: httpx.Response, deadline: float) -> bytes:
    """As much of the body's first KiB, as sent, as arrives before ``deadline``."""
    head = bytearray()
    try:
        async with asyncio.timeout_at(deadline):
            # Raw: decoding would let a few KiB of nested gzip expand to gigabytes in memory.
            async for chunk in response.aiter_raw():
                head += chunk
                if len(head) >= RESPONSE_KEPT:
                    break
    except (TimeoutError, httpx.HTTPError):
        pass  # the status is the answer; the body is only kept for the log
    return bytes(head[:RESPONSE_KEPT])


def signing_secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The current secret, then the previous one while its grace period lasts."""
    secrets = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and expires > now:
        secrets.append(endpoint.previous_secret)
    return secrets


def _status_error(response: httpx.Response) -> str:
    if response.is_redirect:
        return f"Redirect not followed (Location: {response.headers.get('Location', '')})"[:500]
    return "" if response.is_success else f"HTTP {response.status_code}"


def send(delivery: WebhookDelivery) -> Outcome:
    """One attempt: never raises for what the network or the receiver does."""
    now = timezone.now()
    started = time.monotonic()
    url = delivery.endpoint.url

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        response, head = _post(delivery, now)
    except DestinationRefused as refused:
        return Outcome(now, elapsed(), url, error=str(refused)[:500])
    except TimeoutError:
        return Outcome(now, elapsed(), url, error=f"Timeout: no answer within {TIMEOUT:g} s")
    except (httpx.HTTPError, httpx.InvalidURL) as failure:
        return Outcome(now, elapsed(), url, error=f"{type(failure).__name__}: {failure}"[:500])
    except Exception as failure:
        # Whatever else a receiver's answer can raise still ends as a recorded attempt.
        logger.warning("webhook attempt failed unexpectedly", exc_info=True)
        return Outcome(now, elapsed(), url, error=f"{type(failure).__name__}: {failure}"[:500])
    retry_after = None
    if response.status_code in (429, 503):
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now)
    return Outcome(
        now,
        elapsed(),
        url,
        status_code=response.status_code,
        response_body=head.decode("utf-8", errors="replace"),
        error=_status_error(response),
        retry_after=retry_after,
    )


# --- 3. Record ---------------------------------------------------------------------------------


def _next_state(
    delivery: WebhookDelivery, outcome: Outcome, now: datetime
) -> tuple[str, datetime | None]:
    if outcome.delivered:
        return DeliveryState.DELIVERED, None
    if outcome.status_code == 410 or delivery.attempt_count >= MAX_ATTEMPTS:
        return DeliveryState.FAILED, None
    return DeliveryState.PENDING, now + retry_delay(delivery.attempt_count, outcome.retry_after)


SYSTEM_ACTOR = Actor(label="system:webhooks")


def endpoint_disable(endpoint: WebhookEndpoint, *, reason: str) -> bool:
    """The worker turns an endpoint off (410 Gone, or failing for days), saying why."""
    now = timezone.now()
    with transaction.atomic():
        turned_off = WebhookEndpoint.objects.filter(pk=endpoint.pk, active=True).update(
            active=False, disabled_at=now, disabled_reason=reason[:255], updated_at=now
        )
        if turned_off:
            stored = WebhookEndpoint.objects.select_related("team").get(pk=endpoint.pk)
            asked, result = {"reason": reason}, webhook_payload(stored)
            log_action(
                actor=SYSTEM_ACTOR,
                action="webhook.disable",
                target=stored,
                request_data=asked,
                result=result,
            )
    return bool(turned_off)


def _endpoint_health(endpoint: WebhookEndpoint, outcome: Outcome, now: datetime) -> None:
    endpoints = WebhookEndpoint.objects.filter(pk=endpoint.pk)
    if outcome.delivered:
        endpoints.filter(failing_since__isnull=False).update(failing_since=None)
        return
    if outcome.status_code == 410:
        endpoint_disable(
            endpoint, reason=f"The endpoint answered 410 Gone on {now:%Y-%m-%d %H:%M} UTC"
        )
        return
    endpoints.filter(failing_since__isnull=True).update(failing_since=now)
    failing = endpoints.filter(active=True, failing_since__lte=now - DISABLE_AFTER).first()
    if failing is not None:
        since = failing.failing_since
        endpoint_disable(
            endpoint,
            reason=f"Every attempt failed for 3 days (since {since:%Y-%m-%d %H:%M} UTC); "
            f"the last: {outcome.error or outcome.status_code}"[:255],
        )


def _storable(text: str) -> str:
    # PostgreSQL's text refuses NUL; a receiver's body or an error message may carry one.
    return text.replace("\x00", "\ufffd")


def record(delivery: WebhookDelivery, token: uuid.UUID, outcome: Outcome) -> datetime | None:
    """Store the attempt and its consequences; the next attempt's time, if any."""
    now = timezone.now()
    outcome = replace(
        outcome, response_body=_storable(outcome.response_body), error=_storable(outcome.error)
    )
    state, next_attempt_at = _next_state(delivery, outcome, now)
    with transaction.atomic():
        WebhookAttempt.objects.create(
            delivery=delivery,
            number=delivery.attempt_count,
            url=outcome.url,
            attempted_at=outcome.attempted_at,
            status_code=outcome.status_code,
            duration_ms=outcome.duration_ms,
            error=outcome.error,
            response_body=outcome.response_body,
        )
        still_ours = WebhookDelivery.objects.filter(pk=delivery.pk, claim_token=token).update(
            state=state,
            next_attempt_at=next_attempt_at,
            claim_token=None,
            last_status_code=outcome.status_code,
            last_error=outcome.error,
            updated_at=now,
        )
        _endpoint_health(delivery.endpoint, outcome, now)
    return next_attempt_at if still_ours else None


def _give_up(delivery: WebhookDelivery, token: uuid.UUID, reason: str) -> None:
    """Fail a claimed delivery without sending it."""
    WebhookDelivery.objects.filter(pk=delivery.pk, claim_token=token).update(
        state=DeliveryState.FAILED,
        next_attempt_at=None,
        claim_token=None,
        last_error=reason,
        updated_at=timezone.now(),
    )


def _reason_not_to_send(delivery: WebhookDelivery) -> str | None:
    if not delivery.endpoint.active:
        return "Not sent: the webhook is disabled"
    if delivery.attempt_count > MAX_ATTEMPTS:
        # Every claim counts, recorded or not: workers that died mid-attempt used them up.
        return f"Not sent: {MAX_ATTEMPTS} attempts were claimed"
    return None


def _claim_to_send(delivery_id: uuid.UUID) -> tuple[WebhookDelivery, uuid.UUID] | None:
    """The claimed delivery and its token; None if another caller won it, or if it is not to
    be sent (it is failed instead)."""
    claimed = claim(delivery_id)
    if claimed is None:
        return None
    delivery, token = claimed
    reason = _reason_not_to_send(delivery)
    if reason is not None:
        _give_up(delivery, token, reason)
        return None
    return claimed


def _finish(delivery: WebhookDelivery, token: uuid.UUID, outcome: Outcome) -> datetime | None:
    """Record the attempt and log it; when the delivery is due again, if it is."""
    retry_at = record(delivery, token, outcome)
    logger.info(
        "webhook %s to %s: attempt %d, %s",
        delivery.event.message_id,
        url_for_log(delivery.endpoint.url),
        delivery.attempt_count,
        outcome.status_code or outcome.error,
    )
    return retry_at


@dataclass(frozen=True)
class Attempted:
    """One attempt this call made, and when the delivery is due again (None: delivered,
    failed for good, or no longer this call's to record)."""

    retry_at: datetime | None


def attempt(delivery_id: uuid.UUID) -> Attempted | None:
    """Claim, send and record one delivery if it is due; None if this call did not send it."""
    claimed = _claim_to_send(delivery_id)
    if claimed is None:
        return None
    delivery, token = claimed
    return Attempted(_finish(delivery, token, send(delivery)))


# --- The sweep: concurrent, and fair between teams ----------------------------------------------

# Seconds between looks for newly due deliveries while attempts are in flight: how long a
# delivery can wait for a free slot that is already there.
POLL = 0.25


@dataclass(frozen=True)
class _Sending:
    delivery: WebhookDelivery
    token: uuid.UUID
    team_id: int


def _due(*, excluded_teams: list[int], limit: int) -> list[tuple[uuid.UUID, int]]:
    """Up to ``limit`` due deliveries of teams not in ``excluded_teams``, oldest first, each
    with its team."""
    return list(
        WebhookDelivery.objects.filter(
            state=DeliveryState.PENDING, next_attempt_at__lte=timezone.now()
        )
        .exclude(endpoint__team_id__in=excluded_teams)
        .order_by("next_attempt_at")
        .values_list("pk", "endpoint__team_id")[:limit]
    )


# Enqueues a delivery's retry for the time given (``webhooks.tasks.schedule_retry``).
ScheduleRetry = Callable[[uuid.UUID, datetime], None]


class _Sweep:
    """One sweep's attempts in flight: at most ``WEBHOOKS_CONCURRENCY``, and at most
    ``WEBHOOKS_TEAM_CONCURRENCY`` of any one team's, so a team whose receivers never answer
    holds only its share of the worker while other teams' deliveries go out. The database
    work (claims, records) stays in the sweeping thread; only the exchanges run in ``pool``."""

    def __init__(
        self, pool: ThreadPoolExecutor, stop: threading.Event, schedule_retry: ScheduleRetry | None
    ) -> None:
        self.pool = pool
        self.stop = stop
        self.schedule_retry = schedule_retry
        self.limit: int = settings.WEBHOOKS_CONCURRENCY
        self.share = min(settings.WEBHOOKS_TEAM_CONCURRENCY, self.limit)
        self.in_flight: dict[Future[Outcome], _Sending] = {}
        self.per_team: Counter[int] = Counter()
        self.sent = 0

    def free(self) -> int:
        return self.limit - len(self.in_flight)

    def fill(self) -> None:
        """Start due deliveries, oldest first, while a slot is free and a team with some of
        its share left has one. Each pass ends with a claim won or lost (the delivery is no
        longer due) or a team full (no longer asked for), so this ends."""
        while self.free() and not self.stop.is_set():
            full = [team for team, count in self.per_team.items() if count >= self.share]
            due = _due(excluded_teams=full, limit=self.free())
            if not due:
                return
            for delivery_id, team_id in due:
                if self.free() and self.per_team[team_id] < self.share:
                    self._start(delivery_id, team_id)

    def _start(self, delivery_id: uuid.UUID, team_id: int) -> None:
        claimed = _claim_to_send(delivery_id)
        if claimed is None:
            return
        delivery, token = claimed
        self.in_flight[self.pool.submit(send, delivery)] = _Sending(delivery, token, team_id)
        self.per_team[team_id] += 1

    def collect(self, timeout: float | None) -> None:
        """Record the attempts that end within ``timeout`` (None: at least one)."""
        done, _ = wait(self.in_flight, timeout=timeout, return_when=FIRST_COMPLETED)
        for future in done:
            sending = self.in_flight.pop(future)
            self.per_team[sending.team_id] -= 1
            self.sent += 1
            try:
                retry_at = _finish(sending.delivery, sending.token, future.result())
                if retry_at is not None and self.schedule_retry is not None:
                    self.schedule_retry(sending.delivery.pk, retry_at)
            except Exception:
                # One attempt that cannot be recorded must not cost the others theirs. Its
                # claim stays, so it is sent again once the lease ends (at least once).
                logger.exception(
                    "webhook delivery %s: the attempt could not be recorded", sending.delivery.pk
                )


def sweep(
    *, stop: threading.Event | None = None, schedule_retry: ScheduleRetry | None = None
) -> int:
    """Attempt every due delivery, whether or not a task was ever enqueued for it, concurrently
    and fairly between teams (``_Sweep``), until none is due and none is in flight; once
    ``stop`` is set, only those in flight are finished. ``schedule_retry`` is given each
    delivery that is due again and when (without it, a later sweep finds it by that time).
    How many attempts this call made."""
    stop = stop or threading.Event()
    concurrency = settings.WEBHOOKS_CONCURRENCY
    with ThreadPoolExecutor(concurrency, thread_name_prefix="webhook-send") as pool:
        run = _Sweep(pool, stop, schedule_retry)
        try:
            while True:
                run.fill()
                if not run.in_flight:
                    return run.sent
                run.collect(POLL)
        finally:
            # A failure to claim (the database gone for a moment) still records what was sent.
            while run.in_flight:
                run.collect(None)
