"""Release write use cases. Views and operator tools call these; nothing else writes releases.

Every write for a team takes that team's row lock first, so writes of one team queue behind each
other (the storage quota, "one latest" and "one version" rules are then checked against
committed state), while different teams never wait for each other.
"""

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from lukittu.api import ApiError, Code
from releases.jar import InvalidJar, find_main_class
from releases.models import (
    VERSION_CONFLICT_CONSTRAINTS,
    Branch,
    Product,
    Release,
    ReleaseFile,
    ReleaseLicense,
    ReleaseMetadata,
    ReleaseStatus,
)
from releases.serializers import release_payload
from releases.storage import delete_object_quietly, release_file_key, store_object
from releases.uploads import ReleaseUpload
from teams.models import ApiKey, AuditLog, License, Team

_EXTENSION = re.compile(r"\.([A-Za-z0-9]{1,16})$")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Actor:
    """Who is writing: an API key, or an operator (then ``api_key`` is None)."""

    team: Team
    label: str
    api_key: ApiKey | None = None
    ip_address: str | None = None
    user_agent: str = ""


@dataclass(frozen=True)
class ReleaseChanges:
    version: str
    product_id: uuid.UUID
    status: str
    set_as_latest: bool
    keep_existing_file: bool
    branch_id: uuid.UUID | None
    metadata: list[dict[str, Any]]
    license_ids: list[uuid.UUID]

    @classmethod
    def from_validated(cls, data: dict[str, Any]) -> "ReleaseChanges":
        """From the create or update serializer's data (create's optional fields defaulted)."""
        return cls(
            version=data["version"],
            product_id=data["productId"],
            status=data["status"],
            set_as_latest=data.get("setAsLatest", False),
            keep_existing_file=data.get("keepExistingFile", False),
            branch_id=data.get("branchId"),
            metadata=data.get("metadata", []),
            license_ids=data.get("licenseIds", []),
        )


def file_too_large(max_bytes: int) -> ApiError:
    return ApiError(
        413,
        Code.BAD_REQUEST,
        f"File too large. Maximum size is {max_bytes // (1024 * 1024)} MB",
    )


def clean_file_name(name: str) -> str:
    """The client's name without any path or control characters, at most 255 characters."""
    name = _CONTROL_CHARACTERS.sub("", name).replace("\\", "/").rsplit("/", 1)[-1].strip()
    if len(name) > 255:
        stem, dot, extension = name.rpartition(".")
        name = f"{stem[: 254 - len(extension)]}.{extension}" if dot else name[:255]
    return name


def file_extension(name: str) -> str | None:
    match = _EXTENSION.search(name)
    return match.group(1).lower() if match else None


def is_version_conflict(error: IntegrityError) -> bool:
    text = str(error)
    return any(name in text for name in VERSION_CONFLICT_CONSTRAINTS) or (
        "UNIQUE constraint failed" in text and "releases_release.version" in text
    )


def _version_conflict() -> ApiError:
    return ApiError(
        409,
        Code.BAD_REQUEST,
        "A release with this version already exists for this product and branch",
    )


def _rule_annotations(
    *, team: Team, changes: ReleaseChanges, upload: ReleaseUpload | None, exclude: Any = None
) -> dict[str, Any]:
    """What the rules need, as annotations for the one query that loads the release (update)
    or the product (create): whether the new version is taken, how many of the license ids are
    the team's, and the team's stored bytes (one aggregate)."""
    same_version = Release.objects.filter(
        product_id=changes.product_id, branch_id=changes.branch_id, version=changes.version
    )
    if exclude is not None:
        same_version = same_version.exclude(pk=exclude)
    annotations: dict[str, Any] = {"version_taken": Exists(same_version)}
    if changes.license_ids:
        annotations["licenses_found"] = Subquery(
            License.objects.filter(team=team, pk__in=changes.license_ids)
            .order_by()
            .values("team")
            .annotate(found=Count("pk"))
            .values("found")
        )
    if upload is not None:
        annotations["storage_used"] = Coalesce(
            Subquery(
                ReleaseFile.objects.filter(team=team)
                .order_by()
                .values("team")
                .annotate(total=Sum("size"))
                .values("total")
            ),
            0,
        )
    return annotations


def _resolve_product(*, team: Team, release: Release, product_id: uuid.UUID) -> Product:
    if product_id == release.product_id:
        return release.product
    product = Product.objects.filter(team=team, pk=product_id).first()
    if product is None:
        raise ApiError(404, Code.PRODUCT_NOT_FOUND, "Product not found")
    return product


def _resolve_branch(
    *, release: Release, product: Product, branch_id: uuid.UUID | None
) -> Branch | None:
    if branch_id is None:
        return None
    if branch_id == release.branch_id and product.pk == release.product_id:
        return release.branch
    branch = Branch.objects.filter(product=product, pk=branch_id).first()
    if branch is None:
        raise ApiError(404, Code.RELEASE_NOT_FOUND, "Branch not found")
    return branch


def _inspect_upload(upload: ReleaseUpload) -> tuple[str, str, str | None]:
    """The cleaned name, the extension and the main class of an uploaded file."""
    name = clean_file_name(upload.name or "")
    extension = file_extension(name)
    if extension is None:
        raise ApiError(400, Code.BAD_REQUEST, "File must have an extension")
    main_class = None
    if extension == "jar":
        try:
            main_class = find_main_class(upload.temporary_file_path())
        except InvalidJar:
            raise ApiError(400, Code.BAD_REQUEST, "Invalid JAR file") from None
        if main_class is None:
            raise ApiError(400, Code.BAD_REQUEST, "Main class not found in JAR file")
    return name, extension, main_class


def _cache_related(release: Release, name: str, objects: list[Any]) -> None:
    """Fill the prefetch cache the way ``prefetch_related`` would, with rows we just wrote, so
    the response is built without reading them back."""
    queryset = getattr(release, name).all()
    queryset._result_cache = objects
    queryset._prefetch_done = True
    if not hasattr(release, "_prefetched_objects_cache"):
        release._prefetched_objects_cache = {}
    release._prefetched_objects_cache[name] = queryset


def _check_upload_allowed(
    *, actor: Actor, upload: ReleaseUpload | None, max_file_bytes: int
) -> None:
    if upload is None:
        return
    if upload.too_large or upload.size > max_file_bytes:
        raise file_too_large(max_file_bytes)
    # A billing rule for API clients; operators (no API key) may attach files regardless.
    if actor.api_key is not None and not actor.team.file_uploads_enabled:
        raise ApiError(403, Code.FORBIDDEN, "File uploads require a paid subscription")


def _audit(
    *, actor: Actor, action: str, release_id: uuid.UUID, request_data: Any, result: Any
) -> None:
    AuditLog.objects.create(
        team=actor.team,
        api_key=actor.api_key,
        actor=actor.label,
        action=action,
        target_type="release",
        target_id=str(release_id),
        ip_address=actor.ip_address,
        user_agent=actor.user_agent[:512],
        request_data=request_data,
        result=result,
    )


def _apply_changes(
    *,
    actor: Actor,
    locked_team: Team,
    release: Release,
    facts: Any,
    product: Product,
    branch: Branch | None,
    changes: ReleaseChanges,
    upload: ReleaseUpload | None,
    written: list[str],
    request_data: Any,
) -> str | None:
    """The part of create and update after the release and product are known: the remaining
    rules in the contract's order, the new object, the rows, the audit entry. ``facts`` carries
    the ``_rule_annotations``. Returns the key of the object to delete after commit."""
    is_new = release._state.adding
    if changes.license_ids and (facts.licenses_found or 0) != len(changes.license_ids):
        raise ApiError(404, Code.LICENSE_NOT_FOUND, "One or more license IDs not found")
    stays_published = changes.status == ReleaseStatus.PUBLISHED
    if changes.license_ids and (changes.set_as_latest or (release.latest and stays_published)):
        raise ApiError(
            400, Code.BAD_REQUEST, "Cannot set as latest release when license IDs are provided"
        )
    if is_new and facts.release_count >= locked_team.max_releases_per_product:
        raise ApiError(403, Code.FORBIDDEN, "Max releases per product reached")
    if facts.version_taken:
        raise _version_conflict()

    old_file = None if is_new else release.current_file
    file_fields: dict[str, Any] | None = None
    if upload is not None:
        name, extension, main_class = _inspect_upload(upload)
        freed = old_file.size if old_file else 0
        if facts.storage_used - freed + upload.size > locked_team.storage_limit_bytes:
            raise ApiError(400, Code.BAD_REQUEST, "Storage limit reached")
        file_id = uuid.uuid4()
        key = release_file_key(
            team_id=locked_team.pk, release_id=release.pk, file_id=file_id, extension=extension
        )
        written.append(key)
        store_object(
            key=key,
            content=upload,
            extension=extension,
            size=upload.size,
            md5=upload.md5,
            sha256=upload.sha256,
        )
        file_fields = {
            "id": file_id,
            "key": key,
            "size": upload.size,
            "name": name,
            "checksum": upload.md5,
            "sha256": upload.sha256,
            "main_class_name": main_class,
        }

    becomes_latest = changes.set_as_latest and stays_published
    if becomes_latest:
        Release.objects.filter(product=product, branch=branch, latest=True).exclude(
            pk=release.pk
        ).update(latest=False, updated_at=timezone.now())
    release.product = product
    release.branch = branch
    release.version = changes.version
    release.status = changes.status
    release.latest = becomes_latest
    try:
        release.save(force_insert=is_new)
    except IntegrityError as error:
        if is_version_conflict(error):
            raise _version_conflict() from error
        raise

    replaced_key: str | None = None
    if old_file is not None and (upload is not None or not changes.keep_existing_file):
        ReleaseFile.objects.filter(pk=old_file.pk).delete()
        replaced_key = old_file.key
        Release._meta.get_field("file").set_cached_value(release, None)
    elif is_new:
        Release._meta.get_field("file").set_cached_value(release, None)
    if file_fields is not None:
        ReleaseFile.objects.create(team=locked_team, release=release, **file_fields)

    if not is_new:
        ReleaseMetadata.objects.filter(release=release).delete()
    metadata = ReleaseMetadata.objects.bulk_create(
        ReleaseMetadata(release=release, position=position, **item)
        for position, item in enumerate(changes.metadata)
    )
    if not is_new:
        ReleaseLicense.objects.filter(release=release).delete()
    links = ReleaseLicense.objects.bulk_create(
        ReleaseLicense(release=release, license_id=license_id) for license_id in changes.license_ids
    )
    _cache_related(release, "metadata", metadata)
    _cache_related(release, "license_links", links)
    _audit(
        actor=actor,
        action="release.create" if is_new else "release.update",
        release_id=release.pk,
        request_data=request_data,
        result=release_payload(release),
    )
    return replaced_key


def _after_commit_delete(key: str | None, reason: str) -> None:
    if key is not None:
        transaction.on_commit(lambda: delete_object_quietly(key, reason=reason))


@contextmanager
def _team_write(team: Team) -> Iterator[tuple[Team, list[str]]]:
    """One transaction holding the team's write lock. Objects the block writes to storage are
    listed in the yielded list, and deleted if the block (or its commit) fails."""
    written: list[str] = []
    try:
        with transaction.atomic():
            yield Team.objects.select_for_update().get(pk=team.pk), written
    except BaseException:
        for key in written:
            delete_object_quietly(key, reason="write abandoned")
        raise


def release_update(
    *,
    actor: Actor,
    release_id: uuid.UUID,
    changes: ReleaseChanges,
    upload: ReleaseUpload | None,
    max_file_bytes: int,
    request_data: dict[str, Any] | None = None,
) -> Release:
    """Apply an Update Release request. Either everything changes or nothing does: on any
    failure the release, its metadata, licenses and file (row and bytes) stay as they were and
    the newly stored object is removed; the replaced object is deleted only after commit."""
    _check_upload_allowed(actor=actor, upload=upload, max_file_bytes=max_file_bytes)
    team = actor.team
    with _team_write(team) as (locked_team, written):
        release = (
            Release.objects.filter(team=team, pk=release_id)
            .select_related("product", "branch", "file")
            .annotate(
                **_rule_annotations(
                    team=team, changes=changes, upload=upload, exclude=OuterRef("pk")
                )
            )
            .first()
        )
        if release is None:
            raise ApiError(404, Code.RELEASE_NOT_FOUND, "Release not found")
        product = _resolve_product(team=team, release=release, product_id=changes.product_id)
        branch = _resolve_branch(release=release, product=product, branch_id=changes.branch_id)
        replaced_key = _apply_changes(
            actor=actor,
            locked_team=locked_team,
            release=release,
            facts=release,
            product=product,
            branch=branch,
            changes=changes,
            upload=upload,
            written=written,
            request_data=request_data,
        )
        _after_commit_delete(replaced_key, "replaced")
    return release


def release_create(
    *,
    actor: Actor,
    changes: ReleaseChanges,
    upload: ReleaseUpload | None,
    max_file_bytes: int,
    request_data: dict[str, Any] | None = None,
) -> Release:
    """Create a release, with the update's rules and guarantees (nothing is left behind when it
    fails), plus the team's per-product release limit."""
    _check_upload_allowed(actor=actor, upload=upload, max_file_bytes=max_file_bytes)
    team = actor.team
    with _team_write(team) as (locked_team, written):
        product = (
            Product.objects.filter(team=team, pk=changes.product_id)
            .annotate(
                release_count=Count("releases"),
                **_rule_annotations(team=team, changes=changes, upload=upload),
            )
            .first()
        )
        if product is None:
            raise ApiError(404, Code.PRODUCT_NOT_FOUND, "Product not found")
        branch = None
        if changes.branch_id is not None:
            branch = Branch.objects.filter(product=product, pk=changes.branch_id).first()
            if branch is None:
                raise ApiError(404, Code.RELEASE_NOT_FOUND, "Branch not found")
        release = Release(team=team, product=product, branch=branch)
        _apply_changes(
            actor=actor,
            locked_team=locked_team,
            release=release,
            facts=product,
            product=product,
            branch=branch,
            changes=changes,
            upload=upload,
            written=written,
            request_data=request_data,
        )
    return release


def release_delete(*, actor: Actor, release_id: uuid.UUID) -> dict[str, Any]:
    """Delete a release with its metadata, license links and file row; its stored object is
    deleted after commit. A deleted latest release leaves its product and branch without one.
    Returns the release as it was."""
    team = actor.team
    with _team_write(team):
        release = (
            Release.objects.filter(team=team, pk=release_id)
            .select_related("product", "branch", "file")
            .prefetch_related("metadata", "license_links")
            .first()
        )
        if release is None:
            raise ApiError(404, Code.RELEASE_NOT_FOUND, "Release not found")
        payload = release_payload(release)
        file = release.current_file
        release.delete()
        _audit(
            actor=actor,
            action="release.delete",
            release_id=release_id,
            request_data=None,
            result=payload,
        )
        _after_commit_delete(file.key if file else None, "release deleted")
    return payload
