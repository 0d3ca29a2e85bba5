"""What can go wrong, and the exit code a script can branch on for each."""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1  # anything not below (a 400 the server refused, a local file problem, ...)
    USAGE = 2  # bad arguments or configuration (an existing download target without --force)
    NOT_FOUND = 3  # 404: release, product, branch, license
    CONFLICT = 4  # 409, 412, 422
    AUTH = 5  # 401, 403
    CHECKSUM = 6  # the stored or downloaded bytes are not the local ones
    NETWORK = 7  # retries exhausted (network errors, 429, 5xx), or a network failure


def exit_code_for_status(status: int) -> ExitCode:
    """The exit code for an HTTP error status that was not retried, or no longer is."""
    if status == 404:
        return ExitCode.NOT_FOUND
    if status in (409, 412, 422):
        return ExitCode.CONFLICT
    if status in (401, 403):
        return ExitCode.AUTH
    if status == 429 or status >= 500:
        return ExitCode.NETWORK
    return ExitCode.ERROR


class CliError(Exception):
    """An error that ends the command with ``exit_code`` and a message for a person."""

    exit_code: ExitCode = ExitCode.ERROR
    kind = "error"

    def __init__(self, message: str, *, exit_code: ExitCode | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code
        self.extra = extra

    def to_json(self) -> dict[str, Any]:
        """The JSON error object that ``--json`` prints."""
        return {
            "error": {
                "kind": self.kind,
                "exitCode": int(self.exit_code),
                "message": self.message,
                **{key: value for key, value in self.extra.items() if value is not None},
            }
        }

    def detail_lines(self) -> list[str]:
        return []


class UsageError(CliError):
    exit_code = ExitCode.USAGE
    kind = "usage"

    def __init__(self, message: str, *, usage: str | None = None) -> None:
        super().__init__(message)
        self.usage = usage  # the command's usage line, for a person (not in the JSON)


class ConfigError(CliError):
    exit_code = ExitCode.USAGE
    kind = "config"


class FileExists(CliError):
    """The download's target exists, and ``--force`` was not given."""

    exit_code = ExitCode.USAGE
    kind = "file_exists"


class NotFoundError(CliError):
    exit_code = ExitCode.NOT_FOUND
    kind = "not_found"


class ChecksumMismatch(CliError):
    exit_code = ExitCode.CHECKSUM
    kind = "checksum_mismatch"


class NetworkError(CliError):
    """Retries exhausted, or a network failure that is not worth retrying."""

    exit_code = ExitCode.NETWORK
    kind = "network"


class ApiError(CliError):
    """An error answer from the service: the envelope's ``result`` and ``data.errors``."""

    kind = "api"
    # Set by the client: an earlier attempt of this request may have reached the server.
    possibly_applied_before = False

    def __init__(
        self,
        status: int,
        details: str,
        *,
        code: str | None = None,
        errors: list[Any] | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(
            details,
            exit_code=exit_code_for_status(status),
            status=status,
            code=code,
            errors=errors or None,
            requestId=request_id,
        )
        self.status = status
        self.code = code
        self.errors = errors or []
        self.request_id = request_id

    def __str__(self) -> str:
        label = f"HTTP {self.status}" + (f" {self.code}" if self.code else "")
        suffix = f", request {self.request_id}" if self.request_id else ""
        return f"{self.message} ({label}{suffix})"

    def detail_lines(self) -> list[str]:
        lines = []
        for item in self.errors:
            if isinstance(item, dict):
                path = ".".join(str(part) for part in item.get("path") or []) or "(body)"
                lines.append(f"  {path}: {item.get('message', item)}")
            else:
                lines.append(f"  {item}")
        return lines


class RetriesExhausted(NetworkError):
    kind = "retries_exhausted"
