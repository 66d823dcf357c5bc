"""Meta's customer-service window: free-form messages only within 24 hours of the customer's
last message; outside it only an approved template may start the conversation again."""

from __future__ import annotations

from datetime import datetime, timedelta

from mitra.errors import InvalidInput

WINDOW = timedelta(hours=24)
TEMPLATE_ROUTE = "POST /api/v1/whatsapp/messages"


class OutsideWindow(InvalidInput):
    code = "outside_window"
    default_message = (
        "the customer last wrote on WhatsApp more than 24 hours ago (or never): only a "
        f"template can reach them now ({TEMPLATE_ROUTE})"
    )


def within_window(customer_wrote_at: datetime | None, now: datetime) -> bool:
    return customer_wrote_at is not None and now - customer_wrote_at < WINDOW
