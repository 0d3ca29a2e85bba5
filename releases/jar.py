"""Finds a JAR's main class, reading as little of a possibly hostile archive as it can.

Bounded in memory and time: the central directory's entry count is checked before zipfile
parses it, and only the small descriptor files are ever decompressed, when stored or deflated,
at most ``MAX_DESCRIPTOR_BYTES`` of each (a zip bomb stops there); parsing them is linear.
"""

import re
import struct
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MAX_ENTRIES = 100_000
MAX_DESCRIPTOR_BYTES = 1024 * 1024
PLUGIN_DESCRIPTORS = ("plugin.yml", "paper-plugin.yml", "bungee.yml")
_CLASS_NAME = re.compile(r"[\w$.]{1,512}")
_EOCD = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_EOCD = b"PK\x06\x06"
_CENTRAL_RECORD = b"PK\x01\x02"
# The methods java.util.zip reads, so the only ones a runnable JAR's descriptors use. zipfile
# inflates bzip2 and LZMA a whole input chunk at a time, whatever was asked for: a 1 KB bzip2
# member becomes gigabytes before MAX_DESCRIPTOR_BYTES could apply.
_JVM_COMPRESSION = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
_LINE = re.compile(r"[^\n]+")


class InvalidJar(Exception):
    pass


@contextmanager
def _reading_errors_as_invalid() -> Iterator[None]:
    """What zipfile and its decompressors raise on bad bytes is an open-ended, version-dependent
    set (BadZipFile, zlib.error, lzma.LZMAError, EOFError, UnicodeDecodeError, ...), so every
    Exception raised while reading means the archive is not a JAR we can read."""
    try:
        yield
    except MemoryError:
        # Reading is bounded by the file's size and MAX_DESCRIPTOR_BYTES, so running out of
        # memory says the process is short of it, not that the file is bad: a 500 the client
        # may retry, not a 400 that blames the upload.
        raise
    except Exception:
        raise InvalidJar from None


def _entry_count(path: Path) -> int:
    """Entries announced by the end-of-central-directory record (ZIP64 included), or, when
    more, the records the central directory really holds: zipfile parses every record there
    whatever the count says, and the count is the archive's own (possibly lying) claim."""
    with path.open("rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        tail_length = min(size, 22 + 65535)
        handle.seek(size - tail_length)
        tail = handle.read(tail_length)
        at = tail.rfind(_EOCD)
        if at < 0 or len(tail) - at < 22:
            raise InvalidJar
        entries, directory_size = struct.unpack_from("<HI", tail, at + 10)
        directory_end = size - tail_length + at
        locator_at = at - 20
        if locator_at >= 0 and tail[locator_at : locator_at + 4] == _ZIP64_LOCATOR:
            zip64_offset = struct.unpack_from("<Q", tail, locator_at + 8)[0]
            if zip64_offset + 56 > size:
                raise InvalidJar
            handle.seek(zip64_offset)
            record = handle.read(56)
            if record[:4] != _ZIP64_EOCD:
                raise InvalidJar
            entries, directory_size = struct.unpack_from("<QQ", record, 32)
            directory_end -= 76  # zipfile expects the ZIP64 record and locator there
        # Where zipfile will read the directory from. Every record starts with a signature, so
        # counting signatures can only overcount (and only for a crafted archive).
        directory_start = max(0, directory_end - directory_size)
        handle.seek(directory_start)
        records = handle.read(max(0, directory_end - directory_start)).count(_CENTRAL_RECORD)
        return max(entries, records)


def _read_text(archive: zipfile.ZipFile, name: str) -> str | None:
    with _reading_errors_as_invalid():
        try:
            info = archive.getinfo(name)
        except KeyError:
            return None
        if info.compress_type not in _JVM_COMPRESSION:
            raise InvalidJar
        with archive.open(info) as member:
            data = member.read(MAX_DESCRIPTOR_BYTES)
    return data.decode("utf-8", errors="replace").lstrip("\ufeff")


def _class_name(value: str) -> str | None:
    value = value.strip()
    return value if _CLASS_NAME.fullmatch(value) else None


def _manifest_main_class(text: str) -> str | None:
    """The Main-Class header of the main section, which ends at the first blank line. A line
    starting with a space continues the header above it. Each step is one pass over the text:
    appending continuation lines one at a time copies their header once per line, quadratic
    in a manifest of many short ones."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if text.startswith("\n"):
        return None  # an empty main section
    # Inside the main section every "\n " starts a continuation line: dropping it joins the line
    # to its header. The first line has no "\n" before it, so a space there stays.
    headers = text.partition("\n\n")[0].replace("\n ", "")
    # Lazily, line by line: a list of a few hundred thousand short headers would hold ~20 MB.
    for header in _LINE.finditer(headers):
        name, sep, value = header[0].partition(":")
        if sep and name.strip().lower() == "main-class":
            return _class_name(value)
    return None


def _descriptor_main(text: str) -> str | None:
    for line in text.splitlines():
        if not line or line[0] in " \t#-":
            continue  # only top-level keys
        name, sep, value = line.partition(":")
        if sep and name.strip() == "main":
            value = value.split(" #", 1)[0].strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            return _class_name(value)
    return None


def find_main_class(path: str | Path) -> str | None:
    """The archive's main class, or None. Raises InvalidJar, and nothing else, for anything that
    is not a readable ZIP archive or whose descriptors the JVM could not decompress."""
    path = Path(path)
    # Only reading is guarded: the parsers below take any text, so an exception from them is
    # a bug to see, not a verdict on the upload.
    with _reading_errors_as_invalid():
        if _entry_count(path) > MAX_ENTRIES:
            raise InvalidJar
        archive = zipfile.ZipFile(path)
    with archive:
        manifest = _read_text(archive, "META-INF/MANIFEST.MF")
        if manifest is not None and (main := _manifest_main_class(manifest)):
            return main
        for descriptor in PLUGIN_DESCRIPTORS:
            text = _read_text(archive, descriptor)
            if text is not None and (main := _descriptor_main(text)):
                return main
    return None
