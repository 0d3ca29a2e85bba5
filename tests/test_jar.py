"""Finding a JAR's main class: the manifest, the plugin descriptors, and hostile archives."""

import io
import struct
import tracemalloc
import zipfile

import pytest

from releases import jar
from releases.jar import InvalidJar, find_main_class
from releases.models import ReleaseFile
from tests.helpers import (
    assert_error,
    attach_file,
    make_jar,
    put_release,
    read_object,
    stored_objects,
    team_state,
    update_data,
)

MEGABYTE = 1024 * 1024


def write_archive(tmp_path, members, name="archive.jar"):
    path = tmp_path / name
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, content in members.items():
            archive.writestr(member, content)
    return path


def main_class_of(tmp_path, members):
    return find_main_class(write_archive(tmp_path, members))


def write_bytes(tmp_path, content, name="archive.jar"):
    path = tmp_path / name
    path.write_bytes(content)
    return path


# --- META-INF/MANIFEST.MF ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "manifest",
    [
        "Manifest-Version: 1.0\r\nMain-Class: com.example.Main\r\n\r\n",
        "Manifest-Version: 1.0\nMain-Class: com.example.Main\n",
        "Manifest-Version: 1.0\rMain-Class: com.example.Main\r",
        "Main-Class:com.example.Main",
        "main-class:   com.example.Main   \r\n",
        "\ufeffMain-Class: com.example.Main\r\n",
    ],
)
def test_main_class_from_the_manifest(tmp_path, manifest):
    assert main_class_of(tmp_path, {"META-INF/MANIFEST.MF": manifest}) == "com.example.Main"


def test_a_continuation_line_continues_the_class_name(tmp_path):
    manifest = (
        "Manifest-Version: 1.0\r\n"
        "Main-Class: com.example.averyveryveryveryveryveryveryveryveryverylongpack\r\n"
        " age.Main\r\n"
        "Created-By: tests\r\n\r\n"
    )

    assert main_class_of(tmp_path, {"META-INF/MANIFEST.MF": manifest}) == (
        "com.example.averyveryveryveryveryveryveryveryveryverylongpackage.Main"
    )


def test_only_the_main_section_of_the_manifest_counts(tmp_path):
    manifest = (
        "Manifest-Version: 1.0\r\n"
        "Created-By: tests\r\n"
        "\r\n"
        "Name: com/example/Other.class\r\n"
        "Main-Class: com.example.NotThis\r\n"
        "\r\n"
    )

    assert main_class_of(tmp_path, {"META-INF/MANIFEST.MF": manifest}) is None


def test_a_per_entry_main_class_does_not_hide_a_plugin_descriptor(tmp_path):
    manifest = "Manifest-Version: 1.0\r\n\r\nName: x\r\nMain-Class: com.example.NotThis\r\n"

    assert (
        main_class_of(
            tmp_path,
            {"META-INF/MANIFEST.MF": manifest, "plugin.yml": "main: com.example.Plugin\n"},
        )
        == "com.example.Plugin"
    )


def test_the_manifest_wins_over_plugin_descriptors(tmp_path):
    members = {
        "META-INF/MANIFEST.MF": "Main-Class: com.example.FromManifest\r\n",
        "plugin.yml": "main: com.example.FromPlugin\n",
    }

    assert main_class_of(tmp_path, members) == "com.example.FromManifest"


def test_a_main_class_that_is_not_a_class_name_is_not_one(tmp_path):
    manifest = "Main-Class: not a class; rm -rf /\r\n"

    assert main_class_of(tmp_path, {"META-INF/MANIFEST.MF": manifest}) is None


# --- plugin.yml, paper-plugin.yml, bungee.yml -------------------------------------------------


@pytest.mark.parametrize("descriptor", ["plugin.yml", "paper-plugin.yml", "bungee.yml"])
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: Demo\nmain: com.example.Plugin\nversion: 1.0\n", "com.example.Plugin"),
        ("main: 'com.example.Single'\n", "com.example.Single"),
        ('main: "com.example.Double"\n', "com.example.Double"),
        ("main: com.example.Commented # the entry point\n", "com.example.Commented"),
        ("# main: com.example.NotThis\nmain: com.example.Real\n", "com.example.Real"),
        (
            "commands:\n  main: com.example.Nested\nmain: com.example.TopLevel\n",
            "com.example.TopLevel",
        ),
        ("name: Demo\r\nmain: com.example.Crlf\r\n", "com.example.Crlf"),
        ("name: Demo\nversion: 1.0\n", None),
        ("commands:\n  main: com.example.OnlyNested\n", None),
    ],
)
def test_main_from_a_plugin_descriptor(tmp_path, descriptor, text, expected):
    members = {"META-INF/MANIFEST.MF": "Manifest-Version: 1.0\r\n\r\n", descriptor: text}

    assert main_class_of(tmp_path, members) == expected


def test_plugin_descriptors_are_tried_in_order(tmp_path):
    members = {
        "bungee.yml": "main: com.example.Bungee\n",
        "paper-plugin.yml": "main: com.example.Paper\n",
    }

    assert main_class_of(tmp_path, members) == "com.example.Paper"
    assert main_class_of(tmp_path, {"bungee.yml": "main: com.example.Bungee\n"}) == (
        "com.example.Bungee"
    )


def test_descriptors_count_only_at_the_archive_root(tmp_path):
    members = {"resources/plugin.yml": "main: com.example.Deep\n", "a.txt": "x"}

    assert main_class_of(tmp_path, members) is None


def test_no_manifest_and_no_descriptor_means_no_main_class(tmp_path):
    assert main_class_of(tmp_path, {"com/example/Main.class": b"\xca\xfe\xba\xbe"}) is None


# --- Not archives -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not a zip at all",
        b"PK\x03\x04" + b"\x00" * 100,
        b"PK\x05\x06" + b"\x00" * 5,  # a cut end record
    ],
)
def test_bytes_that_are_not_a_zip_archive_are_invalid(tmp_path, content):
    with pytest.raises(InvalidJar):
        find_main_class(write_bytes(tmp_path, content))


@pytest.mark.parametrize("keep", [0.5, 0.9, -1])
def test_a_truncated_archive_is_invalid(tmp_path, keep):
    content = make_jar(extra={"com/example/Main.class": b"\xca\xfe" * 500})
    cut = len(content) - 1 if keep == -1 else int(len(content) * keep)

    with pytest.raises(InvalidJar):
        find_main_class(write_bytes(tmp_path, content[:cut]))


def test_an_archive_with_a_gap_cut_out_is_invalid(tmp_path):
    """The end record is intact but the offsets it gives point at the wrong bytes."""
    content = make_jar(extra={"com/example/Main.class": b"\xca\xfe" * 500})
    damaged = content[:40] + content[200:]

    with pytest.raises(InvalidJar):
        find_main_class(write_bytes(tmp_path, damaged))


def test_a_corrupt_compressed_manifest_is_invalid(tmp_path):
    """The directory is fine but the deflate stream of the manifest is garbage."""
    content = bytearray(make_jar("Main-Class: com.example.Main\r\n" * 20))
    data_at = 30 + len("META-INF/MANIFEST.MF")
    content[data_at : data_at + 16] = b"\xff" * 16

    with pytest.raises(InvalidJar):
        find_main_class(write_bytes(tmp_path, bytes(content)))


def test_an_unsupported_compression_method_is_invalid(tmp_path):
    content = bytearray(make_jar())
    # Compression method 99 (AES) in the local header and the central directory entry.
    struct.pack_into("<H", content, 8, 99)
    central = content.rfind(b"PK\x01\x02")
    struct.pack_into("<H", content, central + 10, 99)

    with pytest.raises(InvalidJar):
        find_main_class(write_bytes(tmp_path, bytes(content)))


def test_an_encrypted_manifest_is_invalid(tmp_path):
    content = bytearray(make_jar())
    # Set the "encrypted" flag bit in the local header and the central directory entry.
    struct.pack_into("<H", content, 6, 1)
    central = content.rfind(b"PK\x01\x02")
    struct.pack_into("<H", content, central + 8, 1)

    with pytest.raises(InvalidJar):
        find_main_class(write_bytes(tmp_path, bytes(content)))


# --- Hostile archives -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def zip_bomb(tmp_path_factory):
    """A 200 MB manifest of zeros (after a Main-Class line), written in chunks so that the
    test never holds it in memory; it compresses to under 1 MB."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.jar"
    chunk = bytes(MEGABYTE)
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive,
        archive.open("META-INF/MANIFEST.MF", "w") as member,
    ):
        member.write(b"Main-Class: com.example.Bomb\r\n")
        for _ in range(200):
            member.write(chunk)
    return path


def peak_memory_of(function, *args):
    tracemalloc.start()
    try:
        result = function(*args)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


def test_a_zip_bomb_manifest_is_read_only_up_to_the_bound(zip_bomb):
    assert zip_bomb.stat().st_size < 2 * MEGABYTE
    with zipfile.ZipFile(zip_bomb) as archive:
        assert archive.getinfo("META-INF/MANIFEST.MF").file_size > 200 * MEGABYTE

    main_class, peak = peak_memory_of(find_main_class, zip_bomb)

    assert main_class == "com.example.Bomb"
    assert peak < 20 * MEGABYTE


def test_a_zip_bomb_descriptor_is_read_only_up_to_the_bound(tmp_path):
    path = tmp_path / "bomb.jar"
    chunk = b"#" * MEGABYTE
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\n")
        with archive.open("plugin.yml", "w") as member:
            for _ in range(32):
                member.write(chunk)

    main_class, peak = peak_memory_of(find_main_class, path)

    assert main_class is None
    assert peak < 20 * MEGABYTE


def test_more_entries_than_allowed_is_invalid(tmp_path, monkeypatch):
    monkeypatch.setattr(jar, "MAX_ENTRIES", 5)
    members = {"META-INF/MANIFEST.MF": "Main-Class: com.example.Main\r\n"}

    members.update({f"f{index}.class": b"" for index in range(4)})
    assert main_class_of(tmp_path, members) == "com.example.Main"

    members["f4.class"] = b""
    with pytest.raises(InvalidJar):
        main_class_of(tmp_path, members)


def test_an_end_record_that_understates_the_entries_does_not_get_past_the_limit(
    tmp_path, monkeypatch
):
    """The end record's entry counts are the attacker's to write: the limit must hold for the
    entries the central directory really has."""
    monkeypatch.setattr(jar, "MAX_ENTRIES", 5)
    members = {"META-INF/MANIFEST.MF": "Main-Class: com.example.Main\r\n"}
    members.update({f"f{index}.class": b"" for index in range(50)})
    content = bytearray(write_archive(tmp_path, members).read_bytes())
    end = content.rfind(b"PK\x05\x06")
    struct.pack_into("<HH", content, end + 8, 1, 1)  # "1 entry" on this disk and in all
    with zipfile.ZipFile(io.BytesIO(bytes(content))) as archive:
        assert len(archive.infolist()) == 51  # zipfile itself ignores the count

    with pytest.raises(InvalidJar):
        find_main_class(write_bytes(tmp_path, bytes(content), "liar.jar"))


def test_a_zip64_end_record_announcing_too_many_entries_is_invalid(tmp_path, monkeypatch):
    monkeypatch.setattr(jar, "MAX_ENTRIES", 5)
    path = tmp_path / "zip64.jar"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        archive.writestr("META-INF/MANIFEST.MF", "Main-Class: com.example.Main\r\n")
    content = bytearray(path.read_bytes())
    # Rewrite the end as ZIP64: record, locator, then an end record that defers to them.
    end = content.rfind(b"PK\x05\x06")
    entries, cd_size, cd_offset = struct.unpack_from("<HII", content, end + 10)
    record = struct.pack(
        "<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, 10**9, 10**9, cd_size, cd_offset
    )
    locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, end, 1)
    end_record = struct.pack(
        "<4s4H2IH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0
    )
    assert entries == 1
    rewritten = bytes(content[:end]) + record + locator + end_record

    with pytest.raises(InvalidJar):
        find_main_class(write_bytes(tmp_path, rewritten, "announced.jar"))


# --- Through the endpoint ---------------------------------------------------------------------


def put_file(client, world, name, content, **data):
    return put_release(
        client,
        world.team.id,
        world.release.id,
        key=world.key,
        data=update_data(world.release, **data),
        file=(name, content),
    )


def test_the_main_class_is_in_the_response_and_the_row(client, world):
    content = make_jar(
        "Manifest-Version: 1.0\r\nMain-Class: com.example.app.Main\r\n\r\n",
        extra={"plugin.yml": "main: com.example.NotThis\n"},
    )

    response = put_file(client, world, "app.jar", content)

    assert response.status_code == 200, response.json()
    row = ReleaseFile.objects.get(release=world.release)
    assert row.main_class_name == "com.example.app.Main"
    assert response.json()["data"]["file"]["mainClassName"] == "com.example.app.Main"
    assert read_object(row.key) == content


def test_a_plugin_jar_gets_its_main_from_plugin_yml(client, world):
    content = make_jar(None, extra={"plugin.yml": "name: P\nmain: 'com.example.Plugin'\n"})

    response = put_file(client, world, "plugin.jar", content)

    assert response.status_code == 200, response.json()
    assert response.json()["data"]["file"]["mainClassName"] == "com.example.Plugin"
    assert ReleaseFile.objects.get(release=world.release).main_class_name == "com.example.Plugin"


def test_an_uppercase_jar_extension_is_a_jar(client, world):
    response = put_file(client, world, "APP.JAR", make_jar())

    assert response.status_code == 200, response.json()
    row = ReleaseFile.objects.get(release=world.release)
    assert row.main_class_name == "com.example.Main"
    assert row.name == "APP.JAR"
    assert row.key == f"releases/{world.team.id}/{world.release.id}/{row.id}.jar"


@pytest.mark.parametrize("name", ["app.jar", "APP.JAR", "app.Jar"])
def test_a_jar_that_is_not_a_zip_is_refused(client, world, name):
    old = attach_file(world.release)
    before = team_state(world.team)

    response = put_file(client, world, name, b"this is not a zip", version="2.0.0")

    assert_error(response, 400, "Invalid JAR file")
    assert team_state(world.team) == before
    assert stored_objects() == [old.key]


def test_a_truncated_jar_is_refused(client, world):
    content = make_jar()

    response = put_file(client, world, "app.jar", content[: len(content) // 2])

    assert_error(response, 400, "Invalid JAR file")
    assert not ReleaseFile.objects.exists()
    assert stored_objects() == []


def test_a_jar_with_a_corrupt_manifest_is_refused_not_a_crash(client, world):
    content = bytearray(make_jar("Main-Class: com.example.Main\r\n" * 20))
    data_at = 30 + len("META-INF/MANIFEST.MF")
    content[data_at : data_at + 16] = b"\xff" * 16

    response = put_file(client, world, "app.jar", bytes(content))

    assert_error(response, 400, "Invalid JAR file")
    assert not ReleaseFile.objects.exists()
    assert stored_objects() == []


def test_a_jar_without_a_main_class_is_refused(client, world):
    response = put_file(client, world, "lib.jar", make_jar("Manifest-Version: 1.0\r\n\r\n"))

    assert_error(response, 400, "Main class not found in JAR file")
    assert not ReleaseFile.objects.exists()
    assert stored_objects() == []


def test_other_extensions_are_not_inspected(client, world):
    response = put_file(client, world, "app.zip", b"not a zip, and that is fine")

    assert response.status_code == 200, response.json()
    assert response.json()["data"]["file"]["mainClassName"] is None


def test_a_zip_bomb_jar_is_accepted_with_its_main_class(client, world, zip_bomb):
    content = zip_bomb.read_bytes()

    response = put_file(client, world, "bomb.jar", content)

    assert response.status_code == 200, response.json()
    row = ReleaseFile.objects.get(release=world.release)
    assert row.main_class_name == "com.example.Bomb"
    assert row.size == len(content)


def test_a_jar_with_too_many_entries_is_refused(client, world, monkeypatch):
    monkeypatch.setattr(jar, "MAX_ENTRIES", 3)
    content = make_jar(extra={f"f{index}.class": b"" for index in range(3)})

    response = put_file(client, world, "many.jar", content)

    assert_error(response, 400, "Invalid JAR file")
    assert not ReleaseFile.objects.exists()
    assert stored_objects() == []
