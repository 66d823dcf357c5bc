"""The columns an import understands, the headers agents give them, and finding the header row."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from mitra.imports import values
from mitra.models import ImportType

HEADER_SEARCH_ROWS = 20
"""Title rows above the header: the header is looked for among the first this many rows."""


@dataclass(frozen=True)
class Column:
    """One field of a customer or a policy: its header aliases and its cell parser."""

    name: str
    label: str
    parse: Callable[[Any], Any]
    aliases: tuple[str, ...]
    required: bool = False
    example: str = ""


def header_key(cell: Any) -> str:
    """`Phone No.`, `PHONE NO` and ` phone  no ` are the same header."""
    text = values.as_text(cell).lower().replace("₹", " rs ")
    return " ".join(re.sub(r"[^a-z0-9#]+", " ", text).split())


CUSTOMER_COLUMNS = (
    Column(
        "full_name",
        "Customer Name",
        lambda v: values.text_field(v, 200),
        (
            "customer name",
            "name",
            "full name",
            "customer",
            "policyholder name",
            "policy holder name",
            "insured name",
            "client name",
            "life assured",
        ),
        required=True,
        example="Ravi Kumar",
    ),
    Column(
        "phone",
        "Mobile",
        values.phone,
        (
            "mobile",
            "mobile no",
            "mobile number",
            "phone",
            "phone no",
            "phone number",
            "contact",
            "contact no",
            "contact number",
            "whatsapp",
            "whatsapp no",
            "cell",
        ),
        required=True,
        example="+91 98765 43210",
    ),
    Column(
        "email",
        "Email",
        values.email,
        ("email", "email id", "e mail", "e mail id", "mail", "mail id"),
        example="ravi@example.com",
    ),
    Column(
        "date_of_birth",
        "DOB",
        values.day,
        ("dob", "date of birth", "birth date", "birthdate", "d o b"),
        example="17/05/1980",
    ),
    Column(
        "address",
        "Address",
        lambda v: values.text_field(v, 500),
        ("address", "addr"),
        example="4 Anna Salai, Chennai",
    ),
    Column(
        "preferred_language",
        "Language",
        values.language,
        ("language", "preferred language", "lang"),
        example="ta",
    ),
)

POLICY_COLUMNS = (
    Column(
        "policy_number",
        "Policy No",
        lambda v: values.text_field(v, 40),
        ("policy no", "policy number", "policy", "policy #", "policy num", "pol no"),
        required=True,
        example="LIC-123456789",
    ),
    Column(
        "policy_type",
        "Policy Type",
        values.policy_type,
        ("policy type", "type", "plan type", "product type"),
        required=True,
        example="endowment",
    ),
    Column(
        "plan_name",
        "Plan",
        lambda v: values.text_field(v, 200),
        ("plan", "plan name", "product", "product name", "scheme"),
        required=True,
        example="Jeevan Anand",
    ),
    Column(
        "sum_assured",
        "Sum Assured (Rs)",
        values.money,
        ("sum assured", "sum assured rs", "sa", "cover", "sum insured", "cover amount"),
        required=True,
        example="5,00,000",
    ),
    Column(
        "premium_amount",
        "Premium (Rs)",
        values.money,
        ("premium", "premium rs", "premium amount", "premium inr", "premium amt"),
        required=True,
        example="2,450.50",
    ),
    Column(
        "premium_frequency",
        "Mode",
        values.premium_frequency,
        ("mode", "frequency", "premium mode", "premium frequency", "payment mode", "pay mode"),
        required=True,
        example="quarterly",
    ),
    Column(
        "start_date",
        "Start Date",
        values.day,
        (
            "start date",
            "commencement date",
            "doc",
            "date of commencement",
            "issue date",
            "policy date",
            "risk date",
        ),
        required=True,
        example="01/04/2020",
    ),
    Column(
        "maturity_date",
        "Maturity Date",
        values.day,
        ("maturity date", "maturity", "dom"),
        example="01/04/2041",
    ),
    Column(
        "next_due_date",
        "Next Due",
        values.day,
        ("next due", "next due date", "due date", "fup", "next premium date"),
        example="01/07/2026",
    ),
    Column("status", "Status", values.policy_status, ("status", "policy status"), example="active"),
)

# A policy row names its customer by phone or email; these are matched, never created, in a
# policies-only import.
POLICY_CUSTOMER_COLUMNS = tuple(
    replace(c, required=False) for c in CUSTOMER_COLUMNS if c.name in ("phone", "email")
)


def columns_for(import_type: ImportType) -> tuple[Column, ...]:
    if import_type is ImportType.CUSTOMERS:
        return CUSTOMER_COLUMNS
    if import_type is ImportType.POLICIES:
        return POLICY_CUSTOMER_COLUMNS + POLICY_COLUMNS
    return CUSTOMER_COLUMNS + POLICY_COLUMNS


@dataclass(frozen=True)
class HeaderMap:
    """Which source column holds which field; `unknown` are the headers nothing matched."""

    row_index: int
    header: list[str]
    positions: dict[str, int]
    unknown: list[str]
    missing: list[str]


def _alias_table(columns: Sequence[Column]) -> dict[str, str]:
    table: dict[str, str] = {}
    for column in columns:
        for alias in (column.name.replace("_", " "), column.label, *column.aliases):
            table[header_key(alias)] = column.name
    return table


def find_header(rows: Sequence[Sequence[Any]], import_type: ImportType) -> HeaderMap | None:
    """The row among the first ones with the most recognised headers (at least two).

    Title rows, a merged banner above the header and blank rows are passed over; the first
    field a header names wins if two columns claim it.
    """
    columns = columns_for(import_type)
    table = _alias_table(columns)
    best: tuple[int, int] | None = None
    for index, row in enumerate(rows[:HEADER_SEARCH_ROWS]):
        hits = len({table[k] for k in (header_key(cell) for cell in row) if k in table})
        if hits >= 2 and (best is None or hits > best[1]):
            best = (index, hits)
    if best is None:
        return None
    index = best[0]
    header = [values.as_text(cell) for cell in rows[index]]
    positions: dict[str, int] = {}
    unknown: list[str] = []
    for position, cell in enumerate(header):
        name = table.get(header_key(cell))
        if name is None:
            if cell:
                unknown.append(cell)
        elif name not in positions:
            positions[name] = position
    missing = [c.name for c in columns if c.required and c.name not in positions]
    if import_type is ImportType.POLICIES and not {"phone", "email"} & positions.keys():
        missing.append("phone")
    return HeaderMap(index, header, positions, unknown, missing)
