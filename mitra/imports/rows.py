"""One source row into clean customer and policy values, or the reasons it cannot be imported."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mitra.imports import values
from mitra.imports.columns import CUSTOMER_COLUMNS, POLICY_COLUMNS, HeaderMap, columns_for
from mitra.models import ImportType

_CUSTOMER_FIELDS = frozenset(c.name for c in CUSTOMER_COLUMNS)
_POLICY_FIELDS = frozenset(c.name for c in POLICY_COLUMNS)


@dataclass(frozen=True)
class RowError:
    row_number: int
    column: str | None
    value: str | None
    message: str


@dataclass
class SourceRow:
    """A non-blank row of the sheet: its 1-based row number in the file and its cells as
    pyexcel read them; `cells` are their text (what the error report gives back), made only
    for the rows that need it."""

    row_number: int
    raw: Sequence[Any]

    @property
    def cells(self) -> list[str]:
        return [values.as_text(cell) for cell in self.raw]


@dataclass
class CleanRow:
    """The fields a row gave (blank optional cells are absent: an import never clears)."""

    row_number: int
    customer: dict[str, Any] = field(default_factory=dict)
    policy: dict[str, Any] = field(default_factory=dict)


def source_row(row_number: int, cells: Sequence[Any]) -> SourceRow | None:
    """None for a blank row (every cell empty), which is skipped and not counted."""
    if all(values.is_blank(cell) for cell in cells):
        return None
    return SourceRow(row_number, cells)


class RowValidator:
    """Validates the rows of one import in order; remembers policy numbers seen so far, so a
    policy number given twice in a file fails on its second row."""

    def __init__(self, import_type: ImportType, header: HeaderMap) -> None:
        self.import_type = import_type
        self.header = header
        self._columns = [c for c in columns_for(import_type) if c.name in header.positions]
        self._policy_rows: dict[str, int] = {}

    def remember(self, row: SourceRow) -> None:
        """Note a row already imported before a restart (for the duplicate check)."""
        position = self.header.positions.get("policy_number")
        if position is not None and position < len(row.raw):
            number = " ".join(values.as_text(row.raw[position]).split())
            if number:
                self._policy_rows.setdefault(number, row.row_number)

    def validate(self, row: SourceRow) -> CleanRow | list[RowError]:
        raw = row.raw
        clean = CleanRow(row.row_number)
        errors: list[RowError] = []
        for column in self._columns:
            position = self.header.positions[column.name]
            cell = raw[position] if position < len(raw) else None
            label = self.header.header[position] or column.label
            if values.is_blank(cell):
                if column.required:
                    errors.append(RowError(row.row_number, label, None, "is required"))
                continue
            try:
                parsed = column.parse(cell)
            except ValueError as exc:
                errors.append(RowError(row.row_number, label, values.as_text(cell)[:500], str(exc)))
                continue
            target = clean.policy if column.name in _POLICY_FIELDS else clean.customer
            target[column.name] = parsed
        needs_contact = self.import_type is ImportType.POLICIES and not errors
        if needs_contact and not {"phone", "email"} & clean.customer.keys():
            errors.append(
                RowError(row.row_number, "Mobile", None, "a phone or an email is required")
            )
        number = clean.policy.get("policy_number")
        if number is not None and not errors:
            first = self._policy_rows.setdefault(number, row.row_number)
            if first != row.row_number:
                label = self.header.header[self.header.positions["policy_number"]]
                errors.append(
                    RowError(row.row_number, label, number, f"policy number already in row {first}")
                )
        return errors or clean
