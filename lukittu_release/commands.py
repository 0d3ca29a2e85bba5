"""The commands: publish, get, list, delete and download. Each returns an ``Outcome``: what
``--json`` prints and the lines a person reads."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx

from lukittu_release.errors import (
    ApiError,
    ChecksumMismatch,
    CliError,
    FileExists,
    NotFoundError,
    UsageError,
)
from lukittu_release.http import CHUNK_SIZE, ApiClient, MultipartBody
from lukittu_release.progress import NoProgress, Progress, format_size

PAGE_SIZE = 100
MAX_PAGES = 1000  # 100,000 items: far past any product's releases or branches
STATUSES = ("PUBLISHED", "DRAFT", "DEPRECATED", "ARCHIVED")
DEFAULT_DOWNLOAD_NAME = "download"


@dataclass
class Context:
    client: ApiClient
    team_id: str
    warn: Callable[[str], None] = lambda message: None
    progress: Callable[[str], Progress] = lambda label: NoProgress()


@dataclass
class Outcome:
    """``lines`` may be made as they are printed (a listing, page by page); so may the
    ``--json`` output (``json_text``, pieces of one document, printed instead of ``data``)."""

    data: Any
    lines: Iterable[str] = field(default_factory=list)
    json_text: Iterable[str] | None = None


def dev_path(team_id: str, *parts: str) -> str:
    return "/".join(("/api/v1/dev/teams", team_id, *parts))


def client_path(team_id: str, *parts: str) -> str:
    return "/".join(("/api/v1/client/teams", team_id, *parts))


# --- Local files ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalFile:
    path: Path
    name: str
    size: int
    sha256: str


def file_sha256(path: Path) -> str:
    """The file's SHA-256, read in chunks (never whole in memory)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def local_file(path: Path) -> LocalFile:
    if not path.is_file():
        raise UsageError(f"{path} is not a file")
    try:
        size = path.stat().st_size
        sha256 = file_sha256(path)
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror or error}") from error
    return LocalFile(path, path.name, size, sha256)


# --- Paging ---------------------------------------------------------------------------------


def paged(ctx: Context, path: str, params: Mapping[str, Any], key: str) -> Iterator[Any]:
    """Every item of a listed collection, a page at a time while ``hasNextPage``."""
    for page in range(1, MAX_PAGES + 1):
        data = ctx.client.request("GET", path, params={**params, "page": page}).data
        yield from data.get(key) or []
        if not data.get("hasNextPage"):
            return
    raise CliError(f"GET {path}: more than {MAX_PAGES} pages")


# --- Branches -------------------------------------------------------------------------------


def branches_path(ctx: Context, product_id: str) -> str:
    return dev_path(ctx.team_id, "products", product_id, "branches")


def find_branch(ctx: Context, product_id: str, name: str) -> dict[str, Any] | None:
    """The product's branch called exactly ``name``."""
    path = branches_path(ctx, product_id)
    for branch in paged(ctx, path, {"pageSize": PAGE_SIZE}, "branches"):
        if branch.get("name") == name:
            return branch
    return None


def create_branch(ctx: Context, product_id: str, name: str) -> dict[str, Any]:
    """Creates the branch; if it exists by then (another job, or a retry whose first answer
    was lost), the existing one."""
    try:
        return ctx.client.request(
            "POST", branches_path(ctx, product_id), json_body={"name": name}
        ).data
    except ApiError as error:
        if error.status != 409:
            raise
        existing = find_branch(ctx, product_id, name)
        if existing is None:
            raise
        return existing


def resolve_branch(ctx: Context, product_id: str, name: str, *, create: bool) -> dict[str, Any]:
    branch = find_branch(ctx, product_id, name)
    if branch is not None:
        return branch
    if not create:
        raise NotFoundError(
            f"product {product_id} has no branch {name!r} (pass --create-branch to create it)"
        )
    ctx.warn(f"creating branch {name!r} of product {product_id}")
    return create_branch(ctx, product_id, name)


# --- Releases -------------------------------------------------------------------------------


def find_release(
    ctx: Context, product_id: str, version: str, branch_id: str | None
) -> dict[str, Any] | None:
    """The release with exactly this version on this product and branch (None: main line)."""
    params = {"productId": product_id, "search": version, "pageSize": PAGE_SIZE}
    for release in paged(ctx, dev_path(ctx.team_id, "releases"), params, "releases"):
        if release.get("version") == version and release.get("branchId") == branch_id:
            return release
    return None


@dataclass(frozen=True)
class PublishOptions:
    product_id: str
    version: str
    path: Path
    branch: str | None = None
    status: str = "PUBLISHED"
    latest: bool = False
    metadata: tuple[tuple[str, str], ...] = ()
    license_ids: tuple[str, ...] = ()
    create_branch: bool = False


def release_data(
    options: PublishOptions, branch_id: str | None, *, set_as_latest: bool
) -> dict[str, Any]:
    """Create's ``data``; update's adds ``keepExistingFile``."""
    return {
        "version": options.version,
        "productId": options.product_id,
        "branchId": branch_id,
        "status": options.status,
        "setAsLatest": set_as_latest,
        "metadata": [{"key": key, "value": value} for key, value in options.metadata],
        "licenseIds": list(options.license_ids),
    }


def upload(
    ctx: Context,
    method: str,
    path: str,
    data: dict[str, Any],
    local: LocalFile,
) -> dict[str, Any]:
    body = MultipartBody(
        data=data,
        path=local.path,
        filename=local.name,
        size=local.size,
        progress=ctx.progress(f"uploading {local.name}"),
    )
    return ctx.client.request(method, path, body=body).data


def create_release(ctx: Context, data: dict[str, Any], local: LocalFile) -> dict[str, Any]:
    return upload(ctx, "POST", dev_path(ctx.team_id, "releases"), data, local)


def update_release(
    ctx: Context, release_id: str, data: dict[str, Any], local: LocalFile
) -> dict[str, Any]:
    data = {**data, "keepExistingFile": True}
    return upload(ctx, "PUT", dev_path(ctx.team_id, "releases", release_id), data, local)


def check_stored_file(release: dict[str, Any], local: LocalFile) -> None:
    """The server's SHA-256 of the stored file must be the local file's."""
    stored = (release.get("file") or {}).get("sha256")
    if not isinstance(stored, str) or stored.lower() != local.sha256:
        raise ChecksumMismatch(
            f"the stored file's SHA-256 is {stored or 'missing'}, the local file's is "
            f"{local.sha256}: release {release.get('id')} was not set as latest",
            releaseId=release.get("id"),
            expected=local.sha256,
            actual=stored,
        )


def mark_latest(ctx: Context, release: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """The second update: latest, keeping the file just verified."""
    data = {**data, "setAsLatest": True, "keepExistingFile": True}
    path = dev_path(ctx.team_id, "releases", release["id"])
    return ctx.client.request("PUT", path, body=MultipartBody(data=data)).data


def branch_id_for(ctx: Context, options: PublishOptions) -> str | None:
    """The id of ``--branch`` (made with ``--create-branch``), or None for the main line."""
    if options.branch is None:
        return None
    branch = resolve_branch(ctx, options.product_id, options.branch, create=options.create_branch)
    return branch["id"]


def update_existing(
    ctx: Context,
    options: PublishOptions,
    branch_id: str | None,
    existing: dict[str, Any],
    local: LocalFile,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Replaces an existing release's file. It keeps its latest flag meanwhile: dropping it
    would leave customers without a latest release until the second update."""
    data = release_data(options, branch_id, set_as_latest=bool(existing.get("latest")))
    return update_release(ctx, existing["id"], data, local), data


def upload_version(
    ctx: Context, options: PublishOptions, branch_id: str | None, local: LocalFile
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Creates the version with its file, or updates it if it exists: (the release as the
    service answered, the ``data`` sent, "created" or "updated")."""
    existing = find_release(ctx, options.product_id, options.version, branch_id)
    if existing is not None:
        return (*update_existing(ctx, options, branch_id, existing, local), "updated")
    data = release_data(options, branch_id, set_as_latest=False)
    try:
        return create_release(ctx, data, local), data, "created"
    except ApiError as error:
        # The version exists after all: another job published it meanwhile, or (against a
        # service without idempotency keys) this create's lost first attempt made it.
        if error.status != 409:
            raise
        existing = find_release(ctx, options.product_id, options.version, branch_id)
        if existing is None:
            raise
    ctx.warn(f"release {options.version} exists already ({existing['id']}); updating it")
    return (*update_existing(ctx, options, branch_id, existing, local), "updated")


def publish(ctx: Context, options: PublishOptions) -> Outcome:
    """Create the release, or update it if this version exists on this product and branch;
    upload the file; check the stored SHA-256; only then, with --latest, make it latest."""
    local = local_file(options.path)
    branch_id = branch_id_for(ctx, options)
    release, data, action = upload_version(ctx, options, branch_id, local)
    check_stored_file(release, local)
    lines = [
        f"{action} release {release['version']} ({release['id']}) on {line_name(release)}",
        f"uploaded {local.name} ({format_size(local.size)}), SHA-256 verified: {local.sha256}",
    ]
    if options.latest:
        release = mark_latest(ctx, release, data)
        check_stored_file(release, local)
        if not release.get("latest"):
            raise CliError(
                f"release {release['id']} did not become latest (status {release['status']})"
            )
        lines.append(f"set {release['version']} as the latest release on {line_name(release)}")
    return Outcome(release, lines)


# --- get, list, delete ----------------------------------------------------------------------


def line_name(release: Mapping[str, Any]) -> str:
    branch = release.get("branch")
    if isinstance(branch, dict) and branch.get("name"):
        return f"branch {branch['name']}"
    return "the main line"


def describe_file(file: Mapping[str, Any] | None) -> str:
    if not file:
        return "no file"
    return f"{file.get('name')} ({format_size(file.get('size') or 0)}, sha256 {file.get('sha256')})"


def release_lines(release: Mapping[str, Any]) -> list[str]:
    product = release.get("product") or {}
    flags = release["status"] + (", latest" if release.get("latest") else "")
    lines = [
        f"release  {release['version']} ({release['id']})",
        f"product  {product.get('name', '')} ({release.get('productId')})",
        f"line     {line_name(release)}",
        f"status   {flags}",
        f"file     {describe_file(release.get('file'))}",
        f"updated  {release.get('updatedAt')}",
    ]
    metadata = release.get("metadata") or []
    if metadata:
        lines.append("metadata " + ", ".join(f"{item['key']}={item['value']}" for item in metadata))
    if release.get("licenseIds"):
        lines.append("licenses " + ", ".join(release["licenseIds"]))
    return lines


def release_row(release: Mapping[str, Any]) -> str:
    branch = release.get("branch")
    branch_name = branch["name"] if isinstance(branch, dict) else "-"
    latest = "latest" if release.get("latest") else "-"
    file = release.get("file")
    file_name = file.get("name") if file else "-"
    return (
        f"{release['id']}  {release['version']:<16} {release['status']:<10} {latest:<6} "
        f"{branch_name:<12} {file_name}"
    )


def get_release(ctx: Context, release_id: str) -> Outcome:
    release = ctx.client.request("GET", dev_path(ctx.team_id, "releases", release_id)).data
    return Outcome(release, release_lines(release))


def list_releases(
    ctx: Context,
    *,
    product_id: str | None = None,
    status: str | None = None,
    search: str | None = None,
    page: int | None = None,
) -> Outcome:
    """One page (``page``), or every page as one list, printed as the pages arrive: only one
    page is held at a time, however long the list."""
    path = dev_path(ctx.team_id, "releases")
    params: dict[str, Any] = {"productId": product_id, "status": status, "search": search}
    if page is not None:
        data = ctx.client.request("GET", path, params={**params, "page": page}).data
        lines = [release_row(release) for release in data["releases"]]
        lines.append(f"{len(data['releases'])} shown, {data['totalResults']} in all")
        return Outcome(data, lines)
    pages = paged(ctx, path, {**params, "pageSize": PAGE_SIZE}, "releases")
    # The first page before anything is printed: a refused request (a wrong key) is an error
    # alone, not one after the start of a listing.
    first = list(itertools.islice(pages, 1))
    counted = Counted(itertools.chain(first, pages))

    def summary() -> dict[str, Any]:
        return {"hasNextPage": False, "totalResults": counted.count}

    return Outcome(None, listing_rows(counted), json_listing("releases", counted, summary))


class Counted:
    """Items passed through, counted (for the summary that follows them)."""

    def __init__(self, items: Iterator[Any]) -> None:
        self.items = items
        self.count = 0

    def __iter__(self) -> Iterator[Any]:
        for item in self.items:
            self.count += 1
            yield item


def listing_rows(releases: Counted) -> Iterator[str]:
    for release in releases:
        yield release_row(release)
    yield f"{releases.count} shown, {releases.count} in all"


def json_listing(
    key: str, items: Iterable[Any], tail: Callable[[], dict[str, Any]]
) -> Iterator[str]:
    """``json.dumps({key: [*items], **tail()}, indent=2)``, a piece at a time: the items as
    they come, then the fields ``tail`` gives once they have all been seen."""
    yield "{\n  " + json.dumps(key) + ": ["
    empty = True
    for item in items:
        text = json.dumps(item, indent=2).replace("\n", "\n    ")
        yield ("\n    " if empty else ",\n    ") + text
        empty = False
    yield "]" if empty else "\n  ]"
    for name, value in tail().items():
        yield f",\n  {json.dumps(name)}: {json.dumps(value, indent=2)}"
    yield "\n}"


def delete_release(ctx: Context, release_id: str) -> Outcome:
    try:
        release = ctx.client.request("DELETE", dev_path(ctx.team_id, "releases", release_id)).data
    except ApiError as error:
        # An earlier attempt reached the server and its answer was lost: it was deleted then.
        if error.status == 404 and error.possibly_applied_before:
            ctx.warn(f"release {release_id} is gone: an earlier attempt deleted it")
            return Outcome(
                {"id": release_id, "deleted": True, "alreadyDeleted": True},
                [f"deleted release {release_id} (on an earlier attempt, whose answer was lost)"],
            )
        raise
    return Outcome(release, [f"deleted release {release['version']} ({release['id']})"])


# --- download -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DownloadOptions:
    license_key: str = field(repr=False)
    product_id: str
    hardware_id: str
    version: str | None = None
    branch: str | None = None
    output: Path | None = None
    force: bool = False  # replace an existing file

    def params(self) -> dict[str, Any]:
        return {
            "licenseKey": self.license_key,
            "productId": self.product_id,
            "hardwareIdentifier": self.hardware_id,
            "version": self.version,
            "branch": self.branch,
        }


@dataclass(frozen=True)
class Received:
    part: Path
    target: Path
    size: int
    sha256: str
    # What the service itself said (its own answer, never a redirect target's).
    announced_sha256: str | None
    version: str | None
    redirected: bool


SAFE_NAME = re.compile(r"[^\w.+-]")


def safe_file_name(name: str) -> str | None:
    """A server-given name as a plain file name in the current folder, or None."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    base = SAFE_NAME.sub("_", base)
    if base in ("", ".", "..") or base.startswith("."):
        return None
    return base[:255]


def name_from_disposition(header: str | None) -> str | None:
    if not header:
        return None
    extended = re.search(r"filename\*\s*=\s*[^']*'[^']*'([^;]+)", header, re.IGNORECASE)
    if extended:
        return unquote(extended.group(1).strip())
    plain = re.search(r'filename\s*=\s*"((?:[^"\\]|\\.)*)"|filename\s*=\s*([^;]+)', header, re.I)
    if plain:
        return (plain.group(1) or plain.group(2) or "").strip()
    return None


def target_path(output: Path | None, response: httpx.Response) -> Path:
    """``-o`` (a folder: the server's file name in it), else the server's file name here."""
    if output is not None and not output.is_dir():
        return output
    name = safe_file_name(name_from_disposition(response.headers.get("Content-Disposition")) or "")
    name = name or safe_file_name(response.url.path) or DEFAULT_DOWNLOAD_NAME
    return (output or Path(".")) / name


def announced_length(response: httpx.Response) -> int | None:
    value = response.headers.get("Content-Length", "")
    return int(value) if value.isascii() and value.isdigit() else None


def refuse_to_overwrite(target: Path, force: bool) -> None:
    if not force and (target.exists() or target.is_symlink()):
        raise FileExists(
            f"{target} exists: pass --force to replace it, or -o another path",
            path=str(target),
        )


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def services_answer(response: httpx.Response) -> httpx.Response:
    """The answer of the service itself: the first one, when a redirect was followed. Only
    its headers are the service's word; a storage host's are not (it could be anyone's)."""
    return response.history[0] if response.history else response


def save_response(
    response: httpx.Response, options: DownloadOptions, progress: Progress
) -> Received:
    """Streams the body to a new temporary file next to the target, hashing it; removed
    again on any failure. An existing target is refused before a byte is read."""
    target = target_path(options.output, response)
    refuse_to_overwrite(target, options.force)
    try:
        handle, name = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=".part"
        )
    except OSError as error:
        raise CliError(f"cannot write to {target.parent}: {error.strerror or error}") from error
    part = Path(name)
    # mkstemp makes it private; the download gets the mode any new file would.
    os.chmod(handle, 0o666 & ~current_umask())
    digest = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(handle, "wb") as stream:
            progress.start(announced_length(response))
            for chunk in response.iter_bytes(CHUNK_SIZE):
                stream.write(chunk)
                digest.update(chunk)
                size += len(chunk)
                progress.advance(len(chunk))
            progress.finish()
    except BaseException:
        with contextlib.suppress(OSError):
            part.unlink()
        raise
    service = services_answer(response)
    announced = service.headers.get("X-Checksum-SHA256")
    return Received(
        part=part,
        target=target,
        size=size,
        sha256=digest.hexdigest(),
        announced_sha256=announced.strip().lower() if announced else None,
        version=service.headers.get("X-Version"),
        redirected=bool(response.history),
    )


def move_into_place(received: Received, force: bool) -> None:
    """The checked file under its name. Without ``force``, a file that appeared there
    meanwhile is kept (a hard link fails where a rename would replace it)."""
    if force:
        os.replace(received.part, received.target)
        return
    try:
        os.link(received.part, received.target)
    except FileExistsError:
        refuse_to_overwrite(received.target, force)
    except OSError:
        # No hard links on this file system: check, then rename.
        refuse_to_overwrite(received.target, force)
        os.replace(received.part, received.target)


def expected_sha256(ctx: Context, options: DownloadOptions) -> tuple[str, str | None]:
    """The SHA-256 (and version) that ``releases/latest`` describes for the same parameters."""
    data = ctx.client.request(
        "GET", client_path(ctx.team_id, "releases", "latest"), params=options.params()
    ).data
    sha256 = (data.get("file") or {}).get("sha256")
    if not isinstance(sha256, str):
        raise CliError("the release's description has no SHA-256 to check the download against")
    return sha256.lower(), data.get("version")


def download(ctx: Context, options: DownloadOptions) -> Outcome:
    """The licensed plain download: streamed by the service, or a redirect to a presigned
    storage URL (followed). The bytes are checked against the SHA-256 the service gave:
    its answer's ``X-Checksum-SHA256`` (on the stream or on the redirect), else what
    ``releases/latest`` describes; never against a header of the storage's answer."""
    if options.output is not None and not options.output.is_dir():
        # Known before the request: refused before a seat is taken.
        refuse_to_overwrite(options.output, options.force)
    progress = ctx.progress("downloading")
    received = ctx.client.stream(
        client_path(ctx.team_id, "releases", "download"),
        params=options.params(),
        consume=lambda response: save_response(response, options, progress),
    )
    try:
        expected, version = received.announced_sha256, received.version
        source = "X-Checksum-SHA256"
        if expected is None:
            expected, latest_version = expected_sha256(ctx, options)
            version = version or latest_version
            source = "releases/latest"
        if expected != received.sha256:
            raise ChecksumMismatch(
                f"the downloaded file's SHA-256 is {received.sha256}, {source} says {expected}; "
                "the file was not kept",
                expected=expected,
                actual=received.sha256,
            )
        move_into_place(received, options.force)
    finally:
        with contextlib.suppress(OSError):
            received.part.unlink()
    data = {
        "path": str(received.target),
        "size": received.size,
        "sha256": received.sha256,
        "version": version,
        "checksumSource": source,
        "redirected": received.redirected,
    }
    lines = [
        f"downloaded {version or 'the release'} to {received.target} "
        f"({format_size(received.size)}), SHA-256 verified: {received.sha256}"
    ]
    return Outcome(data, lines)
