"""``lukittu-release``: the command line. Parses arguments, loads settings, runs a command and
prints its outcome (``--json``: the data on standard output), or the error with its exit code.

Exit codes: 0 ok, 1 anything else, 2 usage or configuration, 3 not found, 4 conflict (409, 412,
422), 5 authentication or permission (401, 403), 6 checksum mismatch, 7 retries exhausted or
network failure, 130 interrupted."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NoReturn, TextIO

from lukittu_release import __version__, commands, config
from lukittu_release.errors import CliError, ExitCode, UsageError
from lukittu_release.http import ApiClient, RetryPolicy
from lukittu_release.progress import progress_for

PROG = "lukittu-release"
INTERRUPTED = 130


class Parser(argparse.ArgumentParser):
    """Raises UsageError instead of exiting, so every error leaves through one place."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, usage=self.format_usage())


def common_options() -> argparse.ArgumentParser:
    """Options every command takes, before or after its name. SUPPRESS: an option given
    before the command is not reset by the command's parser."""
    common = Parser(add_help=False, argument_default=argparse.SUPPRESS)
    group = common.add_argument_group("connection and output")
    group.add_argument("--api-url", metavar="URL", help=f"service base URL (${config.ENV_API_URL})")
    group.add_argument("--team-id", metavar="ID", help=f"team id (${config.ENV_TEAM_ID})")
    group.add_argument(
        "--api-key",
        metavar="KEY",
        help=f"API key (${config.ENV_API_KEY}; prefer the variable: flags show in process lists)",
    )
    group.add_argument("--json", action="store_true", help="print the result's data as JSON")
    group.add_argument(
        "--max-attempts",
        metavar="N",
        help=f"attempts per request, the first included (${config.ENV_MAX_ATTEMPTS}, "
        f"default {config.DEFAULT_MAX_ATTEMPTS})",
    )
    group.add_argument(
        "--max-retry-wait",
        metavar="SECONDS",
        help=f"longest total wait between attempts (${config.ENV_MAX_RETRY_WAIT}, "
        f"default {config.DEFAULT_MAX_RETRY_WAIT:g})",
    )
    group.add_argument(
        "--timeout",
        metavar="SECONDS",
        help=f"read/write timeout per request (${config.ENV_TIMEOUT}, "
        f"default {config.DEFAULT_TIMEOUT:g}; connecting: at most 10)",
    )
    group.add_argument("--no-progress", action="store_true", help="never draw a progress bar")
    group.add_argument(
        "--insecure",
        action="store_true",
        help="allow a plain http:// API URL to another machine (refused without it)",
    )
    return common


def build_parser() -> Parser:
    common = common_options()
    parser = Parser(
        prog=PROG,
        parents=[common],
        description="Publish and fetch builds on a Lukittu-compatible release service.",
        epilog="Exit codes: 0 ok, 1 other error, 2 usage/configuration, 3 not found, "
        "4 conflict, 5 authentication/permission, 6 checksum mismatch, "
        "7 retries exhausted/network.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    publish = sub.add_parser(
        "publish", parents=[common], help="create or update a release and upload its file"
    )
    publish.add_argument("--product", required=True, metavar="ID", help="product id")
    publish.add_argument("--branch", metavar="NAME", help="branch name (default: main line)")
    publish.add_argument("--version", required=True, dest="release_version", metavar="V")
    publish.add_argument("--status", choices=commands.STATUSES, default="PUBLISHED")
    publish.add_argument(
        "--latest", action="store_true", help="make it latest once its file is verified"
    )
    publish.add_argument(
        "--metadata", action="append", default=[], metavar="KEY=VALUE", help="repeatable"
    )
    publish.add_argument(
        "--license",
        action="append",
        default=[],
        dest="license_ids",
        metavar="ID",
        help="license id allowed to download it (repeatable)",
    )
    publish.add_argument(
        "--create-branch", action="store_true", help="create --branch if it does not exist"
    )
    publish.add_argument("file", metavar="FILE", type=Path)

    get = sub.add_parser("get", parents=[common], help="show a release")
    get.add_argument("release_id", metavar="RELEASE_ID")

    listing = sub.add_parser("list", parents=[common], help="list releases")
    listing.add_argument("--product", metavar="ID")
    listing.add_argument("--status", choices=commands.STATUSES)
    listing.add_argument("--search", metavar="TEXT", help="part of the version")
    listing.add_argument("--page", type=int, metavar="N", help="only this page (default: all)")

    delete = sub.add_parser("delete", parents=[common], help="delete a release and its file")
    delete.add_argument("release_id", metavar="RELEASE_ID")

    download = sub.add_parser(
        "download", parents=[common], help="download a build with a license (no API key)"
    )
    download.add_argument(
        "--license",
        dest="license_key",
        metavar="KEY",
        help=f"license key (${config.ENV_LICENSE_KEY})",
    )
    download.add_argument("--product", required=True, metavar="ID")
    download.add_argument("--hwid", required=True, metavar="ID", help="hardware identifier")
    download.add_argument("--version", dest="release_version", metavar="V")
    download.add_argument("--branch", metavar="NAME")
    download.add_argument("-o", "--output", type=Path, metavar="FILE", help="file or folder")
    download.add_argument("--force", action="store_true", help="replace an existing file")
    return parser


# --- Checking arguments ---------------------------------------------------------------------


def uuid_argument(value: str, flag: str) -> str:
    try:
        if len(value) != 36 or not value.isascii():
            raise ValueError(value)
        return str(uuid.UUID(value))
    except ValueError:
        raise UsageError(f"{flag} must be a UUID (got {value!r})") from None


def parse_metadata(items: Sequence[str]) -> tuple[tuple[str, str], ...]:
    pairs: list[tuple[str, str]] = []
    for item in items:
        key, separator, value = item.partition("=")
        if not separator or not key:
            raise UsageError(f"--metadata takes KEY=VALUE (got {item!r})")
        if any(key == seen for seen, _ in pairs):
            raise UsageError(f"--metadata key {key!r} given twice")
        pairs.append((key, value))
    return tuple(pairs)


def publish_options(args: argparse.Namespace) -> commands.PublishOptions:
    if args.latest and args.status != "PUBLISHED":
        raise UsageError("--latest needs --status PUBLISHED: only a published release is latest")
    if args.latest and args.license_ids:
        raise UsageError("--latest cannot go with --license: a latest release is for every license")
    if args.create_branch and args.branch is None:
        raise UsageError("--create-branch needs --branch NAME")
    return commands.PublishOptions(
        product_id=uuid_argument(args.product, "--product"),
        version=args.release_version,
        path=args.file,
        branch=args.branch,
        status=args.status,
        latest=args.latest,
        metadata=parse_metadata(args.metadata),
        license_ids=tuple(dict.fromkeys(uuid_argument(i, "--license") for i in args.license_ids)),
        create_branch=args.create_branch,
    )


def download_options(
    args: argparse.Namespace, environ: Mapping[str, str]
) -> commands.DownloadOptions:
    return commands.DownloadOptions(
        license_key=config.license_key(args, environ),
        product_id=uuid_argument(args.product, "--product"),
        hardware_id=args.hwid,
        version=args.release_version,
        branch=args.branch,
        output=args.output,
        force=args.force,
    )


# --- Running --------------------------------------------------------------------------------


class Output:
    """Standard output and error, with every secret masked out of what is written."""

    def __init__(self, stdout: TextIO, stderr: TextIO) -> None:
        self.stdout = stdout
        self.stderr = stderr
        self.secrets: list[str] = []

    def hide(self, *secrets: str | None) -> None:
        self.secrets += [secret for secret in secrets if secret]

    def mask(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def out(self, text: str) -> None:
        self.write(text + "\n")

    def write(self, text: str) -> None:
        self.stdout.write(self.mask(text))
        self.stdout.flush()

    def err(self, text: str) -> None:
        self.stderr.write(self.mask(text) + "\n")
        self.stderr.flush()

    def warn(self, message: str) -> None:
        self.err(f"{PROG}: {message}")


def run_command(
    args: argparse.Namespace,
    environ: Mapping[str, str],
    output: Output,
    *,
    sleep: Callable[[float], None],
    rand: Callable[[], float],
) -> None:
    """Runs the command and prints its outcome, while its connection is open: a listing is
    fetched page by page as it is printed."""
    is_download = args.command == "download"
    output.hide(getattr(args, "api_key", None), getattr(args, "license_key", None))
    output.hide(environ.get(config.ENV_API_KEY), environ.get(config.ENV_LICENSE_KEY))
    settings = config.load_settings(args, environ, need_api_key=not is_download)
    if settings.plain_http_elsewhere:
        output.warn(
            f"{settings.api_url} is plain http:// to another machine: "
            + ("the license key" if is_download else "the API key")
            + " and every answer cross the network readable by anyone on the way (--insecure)"
        )
    client = ApiClient(
        settings.api_url,
        api_key=settings.api_key,
        policy=RetryPolicy(max_attempts=settings.max_attempts, max_wait=settings.max_retry_wait),
        timeout=settings.timeout,
        warn=output.warn,
        sleep=sleep,
        rand=rand,
    )
    show_progress = not getattr(args, "no_progress", False)
    with client:
        ctx = commands.Context(
            client=client,
            team_id=settings.team_id,
            warn=output.warn,
            progress=lambda label: progress_for(output.stderr, label, enabled=show_progress),
        )
        print_outcome(dispatch(ctx, args, environ), output, getattr(args, "json", False))


def dispatch(
    ctx: commands.Context, args: argparse.Namespace, environ: Mapping[str, str]
) -> commands.Outcome:
    if args.command == "publish":
        return commands.publish(ctx, publish_options(args))
    if args.command == "get":
        return commands.get_release(ctx, uuid_argument(args.release_id, "RELEASE_ID"))
    if args.command == "list":
        return commands.list_releases(
            ctx,
            product_id=uuid_argument(args.product, "--product") if args.product else None,
            status=args.status,
            search=args.search,
            page=args.page,
        )
    if args.command == "delete":
        return commands.delete_release(ctx, uuid_argument(args.release_id, "RELEASE_ID"))
    return commands.download(ctx, download_options(args, environ))


def print_outcome(outcome: commands.Outcome, output: Output, as_json: bool) -> None:
    """The data as JSON (``--json``), else the lines; either may be made as it is printed, so
    an error can still come part way (the exit status says so)."""
    if not as_json:
        for line in outcome.lines:
            output.out(line)
    elif outcome.json_text is None:
        output.out(json.dumps(outcome.data, indent=2))
    else:
        for piece in outcome.json_text:
            output.write(piece)
        output.out("")


def report_error(error: CliError, output: Output, as_json: bool) -> int:
    usage = getattr(error, "usage", None)
    if usage:
        output.err(usage.rstrip())
    output.err(f"{PROG}: error: {error}")
    for line in error.detail_lines():
        output.err(line)
    if as_json:
        output.out(json.dumps(error.to_json(), indent=2))
    return int(error.exit_code)


def main(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    sleep: Callable[[float], None] = time.sleep,
    rand: Callable[[], float] = random.random,
) -> int:
    """Runs one command; returns the exit code (the console script exits with it)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    environ = os.environ if environ is None else environ
    output = Output(stdout or sys.stdout, stderr or sys.stderr)
    as_json = "--json" in argv
    try:
        # --help and --version print to standard output and exit 0.
        with contextlib.redirect_stdout(output.stdout):
            args = build_parser().parse_args(argv)
        as_json = getattr(args, "json", False)
        run_command(args, environ, output, sleep=sleep, rand=rand)
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else int(ExitCode.ERROR)
    except CliError as error:
        return report_error(error, output, as_json)
    except KeyboardInterrupt:
        output.err(f"{PROG}: interrupted")
        return INTERRUPTED
    return int(ExitCode.OK)
