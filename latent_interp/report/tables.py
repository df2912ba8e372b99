"""Tables for the templates: cells that carry their sort value and tone, so that the page's script sorts numbers
as numbers and a table says, by colour, where an interval excludes zero."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


@dataclass
class Cell:
    text: str
    sort: float | str | None = None   # what the column sorts by (the number behind "23.41 [22.9, 24.0]")
    tone: str = ""                    # "good", "bad" or "": green or red text
    numeric: bool = True
    title: str = ""                   # shown on hover (a full sha256, say)
    links: list = field(default_factory=list)  # (label, href) pairs shown as links instead of the text


@dataclass
class Table:
    columns: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    caption: str = ""


def missing(value) -> bool:
    return value is None or (isinstance(value, float) and pd.isna(value))


def text(value, title: str = "") -> Cell:
    return Cell("" if missing(value) else str(value), None if missing(value) else str(value), numeric=False,
                title=title)


def number(value, digits: int = 2, low=None, high=None, signed: bool = False, scale: float = 1.0,
           tone: str = "") -> Cell:
    """``value`` with ``digits`` decimals and, given, its interval in brackets; n/a when missing."""
    if missing(value):
        return Cell("n/a", None)
    sign = "+" if signed else ""
    shown = f"{value * scale:{sign}.{digits}f}"
    if not (missing(low) or missing(high)):
        shown += f" [{low * scale:{sign}.{digits}f}, {high * scale:{sign}.{digits}f}]"
    return Cell(shown, float(value * scale), tone)


def difference_tone(low, high, higher_is_better: bool = True) -> str:
    """Green where the whole interval says better, red where it says worse."""
    if missing(low) or missing(high):
        return ""
    if low > 0:
        return "good" if higher_is_better else "bad"
    if high < 0:
        return "bad" if higher_is_better else "good"
    return ""


def from_frame(frame: pd.DataFrame, digits: dict[str, int] | None = None, default_digits: int = 4,
               caption: str = "") -> Table:
    """A plain table of a DataFrame: text columns as text, numbers with their digits."""
    digits = digits or {}
    rows = []
    for record in frame.to_dict("records"):
        row = []
        for column, value in record.items():
            is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
            row.append(number(value, digits.get(column, default_digits)) if is_number and not isinstance(value, int)
                       else Cell(str(value), value, numeric=True) if is_number else text(value))
        rows.append(row)
    return Table([str(c) for c in frame.columns], rows, caption)
