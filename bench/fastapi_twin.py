"""The baseline of the REST benchmark: `GET /api/v1/policies` as FastAPI + SQLAlchemy would do it.

Written the way that stack is normally written (and the way Mitra's original design had it): a
FastAPI router, `Depends(get_db)` yielding an `AsyncSession` per request,
`Depends(get_current_user)` decoding the JWT and loading the user, an async ORM select of the
policies with their customers under the role filter plus a count, and a pydantic
`response_model` built from the ORM objects.
It reads the same database (file or server) as Mitra, accepts the same access tokens (same secret,
issuer and algorithm) and answers the same envelope, served by uvicorn (uvloop and httptools, as
`uvicorn[standard]` installs them; its access log on, as by default).

Run: `python -m bench.fastapi_twin --port P --database-url URL [--jwt-secret S]`.
`GET /_bench/statements` answers how many SQL statements the twin has sent (for the report).
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import AsyncIterator
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Generic, TypeVar

import jwt
import uvicorn
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Date, ForeignKey, Numeric, String, event, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, contains_eager, mapped_column, relationship
from sqlalchemy.types import DateTime, Uuid

from mitra.settings import DEV_JWT_SECRET

T = TypeVar("T")

TRANSITIONS: dict[str, list[str]] = {
    "pending": ["active"],
    "active": ["grace", "matured", "surrendered"],
    "grace": ["active", "lapsed"],
    "lapsed": ["active", "surrendered"],
    "matured": [],
    "surrendered": [],
}
ADMIN_ROLES = {"super_admin", "provider_admin"}
AGENT_ROLES = {"senior_agent", "junior_agent"}


# ---- models ------------------------------------------------------------------------------------


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    email: Mapped[str] = mapped_column(String(254))
    role: Mapped[str] = mapped_column(String(32))
    is_active: Mapped[bool]


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    full_name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(20))
    user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)


class Policy(Base):
    __tablename__ = "policies"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    policy_number: Mapped[str] = mapped_column(String(40))
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"))
    agent_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    policy_type: Mapped[str] = mapped_column(String(32))
    plan_name: Mapped[str] = mapped_column(String(200))
    sum_assured: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    premium_amount: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    premium_frequency: Mapped[str] = mapped_column(String(32))
    start_date: Mapped[date] = mapped_column(Date)
    maturity_date: Mapped[date | None] = mapped_column(Date)
    next_due_date: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    updated_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    customer: Mapped[Customer] = relationship()

    @property
    def allowed_transitions(self) -> list[str]:
        return TRANSITIONS[self.status]


# ---- schemas -----------------------------------------------------------------------------------


class CustomerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    full_name: str
    phone: str


class PolicyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    policy_number: str
    customer_id: uuid.UUID
    customer: CustomerOut
    agent_id: uuid.UUID
    policy_type: str
    plan_name: str
    sum_assured: Decimal
    premium_amount: Decimal
    premium_frequency: str
    start_date: date
    maturity_date: date | None
    next_due_date: date | None
    status: str
    allowed_transitions: list[str]
    created_at: datetime
    updated_at: datetime
    created_by: uuid.UUID | None
    updated_by: uuid.UUID | None


class Pagination(BaseModel):
    page: int
    limit: int
    total: int
    pages: int


class PageOf(BaseModel, Generic[T]):
    items: list[T]
    pagination: Pagination


class Envelope(BaseModel, Generic[T]):
    success: bool = True
    message: str = "ok"
    data: T


# ---- the application ---------------------------------------------------------------------------


class State:
    """What `main` configures before uvicorn starts: the engine, sessions and the JWT key."""

    jwt_secret = DEV_JWT_SECRET
    jwt_issuer = "mitra"
    sessions: async_sessionmaker[AsyncSession] | None = None
    statements = 0


def configure(database_url: str, jwt_secret: str) -> None:
    State.jwt_secret = jwt_secret
    engine = create_async_engine(database_url, pool_size=10)
    State.sessions = async_sessionmaker(engine, expire_on_commit=False)

    def count(*_: object) -> None:
        State.statements += 1

    event.listen(engine.sync_engine, "before_cursor_execute", count)


async def get_db() -> AsyncIterator[AsyncSession]:
    assert State.sessions is not None
    async with State.sessions() as session:
        yield session


bearer = HTTPBearer()


async def get_current_user(
    credentials: Annotated[HTTPAuthorizationCredentials, Depends(bearer)],
    db: Annotated[AsyncSession, Depends(get_db)],
) -> User:
    unauthorized = HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail="invalid token",
        headers={"WWW-Authenticate": "Bearer"},
    )
    try:
        payload = jwt.decode(
            credentials.credentials,
            State.jwt_secret,
            algorithms=["HS256"],
            issuer=State.jwt_issuer,
        )
        user_id = uuid.UUID(payload["sub"])
    except (jwt.InvalidTokenError, KeyError, ValueError):
        raise unauthorized from None
    if payload.get("type") != "access":
        raise unauthorized
    user = await db.get(User, user_id)
    if user is None or not user.is_active:
        raise unauthorized
    return user


router = APIRouter(prefix="/api/v1")


@router.get("/policies", response_model=Envelope[PageOf[PolicyOut]])
async def list_policies(
    user: Annotated[User, Depends(get_current_user)],
    db: Annotated[AsyncSession, Depends(get_db)],
    page: Annotated[int, Query(ge=1)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Envelope[PageOf[PolicyOut]]:
    conditions = [Policy.tenant_id == user.tenant_id, Policy.deleted_at.is_(None)]
    if user.role in AGENT_ROLES:
        conditions.append(Policy.agent_id == user.id)
    elif user.role not in ADMIN_ROLES:
        linked = select(Customer.id).where(Customer.user_id == user.id)
        conditions.append(Policy.customer_id.in_(linked.scalar_subquery()))
    query = (
        select(Policy)
        .join(Policy.customer)
        .options(contains_eager(Policy.customer))
        .where(*conditions)
        .order_by(Policy.created_at.desc(), Policy.id)
        .limit(limit)
        .offset((page - 1) * limit)
    )
    policies = (await db.scalars(query)).all()
    total = await db.scalar(
        select(func.count()).select_from(Policy).join(Policy.customer).where(*conditions)
    )
    items = [PolicyOut.model_validate(policy) for policy in policies]
    total = total or 0
    pagination = Pagination(page=page, limit=limit, total=total, pages=(total + limit - 1) // limit)
    return Envelope(data=PageOf(items=items, pagination=pagination))


app = FastAPI(title="Mitra policies (FastAPI twin)")
app.include_router(router)


@app.get("/_bench/statements")
async def statement_count() -> dict[str, int]:
    return {"statements": State.statements}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--jwt-secret", default=DEV_JWT_SECRET)
    args = parser.parse_args()
    configure(args.database_url, args.jwt_secret)
    uvicorn.run(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
