"""Models of the analytics dashboard endpoint."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

from pydantic import Field

from handlers.schemas.common import QueryModel, ResponseModel
from mitra.analytics import Dashboard, Figure


class DashboardQuery(QueryModel):
    """`?from=YYYY-MM-DD&to=YYYY-MM-DD`; defaults and range rules are the service's."""

    start: date | None = Field(None, alias="from")
    end: date | None = Field(None, alias="to")


class FigureResponse(ResponseModel):
    count: int
    # A decimal string ("1234.50") for payment metrics, null for the others.
    amount: Decimal | None

    @classmethod
    def of(cls, figure: Figure) -> FigureResponse:
        return cls(count=figure.count, amount=figure.amount)


class DayResponse(ResponseModel):
    day: date
    metrics: dict[str, FigureResponse]


class AnalyticsDashboardResponse(ResponseModel):
    """Totals per metric (every metric, zeros included), the breakdown of those with a dimension
    (channel/direction, currency, imported/failed), and one entry per day with figures."""

    from_: date = Field(serialization_alias="from")
    to: date
    timezone: str
    scope: str
    agent_id: uuid.UUID | None
    totals: dict[str, FigureResponse]
    breakdown: dict[str, dict[str, FigureResponse]]
    series: list[DayResponse]

    @classmethod
    def of(cls, board: Dashboard) -> AnalyticsDashboardResponse:
        return cls(
            from_=board.start,
            to=board.end,
            timezone=board.timezone,
            scope="agent" if board.agent_id else "tenant",
            agent_id=board.agent_id,
            totals={m: FigureResponse.of(f) for m, f in board.totals.items()},
            breakdown={
                m: {d: FigureResponse.of(f) for d, f in dims.items()}
                for m, dims in board.breakdown.items()
            },
            series=[
                DayResponse(day=day, metrics={m: FigureResponse.of(f) for m, f in figures.items()})
                for day, figures in sorted(board.series.items())
            ],
        )
