"""Settings from the environment, with command-line flags taking precedence.

A missing or malformed setting is a ``ConfigError`` (exit 2) that names the variable or flag
it came from. The API key and license keys are never echoed, not even in an error."""

from __future__ import annotations

import ipaddress
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from lukittu_release.errors import ConfigError

ENV_API_URL = "LUKITTU_API_URL"
ENV_TEAM_ID = "LUKITTU_TEAM_ID"
ENV_API_KEY = "LUKITTU_API_KEY"
ENV_LICENSE_KEY = "LUKITTU_LICENSE_KEY"
ENV_MAX_ATTEMPTS = "LUKITTU_MAX_ATTEMPTS"
ENV_MAX_RETRY_WAIT = "LUKITTU_MAX_RETRY_WAIT"
ENV_TIMEOUT = "LUKITTU_TIMEOUT"

DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_MAX_RETRY_WAIT = 120.0
DEFAULT_TIMEOUT = 60.0
MAX_ATTEMPTS_LIMIT = 20
MAX_SECONDS_LIMIT = 3600.0


@dataclass(frozen=True)
class Setting:
    """A raw value and where it came from (a flag or a variable), for error messages."""

    value: str | None
    source: str


@dataclass(frozen=True)
class Settings:
    api_url: str
    team_id: str
    # repr=False: a Settings object in a traceback or a log line never shows the key.
    api_key: str | None = field(repr=False)
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    max_retry_wait: float = DEFAULT_MAX_RETRY_WAIT
    timeout: float = DEFAULT_TIMEOUT
    # http:// to another machine, allowed by --insecure: worth a warning on every run.
    plain_http_elsewhere: bool = False


def pick(flag_value: Any, flag: str, environ: Mapping[str, str], variable: str) -> Setting:
    """The flag's value when given, else the variable's; empty counts as unset."""
    if flag_value is not None and str(flag_value) != "":
        return Setting(str(flag_value), flag)
    value = environ.get(variable)
    return Setting(value if value else None, variable)


def required(setting: Setting, flag: str) -> str:
    if setting.value is None or not setting.value.strip():
        if setting.source == flag:
            raise ConfigError(f"{flag} is empty")
        raise ConfigError(f"{setting.source} is not set: export {setting.source} (or pass {flag})")
    return setting.value.strip()


def parse_api_url(setting: Setting) -> str:
    text = required(setting, "--api-url")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{setting.source} must be the service's http(s) base URL, such as "
            f"https://releases.example.com (got {text!r})"
        )
    if parts.query or parts.fragment:
        raise ConfigError(f"{setting.source} must not have a query or fragment (got {text!r})")
    return text.rstrip("/")


def is_loopback(host: str) -> bool:
    """This machine: a loopback address, or ``localhost`` (RFC 6761 keeps it here)."""
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def plain_http_elsewhere(api_url: str, source: str, *, insecure: bool) -> bool:
    """Whether ``api_url`` is http:// to another machine, where the API key or license key
    and every answer would cross the network in clear: refused unless ``insecure``."""
    parts = urlsplit(api_url)
    if parts.scheme != "http" or is_loopback(parts.hostname or ""):
        return False
    if not insecure:
        raise ConfigError(
            f"{source} is plain http:// to another machine ({parts.hostname}): keys and "
            "answers would cross the network in clear; use https:// (or pass --insecure)"
        )
    return True


def parse_uuid(text: str, source: str) -> str:
    """A UUID in canonical form, else a ConfigError naming ``source``."""
    try:
        if len(text) != 36 or not text.isascii():
            raise ValueError(text)
        return str(uuid.UUID(text))
    except ValueError:
        raise ConfigError(f"{source} must be a UUID (got {text!r})") from None


def parse_secret(setting: Setting, flag: str) -> str:
    """A key: surrounding whitespace (a secret file's trailing newline) is dropped; inner
    whitespace is refused without echoing the value."""
    text = required(setting, flag)
    if any(character.isspace() or not character.isprintable() for character in text):
        raise ConfigError(f"{setting.source} contains spaces or control characters")
    return text


def parse_int(setting: Setting, default: int, low: int, high: int) -> int:
    if setting.value is None:
        return default
    try:
        value = int(setting.value.strip())
    except ValueError:
        raise ConfigError(
            f"{setting.source} must be a whole number (got {setting.value!r})"
        ) from None
    if not low <= value <= high:
        raise ConfigError(f"{setting.source} must be between {low} and {high} (got {value})")
    return value


def parse_seconds(setting: Setting, default: float, *, allow_zero: bool) -> float:
    if setting.value is None:
        return default
    try:
        value = float(setting.value.strip())
    except ValueError:
        value = math.nan
    low_ok = value >= 0 if allow_zero else value > 0
    if not math.isfinite(value) or not low_ok or value > MAX_SECONDS_LIMIT:
        bound = "0" if allow_zero else "above 0"
        raise ConfigError(
            f"{setting.source} must be a number of seconds, {bound} and at most "
            f"{MAX_SECONDS_LIMIT:g} (got {setting.value!r})"
        )
    return value


def load_settings(args: Any, environ: Mapping[str, str], *, need_api_key: bool) -> Settings:
    """Settings for one command: ``args`` are the parsed flags (absent ones are None)."""

    def flag(name: str) -> Any:
        return getattr(args, name, None)

    needed = [("api_url", "--api-url", ENV_API_URL), ("team_id", "--team-id", ENV_TEAM_ID)]
    if need_api_key:
        needed.append(("api_key", "--api-key", ENV_API_KEY))
    missing = [
        variable
        for name, option, variable in needed
        if pick(flag(name), option, environ, variable).value is None
    ]
    if len(missing) > 1:
        names = ", ".join(missing[:-1]) + " and " + missing[-1]
        raise ConfigError(f"{names} are not set: export them (or pass the flags)")

    url_setting = pick(flag("api_url"), "--api-url", environ, ENV_API_URL)
    api_url = parse_api_url(url_setting)
    insecure = plain_http_elsewhere(api_url, url_setting.source, insecure=bool(flag("insecure")))
    team = pick(flag("team_id"), "--team-id", environ, ENV_TEAM_ID)
    team_id = parse_uuid(required(team, "--team-id"), team.source)
    api_key = None
    if need_api_key:
        api_key = parse_secret(
            pick(flag("api_key"), "--api-key", environ, ENV_API_KEY), "--api-key"
        )
    return Settings(
        api_url=api_url,
        team_id=team_id,
        api_key=api_key,
        max_attempts=parse_int(
            pick(flag("max_attempts"), "--max-attempts", environ, ENV_MAX_ATTEMPTS),
            DEFAULT_MAX_ATTEMPTS,
            1,
            MAX_ATTEMPTS_LIMIT,
        ),
        max_retry_wait=parse_seconds(
            pick(flag("max_retry_wait"), "--max-retry-wait", environ, ENV_MAX_RETRY_WAIT),
            DEFAULT_MAX_RETRY_WAIT,
            allow_zero=True,
        ),
        timeout=parse_seconds(
            pick(flag("timeout"), "--timeout", environ, ENV_TIMEOUT),
            DEFAULT_TIMEOUT,
            allow_zero=False,
        ),
        plain_http_elsewhere=insecure,
    )


def license_key(args: Any, environ: Mapping[str, str]) -> str:
    """The license key for ``download``: ``--license`` or ``LUKITTU_LICENSE_KEY``."""
    setting = pick(getattr(args, "license_key", None), "--license", environ, ENV_LICENSE_KEY)
    if setting.value is None:
        raise ConfigError(f"no license key: pass --license KEY (or export {ENV_LICENSE_KEY})")
    return parse_secret(setting, "--license")
