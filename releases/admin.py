"""Admin for products, branches, releases and release files.

Releases and files are read-only here: every change to them goes through the API's service, so
its rules (one latest, unique versions, files deleted only after commit) cannot be bypassed.
"""

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.core.files.storage import FileSystemStorage
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from lukittu.admin import ViewOnlyAdmin, ViewOnlyInline
from releases.models import (
    Branch,
    LedgerEntry,
    Product,
    Release,
    ReleaseFile,
    ReleaseLicense,
    ReleaseMetadata,
)
from releases.storage import STORAGE_ERRORS, release_storage

DOWNLOAD_LINK_SECONDS = 300


class BranchInline(admin.TabularInline):
    model = Branch
    extra = 0
    fields = ("name", "id", "created_at")
    readonly_fields = ("id", "created_at")


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("name", "id", "team", "url", "created_at")
    list_filter = ("team",)
    list_select_related = ("team",)
    search_fields = ("name", "id")
    readonly_fields = ("id", "created_at", "updated_at")
    inlines = (BranchInline,)


@admin.register(Branch)
class BranchAdmin(admin.ModelAdmin):
    list_display = ("name", "id", "product", "created_at")
    list_filter = ("product__team",)
    list_select_related = ("product",)
    search_fields = ("name", "id", "product__name")
    readonly_fields = ("id", "created_at", "updated_at")


class MetadataInline(ViewOnlyInline):
    model = ReleaseMetadata
    fields = ("key", "value", "locked")
    readonly_fields = fields


class LicenseLinkInline(ViewOnlyInline):
    model = ReleaseLicense
    fields = ("license",)
    readonly_fields = fields
    verbose_name = "allowed license"


def download_link(file: ReleaseFile | None) -> str:
    if file is None:
        return "-"
    url = reverse("admin:releases_releasefile_download", args=[file.pk])
    return format_html('<a href="{}">Download {}</a>', url, file.name)


@admin.register(Release)
class ReleaseAdmin(ViewOnlyAdmin):
    list_display = ("version", "product", "branch", "status", "latest", "file_size", "updated_at")
    list_filter = ("status", "latest", "product", "team")
    list_select_related = ("product", "branch", "file")
    search_fields = ("version", "id")
    ordering = ("-updated_at",)
    inlines = (MetadataInline, LicenseLinkInline)
    fields = (
        "id",
        "team",
        "product",
        "branch",
        "version",
        "status",
        "latest",
        "created_at",
        "updated_at",
        "file_name",
        "file_size",
        "file_checksum",
        "file_sha256",
        "file_main_class",
        "file_key",
        "file_download",
    )
    readonly_fields = fields

    @admin.display(description="File size", ordering="file__size")
    def file_size(self, release: Release) -> str:
        file = release.current_file
        return "-" if file is None else f"{file.size:,} B"

    @admin.display(description="File name")
    def file_name(self, release: Release) -> str:
        return getattr(release.current_file, "name", "-")

    @admin.display(description="MD5")
    def file_checksum(self, release: Release) -> str:
        return getattr(release.current_file, "checksum", "-")

    @admin.display(description="SHA-256")
    def file_sha256(self, release: Release) -> str:
        return getattr(release.current_file, "sha256", "-")

    @admin.display(description="Main class")
    def file_main_class(self, release: Release) -> str:
        file = release.current_file
        return (file.main_class_name or "-") if file else "-"

    @admin.display(description="Storage key")
    def file_key(self, release: Release) -> str:
        return getattr(release.current_file, "key", "-")

    @admin.display(description="Download")
    def file_download(self, release: Release) -> str:
        return download_link(release.current_file)


@admin.register(ReleaseFile)
class ReleaseFileAdmin(ViewOnlyAdmin):
    list_display = ("name", "release", "team", "size", "created_at", "download")
    list_filter = ("team",)
    list_select_related = ("release", "team")
    search_fields = ("name", "key", "checksum", "sha256", "id")
    fields = (
        "id",
        "team",
        "release",
        "name",
        "size",
        "checksum",
        "sha256",
        "main_class_name",
        "key",
        "created_at",
        "download",
    )
    readonly_fields = fields

    @admin.display(description="Download")
    def download(self, file: ReleaseFile) -> str:
        return download_link(file)

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<uuid:pk>/download/",
                self.admin_site.admin_view(self.download_view),
                name="releases_releasefile_download",
            ),
            *super().get_urls(),
        ]

    def download_view(self, request: HttpRequest, pk: Any) -> HttpResponse:
        """Local storage streams the bytes through the app; S3 answers with a short-lived
        presigned URL, so the bytes never pass through the app."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        file = get_object_or_404(ReleaseFile, pk=pk)
        storage = release_storage()
        disposition = f'attachment; filename="{file.name.replace(chr(34), "")}"'
        try:
            if isinstance(storage, FileSystemStorage):
                return FileResponse(
                    storage.open(file.key, "rb"), as_attachment=True, filename=file.name
                )
            url = storage.url(
                file.key,
                parameters={"ResponseContentDisposition": disposition},
                expire=DOWNLOAD_LINK_SECONDS,
            )
        except FileNotFoundError:
            raise Http404("The stored object is missing") from None
        except STORAGE_ERRORS:
            return HttpResponse("Storage unavailable", status=503)
        return HttpResponseRedirect(url)


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ViewOnlyAdmin):
    """Stored objects no release file accounts for: uploads in flight and objects due for
    deletion. ``manage.py reconcile_storage`` finishes what a failed request left."""

    list_display = ("key", "state", "team", "size", "reason", "attempts", "created_at")
    list_filter = ("state", "reason")
    search_fields = ("key",)
    readonly_fields = (
        "key",
        "state",
        "team",
        "size",
        "reason",
        "attempts",
        "last_error",
        "created_at",
        "updated_at",
    )
