"""The docs' own rules, read without running anything: every shell block with placeholders is
marked a template, every block left out says why, every documented answer is JSON, and the
settings table of docs/operating.md has every variable the service reads."""

import re

import pytest

from tests.doc_blocks import (
    ROOT,
    SHELL_LANGUAGES,
    Block,
    Page,
    check_block,
    doc_pages,
    last_json_document,
    placeholders,
    read_page,
    sections,
    shape_differences,
)

PAGES = [read_page(path) for path in doc_pages()]
# Where the service reads its settings from the environment.
SETTINGS_SOURCES = ("lukittu/settings.py", "lukittu/gunicorn_conf.py")
ENV_READ = re.compile(
    r"""(?:env_\w+\(\s*|os\.environ\.get\(\s*|os\.environ\[\s*|getenv\(\s*)["']([A-Z][A-Z0-9_]+)["']"""
)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.path)
def test_a_block_with_placeholders_is_marked_a_template(page: Page) -> None:
    unmarked = [
        f"{block.where()}: {', '.join(found)}"
        for block in page.shell_blocks
        if block.runs and (found := placeholders(block.text))
    ]
    assert not unmarked, "put <!-- template --> on the line before the fence:\n" + "\n".join(
        unmarked
    )


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.path)
def test_markers_sit_on_shell_blocks_and_a_block_left_out_says_why(page: Page) -> None:
    for block in page.blocks:
        if block.marker:
            assert block.lang in SHELL_LANGUAGES, f"{block.where()}: a marker on a {block.lang}"
        if block.marker == "not run":
            assert len(block.reason) > 20, f"{block.where()}: say why it is not run"


def test_the_docs_run_most_of_their_shell_blocks() -> None:
    blocks = [block for page in PAGES for block in page.shell_blocks]
    running = [block for block in blocks if block.runs]
    assert len(running) >= 20
    assert len(running) > len(blocks) - len(running)


def test_the_readme_is_short_and_its_tour_runs() -> None:
    readme = PAGES[0]
    assert readme.path == "README.md"
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250
    assert sum(block.runs for block in readme.blocks) >= 3


def test_the_webhook_walkthrough_runs_and_checks_a_real_delivery() -> None:
    (webhooks,) = [page for page in PAGES if page.path == "docs/webhooks.md"]
    text = "".join(block.text for block in webhooks.blocks if block.runs)
    assert "scripts/webhook_receiver.py serve" in text
    assert "scripts/webhook_receiver.py verify" in text


def _settings_table() -> dict[str, str]:
    """Variable -> its row, from the one table of docs/operating.md headed by 'variable'."""
    rows, inside = {}, False
    for line in (ROOT / "docs" / "operating.md").read_text().splitlines():
        if line.startswith("| variable | default |"):
            inside = True
            continue
        if inside and not line.startswith("|"):
            break
        if inside and not line.startswith("| ---"):
            first_cell = line.split("|")[1]
            for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", first_cell):
                rows[name] = line
    return rows


def test_every_setting_the_service_reads_is_in_the_settings_table() -> None:
    read = {
        name
        for source in SETTINGS_SOURCES
        for name in ENV_READ.findall((ROOT / source).read_text())
    }
    table = _settings_table()
    assert len(read) > 50
    assert sorted(read - table.keys()) == [], "add these to docs/operating.md, Settings"
    for name, row in table.items():
        cells = [cell.strip() for cell in row.split("|")[1:-1]]
        assert len(cells) == 3 and all(cells), f"{name}: a default and a meaning"


def test_placeholders_are_found_outside_comments() -> None:
    assert placeholders('curl "$API/webhooks/$HOOK/deliveries/<DELIVERY>/redeliver"') == [
        "<DELIVERY>"
    ]
    assert placeholders("manage.py reconcile_storage [--dry-run]") == ["[--dry-run]"]
    assert placeholders("SECRET_KEY=... gunicorn") == ["=..."]
    assert placeholders("curl -F 'data=<data.json' x 2>&1 # see <THIS> ...") == []


def test_shape_differences_ignore_values_and_catch_shapes() -> None:
    doc = {
        "data": {"id": "a", "size": 1, "file": None, "metadata": [{"key": "k"}]},
        "result": {"timestamp": "t", "valid": True, "details": "Release updated"},
    }
    same = {
        "data": {"id": "b", "size": 2.5, "file": None, "metadata": [{"key": "x"}, {"key": "y"}]},
        "result": {"timestamp": "u", "valid": True, "details": "Release updated"},
    }
    assert shape_differences(doc, same) == []
    other = {
        "data": {"id": 3, "file": {}, "metadata": [], "extra": 1},
        "result": {"timestamp": "u", "valid": False, "details": "Release not found"},
    }
    problems = "\n".join(shape_differences(doc, other))
    for expected in (
        "$.data: keys missing ['size'], unexpected ['extra']",
        "$.data.id: expected string, got number",
        "$.data.file: expected null, got dict",
        "$.data.metadata: expected a non-empty list",
        "$.result.valid: expected True, got False",
        "$.result.details",
    ):
        assert expected in problems


def test_the_last_json_document_of_an_output() -> None:
    assert last_json_document('{"a": 1}\nnoise [x\n{"b": [2]}\n') == {"b": [2]}
    with pytest.raises(ValueError):
        last_json_document("no json here")


def _block(answer: object = None, status: int | None = None) -> Block:
    return Block("p.md", 1, "sh", "curl ...\n", answer=answer, answer_status=status)


def test_a_block_fails_on_an_error_answer_it_does_not_document() -> None:
    ok = "@@doctest status 200\n@@doctest status 302\n"
    assert check_block(_block(), "", ok) == []
    assert check_block(_block(), "", "@@doctest status 404\n@@doctest status 200\n") == [
        "request 1 answered 404"
    ]
    envelope = {"data": None, "result": {"valid": False, "code": "RELEASE_NOT_FOUND"}}
    printed = '{"data": null, "result": {"valid": false, "code": "RELEASE_NOT_FOUND"}}'
    documented = _block(envelope, 404)
    assert check_block(documented, printed, "@@doctest status 404\n") == []
    assert check_block(documented, printed, "@@doctest status 400\n") == [
        "the last request answered 400, documented 404"
    ]
    assert check_block(documented, "nothing", "@@doctest status 404\n") == [
        "documented an answer (line None), printed none"
    ]
    wrong = '{"data": null, "result": {"valid": false, "code": "BAD_REQUEST"}}'
    assert check_block(documented, wrong, "@@doctest status 404\n") == [
        "$.result.code: expected 'RELEASE_NOT_FOUND', got 'BAD_REQUEST'"
    ]


def test_the_output_is_split_by_block_and_a_failed_block_keeps_its_output() -> None:
    output = "@@doctest begin 0\na\n@@doctest end 0\n@@doctest begin 1\nb\n"
    assert sections(output) == {0: "\na\n", 1: "\nb\n"}
