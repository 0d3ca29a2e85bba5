"""The shell blocks of README.md and docs/, read the way the doc test runs them.

A fenced block in ``sh``, ``bash`` or ``shell`` is run, unless the line before its fence marks
it: ``<!-- template -->`` (it has placeholders to fill in) or ``<!-- not run: REASON -->`` (it
starts something long-lived, or what it does is checked elsewhere, which REASON says). A ``json``
block that follows a run block with nothing but blank lines between is that block's answer: the
last JSON document the block prints must have its shape. A ``title="201 Created"`` on the answer's
fence also names the HTTP status of the block's last request."""

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHELL_LANGUAGES = {"sh", "bash", "shell"}
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,})(?P<lang>[\w-]*)(?P<info>.*)$")
MARKER = re.compile(r"^\s*<!--\s*(?P<kind>template|not run)\s*(?::\s*(?P<reason>.*?))?\s*-->\s*$")
STATUS_TITLE = re.compile(r'title="(?P<status>\d{3})\b')
# What a reader must replace: <TEAM_ID>, <license id>, [--flag], a value left as "...".
PLACEHOLDERS = (
    re.compile(r"<[A-Za-z][A-Za-z0-9_ -]*>"),
    re.compile(r"\[--?[A-Za-z][^\]]*\]"),
    re.compile(r"(^|[=\s'\"])\.\.\.($|[\s'\"])"),
)
# What the doc test's shell prints around each block, and its curl's record of each status.
STATUS = re.compile(r"^@@doctest status (\d{3})$", re.MULTILINE)
BLOCK = re.compile(r"^@@doctest (begin|end) (\d+)$", re.MULTILINE)
# Result fields whose values are the answer's meaning, not incidental: compared exactly.
EXACT_RESULT_FIELDS = ("valid", "code", "details")


@dataclass
class Block:
    page: str
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    marker: str | None = None  # "template" or "not run"
    reason: str = ""
    answer: object = None  # the parsed JSON answer that follows, if any
    answer_status: int | None = None
    answer_line: int | None = None

    @property
    def runs(self) -> bool:
        return self.lang in SHELL_LANGUAGES and self.marker is None

    def where(self) -> str:
        return f"{self.page}:{self.line}"


@dataclass
class Page:
    path: str
    blocks: list[Block] = field(default_factory=list)

    @property
    def shell_blocks(self) -> list[Block]:
        return [block for block in self.blocks if block.lang in SHELL_LANGUAGES]


def doc_pages() -> list[Path]:
    """README.md, then the site's pages in their navigation order, then any page not in it."""
    docs = ROOT / "docs"
    nav = re.findall(r":\s*(\S+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), re.MULTILINE)
    ordered = [docs / name for name in nav]
    rest = sorted(p for p in docs.rglob("*.md") if p not in ordered)
    return [ROOT / "README.md", *ordered, *rest]


def read_page(path: Path) -> Page:
    lines = path.read_text().splitlines()
    page = Page(str(path.relative_to(ROOT)))
    index = 0
    previous_run_end: int | None = None  # the line after the last run block's closing fence
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        body, end = [], index + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            body.append(lines[end][indent:] if lines[end][:indent].isspace() else lines[end])
            end += 1
        block = Block(page.path, index + 1, opening["lang"].lower(), "\n".join(body) + "\n")
        marker = MARKER.match(lines[index - 1]) if index else None
        if marker:
            block.marker, block.reason = marker["kind"], (marker["reason"] or "").strip()
        gap = lines[previous_run_end:index] if previous_run_end is not None else None
        if block.lang == "json" and gap is not None and all(not line.strip() for line in gap):
            runner = page.blocks[-1]
            runner.answer = json.loads(block.text)
            runner.answer_line = block.line
            status = STATUS_TITLE.search(opening["info"])
            runner.answer_status = int(status["status"]) if status else None
        page.blocks.append(block)
        previous_run_end = end + 1 if block.runs else None
        index = end + 1
    return page


def placeholders(text: str) -> list[str]:
    """What in a shell block looks like a placeholder (comments aside)."""
    code = "\n".join(re.sub(r"(^|\s)#.*$", "", line) for line in text.splitlines())
    return [match.group(0).strip() for pattern in PLACEHOLDERS for match in pattern.finditer(code)]


def shape_differences(expected: object, actual: object, path: str = "$") -> list[str]:
    """Where ``actual`` differs from ``expected`` in shape: object keys, JSON types, list
    emptiness, and the envelope's ``result.valid``, ``code`` and ``details``. Values (ids,
    times, versions) may differ."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected an object, got {json.dumps(actual)[:80]}"]
        problems = []
        missing, extra = expected.keys() - actual.keys(), actual.keys() - expected.keys()
        if missing or extra:
            problems.append(f"{path}: keys missing {sorted(missing)}, unexpected {sorted(extra)}")
        for key in expected.keys() & actual.keys():
            problems += shape_differences(expected[key], actual[key], f"{path}.{key}")
        if path == "$.result":
            problems += [
                f"$.result.{key}: expected {expected[key]!r}, got {actual[key]!r}"
                for key in EXACT_RESULT_FIELDS
                if key in expected and key in actual and expected[key] != actual[key]
            ]
        return problems
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{path}: expected a list, got {json.dumps(actual)[:80]}"]
        if bool(expected) != bool(actual):
            return [f"{path}: expected {'a non-empty' if expected else 'an empty'} list"]
        return [
            problem
            for i, item in enumerate(actual)
            for problem in shape_differences(
                expected[min(i, len(expected) - 1)], item, f"{path}[{i}]"
            )
        ]
    if _json_type(expected) != _json_type(actual):
        return [f"{path}: expected {_json_type(expected)}, got {_json_type(actual)}"]
    return []


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__.replace("str", "string")


def last_json_document(output: str) -> object:
    """The last JSON value in a command's output (several may be printed one after another)."""
    decoder, index, last = json.JSONDecoder(), 0, None
    found = False
    while index < len(output):
        start = min(
            (i for i in (output.find("{", index), output.find("[", index)) if i != -1),
            default=-1,
        )
        if start == -1:
            break
        try:
            last, index = decoder.raw_decode(output, start)
            found = True
        except json.JSONDecodeError:
            index = start + 1
    if not found:
        raise ValueError("no JSON in the output")
    return last


def sections(output: str) -> dict[int, str]:
    """What each block printed, by its number."""
    sections, begin = {}, None
    for match in BLOCK.finditer(output):
        if match[1] == "begin":
            begin = match
        elif begin is not None and begin[2] == match[2]:
            sections[int(match[2])] = output[begin.end() : match.start()]
            begin = None
    if begin is not None:  # the block that failed
        sections[int(begin[2])] = output[begin.end() :]
    return sections


def check_block(block: Block, stdout: str, stderr: str) -> list[str]:
    problems = []
    statuses = [int(status) for status in STATUS.findall(stderr)]
    expected_last = block.answer_status
    for position, status in enumerate(statuses):
        last = position == len(statuses) - 1
        if last and expected_last is not None:
            if status != expected_last:
                problems.append(f"the last request answered {status}, documented {expected_last}")
        elif status >= 400:
            problems.append(f"request {position + 1} answered {status}")
    if block.answer is not None:
        try:
            actual = last_json_document(stdout)
        except ValueError:
            return [*problems, f"documented an answer (line {block.answer_line}), printed none"]
        problems += shape_differences(block.answer, actual)
    return problems
