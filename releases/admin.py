"""Admin for products, branches, releases and release files.

Products and branches change through ``releases.catalog``, which records each change in the
audit log. Releases and files are read-only here: every change to them goes through the API's
service, so its rules (one latest, unique versions, files deleted only after commit) cannot be
bypassed.
"""

import re
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.storage import FileSystemStorage
from django.db.models import Count, ForeignKey, IntegerField, OuterRef, QuerySet, Subquery, URLField
from django.db.models.functions import Coalesce
from django.forms import BaseInlineFormSet, ModelChoiceField, ModelForm
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_safe

from delivery.admin import downloads_table
from delivery.models import Download
from lukittu.admin import (
    AuditHistoryMixin,
    ViewOnlyAdmin,
    ViewOnlyInline,
    adopt,
    format_bytes,
    operator_actor,
    short_id,
)
from releases.catalog import (
    branch_create,
    branch_delete,
    branch_update,
    product_create,
    product_delete,
    product_update,
)
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
from teams.models import AuditLog

DOWNLOAD_LINK_SECONDS = 300


def _changed(form: ModelForm, names: tuple[str, ...]) -> dict[str, Any]:
    # Only the fields the operator changed: sending every field would put back values that
    # someone else changed after this form was opened.
    return {name: form.cleaned_data[name] for name in names if name in form.changed_data}


def branch_limit_error(product: Product | None, adding: int) -> ValidationError | None:
    """The team's branch limit, checked in the form so the operator sees it on the page
    (``branch_create`` enforces it again under the product's lock)."""
    if product is None or product._state.adding or adding <= 0:
        return None
    limit = product.team.max_branches_per_product
    if Branch.objects.filter(product=product).count() + adding > limit:
        return ValidationError(
            f"{product.team} allows {limit} branches per product (Max branches per product "
            "reached): raise the team's limit or delete a branch first."
        )
    return None


class BranchInlineFormSet(BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        adding = sum(
            1
            for form in self.forms
            if form.has_changed()
            and form.instance._state.adding
            and not self._should_delete_form(form)
        )
        removing = sum(
            1 for form in self.forms if form.instance.pk and self._should_delete_form(form)
        )
        error = branch_limit_error(self.instance, adding - removing)
        if error is not None:
            raise error


class BranchInline(admin.TabularInline):
    model = Branch
    formset = BranchInlineFormSet
    extra = 0
    fields = ("name", "id", "created_at")
    readonly_fields = ("id", "created_at")


class BranchForm(ModelForm):
    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.instance._state.adding:
            error = branch_limit_error(cleaned.get("product"), 1)
            if error is not None:
                raise error
        return cleaned


@admin.register(Product)
class ProductAdmin(AuditHistoryMixin, admin.ModelAdmin):
    audit_target_type = "product"
    list_display = ("name", "product_id", "team", "created_at")
    list_filter = ("team",)
    list_select_related = ("team",)
    search_fields = ("name", "id")
    readonly_fields = ("id", "created_at", "updated_at")
    inlines = (BranchInline,)
    # A URL typed without a scheme is taken as https (Django 6's default, chosen now).
    formfield_overrides = {URLField: {"assume_scheme": "https"}}

    def get_readonly_fields(self, request: HttpRequest, obj: Product | None = None) -> tuple:
        # The team is chosen when the product is added and is fixed from then on.
        return self.readonly_fields + (("team",) if obj else ())

    @admin.display(description="ID")
    def product_id(self, product: Product) -> str:
        return short_id(product.pk)

    def save_model(self, request: HttpRequest, obj: Product, form: Any, change: bool) -> None:
        actor = operator_actor(request)
        if change:
            changes = _changed(form, ("name", "url"))
            adopt(obj, product_update(product=obj, changes=changes, actor=actor))
            return
        data = form.cleaned_data
        product = product_create(team=data["team"], name=data["name"], url=data["url"], actor=actor)
        adopt(obj, product)

    def save_formset(
        self, request: HttpRequest, form: Any, formset: BaseInlineFormSet, change: bool
    ) -> None:
        """The branches edited inline on the product's page, through the branch services."""
        actor = operator_actor(request)
        formset.save(commit=False)  # fills new_objects, changed_objects and deleted_objects
        for branch in formset.deleted_objects:
            branch_delete(branch=branch, actor=actor)
        for branch, fields in formset.changed_objects:
            changes = {name: getattr(branch, name) for name in fields}
            adopt(branch, branch_update(branch=branch, changes=changes, actor=actor))
        for branch in formset.new_objects:
            adopt(branch, branch_create(product=form.instance, name=branch.name, actor=actor))

    def delete_model(self, request: HttpRequest, obj: Product) -> None:
        product_delete(product=obj, actor=operator_actor(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Product]) -> None:
        actor = operator_actor(request)
        for product in queryset:
            product_delete(product=product, actor=actor)


class ProductChoiceField(ModelChoiceField):
    # Products of different teams may share a name; the team tells them apart.
    def label_from_instance(self, obj: Product) -> str:
        return f"{obj.name} · {obj.team}"


@admin.register(Branch)
class BranchAdmin(AuditHistoryMixin, admin.ModelAdmin):
    audit_target_type = "branch"
    form = BranchForm
    list_display = ("name", "branch_id", "product", "team", "created_at")
    list_filter = ("product__team",)
    list_select_related = ("product__team",)
    search_fields = ("name", "id", "product__name")
    readonly_fields = ("id", "created_at", "updated_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Branch | None = None) -> tuple:
        # The product is chosen when the branch is added and is fixed from then on.
        return self.readonly_fields + (("product",) if obj else ())

    def formfield_for_foreignkey(
        self, db_field: ForeignKey, request: HttpRequest, **kwargs: Any
    ) -> ModelChoiceField | None:
        if db_field.name == "product":
            kwargs["form_class"] = ProductChoiceField
            kwargs["queryset"] = Product.objects.select_related("team")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description="ID")
    def branch_id(self, branch: Branch) -> str:
        return short_id(branch.pk)

    @admin.display(description="Team", ordering="product__team__name")
    def team(self, branch: Branch) -> str:
        return str(branch.product.team)

    def save_model(self, request: HttpRequest, obj: Branch, form: Any, change: bool) -> None:
        actor = operator_actor(request)
        if change:
            changes = _changed(form, ("name",))
            adopt(obj, branch_update(branch=obj, changes=changes, actor=actor))
            return
        data = form.cleaned_data
        adopt(obj, branch_create(product=data["product"], name=data["name"], actor=actor))

    def delete_model(self, request: HttpRequest, obj: Branch) -> None:
        branch_delete(branch=obj, actor=operator_actor(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Branch]) -> None:
        actor = operator_actor(request)
        for branch in queryset:
            branch_delete(branch=branch, actor=actor)


class MetadataInline(ViewOnlyInline):
    model = ReleaseMetadata
    fields = ("key", "value", "locked")
    readonly_fields = fields


class LicenseLinkInline(ViewOnlyInline):
    model = ReleaseLicense
    fields = ("license",)
    readonly_fields = fields
    verbose_name = "allowed license"


def download_link(file: ReleaseFile | None, *, label: str | None = None) -> str:
    if file is None:
        return "-"
    url = reverse("admin:releases_releasefile_download", args=[file.pk])
    return format_html('<a href="{}">{}</a>', url, label or f"Download {file.name}")


def audit_link(target_id: Any) -> str:
    """A link to the audit entries about one object (a release: every API write to it)."""
    url = reverse("admin:teams_auditlog_changelist")
    count = AuditLog.objects.filter(target_id=str(target_id)).count()
    label = "1 audit entry" if count == 1 else f"{count} audit entries"
    return format_html('<a href="{}?target_id={}">{}</a>', url, target_id, label)


@admin.register(Release)
class ReleaseAdmin(AuditHistoryMixin, ViewOnlyAdmin):
    audit_target_type = "release"
    list_display = (
        "version",
        "product",
        "branch",
        "team",
        "status",
        "latest",
        "file_size",
        "download_count",
        "updated_at",
    )
    list_filter = ("status", "latest", "product", "team")
    list_select_related = ("product", "branch", "team", "file")
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
        "audit_trail",
        "recent_downloads",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Release]:
        # The count comes with the page's one query (a subquery per row, on the download
        # table's (release, created_at) index), not a query per row.
        counts = (
            Download.objects.filter(release=OuterRef("pk"))
            .order_by()
            .values("release")
            .annotate(count=Count("*"))
            .values("count")
        )
        return (
            super()
            .get_queryset(request)
            .annotate(download_total=Coalesce(Subquery(counts, output_field=IntegerField()), 0))
        )

    @admin.display(description="Downloads", ordering="download_total")
    def download_count(self, release: Release) -> int:
        return release.download_total

    @admin.display(description="Recent downloads")
    def recent_downloads(self, release: Release) -> SafeString:
        return downloads_table(release.downloads.all(), lookup="release__id__exact", pk=release.pk)

    @admin.display(description="File size", ordering="file__size")
    def file_size(self, release: Release) -> str:
        return format_bytes(getattr(release.current_file, "size", None))

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

    @admin.display(description="Audit log")
    def audit_trail(self, release: Release) -> str:
        return audit_link(release.pk)


@admin.register(ReleaseFile)
class ReleaseFileAdmin(ViewOnlyAdmin):
    list_display = ("name", "release", "team", "file_size", "created_at", "download")
    list_filter = ("team",)
    list_select_related = ("release", "team")
    search_fields = ("name", "key", "checksum", "sha256", "id")
    fields = (
        "id",
        "team",
        "release",
        "name",
        "file_size",
        "checksum",
        "sha256",
        "main_class_name",
        "key",
        "created_at",
        "download",
    )
    readonly_fields = fields

    @admin.display(description="Size", ordering="size")
    def file_size(self, file: ReleaseFile) -> str:
        return format_bytes(file.size)

    @admin.display(description="Download")
    def download(self, file: ReleaseFile) -> str:
        # The name is the first column already; repeating it would double the row's width.
        return download_link(file, label="Download")

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<uuid:pk>/download/",
                # A read, so the view permission suffices: other methods answer 405.
                self.admin_site.admin_view(require_safe(self.download_view)),
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


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _shorten(match: re.Match) -> str:
    return f"{match.group()[:8]}…"


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ViewOnlyAdmin):
    """Stored objects no release file accounts for: uploads in flight and objects due for
    deletion. ``manage.py reconcile_storage`` finishes what a failed request left."""

    list_display = ("short_key", "state", "team", "reserved", "reason", "attempts", "created_at")
    list_filter = ("state", "reason")
    list_select_related = ("team",)
    search_fields = ("key",)
    readonly_fields = (
        "key",
        "state",
        "team",
        "reserved",
        "reason",
        "attempts",
        "last_error",
        "created_at",
        "updated_at",
    )

    @admin.display(description="Key", ordering="key")
    def short_key(self, entry: LedgerEntry) -> str:
        # Keys hold three UUIDs (team, release, file): their first characters are enough in a
        # list, and the line may break after each "/". The whole key shows on hover.
        parts = ((_UUID.sub(_shorten, part),) for part in entry.key.split("/"))
        shown = format_html_join(mark_safe("/<wbr>"), "{}", parts)
        return format_html('<span title="{}">{}</span>', entry.key, shown)

    @admin.display(description="Size", ordering="size")
    def reserved(self, entry: LedgerEntry) -> str:
        return format_bytes(entry.size)
