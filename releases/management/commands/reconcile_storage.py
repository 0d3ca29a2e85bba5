"""manage.py reconcile_storage [--dry-run] [--older-than MINUTES]

Makes storage and database agree again after failures that the update could not clean up
itself (a delete that failed, a process that died between commit and delete):

1. retries the deletes recorded as stale objects;
2. deletes objects under ``releases/`` that no ReleaseFile references and that are older than
   the grace period (younger ones may belong to an upload still in flight);
3. reports ReleaseFile rows whose object is missing, and exits with status 1 if there are any.
"""

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from releases.models import ReleaseFile, StaleObject
from releases.storage import STORAGE_ERRORS, delete_object, list_objects

DEFAULT_GRACE_MINUTES = 60


class Command(BaseCommand):
    help = "Delete orphaned release objects and report release files whose object is missing."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Report, delete nothing.")
        parser.add_argument(
            "--older-than",
            type=int,
            default=DEFAULT_GRACE_MINUTES,
            metavar="MINUTES",
            help=f"Only delete orphans older than this (default {DEFAULT_GRACE_MINUTES}).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        dry_run: bool = options["dry_run"]
        if options["older_than"] < 0:
            self.stderr.write("--older-than must not be negative")
            raise SystemExit(2)
        started = timezone.now()
        cutoff = started - timedelta(minutes=options["older_than"])
        verb = "would delete" if dry_run else "deleted"

        # Listed before the rows are read: an object written after this point is not looked at,
        # and a row committed after it is not reported missing (see created_at below).
        objects = {item.key: item for item in list_objects()}
        rows = list(ReleaseFile.objects.values_list("key", "release_id", "created_at"))
        referenced = {key for key, _, _ in rows}

        stale_done = stale_failed = 0
        for stale in StaleObject.objects.all():
            if stale.key in referenced:
                stale.delete()  # referenced again: it is not stale, never delete it
                continue
            if dry_run:
                self.stdout.write(f"{verb} stale {stale.key}")
                stale_done += 1
                continue
            try:
                delete_object(stale.key)
            except STORAGE_ERRORS as error:
                stale_failed += 1
                stale.attempts += 1
                stale.last_error = repr(error)[:2000]
                stale.save(update_fields=["attempts", "last_error", "updated_at"])
                self.stderr.write(f"could not delete stale {stale.key}: {error}")
                continue
            stale.delete()
            objects.pop(stale.key, None)
            stale_done += 1

        orphans = [item for key, item in sorted(objects.items()) if key not in referenced]
        deleted = kept_recent = failed = 0
        freed = 0
        for item in orphans:
            if item.modified_at > cutoff:
                kept_recent += 1
                continue
            if not dry_run:
                try:
                    delete_object(item.key)
                except STORAGE_ERRORS as error:
                    failed += 1
                    self.stderr.write(f"could not delete {item.key}: {error}")
                    continue
            self.stdout.write(f"{verb} orphan {item.key} ({item.size} bytes)")
            deleted += 1
            freed += item.size

        missing = [
            (key, release_id)
            for key, release_id, created_at in rows
            if key not in objects and created_at < started
        ]
        for key, release_id in missing:
            self.stderr.write(f"MISSING object {key} of release {release_id}")

        self.stdout.write(
            f"Scanned {len(objects)} objects and {len(referenced)} release files: "
            f"{verb} {deleted} orphaned objects ({freed} bytes), "
            f"kept {kept_recent} younger than {options['older_than']} minutes, "
            f"{verb} {stale_done} stale objects, {stale_failed + failed} deletes failed, "
            f"{len(missing)} release files missing their object."
        )
        if missing:
            raise SystemExit(1)
