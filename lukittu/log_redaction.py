"""Credentials kept out of the logs: query values whose parameter names a credential.

The Client API takes its credentials in the query string (``licenseKey``,
``hardwareIdentifier``, ``sessionKey``), and presigned storage links carry signatures, so any
log line that writes a URL would write them. ``redact`` replaces the value of every such
parameter in a line of text with ``[REDACTED]``, keeping the path and the parameter's name.
``RedactingFilter`` applies it to log records (Django's handlers, gunicorn's error log),
``RedactingGunicornLogger`` to gunicorn's access log.

Standard library and gunicorn only: gunicorn's master loads this before Django."""

import logging
import re
from typing import Any
from urllib.parse import unquote_plus

from gunicorn.glogging import Logger

REDACTED = "[REDACTED]"
# The Client API's credentials, and anything whose name says it is a secret (checked on the
# lower-cased, percent-decoded name without separators: ``api_key``, ``X-Amz-Signature``).
_EXACT = frozenset({"licensekey", "hardwareidentifier", "sessionkey", "hwid"})
_WORDS = ("key", "token", "secret", "password", "passwd", "signature", "credential", "auth")
# ``name=value`` where a query parameter can start: the line's start, after ``?``, ``&`` or
# ``;``, or after a space or quote (gunicorn's ``%(q)s``, a query string on its own). The value
# runs to the next separator; a URL has no spaces or quotes in it.
_PARAMETER = re.compile(r"(?:(?<=[?&;\s\"'(,])|^)([^=&;?\s\"'#]+)=([^&;\s\"'#]*)")
# Request headers that carry credentials, as gunicorn names their access-log atoms.
_SECRET_HEADERS = ("{authorization}i", "{cookie}i", "{proxy-authorization}i", "{x-api-key}i")


def is_secret_name(name: str) -> bool:
    """True when a query parameter's name says its value is a credential."""
    plain = unquote_plus(name).lower().replace("_", "").replace("-", "")
    return plain in _EXACT or any(word in plain for word in _WORDS)


def _redact_match(match: re.Match[str]) -> str:
    name, value = match.group(1), match.group(2)
    if is_secret_name(name):
        return f"{name}={REDACTED}" if value else match.group(0)
    # A value that holds a query string of its own (``next=/a?licenseKey=...``, decoded).
    return f"{name}={redact(value)}" if "=" in value else match.group(0)


def redact(text: str) -> str:
    """``text`` with the value of every credential-named ``name=value`` replaced."""
    if "=" not in text:
        return text
    return _PARAMETER.sub(_redact_match, text)


class RedactingFilter(logging.Filter):
    """Redacts the record's message, and its traceback's text, before any handler formats it.
    Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # arguments that do not fit the format: logging reports it itself
            return True
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            # Formatted once here (as the handler's formatter would), so an exception whose
            # text holds a URL is redacted too; formatters reuse ``exc_text``.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class RedactingGunicornLogger(Logger):
    """Gunicorn's logger with credentials redacted: in the access log's atoms (the request
    line, the query string, the Referer, and every header or environ atom), and in every
    error-log record (gunicorn logs ``req.uri`` when a request fails)."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        # The access log is redacted in its atoms (below), before its line is made: a filter
        # there would run the patterns over every request's line a second time.
        if not any(isinstance(existing, RedactingFilter) for existing in self.error_log.filters):
            self.error_log.addFilter(RedactingFilter())

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict:
        atoms = super().atoms(resp, req, environ, request_time)
        for name in _SECRET_HEADERS:
            if name in atoms:
                atoms[name] = REDACTED
        return {
            name: redact(value) if isinstance(value, str) else value
            for name, value in atoms.items()
        }
