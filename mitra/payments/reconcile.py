"""Reconciliation: our payments in a window beside the gateway's own list. It reports; it
repairs nothing (a person decides what a mismatch means)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mitra.auth.principal import Principal
from mitra.errors import InvalidInput
from mitra.payments import saga
from mitra.payments.gateway import Gateway, Listed, to_minor
from mitra.payments.store import PaymentState, PaymentStore


@dataclass
class Report:
    matched: list[dict[str, Any]] = field(default_factory=list)
    mismatched: list[dict[str, Any]] = field(default_factory=list)
    missing_at_gateway: list[dict[str, Any]] = field(default_factory=list)
    missing_here: list[dict[str, Any]] = field(default_factory=list)


def reconcile(ours: list[PaymentState], theirs: list[Listed]) -> Report:
    report = Report()
    by_ref = {item.payment_ref: item for item in theirs}
    by_ours: dict[uuid.UUID, Listed] = {}
    for listed in theirs:
        if listed.payment_id is not None and (
            listed.payment_id not in by_ours or listed.state == "captured"
        ):
            by_ours[listed.payment_id] = listed
    seen: set[str] = set()
    for payment in ours:
        item: Listed | None = by_ref.get(payment.gateway_payment_id or "") or by_ours.get(
            payment.id
        )
        paid_here = payment.status in saga.PAID
        mine = _ours(payment)
        if item is None:
            if paid_here:
                report.missing_at_gateway.append(
                    _row(
                        payment.id,
                        payment.gateway_payment_id,
                        mine,
                        None,
                        "captured here, unknown to the gateway",
                    )
                )
            continue
        seen.add(item.payment_ref)
        theirs_row = _theirs(item)
        paid_there = item.state == "captured"
        problem = None
        if paid_there != paid_here:
            problem = f"the gateway says {item.state}, the saga is {payment.status}"
        elif paid_here and (
            item.amount_minor != to_minor(payment.amount)
            or item.currency.upper() != payment.currency.upper()
        ):
            problem = (
                f"the gateway captured {item.amount_minor} {item.currency}, the order was "
                f"{to_minor(payment.amount)} {payment.currency}"
            )
        row = _row(payment.id, item.payment_ref, mine, theirs_row, problem)
        (report.mismatched if problem else report.matched).append(row)
    for item in theirs:
        if item.payment_ref in seen or item.state != "captured":
            continue
        report.missing_here.append(
            _row(
                item.payment_id,
                item.payment_ref,
                None,
                _theirs(item),
                "captured at the gateway, no payment here",
            )
        )
    return report


def _ours(payment: PaymentState) -> dict[str, Any]:
    return {
        "status": payment.status,
        "amount": str(payment.amount),
        "currency": payment.currency,
        "gateway_order_id": payment.gateway_order_id,
        "created_at": payment.created_at.isoformat(),
    }


def _theirs(item: Listed) -> dict[str, Any]:
    return {
        "state": item.state,
        "amount_minor": item.amount_minor,
        "currency": item.currency,
        "order": item.order_ref,
    }


def _row(
    payment_id: uuid.UUID | None,
    ref: str | None,
    ours: dict[str, Any] | None,
    theirs: dict[str, Any] | None,
    problem: str | None,
) -> dict[str, Any]:
    return {
        "payment_id": payment_id,
        "gateway_payment_id": ref,
        "ours": ours,
        "theirs": theirs,
        "problem": problem,
    }


async def reconcile_window(
    store: PaymentStore,
    principal: Principal,
    gateway: Gateway,
    start: datetime,
    end: datetime,
) -> Report:
    """Our side from the database, theirs from the SDK's list (paged) on a worker thread: the
    SDK blocks, and a listing is not one payment's saga, so no saga actor runs it."""
    if end <= start:
        raise InvalidInput.for_field("to", "must be after from")
    ours = await store.window(principal, gateway.name, start, end)
    theirs = await asyncio.to_thread(gateway.list_payments, start, end)
    return reconcile(ours, theirs)
