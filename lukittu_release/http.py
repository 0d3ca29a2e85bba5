"""The HTTP client: explicit timeouts, the API's envelope, and retries.

A request is retried, with exponential backoff and jitter, on a network error (refused or
failed connection, a timeout, a connection dropped before or during the answer), on 429
(waiting ``Retry-After``) and on 5xx; never on another 4xx. Attempts are bounded
(``max_attempts``) and so is the time spent waiting between them (``max_wait``).

Every write (POST, PUT, PATCH, DELETE) carries an ``Idempotency-Key``: a random UUID made once
per logical request and sent unchanged on each of its retries, so a server that honours it
applies a retried write once (and replays its first answer). A 409 with ``Retry-After`` to such
a request means its first attempt is still running there, and is waited for like a 429."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx

from lukittu_release import __version__
from lukittu_release.errors import (
    ApiError,
    CliError,
    ConfigError,
    NetworkError,
    RetriesExhausted,
)
from lukittu_release.progress import NoProgress, Progress

T = TypeVar("T")

USER_AGENT = f"lukittu-release/{__version__}"
IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CONNECT_TIMEOUT = 10.0
CHUNK_SIZE = 64 * 1024
# Extra wait on top of Retry-After, so parallel jobs on one key do not return in lockstep.
RETRY_AFTER_JITTER = 0.5
MAX_ERROR_TEXT = 200
# The most an answer of the API may hold (a page of 100 releases is a few MiB at most): a
# bigger one is refused rather than held in memory.
MAX_ANSWER_BYTES = 32 * 1024 * 1024

# Failures of the connection itself, worth another attempt.
RETRYABLE_ERRORS: tuple[type[Exception], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
)
# Of those, the ones that prove the request never reached the server.
UNSENT_ERRORS: tuple[type[Exception], ...] = (httpx.ConnectError, httpx.ConnectTimeout)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    max_wait: float = 120.0  # seconds of waiting between attempts, in total
    base_delay: float = 1.0
    max_delay: float = 30.0

    def backoff(self, retry_number: int, rand: Callable[[], float]) -> float:
        """The wait before retry ``retry_number`` (1 for the first): exponential, capped, with
        "equal jitter" (between half and all of the exponential step)."""
        step = min(self.max_delay, self.base_delay * 2 ** (retry_number - 1))
        return step / 2 + rand() * step / 2


def retry_after_seconds(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """``Retry-After`` in seconds: a number of seconds or an HTTP date; None if absent or
    unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment is None or moment.tzinfo is None:
        return None
    return max(0.0, moment.timestamp() - now())


def is_retryable_status(status: int) -> bool:
    return status == 429 or 500 <= status <= 599


def is_in_progress(response: httpx.Response, has_idempotency_key: bool) -> bool:
    """A 409 with ``Retry-After`` to a request with an Idempotency-Key: the server is still
    running this very request's first attempt (the IETF draft's answer), so waiting is
    right. A 409 without ``Retry-After`` is a real conflict and never retried."""
    return (
        has_idempotency_key
        and response.status_code == 409
        and retry_after_seconds(response.headers.get("Retry-After")) is not None
    )


def describe_exception(error: Exception) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class Retry(Exception):
    """One attempt failed in a way worth another: a signal to the retry loop, never shown."""

    def __init__(
        self,
        reason: str,
        *,
        possibly_applied: bool,
        retry_after: float | None = None,
        error: ApiError | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.possibly_applied = possibly_applied
        self.retry_after = retry_after
        self.error = error


@dataclass
class Reply:
    """A successful answer: the envelope's ``data``, and how it was obtained."""

    status: int
    data: Any
    headers: httpx.Headers
    attempts: int = 1
    # An earlier attempt failed after the request may have reached the server (a lost answer,
    # a 5xx), so the server may already have applied this write once.
    possibly_applied_before: bool = False


@dataclass
class MultipartBody:
    """A ``multipart/form-data`` body of a JSON ``data`` field and, optionally, one file
    streamed from disk, with a known length (the service needs ``Content-Length``).
    ``chunks()`` reads the file afresh, so a retry sends every byte again."""

    data: Mapping[str, Any]
    path: Path | None = None
    filename: str = ""
    size: int = 0
    progress: Progress = field(default_factory=NoProgress)
    boundary: str = field(default_factory=lambda: f"lukittu-release-{uuid.uuid4().hex}")

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def head(self) -> bytes:
        data = json.dumps(self.data, separators=(",", ":"), ensure_ascii=False)
        head = f'--{self.boundary}\r\nContent-Disposition: form-data; name="data"\r\n\r\n{data}\r\n'
        if self.path is not None:
            head += (
                f"--{self.boundary}\r\n"
                "Content-Disposition: form-data; "
                f'name="file"; filename="{quote_filename(self.filename)}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            )
        return head.encode()

    def tail(self) -> bytes:
        closing = f"--{self.boundary}--\r\n".encode()
        return b"\r\n" + closing if self.path is not None else closing

    def length(self) -> int:
        return len(self.head()) + self.size + len(self.tail())

    def chunks(self) -> Iterator[bytes]:
        yield self.head()
        if self.path is not None:
            yield from self.file_chunks(self.path)
        yield self.tail()

    def file_chunks(self, path: Path) -> Iterator[bytes]:
        self.progress.start(self.size)
        sent = 0
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK_SIZE):
                sent += len(chunk)
                if sent > self.size:
                    break
                self.progress.advance(len(chunk))
                yield chunk
        self.progress.finish()
        if sent != self.size:
            raise CliError(f"{path} changed size while it was being uploaded")


def quote_filename(name: str) -> str:
    """A file name for a multipart header, escaped as browsers do (HTML's rule)."""
    return name.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def envelope_of(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def api_error_from(response: httpx.Response) -> ApiError:
    """The error envelope as an ApiError; a body that is not the envelope (a proxy's page, an
    S3 XML error) is summarised in a line."""
    envelope = envelope_of(response)
    request_id = response.headers.get("X-Request-ID")
    result = envelope.get("result") if envelope else None
    if isinstance(result, dict) and isinstance(result.get("details"), str):
        data = envelope.get("data") if envelope else None
        errors = data.get("errors") if isinstance(data, dict) else None
        return ApiError(
            response.status_code,
            result["details"],
            code=result.get("code") if isinstance(result.get("code"), str) else None,
            errors=errors if isinstance(errors, list) else None,
            request_id=request_id,
        )
    text = " ".join(response.text.split())[:MAX_ERROR_TEXT] if response.content else ""
    details = response.reason_phrase or "Error"
    return ApiError(
        response.status_code,
        f"{details}: {text}" if text else details,
        request_id=request_id,
    )


def data_of(response: httpx.Response) -> Any:
    """The success envelope's ``data``."""
    envelope = envelope_of(response)
    if envelope is None or "data" not in envelope:
        raise ApiError(
            response.status_code,
            "The server's answer is not the API's JSON envelope: is the URL the service's?",
            request_id=response.headers.get("X-Request-ID"),
        )
    return envelope["data"]


def redirect_error(response: httpx.Response, method: str, path: str) -> CliError:
    location = response.headers.get("Location", "")
    return ConfigError(
        f"{method} {path} was redirected (HTTP {response.status_code}) to {location!r}: "
        "set the API URL to the service's own base URL (https:// if it redirects there)"
    )


class ApiClient:
    """One ``httpx.Client`` with the key, the timeouts and the retry policy."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        policy: RetryPolicy | None = None,
        timeout: float = 60.0,
        warn: Callable[[str], None] = lambda message: None,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        # Uncompressed answers only: their size is what ``bounded`` counts.
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if api_key is not None:
            headers["Authorization"] = f"Bearer {api_key}"
        self.policy = policy or RetryPolicy()
        self.warn = warn
        self.sleep = sleep
        self.rand = rand
        self.http = httpx.Client(
            base_url=base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(CONNECT_TIMEOUT, timeout)),
            follow_redirects=False,
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- The retry loop ---------------------------------------------------------------------

    def with_retries(self, label: str, attempt: Callable[[bool], T]) -> T:
        """``attempt(possibly_applied_before)`` until it returns or raises something other
        than ``Retry``, at most ``max_attempts`` times, waiting at most ``max_wait`` in all."""
        waited = 0.0
        possibly_applied = False
        number = 1
        while True:
            try:
                return attempt(possibly_applied)
            except Retry as failure:
                possibly_applied = possibly_applied or failure.possibly_applied
                delay = self.delay_before_retry(label, failure, number, waited)
                reason = failure.reason
            self.warn(
                f"{label}: {reason}; retrying in {delay:.1f} s "
                f"(attempt {number + 1} of {self.policy.max_attempts})"
            )
            self.sleep(delay)
            waited += delay
            number += 1

    def delay_before_retry(self, label: str, failure: Retry, number: int, waited: float) -> float:
        """How long to wait before the next attempt, or RetriesExhausted if there is none."""
        policy = self.policy
        if number >= policy.max_attempts:
            raise self.exhausted(label, failure, number, f"gave up after {number} attempt(s)")
        remaining = policy.max_wait - waited
        if remaining <= 0:
            raise self.exhausted(label, failure, number, "the retry wait limit is used up")
        if failure.retry_after is not None:
            if failure.retry_after > remaining:
                raise self.exhausted(
                    label,
                    failure,
                    number,
                    f"the server asked to wait {failure.retry_after:g} s, more than the "
                    f"{remaining:g} s left of the retry wait limit",
                )
            return min(remaining, failure.retry_after + self.rand() * RETRY_AFTER_JITTER)
        return min(remaining, policy.backoff(number, self.rand))

    @staticmethod
    def exhausted(label: str, failure: Retry, attempts: int, why: str) -> RetriesExhausted:
        error = failure.error
        return RetriesExhausted(
            f"{label}: {failure.reason}; {why}",
            attempts=attempts,
            status=error.status if error else None,
            code=error.code if error else None,
            requestId=error.request_id if error else None,
        )

    # --- Requests ---------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        body: MultipartBody | None = None,
    ) -> Reply:
        """One logical request, retried as the policy says; the success envelope's ``data``,
        else ApiError (or RetriesExhausted, NetworkError)."""
        label = f"{method} {path}"
        headers: dict[str, str] = {}
        if method in WRITE_METHODS:
            headers[IDEMPOTENCY_HEADER] = str(uuid.uuid4())
        attempts = 0

        def attempt(possibly_applied: bool) -> Reply:
            nonlocal attempts
            attempts += 1
            response = self.send_once(method, path, params, json_body, body, headers)
            return self.reply_from(
                response, label, attempts, possibly_applied, IDEMPOTENCY_HEADER in headers
            )

        reply = self.with_retries(label, attempt)
        if reply.headers.get(REPLAYED_HEADER, "").lower() == "true":
            self.warn(
                f"{label}: an earlier attempt had been applied; the server replayed its answer"
            )
        return reply

    def send_once(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        json_body: Any,
        body: MultipartBody | None,
        headers: Mapping[str, str],
    ) -> httpx.Response:
        extra: dict[str, Any] = {}
        send_headers = dict(headers)
        if body is not None:
            send_headers["Content-Type"] = body.content_type
            send_headers["Content-Length"] = str(body.length())
            extra["content"] = body.chunks()
        elif json_body is not None:
            extra["json"] = json_body
        try:
            request = self.http.build_request(
                method, path, params=clean_params(params), headers=send_headers, **extra
            )
            response = self.http.send(request, stream=True)
            try:
                return bounded(response, f"{method} {path}")
            finally:
                response.close()
        except RETRYABLE_ERRORS as error:
            raise Retry(
                describe_exception(error), possibly_applied=not isinstance(error, UNSENT_ERRORS)
            ) from error
        except httpx.HTTPError as error:
            raise NetworkError(f"{method} {path}: {describe_exception(error)}") from error

    def reply_from(
        self,
        response: httpx.Response,
        label: str,
        attempts: int,
        possibly_applied: bool,
        has_idempotency_key: bool = False,
    ) -> Reply:
        status = response.status_code
        if is_retryable_status(status) or is_in_progress(response, has_idempotency_key):
            error = api_error_from(response)
            raise Retry(
                f"HTTP {status} ({error.message})",
                possibly_applied=status >= 500 or status == 409,
                retry_after=retry_after_seconds(response.headers.get("Retry-After")),
                error=error,
            )
        if 300 <= status < 400:
            method, path = label.split(" ", 1)
            raise redirect_error(response, method, path)
        if status >= 400:
            error = api_error_from(response)
            error.possibly_applied_before = possibly_applied
            raise error
        return Reply(status, data_of(response), response.headers, attempts, possibly_applied)

    def stream(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None,
        consume: Callable[[httpx.Response], T],
    ) -> T:
        """A GET whose body ``consume`` reads as it streams, following redirects (a presigned
        storage URL). A failure mid-body is retried from the start."""
        label = f"GET {path}"

        def attempt(possibly_applied: bool) -> T:
            try:
                with self.http.stream(
                    "GET", path, params=clean_params(params), follow_redirects=True
                ) as response:
                    if response.status_code >= 300:
                        response.read()
                        self.reply_from(response, label, 1, possibly_applied)
                    return consume(response)
            except RETRYABLE_ERRORS as error:
                raise Retry(
                    describe_exception(error),
                    possibly_applied=not isinstance(error, UNSENT_ERRORS),
                ) from error
            except httpx.HTTPError as error:
                raise NetworkError(f"{label}: {describe_exception(error)}") from error

        return self.with_retries(label, attempt)


def bounded(response: httpx.Response, label: str) -> httpx.Response:
    """``response`` read whole, if its body is at most MAX_ANSWER_BYTES; a bigger one is
    refused as it arrives, never held. Answers are asked for uncompressed (``identity``), so
    the size read is the size held: a compressed one is refused (a small one could expand
    past any bound in a single read)."""
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding != "identity":
        raise CliError(
            f"{label}: the answer is compressed ({encoding}) though it was not asked to be"
        )
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_raw():
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise CliError(
                f"{label}: the answer is over {MAX_ANSWER_BYTES // (1024 * 1024)} MiB, far more "
                "than the API sends: is the URL the service's?"
            )
        chunks.append(chunk)
    return httpx.Response(
        response.status_code,
        headers=response.headers,
        content=b"".join(chunks),
        request=response.request,
        extensions=response.extensions,
    )


def clean_params(params: Mapping[str, Any] | None) -> dict[str, str] | None:
    """Query parameters without the None ones."""
    if params is None:
        return None
    return {name: str(value) for name, value in params.items() if value is not None}
