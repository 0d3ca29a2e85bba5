"""Release write use cases. Views and operator tools call these; nothing else writes releases.

A write with a file runs in three steps:

1. stage the file, holding no lock: inspect it (extension, JAR main class), reserve its bytes
   against the team's storage limit in a short transaction that records an ``UPLOADING``
   ledger entry, and write it to storage under a fresh key;
2. one transaction under the team's row lock, with database work only: the rules in the
   contract's order (the file's own problems, found in step 1, are reported at their place),
   the rows, the ledger (the upload becomes a referenced file; a replaced object is recorded
   as ``DELETING``), the audit entry;
3. after commit, and after the answer has been sent, delete the replaced object.

Writes of one team queue behind each other only for step 2, so the storage quota, "one latest"
and "one version" rules are checked against committed state, while a slow storage write holds
no lock and different teams never wait for each other. What happens to every stored object is
decided by committed ledger rows (``releases/ledger.py``), never by which exception was raised.
"""

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, OuterRef, Subquery
from django.utils import timezone

from lukittu import metrics
from lukittu.after_response import after_response
from lukittu.api import ApiError, Code
from releases import ledger
from releases.events import emit_release_write
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
from releases.serializers import release_payload, release_payload_from
from releases.storage import StorageBusy, release_file_key, storage_slot, store_object
from releases.uploads import ReleaseUpload
from teams.conditions import Conditions
from teams.models import License, Team
from teams.services import Actor, log_action
from webhooks import events as webhook_events

_EXTENSION = re.compile(r"\.([A-Za-z0-9]{1,16})$")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def team_of(actor: Actor) -> Team:
    """The team a release write is confined to: the actor's (``Actor.team``)."""
    if actor.team is None:
        raise ValueError(f"{actor.label} writes releases in no team: give Actor.team")
    return actor.team


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

    @property
    def becomes_latest(self) -> bool:
        return self.set_as_latest and self.status == ReleaseStatus.PUBLISHED

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


def _storage_limit_reached() -> ApiError:
    return ApiError(400, Code.BAD_REQUEST, "Storage limit reached")


# --- Step 1: stage the file, holding no lock -------------------------------------------------


@dataclass(frozen=True)
class StagedFile:
    """An upload, inspected and (unless ``error``) written to storage under ``key`` with its
    bytes reserved. ``error`` is what the upload will be refused with, reported when the rules
    reach the file (the contract's order), after the release, product, license and version
    problems that would come first."""

    key: str | None = None
    size: int = 0
    row_fields: dict[str, Any] = field(default_factory=dict)
    error: ApiError | None = None


def _inspect_upload(upload: ReleaseUpload) -> tuple[str, str | None, str | None, ApiError | None]:
    """The cleaned name, the extension, the main class, and the error the file is refused with."""
    name = clean_file_name(upload.name or "")
    extension = file_extension(name)
    if extension is None:
        return name, None, None, ApiError(400, Code.BAD_REQUEST, "File must have an extension")
    if extension != "jar":
        return name, extension, None, None
    try:
        main_class = find_main_class(upload.temporary_file_path())
    except InvalidJar:
        return name, extension, None, ApiError(400, Code.BAD_REQUEST, "Invalid JAR file")
    if main_class is None:
        error = ApiError(400, Code.BAD_REQUEST, "Main class not found in JAR file")
        return name, extension, None, error
    return name, extension, main_class, None


def _reserve_storage(
    *, team: Team, key: str, size: int, release_id: uuid.UUID, product_id: uuid.UUID | None
) -> bool:
    """Reserve ``size`` bytes under the team's lock, in a transaction of its own that commits
    the ``UPLOADING`` ledger entry before anything is written. The replaced file's bytes are
    freed first. False when the team's limit does not allow it. The first rule the locked
    write checks (the release of an update, the product of a create) is checked here too, so
    a request that is bound to fail stores nothing."""
    with transaction.atomic():
        locked = _lock_team(team)
        freed = 0
        if product_id is None:
            found = list(Release.objects.filter(team=team, pk=release_id).values_list("file__size"))
            if not found:
                raise ApiError(404, Code.RELEASE_NOT_FOUND, "Release not found")
            freed = found[0][0] or 0
        elif not Product.objects.filter(team=team, pk=product_id).exists():
            raise ApiError(404, Code.PRODUCT_NOT_FOUND, "Product not found")
        if not _within_limit(locked, adding=size, freeing=freed):
            return False
        ledger.record_upload(team=locked, key=key, size=size)
    return True


def _within_limit(
    locked_team: Team, *, adding: int, freeing: int, excluding: str | None = None
) -> bool:
    """Whether the team (locked by this transaction) has room for ``adding`` more bytes once
    ``freeing`` are freed, counting the uploads in flight other than ``excluding``. They are
    read in a statement of their own, after the lock: on PostgreSQL a statement that waited
    for the lock sees the locked row as it is now but the rest of the database as it was when
    the statement began, so a subquery in the locking statement could count an upload that
    committed meanwhile twice (once in flight, once stored)."""
    in_flight = ledger.uploads_in_flight(locked_team, excluding=excluding)
    total = locked_team.storage_used_bytes + in_flight + adding - freeing
    return total <= locked_team.storage_limit_bytes


def stage_file(
    *,
    team: Team,
    upload: ReleaseUpload,
    release_id: uuid.UUID,
    product_id: uuid.UUID | None = None,
) -> StagedFile:
    """Step 1 for an update (``product_id`` None) or a create of ``release_id``."""
    name, extension, main_class, error = _inspect_upload(upload)
    if error is not None or extension is None:
        return StagedFile(error=error)
    file_id = uuid.uuid4()
    key = release_file_key(
        team_id=team.pk, release_id=release_id, file_id=file_id, extension=extension
    )
    row_fields = {"id": file_id, "key": key, "name": name, "main_class_name": main_class}
    try:
        # One slot of the storage bulkhead from before the reservation (a busy storage then
        # refuses the upload with nothing recorded) until the write, or its abandonment, ends.
        with storage_slot():
            return _reserve_and_store(
                team=team,
                upload=upload,
                release_id=release_id,
                product_id=product_id,
                extension=extension,
                row_fields=row_fields,
            )
    except StorageBusy as busy:
        return StagedFile(error=busy)


def _reserve_and_store(
    *,
    team: Team,
    upload: ReleaseUpload,
    release_id: uuid.UUID,
    product_id: uuid.UUID | None,
    extension: str,
    row_fields: dict[str, Any],
) -> StagedFile:
    """Holding a storage slot: reserve the bytes, then write the object under its key."""
    key = row_fields["key"]
    reserved = _reserve_storage(
        team=team, key=key, size=upload.size, release_id=release_id, product_id=product_id
    )
    if not reserved:
        return StagedFile(error=_storage_limit_reached())
    # Renewed from now until the locked write has ended (``_write_locked``), so the
    # reservation outlives a dead request by at most one lease.
    ledger.leases.keep(key)
    try:
        # The digests were being computed while the file was inspected and its bytes
        # reserved. The write reads those it needs (S3 both, a local link neither), and the
        # slower MD5 finishes meanwhile.
        store_object(key=key, upload=upload, extension=extension, size=upload.size)
        md5, sha256 = upload.md5, upload.sha256
    except Exception as failure:
        metrics.count_storage_failure("write")
        # No row can reference the key yet: whatever the write left is abandoned.
        ledger.abandon_upload(key)
        if not isinstance(failure, ApiError):
            raise
        return StagedFile(error=failure)
    return StagedFile(
        key=key,
        size=upload.size,
        row_fields={**row_fields, "size": upload.size, "checksum": md5, "sha256": sha256},
    )


# --- Step 2: the locked transaction, and what its outcome decides ----------------------------


@dataclass
class TeamWrite:
    """What one locked write transaction decided about stored objects."""

    team: Team
    staged: StagedFile | None
    deletions: list[str] = field(default_factory=list)

    def replace_file(
        self, release: Release, old_file: ReleaseFile | None, *, reason: str
    ) -> ReleaseFile | None:
        """Swap the release's file row for the staged one (or none), keeping the ledger and
        the team's stored bytes in step with the rows. Returns the new row."""
        delta = 0
        new_file = None
        if old_file is not None:
            ReleaseFile.objects.filter(pk=old_file.pk).delete()
            ledger.record_deletion(team=self.team, key=old_file.key, reason=reason)
            self.deletions.append(old_file.key)
            delta -= old_file.size
        if self.staged is not None:
            new_file = ReleaseFile.objects.create(
                team=self.team, release=release, **self.staged.row_fields
            )
            ledger.settle_upload(key=new_file.key)
            delta += self.staged.size
        ledger.change_stored_bytes(self.team, delta)
        return new_file


def _lock_team(team: Team) -> Team:
    """The team's row, locked until the transaction ends: every write of the team queues
    here."""
    return Team.objects.select_for_update().get(pk=team.pk)


def _write_locked(
    team: Team,
    staged: StagedFile | None,
    body: Callable[[TeamWrite], dict[str, Any]],
    conditions: Conditions,
) -> dict[str, Any]:
    """Run ``body`` in one transaction holding the team's lock, which also stores the answer
    (``conditions.commit``), and return the payload ``body`` returns. What becomes of the
    objects follows from how far the transaction got, not from any exception's type:

    - ``body`` raised: the transaction rolled back, so nothing references the staged object,
      which is abandoned. That includes a reservation found lapsed (``ledger.settle_upload``):
      the write then answers 503 rather than reference an object the reconciler may delete;
    - the COMMIT was sent but raised (its answer lost): the outcome is unknown, so nothing is
      deleted here; the committed ledger rows tell ``reconcile_storage`` what to do;
    - committed: the objects it recorded as ``DELETING`` are deleted.
    """
    write = TeamWrite(team=team, staged=staged)

    def locked() -> dict[str, Any]:
        write.team = _lock_team(team)
        return body(write)

    try:
        result = conditions.commit(locked)
    finally:
        if staged is not None and staged.key is not None:
            ledger.leases.release(staged.key)
            if not conditions.commit_sent:
                ledger.abandon_upload(staged.key)
    metrics.count_stored_file(staged)
    if write.deletions:
        keys = list(write.deletions)
        # Once committed (now, when this was the outermost transaction), and once the answer
        # has been sent: the client need not wait for the old object's delete.
        transaction.on_commit(lambda: after_response(lambda: ledger.finish_deletions(keys)))
    return result


def check_upload_allowed(
    *, actor: Actor, upload: ReleaseUpload | None, max_file_bytes: int
) -> None:
    if upload is None:
        return
    if upload.too_large or upload.size > max_file_bytes:
        raise file_too_large(max_file_bytes)
    # A billing rule for API clients; operators (no API key) may attach files regardless.
    if actor.api_key is not None and not team_of(actor).file_uploads_enabled:
        raise ApiError(403, Code.FORBIDDEN, "File uploads require a paid subscription")


# --- The rules, in the contract's order ------------------------------------------------------


def _rule_annotations(
    *, team: Team, changes: ReleaseChanges, exclude: Any = None
) -> dict[str, Any]:
    """What the rules need, as annotations for the one query that loads the release (update)
    or the product (create): whether the new version is taken, how many of the license ids
    are the team's and, when the release becomes latest, which release of its line it takes
    ``latest`` from (at most one: ``release_one_latest_*``)."""

    def in_line(**filters: Any) -> Any:
        line = Release.objects.filter(
            product_id=changes.product_id, branch_id=changes.branch_id, **filters
        )
        return line if exclude is None else line.exclude(pk=exclude)

    annotations: dict[str, Any] = {"version_taken": Exists(in_line(version=changes.version))}
    if changes.becomes_latest:
        annotations["latest_replaced"] = Subquery(in_line(latest=True).values("pk")[:1])
    if changes.license_ids:
        annotations["licenses_found"] = Subquery(
            License.objects.filter(team=team, pk__in=changes.license_ids)
            .order_by()
            .values("team")
            .annotate(found=Count("pk"))
            .values("found")
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
    *, product: Product, branch_id: uuid.UUID | None, known: Branch | None = None
) -> Branch | None:
    if branch_id is None:
        return None
    if known is not None and known.pk == branch_id and known.product_id == product.pk:
        return known
    branch = Branch.objects.filter(product=product, pk=branch_id).first()
    if branch is None:
        raise ApiError(404, Code.RELEASE_NOT_FOUND, "Branch not found")
    return branch


@dataclass(frozen=True)
class RuleFacts:
    """What the locked query found for the remaining rules."""

    version_taken: bool
    licenses_found: int | None
    release_count: int = 0
    latest_replaced: uuid.UUID | None = None

    @classmethod
    def of(cls, row: Any) -> "RuleFacts":
        return cls(
            version_taken=row.version_taken,
            licenses_found=getattr(row, "licenses_found", None),
            release_count=getattr(row, "release_count", 0),
            latest_replaced=getattr(row, "latest_replaced", None),
        )


def _check_rules(
    *, write: TeamWrite, release: Release, facts: RuleFacts, changes: ReleaseChanges
) -> None:
    """The rules after the release, product and branch, in the contract's order, the staged
    file's own problems and the storage limit last."""
    is_new = release._state.adding
    if changes.license_ids and (facts.licenses_found or 0) != len(changes.license_ids):
        raise ApiError(404, Code.LICENSE_NOT_FOUND, "One or more license IDs not found")
    stays_published = changes.status == ReleaseStatus.PUBLISHED
    if changes.license_ids and (changes.set_as_latest or (release.latest and stays_published)):
        raise ApiError(
            400, Code.BAD_REQUEST, "Cannot set as latest release when license IDs are provided"
        )
    if is_new and facts.release_count >= write.team.max_releases_per_product:
        raise ApiError(403, Code.FORBIDDEN, "Max releases per product reached")
    if facts.version_taken:
        raise _version_conflict()
    staged = write.staged
    if staged is None:
        return
    if staged.error is not None:
        raise staged.error
    # Checked again under the lock: the replaced file may have changed since the reservation.
    old_file = None if is_new else release.current_file
    freed = old_file.size if old_file else 0
    if not _within_limit(write.team, adding=staged.size, freeing=freed, excluding=staged.key):
        raise _storage_limit_reached()


# --- Step 2's writes ---------------------------------------------------------------------------


def _save_release(
    *,
    release: Release,
    product: Product,
    branch: Branch | None,
    changes: ReleaseChanges,
    latest_replaced: uuid.UUID | None,
) -> list[uuid.UUID]:
    """Save the release's own row, first taking ``latest`` from its line when it becomes
    latest. Returns the releases it demoted: ``latest_replaced``, which the locked query found
    as the line's latest (the team's lock keeps it so until the write ends)."""
    demoted: list[uuid.UUID] = []
    if changes.becomes_latest:
        Release.objects.filter(product=product, branch=branch, latest=True).exclude(
            pk=release.pk
        ).update(latest=False, updated_at=timezone.now())
        demoted = [latest_replaced] if latest_replaced is not None else []
    is_new = release._state.adding
    release.product = product
    release.branch = branch
    release.version = changes.version
    release.status = changes.status
    release.latest = changes.becomes_latest
    try:
        release.save(force_insert=is_new)
    except IntegrityError as error:
        if is_version_conflict(error):
            raise _version_conflict() from error
        raise
    return demoted


def _replace_lists(
    release: Release, changes: ReleaseChanges, *, is_new: bool
) -> tuple[list[ReleaseMetadata], list[uuid.UUID]]:
    """``metadata`` and ``licenseIds`` replace the previous lists."""
    if not is_new:
        ReleaseMetadata.objects.filter(release=release).delete()
        ReleaseLicense.objects.filter(release=release).delete()
    metadata = ReleaseMetadata.objects.bulk_create(
        ReleaseMetadata(release=release, position=position, **item)
        for position, item in enumerate(changes.metadata)
    )
    ReleaseLicense.objects.bulk_create(
        ReleaseLicense(release=release, license_id=license_id) for license_id in changes.license_ids
    )
    return metadata, list(changes.license_ids)


def _write_release(
    *,
    write: TeamWrite,
    actor: Actor,
    release: Release,
    product: Product,
    branch: Branch | None,
    changes: ReleaseChanges,
    facts: RuleFacts,
    request_data: Any,
) -> dict[str, Any]:
    """The rules that remain (``_check_rules``), then the rows of a create or update, its audit
    entry and its webhook events. Returns the release as the API shows it."""
    _check_rules(write=write, release=release, facts=facts, changes=changes)
    is_new = release._state.adding
    old_file = None if is_new else release.current_file
    demoted = _save_release(
        release=release,
        product=product,
        branch=branch,
        changes=changes,
        latest_replaced=facts.latest_replaced,
    )
    file = old_file
    if write.staged is not None or (old_file is not None and not changes.keep_existing_file):
        file = write.replace_file(release, old_file, reason="replaced")
    metadata, license_ids = _replace_lists(release, changes, is_new=is_new)
    payload = release_payload_from(release, file=file, metadata=metadata, license_ids=license_ids)
    action = "release.create" if is_new else "release.update"
    log_action(
        actor=actor,
        action=action,
        target=release,
        request_data=request_data,
        result=payload,
        team=write.team,
    )
    emit_release_write(write.team, payload, created=is_new, demoted=demoted)
    return payload


# --- The use cases -----------------------------------------------------------------------------


def release_update(
    *,
    actor: Actor,
    release_id: uuid.UUID,
    changes: ReleaseChanges,
    upload: ReleaseUpload | None,
    max_file_bytes: int,
    request_data: dict[str, Any] | None = None,
    conditions: Conditions | None = None,
) -> dict[str, Any]:
    """Apply an Update Release request and return the release as the API shows it. Either
    everything changes or nothing does: on any failure the release, its metadata, licenses
    and file (row and bytes) stay as they were and no new object is left behind.
    ``conditions`` (If-Match, Idempotency-Key) are checked and answered under the lock."""
    check_upload_allowed(actor=actor, upload=upload, max_file_bytes=max_file_bytes)
    team, conditions = team_of(actor), conditions or Conditions()
    staged = None
    if upload is not None:
        staged = stage_file(team=team, upload=upload, release_id=release_id)

    def body(write: TeamWrite) -> dict[str, Any]:
        release = (
            Release.objects.filter(team=team, pk=release_id)
            .select_related("product", "branch", "file")
            .annotate(**_rule_annotations(team=team, changes=changes, exclude=OuterRef("pk")))
            .first()
        )
        if release is None:
            raise ApiError(404, Code.RELEASE_NOT_FOUND, "Release not found")
        conditions.check_current(lambda: release_payload(release))
        product = _resolve_product(team=team, release=release, product_id=changes.product_id)
        branch = _resolve_branch(product=product, branch_id=changes.branch_id, known=release.branch)
        return _write_release(
            write=write,
            actor=actor,
            release=release,
            product=product,
            branch=branch,
            changes=changes,
            facts=RuleFacts.of(release),
            request_data=request_data,
        )

    return _write_locked(team, staged, body, conditions)


def release_create(
    *,
    actor: Actor,
    changes: ReleaseChanges,
    upload: ReleaseUpload | None,
    max_file_bytes: int,
    request_data: dict[str, Any] | None = None,
    conditions: Conditions | None = None,
) -> dict[str, Any]:
    """Create a release, with the update's rules and guarantees (nothing is left behind when it
    fails), plus the team's per-product release limit. Returns it as the API shows it."""
    check_upload_allowed(actor=actor, upload=upload, max_file_bytes=max_file_bytes)
    team = team_of(actor)
    release_id = uuid.uuid4()
    staged = None
    if upload is not None:
        staged = stage_file(
            team=team, upload=upload, release_id=release_id, product_id=changes.product_id
        )

    def body(write: TeamWrite) -> dict[str, Any]:
        product = (
            Product.objects.filter(team=team, pk=changes.product_id)
            .annotate(
                release_count=Count("releases"),
                **_rule_annotations(team=team, changes=changes),
            )
            .first()
        )
        if product is None:
            raise ApiError(404, Code.PRODUCT_NOT_FOUND, "Product not found")
        branch = _resolve_branch(product=product, branch_id=changes.branch_id)
        release = Release(id=release_id, team=team, product=product, branch=branch)
        return _write_release(
            write=write,
            actor=actor,
            release=release,
            product=product,
            branch=branch,
            changes=changes,
            facts=RuleFacts.of(product),
            request_data=request_data,
        )

    return _write_locked(team, staged, body, conditions or Conditions())


def release_delete(
    *, actor: Actor, release_id: uuid.UUID, conditions: Conditions | None = None
) -> dict[str, Any]:
    """Delete a release with its metadata, license links and file row; its stored object is
    deleted after commit. A deleted latest release leaves its product and branch without one.
    Returns the release as it was."""
    team, conditions = team_of(actor), conditions or Conditions()

    def body(write: TeamWrite) -> dict[str, Any]:
        release = (
            Release.objects.filter(team=team, pk=release_id)
            .select_related("product", "branch", "file")
            .prefetch_related("metadata", "license_links")
            .first()
        )
        if release is None:
            raise ApiError(404, Code.RELEASE_NOT_FOUND, "Release not found")
        payload = release_payload(release)
        conditions.check_current(lambda: payload)
        file = release.current_file
        if file is not None:
            write.replace_file(release, file, reason="release deleted")
        log_action(actor=actor, action="release.delete", target=release, result=payload, team=team)
        release.delete()
        webhook_events.emit(team, "release.deleted", payload)
        return payload

    return _write_locked(team, None, body, conditions)
