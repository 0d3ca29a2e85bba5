"""Finds a JAR's main class, reading as little of a possibly hostile archive as it can.

Bounded in memory and time: the central directory's entry count is checked before zipfile
parses it, and only the three small descriptor files are ever decompressed, at most
``MAX_DESCRIPTOR_BYTES`` of each (a zip bomb stops there).
"""

import re
import struct
import zipfile
import zlib
from pathlib import Path

MAX_ENTRIES = 100_000
MAX_DESCRIPTOR_BYTES = 1024 * 1024
PLUGIN_DESCRIPTORS = ("plugin.yml", "paper-plugin.yml", "bungee.yml")
_CLASS_NAME = re.compile(r"[\w$.]{1,512}")
_EOCD = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_EOCD = b"PK\x06\x06"
_CENTRAL_RECORD = b"PK\x01\x02"


class InvalidJar(Exception):
    pass


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
    try:
        info = archive.getinfo(name)
    except KeyError:
        return None
    with archive.open(info) as member:
        data = member.read(MAX_DESCRIPTOR_BYTES)
    return data.decode("utf-8", errors="replace").lstrip("\ufeff")


def _class_name(value: str) -> str | None:
    value = value.strip()
    return value if _CLASS_NAME.fullmatch(value) else None


def _manifest_main_class(text: str) -> str | None:
    lines: list[str] = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if line.startswith(" ") and lines:
            lines[-1] += line[1:]  # a continuation line
        elif line == "":
            break  # the main section ends at the first blank line
        else:
            lines.append(line)
    for line in lines:
        name, sep, value = line.partition(":")
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
    """The archive's main class, or None. Raises InvalidJar for anything that is not a
    readable ZIP archive."""
    path = Path(path)
    try:
        if _entry_count(path) > MAX_ENTRIES:
            raise InvalidJar
        with zipfile.ZipFile(path) as archive:
            manifest = _read_text(archive, "META-INF/MANIFEST.MF")
            if manifest is not None and (main := _manifest_main_class(manifest)):
                return main
            for descriptor in PLUGIN_DESCRIPTORS:
                text = _read_text(archive, descriptor)
                if text is not None and (main := _descriptor_main(text)):
                    return main
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        OSError,
        EOFError,
        ValueError,
        NotImplementedError,
        RuntimeError,
        struct.error,
        zlib.error,
    ):
        raise InvalidJar from None
    return None
