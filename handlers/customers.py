"""`/api/v1/customers`: the agents' book of customers (rules in `mitra.access`)."""

from __future__ import annotations

from aiohttp import web

from handlers.envelope import ok
from handlers.keys import CUSTOMERS
from handlers.openapi import operation
from handlers.records import listing, page_request, path_id
from handlers.schemas.common import IdPath, PageOf
from handlers.schemas.customers import (
    CustomerCreateRequest,
    CustomerListQuery,
    CustomerResponse,
    CustomerUpdateRequest,
)
from handlers.security import authenticate
from handlers.validation import parse_body, parse_query
from mitra.customers import CustomerChanges, CustomerData, CustomerQuery
from mitra.models import Customer

routes = web.RouteTableDef()
TAGS = ("customers",)


def _shape(customer: Customer) -> CustomerResponse:
    return CustomerResponse.model_validate(customer)


@routes.post("/api/v1/customers")
@operation(
    "Add a customer to a book",
    description="Admins add to any agent's book; senior agents to their own.",
    tags=TAGS,
    body=CustomerCreateRequest,
    response=CustomerResponse,
    status=201,
    errors=(403,),
)
async def create_customer(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    body = await parse_body(request, CustomerCreateRequest)
    customer = await request.app[CUSTOMERS].create(principal, CustomerData(**dict(body)))
    return ok(_shape(customer), message="customer created", status=201)


@routes.get("/api/v1/customers")
@operation(
    "List the customers the caller may see",
    tags=TAGS,
    query=CustomerListQuery,
    response=PageOf[CustomerResponse],
)
async def list_customers(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    query = parse_query(request, CustomerListQuery)
    page = await request.app[CUSTOMERS].list(
        principal,
        CustomerQuery(
            q=query.q,
            agent_id=query.agent_id,
            sort=query.sort,
            page=page_request(query.page, query.limit),
        ),
    )
    return ok(listing(page, _shape))


@routes.get("/api/v1/customers/{id}")
@operation("Read a customer", tags=TAGS, path=IdPath, response=CustomerResponse, errors=(404,))
async def get_customer(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    customer = await request.app[CUSTOMERS].get(principal, path_id(request, "customer"))
    return ok(_shape(customer))


@routes.patch("/api/v1/customers/{id}")
@operation(
    "Change some of a customer's fields",
    tags=TAGS,
    path=IdPath,
    body=CustomerUpdateRequest,
    response=CustomerResponse,
    errors=(403, 404),
)
async def update_customer(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    customer_id = path_id(request, "customer")
    body = await parse_body(request, CustomerUpdateRequest)
    changes = CustomerChanges(**body.model_dump(exclude_unset=True))
    customer = await request.app[CUSTOMERS].update(principal, customer_id, changes)
    return ok(_shape(customer), message="customer updated")


@routes.delete("/api/v1/customers/{id}")
@operation(
    "Delete a customer (soft; admins only)",
    description="Refused with 409 while the customer has policies that are not deleted.",
    tags=TAGS,
    path=IdPath,
    errors=(403, 404, 409),
)
async def delete_customer(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    await request.app[CUSTOMERS].delete(principal, path_id(request, "customer"))
    return ok(message="customer deleted")


@routes.post("/api/v1/customers/{id}/restore")
@operation(
    "Restore a deleted customer (admins only)",
    tags=TAGS,
    path=IdPath,
    response=CustomerResponse,
    errors=(403, 404),
)
async def restore_customer(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    customer = await request.app[CUSTOMERS].restore(principal, path_id(request, "customer"))
    return ok(_shape(customer), message="customer restored")
