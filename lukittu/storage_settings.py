"""The ``STORAGES["default"]`` entry for S3 and the ``CACHES["default"]`` entry for Redis, shared
by the settings and the tests, with the timeouts that bound every call to either."""

from typing import Any

from botocore.config import Config
from redis.backoff import NoBackoff
from redis.retry import Retry

S3_CONNECT_TIMEOUT = 5.0
S3_READ_TIMEOUT = 30.0
S3_MAX_ATTEMPTS = 3

REDIS_SOCKET_TIMEOUT = 0.25
REDIS_CONNECT_TIMEOUT = 0.25


def s3_storage(
    *,
    bucket_name: str,
    endpoint_url: str | None = None,
    region_name: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
    connect_timeout: float = S3_CONNECT_TIMEOUT,
    read_timeout: float = S3_READ_TIMEOUT,
    max_attempts: int = S3_MAX_ATTEMPTS,
) -> dict[str, Any]:
    return {
        "BACKEND": "releases.storage.ReleaseS3Storage",
        "OPTIONS": {
            "bucket_name": bucket_name,
            "endpoint_url": endpoint_url,
            "region_name": region_name,
            "access_key": access_key,
            "secret_key": secret_key,
            # Objects stay private: no ACL header (the bucket's private default applies) and
            # links are short-lived presigned URLs.
            "default_acl": None,
            "querystring_auth": True,
            "querystring_expire": 300,
            # Keys are unique per file, so there is never anything to overwrite (and no
            # existence check is needed before a write).
            "file_overwrite": True,
            # With a client_config, django-storages ignores its signature_version and
            # addressing_style options, so the signature is chosen here: SigV4 for every call
            # and every presigned URL (botocore would otherwise presign with the legacy SigV2,
            # which newer regions and many S3-compatible stores refuse). The timeouts bound a
            # hung endpoint; "standard" retries back off with jitter and count the first try
            # in total_max_attempts, so a hung store costs a call at most
            # max_attempts * (connect_timeout + read_timeout), plus a short backoff and, for a
            # PUT, botocore's fixed 1 s wait for "100 Continue" per attempt.
            #
            # The body is not hashed again to sign it: every PUT carries the Content-MD5 and
            # SHA-256 computed while the upload arrived, which the store verifies (botocore
            # already signs no body over HTTPS when a checksum is sent; this makes plain-HTTP
            # endpoints behave the same, instead of reading 10 MB once more).
            "client_config": Config(
                signature_version="s3v4",
                s3={"payload_signing_enabled": False},
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                retries={"mode": "standard", "total_max_attempts": max_attempts},
            ),
        },
    }


def redis_cache(
    *,
    url: str,
    socket_timeout: float = REDIS_SOCKET_TIMEOUT,
    connect_timeout: float = REDIS_CONNECT_TIMEOUT,
) -> dict[str, Any]:
    """Django's Redis cache, which hands ``OPTIONS`` to redis-py's connection pool. The cache
    only holds rate-limit counts and the limiter fails open, so a hung Redis must cost a
    request little: one connect and one reply, each under its own short timeout, and no
    retry (redis-py's own client retries three times by default)."""
    return {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": url,
        "KEY_PREFIX": "lukittu",
        "OPTIONS": {
            "socket_connect_timeout": connect_timeout,
            "socket_timeout": socket_timeout,
            "retry": Retry(NoBackoff(), 0),
        },
    }
