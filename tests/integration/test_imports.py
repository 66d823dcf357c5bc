"""Spreadsheet imports through the HTTP API: messy books in every format, what is refused,
what is reported, and that a second upload changes nothing."""

from __future__ import annotations

import asyncio
import io
import itertools
import uuid
import zipfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from sqlalchemy import update

from handlers.keys import DATABASE
from handlers.schemas.chat_server import ImportProgressFrame
from mitra.db import Scope
from mitra.models import ImportJob, Role
from mitra.settings import Settings
from tests.conftest import SettingsFactory
from tests.support.api import Account, Api
from tests.support.imports import (
    IMPORTS,
    csv_bytes,
    errors_of,
    finished,
    import_file,
    ods_bytes,
    read_book,
    upload,
    xls_bytes,
    xlsx_bytes,
)
from tests.support.ws import ChatClient

UPLOAD_LIMIT = 2_000_000


@pytest.fixture
def settings(make_settings: SettingsFactory, tmp_path: Path) -> Settings:
    return make_settings(
        imports={
            "directory": str(tmp_path / "imports"),
            "max_upload_bytes": UPLOAD_LIMIT,
            "batch_size": 200,
            "progress_interval_seconds": 0.2,
        }
    )


async def agent_of(api: Api) -> tuple[Account, Account]:
    admin = await api.tenant()
    return admin, await api.user(admin, Role.SENIOR_AGENT)


async def customers_of(api: Api, account: Account) -> dict[str, dict[str, Any]]:
    """The caller's customers by phone (E.164)."""
    found: dict[str, dict[str, Any]] = {}
    page = 1
    while True:
        _, body = await api.call(
            "GET", f"/api/v1/customers?limit=100&page={page}", token=account.access_token
        )
        for item in body["data"]["items"]:
            assert item["phone"] not in found, f"{item['phone']} twice"
            found[item["phone"]] = item
        if page >= body["data"]["pagination"]["pages"]:
            return found
        page += 1


# The messy book: a title row, a header in other words, phones typed every way, an Excel serial
# date and dd/mm/yyyy, a blank row, a short row, the same customer twice and a bad row.
MESSY: list[list[Any]] = [
    ["Sharma Insurance Services - client list 2024", None, None, None, None],
    ["Customer Name", "Phone No.", "DOB", "E-mail", "Remarks"],
    ["Ravi Kumar", "+91-98765-43210", "17/05/1980", "Ravi@Example.com", "met at camp"],
    ["Lakshmi N", "098765 43211", 29358, None, None],
    [None, None, None, None, None],
    ["Arjun Rao", 9876543212.0, None],
    ["Ravi Kumar", "9876543210", "17/05/1980", "ravi@example.com", None],
    ["No Phone Person", "12345", "31/02/1990", "not-an-email", None],
]
MAKERS = {
    "csv": csv_bytes,
    "xlsx": lambda rows: xlsx_bytes(rows, merge="A1:E1"),
    "xls": xls_bytes,
    "ods": ods_bytes,
}


@pytest.mark.parametrize("fmt", list(MAKERS))
async def test_a_messy_book_imports_the_good_rows_and_explains_the_rest(api: Api, fmt: str) -> None:
    _, agent = await agent_of(api)
    rows = [list(row) for row in MESSY]
    if fmt == "csv":
        rows[5][1] = "9876543212.0"  # a number cell saved as text by another tool
    result = await import_file(api, agent, f"book.{fmt}", MAKERS[fmt](rows))
    assert result["status"] == "completed_with_errors"
    assert result["file_format"] == fmt
    assert (result["total"], result["processed"]) == (5, 5)
    assert (result["created"], result["updated"], result["unchanged"], result["failed"]) == (
        3,
        0,
        1,
        1,
    )
    assert result["unknown_columns"] == ["Remarks"]
    customers = await customers_of(api, agent)
    assert set(customers) == {"+919876543210", "+919876543211", "+919876543212"}
    ravi = customers["+919876543210"]
    assert (ravi["full_name"], ravi["email"], ravi["date_of_birth"]) == (
        "Ravi Kumar",
        "ravi@example.com",
        "1980-05-17",
    )
    assert customers["+919876543211"]["date_of_birth"] == "1980-05-17"  # serial 29358
    assert customers["+919876543212"]["email"] is None
    errors = await errors_of(api, agent, result["id"])
    assert {(e["row_number"], e["column"]) for e in errors} == {
        (8, "Phone No."),
        (8, "DOB"),
        (8, "E-mail"),
    }
    assert {e["value"] for e in errors} == {"12345", "31/02/1990", "not-an-email"}


async def test_the_same_file_again_answers_the_earlier_import_and_force_changes_nothing(
    api: Api,
) -> None:
    _, agent = await agent_of(api)
    data = xlsx_bytes(MESSY)
    first = await import_file(api, agent, "book.xlsx", data)
    before = await customers_of(api, agent)
    _, again = await upload(api, agent, "renamed.xlsx", data)
    assert again["data"] == {"import_id": first["id"], "status": first["status"], "duplicate": True}
    forced = await import_file(api, agent, "book.xlsx", data, force="true")
    assert forced["id"] != first["id"]
    assert (forced["created"], forced["updated"], forced["unchanged"]) == (0, 0, 4)
    after = await customers_of(api, agent)
    assert after == before  # not rewritten: updated_at is the same too


async def test_the_same_file_twice_at_the_same_moment_is_imported_once(api: Api) -> None:
    _, agent = await agent_of(api)
    data = csv_bytes(MESSY)
    answers = await asyncio.gather(*(upload(api, agent, f"b{n}.csv", data) for n in range(2)))
    ids = {body["data"]["import_id"] for _, body in answers}
    assert len(ids) == 1
    assert sorted(body["data"]["duplicate"] for _, body in answers) == [False, True]
    await finished(api, agent, ids.pop())
    _, listed = await api.call("GET", IMPORTS, token=agent.access_token)
    assert listed["data"]["pagination"]["total"] == 1


POLICY_HEADER = [
    "Name", "Mobile", "Policy No", "Plan Type", "Plan", "Sum Assured", "Premium (Rs)",
    "Mode", "DOC", "Status",
]  # fmt: skip


async def test_customers_and_policies_with_rupees_commas_and_spellings(api: Api) -> None:
    admin, agent = await agent_of(api)
    other = await api.user(admin, Role.SENIOR_AGENT)
    rows = [
        POLICY_HEADER,
        ["Ravi Kumar", "98765 43210", "LIC-001", "Endowment Plan", "Jeevan Anand",
         "₹ 5,00,000", "Rs. 2,450.50", "Qly", "01/04/2020", "In Force"],
        ["Ravi Kumar", "98765 43210", "LIC-002", "term", "Tech Term", "1,00,00,000",
         "12000", "yearly", "2021-06-15", ""],
        ["Ravi Kumar", "98765 43210", "LIC-002", "term", "Tech Term", "1,00,00,000",
         "12000", "yearly", "2021-06-15", ""],
        ["Sita Devi", "98765 43299", "LIC-003", "spaceship", "X", "abc", "12.345",
         "weekly", "someday", ""],
    ]  # fmt: skip
    result = await import_file(api, agent, "book.csv", csv_bytes(rows), "customers_and_policies")
    assert (result["created"], result["failed"]) == (2, 2)
    errors = await errors_of(api, agent, result["id"])
    assert {(e["row_number"], e["message"]) for e in errors if e["row_number"] == 4} == {
        (4, "policy number already in row 3")
    }
    assert {e["column"] for e in errors if e["row_number"] == 5} == {
        "Plan Type",
        "Sum Assured",
        "Premium (Rs)",
        "Mode",
        "DOC",
    }
    _, policies = await api.call(
        "GET", "/api/v1/policies?sort=policy_number", token=agent.access_token
    )
    items = policies["data"]["items"]
    assert [p["policy_number"] for p in items] == ["LIC-001", "LIC-002"]
    first = items[0]
    assert (first["policy_type"], first["sum_assured"], first["premium_amount"]) == (
        "endowment",
        "500000.00",
        "2450.50",
    )
    assert (first["premium_frequency"], first["start_date"], first["status"]) == (
        "quarterly",
        "2020-04-01",
        "active",
    )
    assert items[1]["sum_assured"] == "10000000.00"
    assert len(await customers_of(api, agent)) == 1
    # The same policy numbers in another agent's book are refused, not moved.
    moved = await import_file(
        api, other, "theirs.csv", csv_bytes(rows[:3]), "customers_and_policies"
    )
    assert (moved["created"], moved["failed"]) == (0, 2)
    assert await customers_of(api, other) == {}
    assert {e["message"] for e in await errors_of(api, other, moved["id"])} == {
        "policy number is in another agent's book"
    }


async def test_a_policy_for_an_unknown_customer_fails_until_retried_after_the_fix(
    api: Api,
) -> None:
    _, agent = await agent_of(api)
    await api.call(
        "POST",
        "/api/v1/customers",
        json={"full_name": "Sita", "phone": "+919876543211"},
        token=agent.access_token,
        expect=201,
    )
    header = [h for h in POLICY_HEADER if h != "Name"]
    rows = [
        header,
        ["98765 43210", "LIC-9", "ulip", "Wealth+", "500000", "5000", "monthly", "01/01/2024", ""],
        ["98765 43211", "LIC-7", "term", "Term", "100000", "1200", "yearly", "01/01/2024", ""],
        # The same policy number again: it fails on the file's own values, and a retry must not
        # run it (written after row 3, it would overwrite that policy with its premium).
        ["98765 43211", "LIC-7", "term", "Term", "100000", "9999", "yearly", "01/01/2024", ""],
    ]
    result = await import_file(api, agent, "p.csv", csv_bytes(rows), "policies")
    assert (result["status"], result["created"], result["failed"]) == (
        "completed_with_errors",
        1,
        2,
    )
    assert {e["row_number"]: e["message"] for e in await errors_of(api, agent, result["id"])} == {
        2: "no customer with this phone or email in the agent's book",
        4: "policy number already in row 3",
    }
    # The agent fixes it an hour later: that hour is not part of the import's rows/s.
    async with api.app[DATABASE].transaction(Scope.system()) as session:
        await session.execute(
            update(ImportJob)
            .where(ImportJob.id == uuid.UUID(result["id"]))
            .values(
                started_at=datetime.fromisoformat(result["started_at"]) - timedelta(hours=1),
                finished_at=datetime.fromisoformat(result["finished_at"]) - timedelta(hours=1),
            )
        )
    _, moved = await api.call("GET", f"{IMPORTS}/{result['id']}", token=agent.access_token)
    await api.call(
        "POST",
        "/api/v1/customers",
        json={"full_name": "Ravi", "phone": "+919876543210"},
        token=agent.access_token,
        expect=201,
    )
    _, retried = await api.call(
        "POST", f"{IMPORTS}/{result['id']}/retry", token=agent.access_token, expect=202
    )
    assert retried["data"]["status"] == "queued"
    done = await finished(api, agent, result["id"])
    assert (done["status"], done["created"], done["failed"], done["processed"]) == (
        "completed_with_errors",
        2,
        1,
        3,
    )
    assert done["started_at"] == moved["data"]["started_at"]
    assert 0 < done["rows_per_second"] <= result["rows_per_second"]
    [error] = await errors_of(api, agent, result["id"])
    assert (error["row_number"], error["message"]) == (4, "policy number already in row 3")
    _, policies = await api.call(
        "GET", "/api/v1/policies?sort=policy_number", token=agent.access_token
    )
    premiums = {p["policy_number"]: p["premium_amount"] for p in policies["data"]["items"]}
    assert premiums == {"LIC-7": "1200.00", "LIC-9": "5000.00"}
    # What is left failed on its own values: fixed in the file, not by a retry.
    _, refused = await api.call(
        "POST", f"{IMPORTS}/{result['id']}/retry", token=agent.access_token, expect=409
    )
    assert "upload it" in refused["message"]


def _zip_bomb() -> bytes:
    stream = io.BytesIO()
    with zipfile.ZipFile(stream, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
        archive.writestr("xl/worksheets/sheet1.xml", b"\0" * 20_000_000)
    return stream.getvalue()


REFUSED = [
    ("book.xlsx", csv_bytes(MESSY), 415, "named .xlsx but its content is text (csv)"),
    ("book.csv", xlsx_bytes(MESSY), 415, "named .csv but its content is an Excel workbook"),
    ("book.xls", xlsx_bytes(MESSY), 415, "named .xls but its content is an Excel workbook"),
    ("book.ods", b"PK\x03\x04 not really", 415, "binary data that is no spreadsheet"),
    ("book.csv", b"\x7fELF\x02\x01\x01\x00" * 10, 415, "binary data"),
    ("book.exe", b"MZ", 415, "unsupported file type 'exe'"),
    ("book.xlsx", _zip_bomb(), 413, "refused as a zip bomb"),
    ("big.csv", b"a,b\n" * (UPLOAD_LIMIT // 4 + 1), 413, f"exceeds {UPLOAD_LIMIT} bytes"),
]


@pytest.mark.parametrize("refused", REFUSED, ids=[f"{r[0]}-{r[2]}" for r in REFUSED])
async def test_files_that_are_not_what_they_claim_or_too_big_are_refused(
    api: Api, settings: Settings, refused: tuple[str, bytes, int, str]
) -> None:
    name, data, status, reason = refused
    _, agent = await agent_of(api)
    _, body = await upload(api, agent, name, data, expect=status)
    assert reason in body["message"]
    _, listed = await api.call("GET", IMPORTS, token=agent.access_token, expect=200)
    assert listed["data"]["items"] == []
    assert _stored(Path(settings.imports.directory)) == []  # nothing kept


def _stored(directory: Path) -> list[Path]:
    return list(directory.iterdir())


async def test_bad_form_fields_name_the_field(api: Api) -> None:
    admin, agent = await agent_of(api)
    _, body = await upload(api, agent, "b.csv", csv_bytes(MESSY), "furniture", expect=422)
    assert body["errors"][0]["field"] == "import_type"
    _, body = await upload(api, admin, "b.csv", csv_bytes(MESSY), expect=422)
    assert body["errors"][0]["field"] == "agent_id"  # admins say whose book
    holder = await api.register(admin.tenant_slug)
    await upload(api, holder, "b.csv", csv_bytes(MESSY), expect=403)
    response = await api.client.post(
        IMPORTS, json={"import_type": "customers"}, headers=agent.headers
    )
    assert response.status == 400


async def test_an_admin_imports_into_an_agents_book(api: Api) -> None:
    admin, agent = await agent_of(api)
    result = await import_file(api, admin, "b.csv", csv_bytes(MESSY), agent_id=agent.user_id)
    assert (result["agent_id"], result["uploaded_by"]) == (agent.user_id, admin.user_id)
    assert len(await customers_of(api, agent)) == 3
    _, mine = await api.call("GET", IMPORTS, token=agent.access_token)
    assert [item["id"] for item in mine["data"]["items"]] == [result["id"]]
    # The agent was not watching: the finished import waits as a notice until marked seen.
    colleague = await api.user(admin, Role.SENIOR_AGENT)

    async def notices(account: Account) -> list[str]:
        _, body = await api.call("GET", f"{IMPORTS}?unseen=true", token=account.access_token)
        return [item["id"] for item in body["data"]["items"]]

    assert await notices(agent) == [result["id"]]
    assert await notices(admin) == [result["id"]]  # the uploader
    assert await notices(colleague) == []
    await api.call(
        "POST", f"{IMPORTS}/{result['id']}/seen", token=colleague.access_token, expect=404
    )
    _, seen = await api.call(
        "POST", f"{IMPORTS}/{result['id']}/seen", token=agent.access_token, expect=200
    )
    assert seen["data"]["seen_at"] is not None
    assert await notices(agent) == []


async def test_another_tenants_or_agents_import_is_not_found(api: Api) -> None:
    admin, agent = await agent_of(api)
    result = await import_file(api, agent, "b.csv", csv_bytes(MESSY))
    other_admin = await api.tenant()
    colleague = await api.user(admin, Role.SENIOR_AGENT)
    for stranger in (other_admin, colleague):
        for method, path in (
            ("GET", f"{IMPORTS}/{result['id']}"),
            ("GET", f"{IMPORTS}/{result['id']}/errors"),
            ("GET", f"{IMPORTS}/{result['id']}/errors?format=csv"),
            ("POST", f"{IMPORTS}/{result['id']}/cancel"),
            ("POST", f"{IMPORTS}/{result['id']}/retry"),
        ):
            await api.call(method, path, token=stranger.access_token, expect=404)
        _, listed = await api.call("GET", IMPORTS, token=stranger.access_token)
        assert listed["data"]["items"] == []
    await api.call("GET", f"{IMPORTS}/{result['id']}", token=admin.access_token, expect=200)


@pytest.mark.parametrize("encoding", ["cp1252", "utf-8-sig"])
async def test_windows_1252_and_utf8_with_bom_csv(api: Api, encoding: str) -> None:
    _, agent = await agent_of(api)
    rows = [["Customer Name", "Mobile", "Address"], ["José Müller", "9876543210", "Café Road"]]
    result = await import_file(api, agent, "b.csv", csv_bytes(rows, encoding))
    assert (result["status"], result["created"]) == ("completed", 1)
    [customer] = (await customers_of(api, agent)).values()
    assert (customer["full_name"], customer["address"]) == ("José Müller", "Café Road")


async def test_formula_cells_give_their_cached_values_and_the_first_sheet_is_read(
    api: Api,
) -> None:
    _, agent = await agent_of(api)
    rows = [["Name", "Mobile"], ['="Ravi "&"Kumar"', "9876543210"]]
    data = xlsx_bytes(
        rows,
        cached={"A2": "Ravi Kumar"},
        sheets={"Other": [["Name", "Mobile"], ["Z", "9876543299"]]},
    )
    result = await import_file(api, agent, "b.xlsx", data)
    assert result["created"] == 1
    assert [c["full_name"] for c in (await customers_of(api, agent)).values()] == ["Ravi Kumar"]
    other = await import_file(api, agent, "b.xlsx", data, sheet="Other", force="true")
    assert other["created"] == 1
    assert "+919876543299" in await customers_of(api, agent)
    missing = await import_file(api, agent, "b.xlsx", data, sheet="Nope", force="true")
    assert missing["status"] == "failed"
    assert "no sheet named 'Nope'" in missing["error"]


async def test_a_sheet_without_the_columns_fails_with_the_reason(api: Api) -> None:
    _, agent = await agent_of(api)
    result = await import_file(api, agent, "b.csv", csv_bytes([["Name", "Email"], ["A", "a@b.c"]]))
    assert result["status"] == "failed"
    assert result["error"] == "missing required columns: phone"
    nothing = await import_file(api, agent, "c.csv", csv_bytes([["a", "b"], ["1", "2"]]))
    assert nothing["error"].startswith("no header row found")


async def test_the_error_report_escapes_formulas_and_round_trips(api: Api) -> None:
    _, agent = await agent_of(api)
    rows = [
        ["Customer Name", "Mobile", "Email"],
        ["Good One", "9876543210", ""],
        ['=HYPERLINK("http://evil.example/x","click")', "12345", ""],
        ["Bad Email", "9876543211", "@nope"],
    ]
    result = await import_file(api, agent, "b.csv", csv_bytes(rows))
    assert (result["created"], result["failed"]) == (1, 2)
    path = f"{IMPORTS}/{result['id']}/errors?format="
    response = await api.client.get(path + "csv", headers=agent.headers)
    assert response.status == 200
    assert response.content_type == "text/csv"
    report = read_book(await response.read(), "csv")
    assert report[0] == ["Customer Name", "Mobile", "Email", "Row", "Error"]
    assert report[1][0] == '\'=HYPERLINK("http://evil.example/x","click")'
    assert report[1][3:] == [3, "Mobile: not a valid phone number"]
    assert report[2][2] == "'@nope"
    response = await api.client.get(path + "xlsx", headers=agent.headers)
    workbook = openpyxl.load_workbook(io.BytesIO(await response.read()))
    cell = workbook.active["A2"]
    assert cell.data_type == "s"
    assert cell.value.startswith("'=HYPERLINK")
    # The agent fixes the two rows in the report and uploads it: Row and Error are unknown
    # columns, reported and ignored; every good row ends up present exactly once.
    sheet = workbook.active
    sheet["A2"] = "Hyper Link"
    sheet["B2"] = "9876543212"
    sheet["C3"] = "bad.email@example.com"
    fixed = io.BytesIO()
    workbook.save(fixed)
    again = await import_file(api, agent, "fixed.xlsx", fixed.getvalue())
    assert (again["status"], again["created"], again["updated"]) == ("completed", 2, 0)
    assert again["unknown_columns"] == ["Row", "Error"]
    customers = await customers_of(api, agent)
    assert set(customers) == {"+919876543210", "+919876543211", "+919876543212"}
    assert customers["+919876543211"]["email"] == "bad.email@example.com"


async def test_the_template_lists_the_columns_and_imports_as_it_is(api: Api) -> None:
    _, agent = await agent_of(api)
    for fmt in ("xlsx", "csv"):
        response = await api.client.get(
            f"{IMPORTS}/template?type=customers_and_policies&format={fmt}", headers=agent.headers
        )
        assert response.status == 200
        data = await response.read()
        book = read_book(data, fmt)
        assert book[0][:3] == ["Customer Name", "Mobile", "Email"]
        assert "Policy No" in book[0]
        result = await import_file(
            api, agent, f"t.{fmt}", data, "customers_and_policies", force="true"
        )
        assert result["status"] == "completed", await errors_of(api, agent, result["id"])
    _, body = await api.call(
        "GET", f"{IMPORTS}/template?type=boats", token=agent.access_token, expect=422
    )
    assert body["errors"][0]["field"] == "type"


async def test_ten_thousand_rows_with_progress_on_the_socket(api: Api) -> None:
    _, agent = await agent_of(api)
    socket = await ChatClient.connect(api.client, agent.access_token)
    rows: list[list[Any]] = [["Name", "Mobile", "Email", "DOB"]]
    for n in range(10_000):
        rows.append([f"Customer {n}", f"9{n:09d}", f"c{n}@example.com", "01/01/1990"])
    rows.append(["Broken", "1", "", ""])
    _, body = await upload(api, agent, "big.csv", csv_bytes(rows))
    import_id = body["data"]["import_id"]
    result = await finished(api, agent, import_id)
    assert (result["total"], result["created"], result["failed"]) == (10_001, 10_000, 1)
    assert result["rows_per_second"] > 0
    last = await socket.expect(
        "import_progress", lambda f: f["import_id"] == import_id and f["finished"]
    )
    assert (last["status"], last["created"], last["failed"]) == ("completed_with_errors", 10_000, 1)
    ImportProgressFrame.model_validate(last)  # as the AsyncAPI document describes it
    during = [f for f in socket.frames if f.get("type") == "import_progress" and not f["finished"]]
    assert during, "no progress frame while it ran"
    assert all(f["processed"] <= 10_001 for f in during)
    await socket.ws.close()


async def test_progress_frames_keep_coming_while_a_batch_waits_for_the_database(
    api: Api, settings: Settings
) -> None:
    _, agent = await agent_of(api)
    socket = await ChatClient.connect(api.client, agent.access_token)
    rows = [["Name", "Mobile"]] + [[f"C {n}", f"7{n:09d}"] for n in range(3_000)]
    _, body = await upload(api, agent, "slow.csv", csv_bytes(rows))
    import_id = body["data"]["import_id"]
    loop = asyncio.get_running_loop()
    arrivals: list[float] = []
    started = asyncio.Event()

    async def follow() -> dict[str, Any]:
        while True:
            frame = await socket.expect(
                "import_progress", lambda f: f["import_id"] == import_id, within=60
            )
            arrivals.append(loop.time())
            started.set()
            if frame["finished"]:
                return frame

    following = asyncio.create_task(follow())
    async with asyncio.timeout(10):
        await started.wait()
    # Hold the import's row (PostgreSQL) and the write lock (SQLite) as a slow batch or an
    # ANALYZE would: the import's next commit, lease renewal and end all wait for it.
    async with api.app[DATABASE].transaction(Scope.system()) as session:
        await session.execute(
            update(ImportJob)
            .where(ImportJob.id == uuid.UUID(import_id))
            .values(updated_at=ImportJob.updated_at)
        )
        held_from = loop.time()
        await asyncio.sleep(1.5)
    held_until = loop.time()
    last = await following
    assert last["status"] == "completed", "it ended before the database held it up"
    window = [held_from, *(t for t in arrivals if held_from < t < held_until), held_until]
    longest = max(later - earlier for earlier, later in itertools.pairwise(window))
    interval = settings.imports.progress_interval_seconds
    assert longest < interval * 3, f"{longest:.2f} s without a progress frame"
    await socket.close()


async def test_cancel_stops_a_running_import_and_deletes_its_file(
    api: Api, settings: Settings
) -> None:
    _, agent = await agent_of(api)
    rows = [["Name", "Mobile"]] + [[f"C {n}", f"8{n:09d}"] for n in range(20_000)]
    _, body = await upload(api, agent, "big.csv", csv_bytes(rows))
    import_id = body["data"]["import_id"]
    stored = Path(settings.imports.directory)
    assert len(_stored(stored)) == 1
    _, cancelled = await api.call(
        "POST", f"{IMPORTS}/{import_id}/cancel", token=agent.access_token, expect=200
    )
    assert cancelled["data"]["status"] == "cancelled"
    assert _stored(stored) == []  # gone at once, even if no pipeline ever runs it again
    result = await finished(api, agent, import_id)
    assert result["status"] == "cancelled"
    assert result["processed"] < 20_000
    await api.call("POST", f"{IMPORTS}/{import_id}/cancel", token=agent.access_token, expect=409)
