"""CSV import: every problem by line number, nothing applied unless everything is right."""

from __future__ import annotations

from typing import Any

import anyio.to_process
import pytest
from anyio import BrokenWorkerProcess
from sqlalchemy.ext.asyncio import AsyncSession

from bff.errors import AlreadyExistsError
from bff.operations import audit, mapping_csv, mapping_plan, mappings, users
from bff.operations.live import Live
from bff.operations.mapping_csv import LineError, Removal, import_csv
from bff.operations.mapping_plan import parse
from bff.store.database import Database
from tests.operations.helpers import ACTOR, FakeLive, all_mappings, audit_actions, seed

pytestmark = pytest.mark.anyio

ANN = "ann@example.com"
BOB = "bob@example.com"
HEADER = "email,tenant_id,sub_tenant_id\n"


def test_each_problem_is_reported_with_its_line_number() -> None:
    text = (
        HEADER  # line 1
        + "ann@example.com,acme,north\n"  # 2: fine
        + "ann@example.com,acme\n"  # 3: a column short
        + " ANN@example.com , acme , north \n"  # 4: the same row as line 2 once trimmed
        + "not-an-email,acme,north\n"  # 5
        + "bob@example.com,-acme,north\n"  # 6: invalid tenant id
        + f"bob@example.com,acme,{'x' * 65}\n"  # 7: over-long sub-tenant id
        + "\n"  # 8: blank lines are skipped
        + "bob@example.com,acme,north,extra\n"  # 9
    )
    rows, errors = parse(text.encode())
    assert [row.line for row in rows] == [2]
    assert [(e.line, e.message.split(" ")[0]) for e in errors] == [
        (3, "expected"),
        (4, "duplicate"),
        (5, "'not-an-email'"),
        (6, "tenant"),
        (7, "sub-tenant"),
        (9, "expected"),
    ]
    assert errors[1].message == "duplicate of line 2"
    assert "longer than 64" in errors[4].message


@pytest.mark.parametrize(
    "header", ["", "email,tenant_id\n", "email,tenant,sub_tenant\n", "ann@example.com,acme,north\n"]
)
def test_a_wrong_or_missing_header_is_line_1(header: str) -> None:
    rows, errors = parse((header + "ann@example.com,acme,north\n").encode())
    assert rows == []
    assert errors == [
        LineError(1, "the first line must be the header email,tenant_id,sub_tenant_id")
    ]


def test_a_bom_crlf_and_a_quoted_multiline_field_keep_the_line_numbers_right() -> None:
    data = b"\xef\xbb\xbf" + b"Email,Tenant_ID,Sub_Tenant_ID\r\nann@example.com,acme,north\r\n"
    rows, errors = parse(data)
    assert (errors, [(r.line, r.email) for r in rows]) == ([], [(2, ANN)])
    rows, errors = parse(f'{HEADER}"a\nb",acme,north\nann@example.com,acme,"-x"\n'.encode())
    assert [e.line for e in errors] == [3, 4]


def test_text_that_is_not_utf8_names_the_line() -> None:
    rows, errors = parse(f"{HEADER}ann@example.com,acme,north\n".encode() + b"bob\xff,a,b\n")
    assert (rows, errors) == ([], [LineError(3, "the file is not UTF-8 text")])


async def test_unknown_users_and_pairs_are_errors_and_nothing_is_applied(
    database: Database,
) -> None:
    await seed(database, [ANN], [("acme", "north")])
    text = HEADER + f"{ANN},acme,north\nnobody@example.com,acme,north\n{ANN},acme,west\n"
    report = await import_csv(database, ACTOR, text.encode())
    assert report.errors == [
        LineError(3, "no user nobody@example.com"),
        LineError(4, "no pair (acme, west)"),
    ]
    assert not report.applied
    assert await all_mappings(database) == []
    assert await audit_actions(database) == []


async def test_merge_adds_and_counts_unchanged(database: Database) -> None:
    await seed(
        database, [ANN, BOB], [("acme", "north"), ("acme", "south")], [(ANN, "acme", "north")]
    )
    text = HEADER + f"{ANN},acme,north\n{BOB},acme,south\n"
    report = await import_csv(database, ACTOR, text.encode())
    assert (report.added, report.removed, report.unchanged, report.errors) == (1, 0, 1, [])
    assert report.applied
    assert await all_mappings(database) == [(ANN, "acme", "north"), (BOB, "acme", "south")]
    assert await audit_actions(database) == ["mapping.import"]


async def test_replace_lists_its_removals_and_dry_run_changes_nothing(database: Database) -> None:
    ids = await seed(
        database,
        [ANN, BOB],
        [("acme", "north"), ("acme", "south")],
        [(ANN, "acme", "north"), (BOB, "acme", "south")],
    )
    before = await all_mappings(database)
    text = (HEADER + f"{ANN},acme,north\n{ANN},acme,south\n").encode()
    preview = await import_csv(database, ACTOR, text, mode="replace", dry_run=True)
    assert (preview.added, preview.removed, preview.unchanged) == (1, 1, 1)
    assert [(r.email, r.tenant_id, r.sub_tenant_id) for r in preview.removals] == [
        (BOB, "acme", "south")
    ]
    assert not preview.applied
    assert await all_mappings(database) == before
    assert await audit_actions(database) == []

    live = FakeLive()
    applied = await import_csv(
        database, ACTOR, text, mode="replace", live=Live(sessions=live, mappings=live)
    )
    assert applied.applied
    assert await all_mappings(database) == [(ANN, "acme", "north"), (ANN, "acme", "south")]
    assert live.revoked_scopes == [(ids[BOB], "acme", "south")]
    assert live.forgotten == [ids[BOB]]


async def test_merge_dry_run_changes_nothing(database: Database) -> None:
    await seed(database, [ANN], [("acme", "north")])
    report = await import_csv(database, ACTOR, f"{HEADER}{ANN},acme,north\n".encode(), dry_run=True)
    assert (report.added, report.applied) == (1, False)
    assert await all_mappings(database) == []


async def test_a_failure_mid_apply_leaves_nothing_changed(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    users = [f"u{n}@example.com" for n in range(30)]
    await seed(database, users, [("acme", "north"), ("acme", "south")],
               [(u, "acme", "north") for u in users])  # fmt: skip
    before = await all_mappings(database)
    # Small chunks, so the failure comes after several deletes and inserts went through.
    monkeypatch.setattr(mapping_csv, "CHUNK", 7)

    async def failing_record(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(audit, "record", failing_record)
    text = HEADER + "".join(f"{u},acme,south\n" for u in users)
    with pytest.raises(RuntimeError, match="disk is full"):
        await import_csv(database, ACTOR, text.encode(), mode="replace")
    assert await all_mappings(database) == before


async def test_export_round_trips_through_import(database: Database) -> None:
    await seed(database, [ANN, BOB], [("acme", "north"), ("b", "1")],
               [(ANN, "acme", "north"), (BOB, "b", "1")])  # fmt: skip
    exported = await mapping_csv.export_csv(database)
    report = await import_csv(database, ACTOR, exported.encode(), mode="replace", dry_run=True)
    assert (report.added, report.removed, report.unchanged, report.errors) == (0, 0, 2, [])


async def test_an_import_racing_a_concurrent_map_is_already_exists_and_applies_nothing(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed(database, [ANN, BOB], [("acme", "north")])
    real_apply = mapping_csv._apply

    async def racing_apply(db: AsyncSession, plan: object) -> None:
        # Another request maps Bob after the import planned to add him.
        await mappings.map_pair(database, "other", BOB, "acme", "north")
        await real_apply(db, plan)  # type: ignore[arg-type]

    monkeypatch.setattr(mapping_csv, "_apply", racing_apply)
    text = f"{HEADER}{ANN},acme,north\n{BOB},acme,north\n".encode()
    with pytest.raises(AlreadyExistsError, match="nothing was applied"):
        await import_csv(database, ACTOR, text)
    assert await all_mappings(database) == [(BOB, "acme", "north")]
    assert await audit_actions(database) == ["mapping.add"]


async def test_an_import_racing_a_user_delete_is_refused_whole(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed(database, [ANN, BOB], [("acme", "north"), ("acme", "south")],
               [(ANN, "acme", "north")])  # fmt: skip
    real_apply = mapping_csv._apply

    async def racing_apply(db: AsyncSession, plan: object) -> None:
        # Another request deletes Bob after the import planned to map him.
        await users.delete_user(database, "other", BOB)
        await real_apply(db, plan)  # type: ignore[arg-type]

    monkeypatch.setattr(mapping_csv, "_apply", racing_apply)
    text = f"{HEADER}{ANN},acme,south\n{BOB},acme,north\n".encode()
    with pytest.raises(AlreadyExistsError, match="nothing was applied"):
        await import_csv(database, ACTOR, text, mode="replace")
    assert await all_mappings(database) == [(ANN, "acme", "north")]


async def test_a_large_import_is_planned_in_a_worker_process_and_applied_in_chunks(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    emails = [f"u{n:02}@example.com" for n in range(20)]
    ids = await seed(database, emails, [("acme", "north"), ("acme", "south")],
                     [(e, "acme", "north") for e in emails])  # fmt: skip
    monkeypatch.setattr(mapping_csv, "IN_THREAD_BELOW", 0)
    monkeypatch.setattr(mapping_csv, "CHUNK", 3)
    sent: list[object] = []
    real_run_sync = anyio.to_process.run_sync

    async def run_sync(function: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(function)
        return await real_run_sync(function, *args, **kwargs)

    monkeypatch.setattr(anyio.to_process, "run_sync", run_sync)
    # The first ten keep north and gain south; the other ten lose north.
    text = HEADER + "".join(f"{e},acme,{sub}\n" for e in emails[:10] for sub in ("north", "south"))
    live = FakeLive()
    report = await import_csv(
        database, ACTOR, text.encode(), mode="replace", live=Live(sessions=live, mappings=live)
    )
    assert sent == [mapping_plan.plan_in_worker]
    assert (report.added, report.removed, report.unchanged, report.errors) == (10, 10, 10, [])
    assert [r.email for r in report.removals] == emails[10:]
    assert report.applied
    assert await all_mappings(database) == [
        (e, "acme", sub) for e in emails[:10] for sub in ("north", "south")
    ]
    assert live.revoked_scopes == [(ids[e], "acme", "north") for e in emails[10:]]
    assert await audit_actions(database) == ["mapping.import"]


async def test_without_a_worker_process_the_plan_is_made_in_a_thread(
    database: Database, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """As under ``python -m bff``: its ``__main__`` exits when the worker imports it."""
    await seed(database, [ANN], [("acme", "north")])
    monkeypatch.setattr(mapping_csv, "IN_THREAD_BELOW", 0)

    async def broken(*args: object, **kwargs: object) -> None:
        raise BrokenWorkerProcess("Error during worker process initialization")

    monkeypatch.setattr(anyio.to_process, "run_sync", broken)
    report = await import_csv(database, ACTOR, f"{HEADER}{ANN},acme,north\n".encode())
    assert (report.added, report.applied) == (1, True)
    assert "planning in a thread" in caplog.text


async def test_the_preview_lists_the_first_removals_and_counts_them_all(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed(database, [ANN, BOB], [("acme", "north")],
               [(ANN, "acme", "north"), (BOB, "acme", "north")])  # fmt: skip
    monkeypatch.setattr(mapping_plan, "MAX_REMOVALS", 1)
    report = await import_csv(database, ACTOR, HEADER.encode(), mode="replace", dry_run=True)
    assert report.removed == 2
    assert report.removals == [Removal(ANN, "acme", "north")]


async def test_export_defuses_cells_a_spreadsheet_would_run(database: Database) -> None:
    risky = ["=1+2@example.com", "+sum@example.com", "-cmd@example.com"]
    await seed(database, [*risky, ANN], [("acme", "north")],
               [(email, "acme", "north") for email in [*risky, ANN]])  # fmt: skip
    exported = await mapping_csv.export_csv(database)
    assert exported.splitlines() == [
        "email,tenant_id,sub_tenant_id",
        "'+sum@example.com,acme,north",
        "'-cmd@example.com,acme,north",
        "'=1+2@example.com,acme,north",
        f"{ANN},acme,north",
    ]
