"""The ``STORAGES["default"]`` entry for S3, shared by the settings and the tests."""

from typing import Any


def s3_storage(
    *,
    bucket_name: str,
    endpoint_url: str | None = None,
    region_name: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
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
        },
    }
