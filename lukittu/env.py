"""Typed readers for configuration from the environment that fail loudly on bad values."""

import math
import os
import re
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(s|sec|second|m|min|minute|h|hour|d|day)\s*$", re.IGNORECASE)


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def env_str(name: str, default: str | None = None) -> str | None:
    value = _raw(name)
    return default if value is None else value


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, got {value!r}")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {number}")
    return number


def env_float(name: str, default: float, *, above: float | None = None) -> float:
    """A finite decimal number such as ``0.25``; ``above`` is an exclusive lower bound (a
    timeout of 0 would make a socket non-blocking, not fast)."""
    value = _raw(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ImproperlyConfigured(f"{name} must be a finite number, got {value!r}")
    if above is not None and number <= above:
        raise ImproperlyConfigured(f"{name} must be greater than {above:g}, got {number:g}")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    value = _raw(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_rate(name: str, default: str) -> str:
    """A DRF-style rate such as ``1000/minute``, normalised (``10 / Hour`` becomes ``10/hour``)
    because DRF's own parser accepts neither spaces nor capitals."""
    value = _raw(name) or default
    match = _RATE.match(value)
    if not match or int(match.group(1)) < 1:
        raise ImproperlyConfigured(
            f"{name} must look like '1000/minute' (per second, minute, hour or day), got {value!r}"
        )
    return f"{int(match.group(1))}/{match.group(2).lower()}"


def env_url(name: str, schemes: tuple[str, ...]) -> str | None:
    value = _raw(name)
    if value is None:
        return None
    if not value.lower().startswith(tuple(f"{scheme}://" for scheme in schemes)):
        # Only the scheme is echoed: the rest of a URL may hold a password.
        scheme = value.split("://", 1)[0] if "://" in value else "no scheme"
        raise ImproperlyConfigured(
            f"{name} must start with one of {', '.join(s + '://' for s in schemes)}; got {scheme!r}"
        )
    return value


def load_env_file(path: Path) -> None:
    """``NAME=value`` lines from ``path`` (``make run`` writes one for local development) into
    the environment, never over a variable that is already set. Blank lines and ``#`` comments
    are skipped; a missing file is fine."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, separator, value = line.removeprefix("export ").partition("=")
        if not separator or not name.strip().isidentifier():
            raise ImproperlyConfigured(f"{path}:{number}: expected NAME=value, got {line!r}")
        os.environ.setdefault(name.strip(), value.strip().strip("'\""))
