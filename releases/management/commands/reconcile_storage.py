"""manage.py reconcile_storage [--dry-run] [--older-than MINUTES]

Finishes, from committed rows alone, whatever a failed, timed-out or killed request left:

1. ``DELETING`` ledger entries: deletes their objects (a replaced or removed build, an
   abandoned upload), then the entries;
2. ``UPLOADING`` entries whose lease has lapsed: their request died or gave up (a live one
   renews its lease), and a lapsed reservation can never be settled, so the upload was
   abandoned: its reservation ends and its object is deleted. Each is marked by a statement
   that re-checks the lease on the row, so an upload committing meanwhile is never touched;
3. objects under ``releases/`` that neither a release file nor a ledger entry accounts for
   and that are older than the grace period (true orphans) are deleted;
4. temporary upload files older than the grace period (left by killed workers) are removed;
5. each team's stored-bytes total is checked against its files, and corrected;
6. release files whose object is missing are reported, and the command exits with status 1.

An object that a release file references is never deleted: that is checked again right
before each delete.
"""

import os
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from lukittu import metrics
from releases.ledger import abandon_lapsed, finish_deletions, lapsed_uploads
from releases.models import LedgerEntry, ReleaseFile
from releases.storage import STORAGE_ERRORS, delete_object, list_objects
from teams.models import Team

DEFAULT_GRACE_MINUTES = 60
State = LedgerEntry.State


class Command(BaseCommand):
    help = "Finish interrupted deletes and uploads, delete orphans, report missing objects."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Report, delete nothing.")
        parser.add_argument(
            "--older-than",
            type=int,
            default=DEFAULT_GRACE_MINUTES,
            metavar="MINUTES",
            help=(
                "Grace period for orphans and temporary files "
                f"(default {DEFAULT_GRACE_MINUTES}; keep it above the longest request)."
            ),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["older_than"] < 0:
            self.stderr.write("--older-than must not be negative")
            raise SystemExit(2)
        self.dry_run: bool = options["dry_run"]
        self.verb = "would delete" if self.dry_run else "deleted"
        started = timezone.now()
        cutoff = started - timedelta(minutes=options["older_than"])

        # Listed first: a row committed after the listing can only add references, and an
        # object written after it is not looked at.
        objects = self.list_stored_objects()
        deleting = self.finish_deleting()
        abandoned = self.abandon_lapsed_uploads()
        accounted = set(LedgerEntry.objects.values_list("key", flat=True))
        rows = list(ReleaseFile.objects.values_list("key", "release_id", "created_at"))
        referenced = {key for key, _, _ in rows}
        for key in deleting + abandoned:
            objects.pop(key, None)
        orphans, kept_recent, failed = self.delete_orphans(objects, referenced | accounted, cutoff)
        temporary = self.remove_stale_temporary_files(options["older_than"])
        drifted = self.correct_stored_bytes()
        missing = [
            (key, release_id)
            for key, release_id, created_at in rows
            if key not in objects and created_at < started
        ]
        for key, release_id in missing:
            self.stderr.write(f"MISSING object {key} of release {release_id}")

        self.stdout.write(
            f"Scanned {len(objects)} objects and {len(referenced)} release files: "
            f"{self.verb} {len(deleting)} objects due for deletion, "
            f"{len(abandoned)} abandoned uploads, {orphans} orphaned objects "
            f"and {temporary} temporary files; kept {kept_recent} orphans younger than "
            f"{options['older_than']} minutes; {failed} deletes failed; "
            f"{drifted} storage totals corrected; "
            f"{len(missing)} release files missing their object."
        )
        metrics.count_reconcile_findings(
            dry_run=self.dry_run,
            deleted=len(deleting),
            abandoned=len(abandoned),
            orphans=orphans,
            temporary=temporary,
            corrected=drifted,
            missing=len(missing),
            failed=failed,
        )
        if missing:
            raise SystemExit(1)

    def finish_deleting(self) -> list[str]:
        keys = list(LedgerEntry.objects.filter(state=State.DELETING).values_list("key", flat=True))
        if self.dry_run:
            for key in keys:
                self.stdout.write(f"{self.verb} {key} (due for deletion)")
            return keys
        done = finish_deletions(keys)
        for key in keys:
            self.stdout.write(f"{self.verb if key in done else 'could not delete'} {key}")
        return done

    def list_stored_objects(self) -> dict[str, Any]:
        """Every object under ``releases/``. A storage that cannot be listed ends the run with
        one line on stderr (and exit status 1) rather than a traceback."""
        try:
            return {item.key: item for item in list_objects()}
        except STORAGE_ERRORS as error:
            reason = " ".join(str(error).split()) or type(error).__name__
            raise CommandError(f"Storage unavailable, nothing reconciled: {reason}") from None

    def abandon_lapsed_uploads(self) -> list[str]:
        if self.dry_run:
            keys = list(lapsed_uploads().values_list("key", flat=True))
            for key in keys:
                self.stdout.write(f"{self.verb} {key} (abandoned upload)")
            return keys
        # An entry whose key a release file references would be a leftover of a write that
        # committed before writes settled their entries in the same transaction.
        LedgerEntry.objects.filter(
            state=State.UPLOADING, key__in=ReleaseFile.objects.values("key")
        ).delete()
        return abandon_lapsed()

    def delete_orphans(
        self, objects: dict[str, Any], accounted: set[str], cutoff: Any
    ) -> tuple[int, int, int]:
        deleted = kept_recent = failed = 0
        for key, item in sorted(objects.items()):
            if key in accounted:
                continue
            if item.modified_at > cutoff:
                kept_recent += 1
                continue
            if ReleaseFile.objects.filter(key=key).exists():
                continue  # committed since the listing
            if not self.dry_run:
                try:
                    delete_object(key)
                except STORAGE_ERRORS as error:
                    failed += 1
                    self.stderr.write(f"could not delete {key}: {error}")
                    continue
            self.stdout.write(f"{self.verb} orphan {key} ({item.size} bytes)")
            deleted += 1
        return deleted, kept_recent, failed

    def remove_stale_temporary_files(self, minutes: int) -> int:
        folder = settings.FILE_UPLOAD_TEMP_DIR
        if not folder or not os.path.isdir(folder):
            return 0
        cutoff = time.time() - minutes * 60
        removed = 0
        with os.scandir(folder) as entries:
            for entry in entries:
                if not entry.is_file(follow_symlinks=False):
                    continue
                if entry.stat(follow_symlinks=False).st_mtime >= cutoff:
                    continue
                if not self.dry_run:
                    try:
                        os.unlink(entry.path)
                    except FileNotFoundError:
                        continue
                self.stdout.write(f"{self.verb} temporary file {entry.name}")
                removed += 1
        return removed

    def correct_stored_bytes(self) -> int:
        """Each team's maintained total against the sum of its files, taken under the team's
        lock so no write moves either while they are compared."""
        corrected = 0
        for team_id in Team.objects.values_list("pk", flat=True):
            with transaction.atomic():
                team = Team.objects.select_for_update().get(pk=team_id)
                actual = (
                    ReleaseFile.objects.filter(team=team).aggregate(total=Sum("size"))["total"] or 0
                )
                if team.storage_used_bytes == actual:
                    continue
                self.stderr.write(
                    f"team {team.pk}: stored bytes recorded {team.storage_used_bytes}, "
                    f"files hold {actual}" + ("" if self.dry_run else "; corrected")
                )
                if not self.dry_run:
                    Team.objects.filter(pk=team.pk).update(storage_used_bytes=actual)
                corrected += 1
        return corrected
