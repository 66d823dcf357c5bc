"""Meta's 24-hour window: counted from when the customer wrote, by Meta's clock, bounded by ours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mitra.whatsapp.window import customer_wrote_at, within_window

RECEIVED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("meta", "wrote"),
    [
        # A delivery Meta retried: the window opened when the customer wrote, a day earlier.
        ({"wa_timestamp": int((RECEIVED - timedelta(hours=25)).timestamp())},
         RECEIVED - timedelta(hours=25)),
        # A clock ahead of ours does not stretch the window past when the message reached us.
        ({"wa_timestamp": int((RECEIVED + timedelta(days=2)).timestamp())}, RECEIVED),
        # No usable timestamp: when it reached us.
        ({"wa_timestamp": 0}, RECEIVED),
        ({"wa_timestamp": "1760000000"}, RECEIVED),
        ({"wa_timestamp": 10**20}, RECEIVED),
        (None, RECEIVED),
    ],
)  # fmt: skip
def test_the_window_opens_when_the_customer_wrote_never_later_than_received(
    meta: dict[str, object] | None, wrote: datetime
) -> None:
    assert customer_wrote_at(RECEIVED, meta) == wrote


def test_a_day_old_message_delivered_now_leaves_the_window_closed() -> None:
    meta = {"wa_timestamp": int((RECEIVED - timedelta(hours=25)).timestamp())}
    assert not within_window(customer_wrote_at(RECEIVED, meta), RECEIVED)
    assert within_window(customer_wrote_at(RECEIVED, None), RECEIVED + timedelta(hours=23))
