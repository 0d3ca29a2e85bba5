"""Schemathesis hooks for scripts/conformance.sh.

Two rules of the ``data`` JSON cannot be written in OpenAPI 3.0's JSON Schema, so the schema
states them in words: metadata keys are unique in the list, and an update may not give
licenses to a release that is latest and stays PUBLISHED (which depends on the stored release).
Schema-valid (positive) test cases are adjusted to follow them, so that they are valid by every
documented rule; negative cases are left alone. Nothing is filtered out and no check changes."""

import schemathesis
from schemathesis.generation.modes import GenerationMode


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


def no_licenses_for_a_latest_release(data):
    # The release may be latest (seeded, or made so earlier in the run): with licenses it must
    # not stay PUBLISHED.
    if data.get("licenseIds") and data.get("status") == "PUBLISHED":
        data["status"] = "DRAFT"


@schemathesis.hook
def map_case(ctx, case):
    meta = case.meta
    if meta is None or meta.generation.mode != GenerationMode.POSITIVE:
        return case
    body = case.body
    data = body.get("data") if isinstance(body, dict) else None
    if isinstance(data, dict):
        unique_metadata_keys(data)
        if case.method.upper() == "PUT":  # updateRelease
            no_licenses_for_a_latest_release(data)
    return case
