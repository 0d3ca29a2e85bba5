"""A row of the table, its target, and how figures are printed."""

from __future__ import annotations

import statistics
from dataclasses import dataclass


@dataclass
class Row:
    number: int
    measure: str
    limit: float
    strict: bool = False  # the target is "< limit" rather than "<= limit"
    # The ratio must reach the limit (a throughput) rather than stay under it (a cost).
    at_least: bool = False
    a: str = ""
    b: str = ""
    ratio: float | None = None
    error: str = ""

    @property
    def target(self) -> str:
        operator = ">=" if self.at_least else "<" if self.strict else "<="
        return f"{operator} {self.limit:g}x"

    @property
    def met(self) -> str:
        if self.ratio is None:
            return "error"
        if self.at_least:
            ok = self.ratio >= self.limit
        else:
            ok = self.ratio < self.limit if self.strict else self.ratio <= self.limit
        return "yes" if ok else "NO"

    def cells(self) -> list[str]:
        ratio = "-" if self.ratio is None else f"{self.ratio:.2f}x"
        return [f"{self.number}. {self.measure}", self.a, self.b, ratio, self.target, self.met]


HEADERS = ["measure", "A", "B", "ratio", "target", "met"]


def table_text(rows: list[Row]) -> str:
    cells = [HEADERS] + [row.cells() for row in rows]
    widths = [max(len(line[column]) for line in cells) for column in range(len(HEADERS))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in cells
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def table_markdown(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + " --- |" * len(HEADERS)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def seconds(value: float) -> str:
    return f"{value:.2f} s" if value >= 1 else f"{value * 1000:.0f} ms"


def median(values: list[float]) -> float:
    return statistics.median(values)


def show(label: str, values: list[float]) -> None:
    print(
        f"  {label}: median {seconds(median(values))} of {len(values)}: "
        + ", ".join(seconds(value) for value in values)
    )


def compared(a: list[float], b: list[float]) -> tuple[str, str, float]:
    return seconds(median(a)), seconds(median(b)), median(a) / median(b)
