"""lukittu-release trusts the service, and nothing else: a download is checked against the
SHA-256 the service gave (never a storage host's header), an existing file is never replaced
without --force, plain http:// to another machine needs --insecure, and ``list`` holds one
page at a time, however long the list (a peak-memory budget)."""

import hashlib
import io
import json
import os
import stat
import tracemalloc
import zlib
from typing import Any

import pytest

from lukittu_release import config
from lukittu_release.cli import main
from lukittu_release.errors import ConfigError
from tests import test_cli_http
from tests.test_cli_http import (
    BUILD,
    BUILD_SHA,
    CLIENT,
    KEY,
    LICENSE_KEY,
    RELEASE,
    RELEASES,
    TEAM,
    Respond,
    download_args,
    ok,
    release,
    run,
    script,
)

# The scripted server's fixture, by its name.
serve = test_cli_http.serve

TAMPERED = b"PK\x03\x04 not the vendor's build " * 100
TAMPERED_SHA = hashlib.sha256(TAMPERED).hexdigest()


def storage(content: bytes, **headers: str) -> Any:
    """Another host's answer to the presigned URL."""
    return lambda seen: Respond(
        200, content, {"Content-Disposition": 'attachment; filename="app.jar"', **headers}
    )


def service(storage_url: str, latest_sha: str = BUILD_SHA, **redirect_headers: str) -> Any:
    def handle(seen: Any) -> Any:
        if seen.path == f"{CLIENT}/download":
            location = f"{storage_url}/bucket/object.jar?X-Amz-Signature=abc"
            return Respond(302, b"", {"Location": location, **redirect_headers})
        if seen.path == f"{CLIENT}/latest":
            return ok({"version": "1.0.0", "file": {"sha256": latest_sha}})
        return Respond(404, b"")

    return handle


# --- The checksum comes from the service --------------------------------------------------------


def test_tampered_bytes_with_a_matching_header_from_the_storage_host_are_refused(
    serve, tmp_path, monkeypatch
):
    """The storage host (or whoever answers there) sends other bytes with their own SHA-256
    as X-Checksum-SHA256: the service's word (``latest``) decides, and they are not kept."""
    monkeypatch.chdir(tmp_path)
    bucket = serve(storage(TAMPERED, **{"X-Checksum-SHA256": TAMPERED_SHA}))
    api = serve(service(bucket.url))

    result = run(api.url, *download_args())

    assert result.code == 6, result.out
    failure = result.json()["error"]
    assert (failure["kind"], failure["expected"], failure["actual"]) == (
        "checksum_mismatch",
        BUILD_SHA,
        TAMPERED_SHA,
    )
    assert list(tmp_path.iterdir()) == []
    assert [seen.path for seen in api.seen] == [f"{CLIENT}/download", f"{CLIENT}/latest"]


def test_the_services_redirect_names_the_sha256_the_bytes_must_have(serve, tmp_path):
    bucket = serve(storage(TAMPERED, **{"X-Checksum-SHA256": TAMPERED_SHA}))
    api = serve(service(bucket.url, **{"X-Checksum-SHA256": BUILD_SHA, "X-Version": "1.0.0"}))

    refused = run(api.url, *download_args("-o", str(tmp_path / "app.jar")))

    assert refused.code == 6
    assert refused.json()["error"]["expected"] == BUILD_SHA
    assert list(tmp_path.iterdir()) == []
    good_bucket = serve(storage(BUILD, **{"X-Checksum-SHA256": TAMPERED_SHA, "X-Version": "6.6"}))
    api = serve(service(good_bucket.url, **{"X-Checksum-SHA256": BUILD_SHA, "X-Version": "1.0.0"}))
    fetched = run(api.url, *download_args("-o", str(tmp_path / "app.jar")))
    assert fetched.code == 0, fetched.err
    assert (tmp_path / "app.jar").read_bytes() == BUILD
    assert fetched.json()["checksumSource"] == "X-Checksum-SHA256"
    assert fetched.json()["version"] == "1.0.0"
    assert [seen.path for seen in api.seen] == [f"{CLIENT}/download"]  # no need for latest


# --- Never overwrite without --force ------------------------------------------------------------


def streamed_build() -> Respond:
    return Respond(
        200,
        BUILD,
        {
            "X-Checksum-SHA256": BUILD_SHA,
            "Content-Disposition": 'attachment; filename="app.jar"',
        },
    )


def test_an_existing_output_file_is_refused_before_anything_is_fetched(serve, tmp_path):
    target = tmp_path / "app.jar"
    target.write_bytes(b"mine")
    server = serve(script(streamed_build()))

    result = run(server.url, *download_args("-o", str(target)))

    assert result.code == 2
    assert result.json()["error"]["kind"] == "file_exists"
    assert "--force" in result.err
    assert target.read_bytes() == b"mine"
    assert server.seen == []  # no seat spent on it
    forced = run(server.url, *download_args("-o", str(target), "--force"))
    assert forced.code == 0, forced.err
    assert target.read_bytes() == BUILD
    assert sorted(path.name for path in tmp_path.iterdir()) == ["app.jar"]
    # The mode any new file gets, not the temporary file's private one.
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask


def test_the_services_file_name_in_a_folder_is_not_overwritten_either(serve, tmp_path):
    (tmp_path / "app.jar").write_bytes(b"mine")
    (tmp_path / "app.jar.part").write_bytes(b"also mine")
    server = serve(script(streamed_build(), streamed_build()))

    result = run(server.url, *download_args("-o", str(tmp_path)))

    assert result.code == 2
    assert (tmp_path / "app.jar").read_bytes() == b"mine"
    assert (tmp_path / "app.jar.part").read_bytes() == b"also mine"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["app.jar", "app.jar.part"]
    forced = run(server.url, *download_args("-o", str(tmp_path), "--force"))
    assert forced.code == 0, forced.err
    assert (tmp_path / "app.jar").read_bytes() == BUILD
    assert (tmp_path / "app.jar.part").read_bytes() == b"also mine"


def test_a_target_folder_that_does_not_exist_is_an_error_not_a_traceback(serve, tmp_path):
    server = serve(script(streamed_build()))

    result = run(server.url, *download_args("-o", str(tmp_path / "missing" / "app.jar")))

    assert result.code == 1
    assert result.json()["error"]["message"].startswith(f"cannot write to {tmp_path / 'missing'}")
    assert list(tmp_path.iterdir()) == []


# --- Plain http:// only to this machine ---------------------------------------------------------


def settings_for(url: str, *, insecure: bool = False) -> config.Settings:
    args = type("Args", (), {"api_url": url, "insecure": insecure})()
    environ = {"LUKITTU_TEAM_ID": TEAM, "LUKITTU_API_KEY": KEY}
    return config.load_settings(args, environ, need_api_key=True)


@pytest.mark.parametrize(
    "url",
    [
        "https://releases.example.com",
        "http://127.0.0.1:8000",
        "http://127.8.9.10",
        "http://localhost:8000",
        "http://api.localhost",
        "http://[::1]:8000",
    ],
)
def test_https_and_this_machine_need_no_flag(url):
    assert settings_for(url).plain_http_elsewhere is False


@pytest.mark.parametrize(
    "url", ["http://releases.example.com", "http://10.0.0.5:8000", "http://[2001:db8::1]"]
)
def test_plain_http_to_another_machine_is_refused_without_insecure(url):
    with pytest.raises(ConfigError, match=r"plain http:// to another machine.*--insecure"):
        settings_for(url)
    assert settings_for(url, insecure=True).plain_http_elsewhere is True


def test_the_command_refuses_and_with_insecure_warns(tmp_path):
    argv = ["--json", "--max-attempts", "1", "--timeout", "0.2", "get", RELEASE_ID]
    environ = {"LUKITTU_API_URL": "http://192.0.2.1:9", "LUKITTU_TEAM_ID": TEAM}
    environ["LUKITTU_API_KEY"] = KEY
    out, err = io.StringIO(), io.StringIO()

    refused = main(argv, environ=environ, stdout=out, stderr=err)

    assert refused == 2
    assert json.loads(out.getvalue())["error"]["kind"] == "config"
    out, err = io.StringIO(), io.StringIO()
    allowed = main(["--insecure", *argv], environ=environ, stdout=out, stderr=err)
    assert allowed == 7  # nothing answers there: it was tried
    assert "plain http:// to another machine" in err.getvalue()
    assert KEY not in out.getvalue() + err.getvalue()


RELEASE_ID = RELEASE


# --- list streams ----------------------------------------------------------------------------


PAGES = 60
PER_PAGE = 100


def listed_release(number: int) -> dict[str, Any]:
    metadata = [{"key": f"k{index}", "value": "v" * 200} for index in range(20)]
    return release(version=f"1.0.{number}", metadata=metadata)


@pytest.fixture
def long_listing(serve) -> Any:
    """60 pages of 100 releases (about 30 MB of answers), each page encoded once here."""
    items = [listed_release(number) for number in range(PER_PAGE)]
    pages = {
        more: json.dumps(
            {
                "data": {"releases": items, "hasNextPage": more, "totalResults": 6000},
                "result": {"timestamp": "2026-01-02T03:04:05.678Z", "valid": True, "details": "OK"},
            }
        ).encode()
        for more in (True, False)
    }

    def handle(seen: Any) -> Any:
        assert seen.path == RELEASES
        number = int(seen.query["page"][0])
        return Respond(200, pages[number < PAGES], {"Content-Type": "application/json"})

    return serve(handle), len(pages[True]) * PAGES


class Sink:
    """Standard output that keeps only a count and a digest of what was written."""

    def __init__(self) -> None:
        self.written = 0
        self.digest = hashlib.sha256()

    def write(self, text: str) -> None:
        self.written += len(text)
        self.digest.update(text.encode())

    def flush(self) -> None:
        pass


def api_environ(server_url: str) -> dict[str, str]:
    return {"LUKITTU_API_URL": server_url, "LUKITTU_TEAM_ID": TEAM, "LUKITTU_API_KEY": KEY}


def traced_main(
    argv: list[str], environ: dict[str, str], stdout: Any, stderr: Any
) -> tuple[int, int]:
    """``main``'s exit code, and the peak of the memory allocated while it ran."""
    tracemalloc.start()
    try:
        code = main(argv, environ=environ, stdout=stdout, stderr=stderr)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return code, peak


@pytest.mark.parametrize("as_json", [False, True], ids=["lines", "json"])
def test_list_holds_one_page_at_a_time(long_listing, as_json):
    server, answered = long_listing
    environ = api_environ(server.url)
    argv = ["--json", "list"] if as_json else ["list"]
    # Once untraced, so that what the first run imports is not counted.
    main([*argv, "--page", "1"], environ=environ, stdout=Sink(), stderr=io.StringIO())
    sink, err = Sink(), io.StringIO()

    code, peak = traced_main(argv, environ, sink, err)

    assert code == 0, err.getvalue()
    assert len(server.seen) == 1 + PAGES
    assert sink.written > PAGES * PER_PAGE * 50  # every release printed
    # A page is half a megabyte of JSON: a few of them at once (httpx's answers are freed by
    # the garbage collector, when it runs: about 9 to 12 MB measured), never the whole list
    # (holding it took 81 MB, and 219 MB with --json).
    assert answered > 30_000_000
    assert peak < 20_000_000, f"peak {peak:,} bytes for {answered:,} bytes of answers"


def test_the_streamed_json_is_the_same_document(serve):
    listed = [release(version=f"2.{number}") for number in range(3)]
    server = serve(
        script(
            ok({"releases": listed[:2], "hasNextPage": True, "totalResults": 3}),
            ok({"releases": listed[2:], "hasNextPage": False, "totalResults": 3}),
        )
    )

    result = run(server.url, "--json", "list")

    assert result.code == 0, result.err
    expected = {"releases": listed, "hasNextPage": False, "totalResults": 3}
    assert result.out == json.dumps(expected, indent=2) + "\n"
    empty = serve(script(ok({"releases": [], "hasNextPage": False, "totalResults": 0})))
    result = run(empty.url, "--json", "list")
    assert json.loads(result.out) == {"releases": [], "hasNextPage": False, "totalResults": 0}
    lines = run(serve(script(ok({"releases": listed, "hasNextPage": False}))).url, "list")
    assert lines.out.splitlines()[-1] == "3 shown, 3 in all"
    assert len(lines.out.splitlines()) == 4


def test_a_page_that_fails_part_way_still_exits_non_zero(serve):
    server = serve(
        script(
            ok({"releases": [release()], "hasNextPage": True, "totalResults": 2}),
            Respond(404, b""),
        )
    )

    result = run(server.url, "list")

    assert result.code == 3
    assert result.out.splitlines()[0].startswith(release()["id"])
    assert LICENSE_KEY not in result.out


# --- Every answer is bounded ----------------------------------------------------------------


def test_answers_are_asked_for_uncompressed_and_a_compressed_one_is_refused(serve):
    """A compressed answer could expand past any bound in one read: 200 KB of gzip is 200 MB
    of zeros."""
    zeros = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip framing
    bomb = b"".join(zeros.compress(b"\0" * 2**20) for _ in range(200)) + zeros.flush()
    server = serve(script(Respond(200, bomb, {"Content-Encoding": "gzip"})))
    environ = api_environ(server.url)
    out, err = io.StringIO(), io.StringIO()

    code, peak = traced_main(["--json", "get", RELEASE], environ, out, err)

    assert server.seen[0].headers["accept-encoding"] == "identity"
    assert code == 1
    message = json.loads(out.getvalue())["error"]["message"]
    assert "the answer is compressed (gzip)" in message
    assert peak < 8 * 1024 * 1024, f"peak {peak:,} bytes"


def test_an_answer_past_the_limit_is_refused_not_held(serve):
    """A wrong URL or a hostile server answering 200 MB is refused part way: memory stays
    near the 32 MiB limit."""
    server = serve(script(Respond(200, b" " * (200 * 1024 * 1024))))
    environ = api_environ(server.url)
    out, err = io.StringIO(), io.StringIO()

    code, peak = traced_main(["--json", "get", RELEASE], environ, out, err)

    assert code == 1
    assert "the answer is over 32 MiB" in json.loads(out.getvalue())["error"]["message"]
    assert peak < 48 * 1024 * 1024, f"peak {peak:,} bytes"
