"""The writing stage: one batch of clean rows upserted in one transaction, with its counts.

Customers are matched in the agent's book by phone, then by email; policies by policy number
(unique in the tenant). A row whose values are already stored is counted `unchanged` and not
written. SQLAlchemy Core, one executemany per kind of statement: a batch of 500 rows costs a
handful of statements, not 500 ORM flushes. The import's own row is updated first, guarded by
the lease and the status, so a cancelled import or one another instance took over writes
nothing more; the batch's counts, error rows and `committed_row` commit with the data, which is
what makes a resumed import skip exactly what was written. The same guard requires the import's
`committed_row` to be where the batch starts (`after_row`) and its retry to be the batch's: a
batch delivered twice, one sent after a gap, or one of an earlier run writes nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import Table, bindparam, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from mitra.db import Database, Scope, utcnow
from mitra.imports.rows import CleanRow, RowError, SourceRow
from mitra.models import Customer, ImportJob, ImportRowError, ImportType, Policy, PolicyStatus
from mitra.models.imports import RUNNING
from mitra.records import IMPORTS_RESULTS_TOPIC

_CUSTOMER_FIELDS = (
    "full_name",
    "phone",
    "email",
    "date_of_birth",
    "address",
    "preferred_language",
)
_POLICY_FIELDS = (
    "customer_id",
    "policy_type",
    "plan_name",
    "sum_assured",
    "premium_amount",
    "premium_frequency",
    "start_date",
    "maturity_date",
    "next_due_date",
    "status",
)
_CUSTOMER_DEFAULTS: dict[str, Any] = {
    "email": None,
    "date_of_birth": None,
    "address": None,
    "preferred_language": "en",
}
# An agent's book brought in from another tool holds policies already in force.
_POLICY_DEFAULTS: dict[str, Any] = {
    "maturity_date": None,
    "next_due_date": None,
    "status": PolicyStatus.ACTIVE.value,
}


_IMPORTS: Table = ImportJob.__table__  # type: ignore[assignment]
_ERRORS: Table = ImportRowError.__table__  # type: ignore[assignment]
_CUSTOMERS: Table = Customer.__table__  # type: ignore[assignment]
_POLICIES: Table = Policy.__table__  # type: ignore[assignment]


class LeaseLost(Exception):
    """The import was cancelled, or another instance runs it now: stop without writing."""


@dataclass(frozen=True)
class JobRef:
    import_id: uuid.UUID
    tenant_id: uuid.UUID
    agent_id: uuid.UUID
    uploaded_by: uuid.UUID
    import_type: ImportType
    retries: int = 0
    """The import's run (0, then one more per retry): `committed_row` counts from 0 again in
    each, so a batch is only ever written in the run that sent it."""


@dataclass
class Batch:
    """Rows of the sheet after `after_row` up to `last_row` (blank ones included)."""

    rows: list[CleanRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    sources: dict[int, SourceRow] = field(default_factory=dict)
    last_row: int = 0
    retried_rows: list[int] = field(default_factory=list)
    after_row: int = 0

    @property
    def size(self) -> int:
        return len(self.rows) + len({e.row_number for e in self.errors})

    def split(self, row: int) -> tuple[Batch, Batch]:
        """The rows up to `row`, and the rest: two consecutive batches."""
        return self._part(self.after_row, row), self._part(row, self.last_row)

    def after(self, row: int) -> Batch:
        """What is left of this batch once `row` (one of its rows) was written."""
        return self._part(row, self.last_row)

    def _part(self, after: int, last: int) -> Batch:
        def within(number: int) -> bool:
            return after < number <= last

        return Batch(
            rows=[r for r in self.rows if within(r.row_number)],
            errors=[e for e in self.errors if within(e.row_number)],
            sources={n: s for n, s in self.sources.items() if within(n)},
            last_row=last,
            retried_rows=[n for n in self.retried_rows if within(n)],
            after_row=after,
        )


@dataclass
class Counts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0

    @property
    def processed(self) -> int:
        return self.created + self.updated + self.unchanged + self.failed


class ImportWriter:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def write(self, job: JobRef, batch: Batch, *, owner: str, lease_seconds: float) -> Counts:
        """Upsert `batch` and record its outcome; raises `LeaseLost` (nothing written) when the
        import is no longer this owner's to run, or is not at `batch.after_row` of this run."""
        async with self._db.unit_of_work(Scope.tenant(job.tenant_id)) as uow:
            session = uow.session
            plan = _Plan(job, batch)
            await plan.load(session)
            plan.stage()
            counts = plan.counts
            connection = await session.connection()
            now = utcnow()
            retried = len(set(batch.retried_rows))
            result = await connection.execute(
                update(_IMPORTS)
                .where(
                    _IMPORTS.c.id == job.import_id,
                    _IMPORTS.c.tenant_id == job.tenant_id,
                    _IMPORTS.c.lease_owner == owner,
                    _IMPORTS.c.status.in_([s.value for s in RUNNING]),
                    _IMPORTS.c.committed_row == batch.after_row,
                    _IMPORTS.c.retries == job.retries,
                )
                .values(
                    status="writing",
                    processed=_IMPORTS.c.processed + counts.processed - retried,
                    created=_IMPORTS.c.created + counts.created,
                    updated=_IMPORTS.c.updated + counts.updated,
                    unchanged=_IMPORTS.c.unchanged + counts.unchanged,
                    failed=_IMPORTS.c.failed + counts.failed - retried,
                    committed_row=batch.last_row,
                    lease_until=now + timedelta(seconds=lease_seconds),
                    updated_at=now,
                )
            )
            if result.rowcount != 1:
                raise LeaseLost(str(job.import_id))
            if batch.retried_rows:
                table = _ERRORS
                await connection.execute(
                    delete(table).where(
                        table.c.tenant_id == job.tenant_id,
                        table.c.import_id == job.import_id,
                        table.c.row_number.in_(sorted(set(batch.retried_rows))),
                    )
                )
            await plan.execute(connection, now)
            uow.emit(
                IMPORTS_RESULTS_TOPIC,
                key=str(job.import_id),
                event_type="imports.batch_written",
                payload={
                    "import_id": str(job.import_id),
                    "after_row": batch.after_row,
                    "last_row": batch.last_row,
                    "created": counts.created,
                    "updated": counts.updated,
                    "unchanged": counts.unchanged,
                    "failed": counts.failed,
                },
            )
        return counts


class _Plan:
    """What one batch changes, worked out in memory from one read of the rows it touches."""

    def __init__(self, job: JobRef, batch: Batch) -> None:
        self.job = job
        self.batch = batch
        self.counts = Counts()
        self.errors: list[RowError] = list(batch.errors)
        self.customers: dict[uuid.UUID, dict[str, Any]] = {}
        self.by_phone: dict[str, uuid.UUID] = {}
        self.by_email: dict[str, uuid.UUID] = {}
        self.policies: dict[str, dict[str, Any]] = {}
        self.new_customers: dict[uuid.UUID, dict[str, Any]] = {}
        self.changed_customers: set[uuid.UUID] = set()
        self.new_policies: dict[str, dict[str, Any]] = {}
        self.changed_policies: set[str] = set()

    @property
    def _with_customers(self) -> bool:
        return self.job.import_type is not ImportType.POLICIES

    @property
    def _with_policies(self) -> bool:
        return self.job.import_type is not ImportType.CUSTOMERS

    async def load(self, session: AsyncSession) -> None:
        rows = self.batch.rows
        phones = {r.customer["phone"] for r in rows if "phone" in r.customer}
        emails = {r.customer["email"] for r in rows if "email" in r.customer}
        if phones or emails:
            found = await session.execute(
                select(Customer.id, *(getattr(Customer, name) for name in _CUSTOMER_FIELDS))
                .where(
                    Customer.agent_id == self.job.agent_id,
                    Customer.deleted_at.is_(None),
                    or_(Customer.phone.in_(phones), Customer.email.in_(emails)),
                )
                .order_by(Customer.created_at, Customer.id)
            )
            for record in found:
                values = dict(zip(_CUSTOMER_FIELDS, record[1:], strict=True))
                self._register(record[0], values)
        numbers = {r.policy["policy_number"] for r in rows if "policy_number" in r.policy}
        if numbers:
            found = await session.execute(
                select(
                    Policy.policy_number,
                    Policy.id,
                    Policy.agent_id,
                    Policy.deleted_at,
                    *(getattr(Policy, name) for name in _POLICY_FIELDS),
                ).where(Policy.policy_number.in_(numbers))
            )
            for record in found:
                values = dict(zip(_POLICY_FIELDS, record[4:], strict=True))
                values = {k: _plain(v) for k, v in values.items()}
                self.policies[record[0]] = {
                    "id": record[1],
                    "agent_id": record[2],
                    "deleted": record[3] is not None,
                    **values,
                }

    def _register(self, customer_id: uuid.UUID, values: dict[str, Any]) -> None:
        self.customers.setdefault(customer_id, values)
        if values.get("phone"):
            self.by_phone.setdefault(values["phone"], customer_id)
        if values.get("email"):
            self.by_email.setdefault(values["email"], customer_id)

    def _match(self, fields: dict[str, Any]) -> uuid.UUID | None:
        phone, email = fields.get("phone"), fields.get("email")
        found = self.by_phone.get(phone) if phone else None
        if found is None and email:
            found = self.by_email.get(email)
        return found

    def stage(self) -> None:
        for row in self.batch.rows:
            outcome = self._stage_row(row)
            if outcome is not None:
                setattr(self.counts, outcome, getattr(self.counts, outcome) + 1)
        self.counts.failed += len({e.row_number for e in self.errors})

    def _stage_row(self, row: CleanRow) -> str | None:
        policy_state = None
        if self._with_policies:
            number = row.policy["policy_number"]
            policy_state = self.policies.get(number)
            problem = None
            if policy_state is not None and policy_state["deleted"]:
                problem = "policy number belongs to a deleted policy"
            elif policy_state is not None and policy_state["agent_id"] != self.job.agent_id:
                problem = "policy number is in another agent's book"
            if problem is None and not self._with_customers and self._match(row.customer) is None:
                problem = "no customer with this phone or email in the agent's book"
            if problem is not None:
                self.errors.append(RowError(row.row_number, None, None, problem))
                return None
        outcomes: list[str] = []
        if self._with_customers:
            customer_id, outcome = self._stage_customer(row.customer)
            outcomes.append(outcome)
        else:
            matched = self._match(row.customer)
            assert matched is not None
            customer_id = matched
        if self._with_policies:
            outcomes.append(self._stage_policy(row.policy, customer_id, policy_state))
        for kind in ("created", "updated"):
            if kind in outcomes:
                return kind
        return "unchanged"

    def _stage_customer(self, fields: dict[str, Any]) -> tuple[uuid.UUID, str]:
        found = self._match(fields)
        if found is None:
            customer_id = uuid.uuid4()
            values = {**_CUSTOMER_DEFAULTS, **fields}
            self.new_customers[customer_id] = values
            self._register(customer_id, values)
            return customer_id, "created"
        current = self.customers[found]
        changes = {k: v for k, v in fields.items() if current.get(k) != v}
        if not changes:
            return found, "unchanged"
        current.update(changes)
        self._register(found, current)
        if found not in self.new_customers:
            self.changed_customers.add(found)
        return found, "updated"

    def _stage_policy(
        self, fields: dict[str, Any], customer_id: uuid.UUID, state: dict[str, Any] | None
    ) -> str:
        number = fields["policy_number"]
        wanted = {k: v for k, v in fields.items() if k != "policy_number"}
        wanted["customer_id"] = customer_id
        if state is None:
            values = {**_POLICY_DEFAULTS, **wanted, "id": uuid.uuid4()}
            self.new_policies[number] = values
            self.policies[number] = {**values, "agent_id": self.job.agent_id, "deleted": False}
            return "created"
        changes = {k: v for k, v in wanted.items() if state.get(k) != v}
        if not changes:
            return "unchanged"
        state.update(changes)
        if number in self.new_policies:
            self.new_policies[number].update(changes)
        else:
            self.changed_policies.add(number)
        return "updated"

    def _cells(self, row_number: int) -> list[str]:
        source = self.batch.sources.get(row_number)
        return source.cells if source is not None else []

    async def execute(self, connection: AsyncConnection, now: Any) -> None:
        job = self.job
        audit = {"updated_by": job.uploaded_by, "updated_at": now}
        if self.new_customers:
            await connection.execute(
                insert(_CUSTOMERS),
                [
                    {
                        "id": customer_id,
                        "tenant_id": job.tenant_id,
                        "agent_id": job.agent_id,
                        "user_id": None,
                        "created_by": job.uploaded_by,
                        "created_at": now,
                        "deleted_at": None,
                        **audit,
                        **{name: values[name] for name in _CUSTOMER_FIELDS},
                    }
                    for customer_id, values in self.new_customers.items()
                ],
            )
        if self.changed_customers:
            await _update_many(
                connection,
                table=_CUSTOMERS,
                tenant_id=job.tenant_id,
                names=_CUSTOMER_FIELDS,
                rows=[
                    {"b_id": customer_id, **self.customers[customer_id]}
                    for customer_id in self.changed_customers
                ],
                audit=audit,
            )
        if self.new_policies:
            await connection.execute(
                insert(_POLICIES),
                [
                    {
                        "tenant_id": job.tenant_id,
                        "agent_id": job.agent_id,
                        "policy_number": number,
                        "created_by": job.uploaded_by,
                        "created_at": now,
                        "deleted_at": None,
                        **audit,
                        **{name: values[name] for name in ("id", *_POLICY_FIELDS)},
                    }
                    for number, values in self.new_policies.items()
                ],
            )
        if self.changed_policies:
            await _update_many(
                connection,
                table=_POLICIES,
                tenant_id=job.tenant_id,
                names=_POLICY_FIELDS,
                rows=[
                    {
                        "b_id": self.policies[number]["id"],
                        **{k: self.policies[number][k] for k in _POLICY_FIELDS},
                    }
                    for number in self.changed_policies
                ],
                audit=audit,
            )
        if self.errors:
            await connection.execute(
                insert(_ERRORS),
                [
                    {
                        "id": uuid.uuid4(),
                        "tenant_id": job.tenant_id,
                        "import_id": job.import_id,
                        "row_number": error.row_number,
                        "column": error.column[:200] if error.column else None,
                        "value": error.value[:500] if error.value else None,
                        "message": error.message[:500],
                        "raw": self._cells(error.row_number),
                        "created_at": now,
                        "updated_at": now,
                    }
                    for error in self.errors
                ],
            )


async def _update_many(
    connection: AsyncConnection,
    *,
    table: Table,
    tenant_id: uuid.UUID,
    names: tuple[str, ...],
    rows: list[dict[str, Any]],
    audit: dict[str, Any],
) -> None:
    # Bound names must differ from the column names in an UPDATE's SET clause.
    statement = (
        update(table)
        .where(table.c.id == bindparam("b_id"), table.c.tenant_id == bindparam("b_tenant"))
        .values({name: bindparam(f"v_{name}") for name in (*names, *audit)})
    )
    await connection.execute(
        statement,
        [
            {
                "b_id": row["b_id"],
                "b_tenant": tenant_id,
                **{f"v_{name}": row[name] for name in names},
                **{f"v_{name}": value for name, value in audit.items()},
            }
            for row in rows
        ],
    )


def _plain(value: Any) -> Any:
    """Enum members as their values, so they compare with the parsed cells."""
    return getattr(value, "value", value)
