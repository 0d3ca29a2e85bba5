"""Which tests start processes of their own (gunicorn, moto's S3 server, Chromium, manage.py or
any other subprocess): they get the ``live`` marker, found from their code, so nobody marks them
by hand. They cost most of the suite's time; CI runs them once, in the PostgreSQL + Redis pass
(``pytest -m "not live"`` leaves them out, see docs/getting-started.md).

A test is live when its function, a fixture it uses, or a function or class of the test modules
that either of those names (followed to any depth) names one of the starters below. A starter
reached some other way (``request.getfixturevalue``, say) is caught when it runs: ``live_server``
and ``start_chromium`` call ``require_live`` and fail an unmarked test."""

import subprocess
from collections.abc import Iterator
from types import CodeType, FunctionType, ModuleType

import pytest

MARKER = "live"
# The test that is running now (set by conftest), for ``require_live``.
running: list[pytest.Item] = []


def _is_starter(target: object, starters: tuple[object, ...]) -> bool:
    if target is subprocess:
        return True
    if getattr(target, "__module__", None) == "subprocess":  # from subprocess import run
        return True
    return any(target is starter for starter in starters)


def _own_code(target: object) -> Iterator[tuple[CodeType, dict]]:
    """The code of a function or a class's functions, when they belong to the test package
    (this module aside: it names ``subprocess`` to find the others)."""
    module = getattr(target, "__module__", None) or ""
    if not module.startswith("tests") or module == __name__:
        return
    if isinstance(target, FunctionType):
        yield target.__code__, target.__globals__
    elif isinstance(target, type):
        for member in vars(target).values():
            if isinstance(member, FunctionType):
                yield member.__code__, member.__globals__


def _names_a_starter(
    code: CodeType, namespace: dict, starters: tuple[object, ...], seen: set[CodeType]
) -> bool:
    if code in seen:
        return False
    seen.add(code)
    for name in code.co_names:
        target = namespace.get(name)
        if isinstance(target, ModuleType) and target is not subprocess:
            continue
        if _is_starter(target, starters):
            return True
        if any(_names_a_starter(c, g, starters, seen) for c, g in _own_code(target)):
            return True
    # Functions and lambdas defined inside this one.
    return any(
        _names_a_starter(const, namespace, starters, seen)
        for const in code.co_consts
        if isinstance(const, CodeType)
    )


def starts_processes(item: pytest.Item, starters: tuple[object, ...]) -> bool:
    functions = [getattr(item, "function", None)]
    fixture_info = getattr(item, "_fixtureinfo", None)
    if fixture_info is not None:
        for definitions in fixture_info.name2fixturedefs.values():
            functions += [definition.func for definition in definitions]
    # ``backend`` asks for the S3 server by name, at run time.
    callspec = getattr(item, "callspec", None)
    if callspec is not None and callspec.params.get("backend") == "s3":
        return True
    seen: set[CodeType] = set()
    return any(
        _names_a_starter(code, namespace, starters, seen)
        for function in functions
        if function is not None
        for code, namespace in _own_code(getattr(function, "__wrapped__", function))
    )


def require_live(what: str) -> None:
    """Fail a test that starts ``what`` without the ``live`` marker: CI would run it in the
    wrong pass. Mark it with ``@pytest.mark.live`` if its code hides the start."""
    if running and running[-1].get_closest_marker(MARKER) is None:
        pytest.fail(f"{running[-1].nodeid} starts {what} but is not marked {MARKER!r}")
