"""The customer search clause that customer, policy and conversation listings share.

Apart from `mitra.customers` so that chat can use it without importing the customer service,
which itself adds linked accounts to conversations.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, or_

from mitra.models import Customer
from mitra.records import digits, escape_like


def search_customers(text: str) -> ColumnElement[bool]:
    """Name contains the text, or (when it has digits) the phone number contains them."""
    pattern = f"%{escape_like(text.strip())}%"
    clauses: list[ColumnElement[bool]] = [Customer.full_name.ilike(pattern, escape="\\")]
    number = digits(text)
    if len(number) >= 3:
        # A national number typed with a leading 0 is stored without it in E.164.
        clauses.append(Customer.phone.contains(number.lstrip("0") or number, autoescape=True))
    return or_(*clauses)
