"""The JAR reader on hostile bytes: it answers a class name or None, or raises InvalidJar."""

import io
import lzma
import re
import tracemalloc
import zipfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from releases import jar
from releases.jar import MAX_DESCRIPTOR_BYTES, InvalidJar, find_main_class

MANIFEST = "META-INF/MANIFEST.MF"
MEGABYTE = 1024 * 1024
# Many short continuation lines: appending each to the header it continues copies the header
# once per line, which makes this 1 MiB manifest (a 1.2 KB JAR) cost seconds of CPU.
CONTINUATIONS = 349_000
LONG_MANIFEST = (
    "Manifest-Version: 1.0\nCreated-By: x\n"
    + " a\n" * CONTINUATIONS
    + "Main-Class: com.example.Main\n\n"
)

fuzz = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
)


def jar_bytes(members: dict[str, str | bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def local_data_offset(content: bytes, name: str) -> int:
    """Where the first member's compressed data starts: after its local header and name."""
    assert content.startswith(b"PK\x03\x04")
    return 30 + len(name)


def peak_memory_of(function, *args):
    tracemalloc.start()
    try:
        result = function(*args)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


@pytest.fixture(scope="module")
def jar_path(tmp_path_factory):
    """One file that every example overwrites (hypothesis reruns the test body, not fixtures)."""
    return tmp_path_factory.mktemp("fuzz") / "fuzzed.jar"


def outcome(path) -> str | type[InvalidJar] | None:
    """find_main_class's answer, InvalidJar counting as one; any other exception escapes."""
    try:
        main_class = find_main_class(path)
    except InvalidJar:
        return InvalidJar
    assert main_class is None or re.fullmatch(r"[\w$.]{1,512}", main_class), main_class
    return main_class


# --- Fuzzing ----------------------------------------------------------------------------------

VALID_JARS = [
    jar_bytes(
        {
            MANIFEST: "Manifest-Version: 1.0\r\nMain-Class: com.example.ave\r\n ry.Main\r\n\r\n",
            "plugin.yml": "name: Demo\nmain: com.example.Plugin\n",
            "com/example/Main.class": b"\xca\xfe\xba\xbe" * 16,
        },
        compression,
    )
    for compression in (
        zipfile.ZIP_STORED,
        zipfile.ZIP_DEFLATED,
        zipfile.ZIP_BZIP2,
        zipfile.ZIP_LZMA,
    )
] + [
    # No Main-Class in the manifest, so the plugin descriptors are read too.
    jar_bytes(
        {MANIFEST: "Manifest-Version: 1.0\r\n\r\n", "paper-plugin.yml": "main: 'com.example.P'\n"},
        compression,
    )
    for compression in (zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)
]

positions = st.integers(min_value=0, max_value=4095)
mutations = st.lists(
    st.one_of(
        st.tuples(st.just("flip"), positions, st.integers(min_value=1, max_value=255)),
        st.tuples(st.just("insert"), positions, st.binary(min_size=1, max_size=8)),
        st.tuples(st.just("overwrite"), positions, st.binary(min_size=1, max_size=8)),
        st.tuples(st.just("delete"), positions, st.integers(min_value=1, max_value=64)),
        st.tuples(st.just("truncate"), positions, st.none()),
    ),
    min_size=1,
    max_size=3,
)


def mutated(content: bytes, changes: list[tuple]) -> bytes:
    data = bytearray(content)
    for kind, position, argument in changes:
        at = position % (len(data) + 1)
        if kind == "flip" and at < len(data):
            data[at] ^= argument
        elif kind == "insert":
            data[at:at] = argument
        elif kind == "overwrite":
            data[at : at + len(argument)] = argument
        elif kind == "delete":
            del data[at : at + argument]
        elif kind == "truncate":
            del data[at:]
    return bytes(data)


@fuzz
@given(content=st.binary(max_size=2048))
def test_random_bytes_are_a_class_none_or_invalid(jar_path, content):
    jar_path.write_bytes(content)

    outcome(jar_path)


@fuzz
@given(content=st.sampled_from(VALID_JARS), changes=mutations)
def test_a_damaged_jar_is_a_class_none_or_invalid(jar_path, content, changes):
    jar_path.write_bytes(mutated(content, changes))

    outcome(jar_path)


def test_the_undamaged_jars_read_as_expected(tmp_path):
    path = tmp_path / "valid.jar"
    answers = []
    for content in VALID_JARS:
        path.write_bytes(content)
        answers.append(outcome(path))

    # Only stored and deflated members are read: bzip2 and LZMA are refused.
    assert answers == [
        "com.example.avery.Main",
        "com.example.avery.Main",
        InvalidJar,
        InvalidJar,
        "com.example.P",
        InvalidJar,
        InvalidJar,
    ]


# --- Compression and decoder errors -----------------------------------------------------------


def test_a_manifest_with_corrupt_lzma_properties_is_invalid(tmp_path):
    content = bytearray(jar_bytes({MANIFEST: "Main-Class: com.example.Main\r\n"}, zipfile.ZIP_LZMA))
    # ZIP's LZMA data opens with a version (2 bytes), the properties' size (2 bytes, 5) and the
    # properties: lc/lp/pb in one byte, then the dictionary size. 0xff is no valid lc/lp/pb.
    at = local_data_offset(content, MANIFEST)
    assert content[at + 2 : at + 4] == b"\x05\x00"
    content[at + 4 : at + 9] = b"\xff" * 5
    path = tmp_path / "lzma.jar"
    path.write_bytes(bytes(content))
    with zipfile.ZipFile(path) as archive, pytest.raises(lzma.LZMAError):
        archive.read(MANIFEST)

    with pytest.raises(InvalidJar):
        find_main_class(path)


@pytest.mark.parametrize(
    "compression", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA], ids=["bzip2", "lzma"]
)
@pytest.mark.parametrize("descriptor", [MANIFEST, "plugin.yml"])
def test_a_descriptor_the_jvm_could_not_decompress_is_invalid(tmp_path, compression, descriptor):
    """java.util.zip reads stored and deflated entries only."""
    members = {descriptor: "Main-Class: com.example.Main\r\nmain: com.example.Main\n"}
    if descriptor != MANIFEST:
        members[MANIFEST] = "Manifest-Version: 1.0\r\n"
    path = tmp_path / "compressed.jar"
    path.write_bytes(jar_bytes(members, compression))

    with pytest.raises(InvalidJar):
        find_main_class(path)


def test_a_bzip2_bomb_is_refused_without_being_inflated(tmp_path):
    """zipfile inflates bzip2 (and LZMA) a whole input chunk at a time, however little was
    asked for, and bzip2 turns a few hundred bytes into gigabytes."""
    path = tmp_path / "bomb.jar"
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_BZIP2) as archive,
        archive.open(MANIFEST, "w") as member,
    ):
        member.write(b"Main-Class: com.example.Bomb\r\n")
        member.write(bytes(16 * MEGABYTE))
    assert path.stat().st_size < 1024

    tracemalloc.start()
    try:
        with pytest.raises(InvalidJar):
            find_main_class(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MEGABYTE


# --- What escapes and what does not -----------------------------------------------------------


# Where zipfile reads the archive: the central directory, a member's local header, its data.
READING_STEPS = [
    (zipfile.ZipFile, "_RealGetContents"),
    (zipfile.ZipFile, "open"),
    (zipfile.ZipExtFile, "read"),
]


class Unforeseen(Exception):
    """An exception no list of expected ones would name."""


def exception_name(error: BaseException) -> str:
    return type(error).__name__


def raising(error: BaseException):
    def raise_it(*args, **kwargs):
        raise error

    return raise_it


@pytest.mark.parametrize(
    "error",
    [
        lzma.LZMAError("Corrupt input data"),
        OSError("Invalid data stream"),
        UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
        Unforeseen(),
    ],
    ids=exception_name,
)
@pytest.mark.parametrize("target", READING_STEPS, ids=["directory", "member", "data"])
def test_any_exception_reading_the_archive_is_invalid_jar(tmp_path, monkeypatch, target, error):
    path = tmp_path / "app.jar"
    path.write_bytes(jar_bytes({MANIFEST: "Main-Class: com.example.Main\r\n"}))
    monkeypatch.setattr(*target, raising(error))

    with pytest.raises(InvalidJar):
        find_main_class(path)


@pytest.mark.parametrize(
    "error", [KeyboardInterrupt(), SystemExit(1), MemoryError()], ids=exception_name
)
@pytest.mark.parametrize("target", READING_STEPS, ids=["directory", "member", "data"])
def test_interrupts_and_memory_errors_pass_through(tmp_path, monkeypatch, target, error):
    path = tmp_path / "app.jar"
    path.write_bytes(jar_bytes({MANIFEST: "Main-Class: com.example.Main\r\n"}))
    monkeypatch.setattr(*target, raising(error))

    with pytest.raises(type(error)) as raised:
        find_main_class(path)
    assert raised.value is error


# --- The manifest parser ----------------------------------------------------------------------


def reference_main_class(text: str) -> str | None:
    """The manifest rules, written a physical line at a time (quadratic: small inputs only)."""
    headers: list[str] = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if line.startswith(" ") and headers:
            headers[-1] += line[1:]
        elif line == "":
            break
        else:
            headers.append(line)
    for header in headers:
        name, sep, value = header.partition(":")
        if sep and name.strip().lower() == "main-class":
            return jar._class_name(value)
    return None


manifest_pieces = st.sampled_from(
    [
        "Main-Class",
        "main-CLASS",
        "Main-",
        "Class",
        "Name",
        ":",
        " ",
        "  ",
        "\t",
        "\r",
        "\n",
        "\r\n",
        "com.example.",
        "Main",
        "$",
        "é",
        "\u017f",  # long s: str.lower() keeps it, a case-insensitive regex would not
        "\u2028",
        "\x85",
        "\ufeff",
    ]
)
manifests = st.one_of(st.lists(manifest_pieces, max_size=40).map("".join), st.text(max_size=80))


@settings(max_examples=500, deadline=None, derandomize=True, database=None)
@given(text=manifests)
def test_the_manifest_parser_follows_the_manifest_rules(text):
    assert jar._manifest_main_class(text) == reference_main_class(text)


# The project does not time its tests, so the parser's linearity rests on its shape (a fixed
# number of whole-text passes by str methods, nothing appended line by line), and these tests
# pin what can be observed without a clock: the right answer for a manifest of the size and
# shape that makes a line-at-a-time parser quadratic, and peak memory. Memory shows that the
# lines are not held as separate objects; it cannot show copying time, since a quadratic
# parser frees each copy as it makes the next.


def test_a_megabyte_of_continuation_lines_is_parsed():
    assert len(LONG_MANIFEST) <= MAX_DESCRIPTOR_BYTES

    assert jar._manifest_main_class(LONG_MANIFEST) == "com.example.Main"
    # A class name is at most 512 characters.
    assert jar._manifest_main_class(LONG_MANIFEST.replace("Created-By", "Main-Class")) is None


def test_a_small_jar_with_a_megabyte_of_continuation_lines_is_read_in_little_memory(tmp_path):
    path = tmp_path / "continued.jar"
    path.write_bytes(jar_bytes({MANIFEST: LONG_MANIFEST}))
    assert path.stat().st_size < 2048

    main_class, peak = peak_memory_of(find_main_class, path)

    assert main_class == "com.example.Main"
    assert peak < 6 * MAX_DESCRIPTOR_BYTES
