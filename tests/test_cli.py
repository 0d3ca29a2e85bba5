"""lukittu-release without a server: argument parsing, settings, exit codes, the retry
policy's arithmetic, the progress bar and the installed command."""

import io
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from lukittu_release import __version__, commands, config
from lukittu_release.cli import build_parser, main, publish_options
from lukittu_release.config import Settings, load_settings
from lukittu_release.errors import ApiError, ConfigError, ExitCode, UsageError, exit_code_for_status
from lukittu_release.http import MultipartBody, RetryPolicy, retry_after_seconds
from lukittu_release.progress import Bar, NoProgress, progress_for, render_line

TEAM = str(uuid.uuid4())
PRODUCT = str(uuid.uuid4())
KEY = "lk_test_secret_key_0123456789abcdef"
ENV = {"LUKITTU_API_URL": "http://127.0.0.1:9", "LUKITTU_TEAM_ID": TEAM, "LUKITTU_API_KEY": KEY}


def run(argv, environ=ENV):
    """(exit code, stdout, stderr) of the command, in process."""
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, environ=environ, stdout=out, stderr=err, sleep=lambda seconds: None)
    return code, out.getvalue(), err.getvalue()


def parse_publish(*extra):
    args = build_parser().parse_args(
        ["publish", "--product", PRODUCT, "--version", "1.2.0", *extra, "app.jar"]
    )
    return publish_options(args)


# --- Arguments ------------------------------------------------------------------------------


def test_publish_arguments_become_options():
    license_ids = [str(uuid.uuid4()), str(uuid.uuid4())]
    options = parse_publish(
        "--branch",
        "beta",
        "--create-branch",
        "--status",
        "DRAFT",
        "--metadata",
        "channel=stable",
        "--metadata",
        "notes=a=b",
        "--license",
        license_ids[0],
        "--license",
        license_ids[1],
        "--license",
        license_ids[0].upper(),
    )
    assert options == commands.PublishOptions(
        product_id=PRODUCT,
        version="1.2.0",
        path=Path("app.jar"),
        branch="beta",
        status="DRAFT",
        latest=False,
        metadata=(("channel", "stable"), ("notes", "a=b")),
        license_ids=tuple(license_ids),  # canonical form, each once
        create_branch=True,
    )


def test_publish_defaults_to_a_published_release_on_the_main_line():
    options = parse_publish("--latest")
    assert (options.status, options.branch, options.latest) == ("PUBLISHED", None, True)
    assert (options.metadata, options.license_ids, options.create_branch) == ((), (), False)


def test_common_options_go_before_or_after_the_command():
    before = build_parser().parse_args(["--json", "--team-id", TEAM, "get", "x"])
    after = build_parser().parse_args(["get", "x", "--json", "--team-id", TEAM])
    for args in (before, after):
        assert (args.json, args.team_id, args.release_id) == (True, TEAM, "x")
    plain = build_parser().parse_args(["get", "x"])
    assert not getattr(plain, "json", False)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--latest", "--status", "DRAFT"], "--latest needs --status PUBLISHED"),
        (["--latest", "--license", str(uuid.uuid4())], "--latest cannot go with --license"),
        (["--create-branch"], "--create-branch needs --branch"),
        (["--metadata", "novalue"], "--metadata takes KEY=VALUE"),
        (["--metadata", "=value"], "--metadata takes KEY=VALUE"),
        (["--metadata", "a=1", "--metadata", "a=2"], "given twice"),
        (["--license", "not-a-uuid"], "--license must be a UUID"),
    ],
)
def test_contradictory_publish_arguments_are_usage_errors(extra, message):
    with pytest.raises(UsageError, match=message):
        parse_publish(*extra)


@pytest.mark.parametrize(
    "argv",
    [
        ["publish", "--product", PRODUCT, "app.jar"],  # no --version
        ["publish", "--version", "1.0.0", "app.jar"],  # no --product
        ["publish", "--product", PRODUCT, "--version", "1.0.0", "--status", "LIVE", "a.jar"],
        ["get"],
        ["list", "--page", "two"],
        ["download", "--product", PRODUCT],  # no --hwid
        ["frobnicate"],
        [],
    ],
)
def test_bad_command_lines_exit_2_with_the_usage(argv):
    code, out, err = run(argv)
    assert code == ExitCode.USAGE == 2
    assert out == ""
    assert "usage: lukittu-release" in err
    assert "error:" in err


def test_a_usage_error_with_json_prints_a_json_error_object():
    code, out, _ = run(["--json", "publish", "--product", "nope", "--version", "1.0.0", "a.jar"])
    assert code == 2
    assert json.loads(out) == {
        "error": {
            "kind": "usage",
            "exitCode": 2,
            "message": "--product must be a UUID (got 'nope')",
        }
    }


def test_help_and_version_exit_0():
    code, out, _ = run(["--help"])
    assert code == 0
    assert "publish" in out and "Exit codes" in out
    code, out, _ = run(["--version"])
    assert (code, out.strip()) == (0, f"lukittu-release {__version__}")


# --- Settings -------------------------------------------------------------------------------


@pytest.mark.parametrize("variable", ["LUKITTU_API_URL", "LUKITTU_TEAM_ID", "LUKITTU_API_KEY"])
def test_a_missing_setting_is_named_and_exits_2(variable):
    environ = {name: value for name, value in ENV.items() if name != variable}
    code, out, err = run(["get", str(uuid.uuid4())], environ)
    assert code == 2
    assert f"{variable} is not set" in err
    assert out == ""


def test_every_missing_setting_is_named_at_once():
    code, _, err = run(["get", str(uuid.uuid4())], {})
    assert code == 2
    for variable in ("LUKITTU_API_URL", "LUKITTU_TEAM_ID", "LUKITTU_API_KEY"):
        assert variable in err


def test_download_needs_no_api_key_but_a_license_key():
    environ = {name: value for name, value in ENV.items() if name != "LUKITTU_API_KEY"}
    code, _, err = run(["download", "--product", PRODUCT, "--hwid", "machine-0001"], environ)
    assert code == 2
    assert "license key" in err and "LUKITTU_LICENSE_KEY" in err
    assert "LUKITTU_API_KEY" not in err


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("LUKITTU_API_URL", "127.0.0.1:8000", "LUKITTU_API_URL must be the service's http(s)"),
        ("LUKITTU_API_URL", "ftp://example.com", "LUKITTU_API_URL must be the service's http(s)"),
        ("LUKITTU_TEAM_ID", "team-1", "LUKITTU_TEAM_ID must be a UUID"),
        ("LUKITTU_MAX_ATTEMPTS", "many", "LUKITTU_MAX_ATTEMPTS must be a whole number"),
        ("LUKITTU_MAX_ATTEMPTS", "0", "LUKITTU_MAX_ATTEMPTS must be between 1 and 20"),
        ("LUKITTU_MAX_RETRY_WAIT", "-1", "LUKITTU_MAX_RETRY_WAIT must be a number of seconds"),
        ("LUKITTU_TIMEOUT", "0", "LUKITTU_TIMEOUT must be a number of seconds"),
        ("LUKITTU_TIMEOUT", "nan", "LUKITTU_TIMEOUT must be a number of seconds"),
    ],
)
def test_a_malformed_setting_is_named_and_exits_2(variable, value, message):
    code, _, err = run(["get", str(uuid.uuid4())], {**ENV, variable: value})
    assert code == 2
    assert message in err


def test_flags_override_the_environment():
    other_team = str(uuid.uuid4())
    args = build_parser().parse_args(
        [
            *("get", "x", "--api-url", "https://releases.example.com/", "--team-id", other_team),
            *("--api-key", "flag-key", "--max-attempts", "3", "--max-retry-wait", "9"),
            *("--timeout", "4.5"),
        ]
    )
    settings = load_settings(args, ENV, need_api_key=True)
    assert settings == Settings(
        api_url="https://releases.example.com",
        team_id=other_team,
        api_key="flag-key",
        max_attempts=3,
        max_retry_wait=9.0,
        timeout=4.5,
    )
    defaults = load_settings(build_parser().parse_args(["get", "x"]), ENV, need_api_key=True)
    assert (defaults.api_url, defaults.team_id, defaults.api_key) == (
        ENV["LUKITTU_API_URL"],
        TEAM,
        KEY,
    )
    assert (defaults.max_attempts, defaults.max_retry_wait, defaults.timeout) == (5, 120.0, 60.0)


def test_the_api_key_is_never_shown():
    settings = load_settings(build_parser().parse_args(["get", "x"]), ENV, need_api_key=True)
    assert KEY not in repr(settings)
    # A key with a space inside is refused without echoing it.
    spaced = KEY[:10] + " " + KEY[10:]
    with pytest.raises(ConfigError) as caught:
        load_settings(
            build_parser().parse_args(["get", "x"]),
            {**ENV, "LUKITTU_API_KEY": spaced},
            need_api_key=True,
        )
    assert KEY[:10] not in str(caught.value)
    # Nor in the output of a command that fails (nothing listens on port 9).
    code, out, err = run(["--json", "--max-attempts", "1", "get", str(uuid.uuid4())])
    assert code == 7
    assert KEY not in out + err


def test_a_trailing_newline_in_the_key_is_dropped():
    settings = load_settings(
        build_parser().parse_args(["get", "x"]),
        {**ENV, "LUKITTU_API_KEY": KEY + "\n"},
        need_api_key=True,
    )
    assert settings.api_key == KEY


# --- Exit codes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, 1),
        (401, 5),
        (403, 5),
        (404, 3),
        (409, 4),
        (412, 4),
        (413, 1),
        (415, 1),
        (422, 4),
        (429, 7),
        (500, 7),
        (503, 7),
    ],
)
def test_each_http_error_has_its_exit_code(status, code):
    assert exit_code_for_status(status) == code
    assert ApiError(status, "x").exit_code == code


def test_exit_codes_are_the_documented_numbers():
    assert {code.name: int(code) for code in ExitCode} == {
        "OK": 0,
        "ERROR": 1,
        "USAGE": 2,
        "NOT_FOUND": 3,
        "CONFLICT": 4,
        "AUTH": 5,
        "CHECKSUM": 6,
        "NETWORK": 7,
    }


def test_an_api_error_as_json_carries_the_envelopes_fields():
    error = ApiError(
        400,
        "Invalid request body",
        code="BAD_REQUEST",
        errors=[{"message": "Too short.", "path": ["version"]}],
        request_id="req-1",
    )
    assert error.to_json() == {
        "error": {
            "kind": "api",
            "exitCode": 1,
            "message": "Invalid request body",
            "status": 400,
            "code": "BAD_REQUEST",
            "errors": [{"message": "Too short.", "path": ["version"]}],
            "requestId": "req-1",
        }
    }
    assert str(error) == "Invalid request body (HTTP 400 BAD_REQUEST, request req-1)"
    assert error.detail_lines() == ["  version: Too short."]


# --- Retry arithmetic -----------------------------------------------------------------------


def test_backoff_doubles_up_to_its_cap_with_jitter():
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0)
    lowest = [policy.backoff(n, lambda: 0.0) for n in range(1, 7)]
    highest = [policy.backoff(n, lambda: 1.0) for n in range(1, 7)]
    assert lowest == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert highest == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_retry_after_is_read_as_seconds_or_a_date():
    now = 1_700_000_000.0
    assert retry_after_seconds("7", now=lambda: now) == 7.0
    assert retry_after_seconds("Tue, 14 Nov 2023 22:13:40 GMT", now=lambda: now) == 20.0
    assert retry_after_seconds("Tue, 14 Nov 2023 22:13:00 GMT", now=lambda: now) == 0.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("-3") is None


# --- The multipart body ---------------------------------------------------------------------


def test_the_multipart_body_has_the_announced_length_and_carries_the_file(tmp_path):
    path = tmp_path / 'my "app".jar'
    path.write_bytes(b"\x00\x01build" * 10_000)
    body = MultipartBody(data={"version": "1.0.0"}, path=path, filename=path.name, size=70_000)
    first = b"".join(body.chunks())
    assert len(first) == body.length()
    assert b"".join(body.chunks()) == first  # each attempt sends it all again
    assert b'filename="my %22app%22.jar"' in first
    assert b'name="data"\r\n\r\n{"version":"1.0.0"}\r\n' in first
    assert first.endswith(path.read_bytes() + f"\r\n--{body.boundary}--\r\n".encode())
    data_only = MultipartBody(data={"a": 1})
    assert len(b"".join(data_only.chunks())) == data_only.length()
    assert b"filename" not in b"".join(data_only.chunks())


def test_a_file_that_grows_during_the_upload_is_not_sent_short_or_long(tmp_path):
    path = tmp_path / "app.jar"
    path.write_bytes(b"x" * 100)
    body = MultipartBody(data={}, path=path, filename="app.jar", size=50)
    with pytest.raises(Exception, match="changed size"):
        b"".join(body.chunks())


# --- Progress -------------------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_is_drawn_only_on_a_terminal():
    assert isinstance(progress_for(io.StringIO(), "up"), NoProgress)
    assert isinstance(progress_for(Terminal(), "up", enabled=False), NoProgress)
    assert isinstance(progress_for(Terminal(), "up"), Bar)


def test_the_bar_shows_the_fraction_done():
    ticks = iter(range(100))
    stream = Terminal()
    bar = Bar(stream, "uploading app.jar", clock=lambda: float(next(ticks)))
    bar.start(4 * 1024 * 1024)
    bar.advance(2 * 1024 * 1024)
    bar.finish()
    text = stream.getvalue()
    assert text.startswith("\ruploading app.jar [")
    assert " 50% 2.0 MiB/4.0 MiB" in text
    assert text.endswith("\n")
    assert render_line("x", 10, None, 0) == "x 10 B"


# --- The installed command ------------------------------------------------------------------


def test_the_console_script_is_installed():
    script = Path(sys.executable).with_name("lukittu-release")
    assert script.exists(), "pip install -e . installs the lukittu-release command"
    result = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    assert (result.returncode, result.stdout.strip()) == (0, f"lukittu-release {__version__}")
    result = subprocess.run(
        [sys.executable, "-m", "lukittu_release", "get", "x"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2
    assert "LUKITTU_API_URL, LUKITTU_TEAM_ID and LUKITTU_API_KEY are not set" in result.stderr


# --- The docs say what the command does -----------------------------------------------------


def cli_page() -> str:
    return (Path(__file__).resolve().parent.parent / "docs" / "publishing-from-ci.md").read_text()


def table_rows(text: str, heading: str) -> list[list[str]]:
    blocks = text[text.index(heading) :].split("\n\n")
    block = next(block for block in blocks if block.startswith("|"))
    rows = [line.strip("|").split("|") for line in block.splitlines()[2:]]
    return [[cell.strip() for cell in row] for row in rows]


def test_the_docs_document_every_exit_code_and_setting():
    section = cli_page()
    codes = {int(row[0]) for row in table_rows(section, "## Exit codes")}
    assert codes == {int(code) for code in ExitCode}
    variables = {row[0].strip("`") for row in table_rows(section, "## Configuration")}
    assert variables == {value for name, value in vars(config).items() if name.startswith("ENV_")}
