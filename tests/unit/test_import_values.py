"""The import's cell parsers and header matching, cell by cell."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest

from mitra.imports import values
from mitra.imports.columns import find_header
from mitra.imports.report import escape_cell
from mitra.models import ImportType


@pytest.mark.parametrize(
    "cell", ["+91-98765-43210", "098765 43210", "9876543210.0", 9876543210.0, 9876543210]
)
def test_phones_typed_every_way(cell: Any) -> None:
    assert values.phone(cell) == "+919876543210"


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        (29358, date(1980, 5, 17)),
        ("29358", date(1980, 5, 17)),
        (29358.0, date(1980, 5, 17)),
        ("17/05/1980", date(1980, 5, 17)),
        ("17-05-1980", date(1980, 5, 17)),
        ("17.5.1980", date(1980, 5, 17)),
        ("1980-05-17", date(1980, 5, 17)),
        ("17 May 1980", date(1980, 5, 17)),
        ("17-May-80", date(1980, 5, 17)),
        (datetime(1980, 5, 17, 0, 0), date(1980, 5, 17)),
    ],
)
def test_dates_from_cells_serials_and_text(cell: Any, expected: date) -> None:
    assert values.day(cell) == expected


@pytest.mark.parametrize("cell", ["31/02/1990", "someday", "12", 500000, "13/13/2020"])
def test_what_is_no_date(cell: Any) -> None:
    with pytest.raises(ValueError, match="not a date"):
        values.day(cell)


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("₹ 5,00,000", "500000.00"),
        ("Rs. 2,450.50", "2450.50"),
        ("Rs 2450/-", "2450.00"),
        ("INR 1,200", "1200.00"),
        (2450.5, "2450.50"),
        (1200, "1200.00"),
    ],
)
def test_rupee_amounts(cell: Any, expected: str) -> None:
    assert values.money(cell) == Decimal(expected)


@pytest.mark.parametrize(
    ("cell", "message"), [("12.345", "two decimal"), ("-5", "zero or more"), ("abc", "amount")]
)
def test_bad_amounts(cell: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        values.money(cell)


def test_enums_in_their_common_spellings() -> None:
    assert values.premium_frequency("Qly") == "quarterly"
    assert values.premium_frequency("Half-Yearly") == "half_yearly"
    assert values.premium_frequency("ANNUAL") == "yearly"
    assert values.policy_type("Money Back") == "money_back"
    assert values.policy_type("Term Plan") == "term"
    assert values.policy_status("In Force") == "active"
    assert values.language("Tamil") == "ta"
    with pytest.raises(ValueError, match="premium frequency"):
        values.premium_frequency("weekly")


def test_emails_are_checked_and_lowered() -> None:
    assert values.email("Ravi@Example.COM") == "ravi@example.com"
    assert values.email("priya.s+lic@mail.co.in") == "priya.s+lic@mail.co.in"
    for bad in ("@nope", "a@b", "two@@at.com", "dots..here@example.com"):
        with pytest.raises(ValueError, match="email"):
            values.email(bad)


def test_the_header_is_found_below_title_rows_and_unknown_columns_are_kept() -> None:
    rows: list[list[Any]] = [
        ["Agency book"],
        [],
        ["S.No", "Policy Holder Name", "Mobile No.", "Policy #", "Premium (₹)", "Notes"],
    ]
    header = find_header(rows, ImportType.CUSTOMERS)
    assert header is not None
    assert header.row_index == 2
    assert header.positions == {"full_name": 1, "phone": 2}
    assert header.unknown == ["S.No", "Policy #", "Premium (₹)", "Notes"]
    assert header.missing == []
    both = find_header(rows, ImportType.CUSTOMERS_AND_POLICIES)
    assert both is not None
    assert both.positions["premium_amount"] == 4
    assert "policy_type" in both.missing


@pytest.mark.parametrize("cell", ["=1+1", "+91 98765", "-2", "@SUM(A1)", "\tx", "\rx"])
def test_cells_a_spreadsheet_would_run_are_escaped(cell: str) -> None:
    assert escape_cell(cell) == "'" + cell
    assert escape_cell("Ravi") == "Ravi"
    assert escape_cell(42) == 42
