"""``/admin/mappings``: mappings one by one, CSV import (preview, then apply) and export.

The import is two posts of one multipart form. ``step=preview`` uploads the file
and runs the import as a dry run; when it has no errors, the preview page carries
the file's text in a hidden field of its "Apply" form, so ``step=apply`` applies
exactly the text the admin previewed (no silent re-upload of a file that may have
changed on disk), checked again in full and applied all or nothing. Browsers send
a textarea with CRLF line ends, which the CSV reader takes like LF.

The upload path is exempt from the app's 64 KiB body cap (see ``bff.app``); this
module reads it against its own limit and answers 413 past it, before anything
is parsed or applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode

from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Message, Receive

from bff.errors import InvalidInputError
from bff.operations import mapping_csv, mappings, tenants
from bff.operations.mapping_csv import ImportReport
from bff.web.admin import api
from bff.web.admin.console import (
    admin_form,
    confirm_page,
    confirmed,
    field,
    page_number,
    redirect_done,
    render,
    require_admin,
)
from bff.web.auth.csrf import require_csrf
from bff.web.auth.sessions import Session
from bff.web.errors import REFUSED, refusal_status
from bff.web.services import services

PATH = "/admin/mappings"
SECTION = "admin:mappings"
# The CSV upload reads its (larger) body against its own limit, not the 64 KiB form cap.
IMPORT_PATH = "/admin/mappings/import"
MAX_CSV_BYTES = api.MAX_CSV_BYTES
# The apply step posts the text back from a textarea, which browsers send with CRLF
# line ends: up to twice the file, plus the form's other fields.
MAX_UPLOAD_BYTES = 2 * MAX_CSV_BYTES + 64 * 1024
TOO_LARGE = f"The file is larger than {MAX_CSV_BYTES // (1024 * 1024)} MiB; split it into parts."
# A replace may remove thousands of mappings: the preview lists the first ones.
MAX_LISTED_REMOVALS = 1000
NOTICES = {
    "added": "Mapping added.",
    "exists": "That mapping existed already; nothing changed.",
    "removed": "Mapping removed; sessions showing that pair have ended.",
    "absent": "There was no such mapping; nothing changed.",
    "imported": "The import was applied. The audit log records its counts.",
}
_FILTERS = ("email", "tenant_id", "sub_tenant_id")
_MAX_FILTER = 254


async def mappings_page(request: Request) -> Response:
    require_admin(request)
    return await _page(request)


async def _page(
    request: Request, *, error: Exception | None = None, kept: Mapping[str, str] = {}
) -> Response:
    """The list with its filters; after a refused add, the message and the admin's input."""
    query = request.query_params
    filters = {name: query.get(name, "").strip()[:_MAX_FILTER] for name in _FILTERS}
    filters = {name: value for name, value in filters.items() if value}
    page = page_number(query.get("page", "1"))
    database = services(request).database
    found = await mappings.list_mappings(
        database,
        email=filters.get("email", ""),
        tenant_id=filters.get("tenant_id", ""),
        sub_tenant_id=filters.get("sub_tenant_id", ""),
        page=page,
    )

    def page_link(number: int) -> str:
        return "?" + urlencode({**filters, "page": str(number)})

    context = {
        "mappings": found.items,
        "filters": filters,
        "tenants": await tenants.list_tenants(database),
        "previous_page": page_link(page - 1) if page > 1 else None,
        "next_page": page_link(found.next_page) if found.next_page else None,
        "page": page,
        "error": str(error) if error else None,
        "kept": kept,
    }
    status = 200 if error is None else refusal_status(error)
    return render(
        request,
        "admin/mappings.html",
        context,
        section=SECTION,
        notices=NOTICES,
        status_code=status,
    )


async def add(request: Request) -> Response:
    session, form = await admin_form(request)
    kept = {name: field(form, name) for name in _FILTERS}
    try:
        created = await mappings.map_pair(
            services(request).database,
            session.email,
            kept["email"],
            kept["tenant_id"],
            kept["sub_tenant_id"],
            create_pair=False,
        )
    except REFUSED as exc:
        return await _page(request, error=exc, kept=kept)
    return redirect_done(PATH, "added" if created else "exists", email=kept["email"].strip())


async def remove(request: Request) -> Response:
    session, form = await admin_form(request)
    email, tenant_id, sub_tenant_id = (field(form, name) for name in _FILTERS)
    if not confirmed(form):
        return confirm_page(
            request,
            section=SECTION,
            title="Remove mapping",
            question=f"Remove the mapping of {email} to {tenant_id} / {sub_tenant_id}?",
            action=request.url.path,
            back=f"{PATH}?{urlencode({'email': email})}",
            button="Remove",
            consequences=[f"Sessions of {email} showing this pair end at once."],
            hidden=[("email", email), ("tenant_id", tenant_id), ("sub_tenant_id", sub_tenant_id)],
        )
    svc = services(request)
    try:
        removed = await mappings.unmap_pair(
            svc.database, session.email, email, (tenant_id, sub_tenant_id), live=svc.live()
        )
    except REFUSED as exc:
        return await _page(request, error=exc)
    return redirect_done(PATH, "removed" if removed else "absent", email=email.strip())


async def export(request: Request) -> Response:
    require_admin(request)
    text = await mapping_csv.export_csv(services(request).database)
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": 'attachment; filename="mappings.csv"',
            "Cache-Control": "no-store",
        },
    )


async def import_csv(request: Request) -> Response:
    session, form = await _upload_form(request)
    try:
        return await _import(request, session, form)
    finally:
        await form.close()  # the upload's temporary file, on every path


async def _import(request: Request, session: Session, form: FormData) -> Response:
    mode = field(form, "mode") or "merge"
    if mode not in ("merge", "replace"):  # as the API answers
        return await _page(request, error=InvalidInputError("mode must be merge or replace"))
    svc = services(request)
    apply = field(form, "step") == "apply"
    if apply:
        data = field(form, "csv").replace("\r\n", "\n").encode()
        if len(data) > MAX_CSV_BYTES:
            raise HTTPException(413, TOO_LARGE)
        if not data.strip():
            return await _page(request, error=InvalidInputError("there is nothing to apply"))
    else:
        upload = form.get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            return await _page(request, error=InvalidInputError("choose a CSV file to import"))
        data = await upload.read()
        if len(data) > MAX_CSV_BYTES:
            raise HTTPException(413, TOO_LARGE)
    try:
        report = await mapping_csv.import_csv(
            svc.database,
            session.email,
            data,
            mode="replace" if mode == "replace" else "merge",
            dry_run=not apply,
            live=svc.live(),
        )
    except REFUSED as exc:
        return await _page(request, error=exc)
    if report.applied:
        return redirect_done(PATH, "imported")
    return _preview(request, report, mode, data, tried_to_apply=apply)


def _preview(
    request: Request, report: ImportReport, mode: str, data: bytes, *, tried_to_apply: bool
) -> Response:
    context = {
        "report": report,
        "mode": mode,
        "removals": report.removals[:MAX_LISTED_REMOVALS],
        "more_removals": max(0, report.removed - MAX_LISTED_REMOVALS),
        "changes": report.added + report.removed,
        # Only a file without errors is carried on to the apply step; it decoded then.
        "csv": "" if report.errors else data.decode("utf-8-sig"),
        "tried_to_apply": tried_to_apply,
    }
    return render(
        request,
        "admin/mappings_import.html",
        context,
        section=SECTION,
        status_code=422 if report.errors else 200,
    )


async def _upload_form(request: Request) -> tuple[Session, FormData]:
    """:func:`admin_form` for the upload: the body is read against ``MAX_UPLOAD_BYTES``."""
    session = require_admin(request)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES:
        raise HTTPException(413, TOO_LARGE)
    limited = Request(request.scope, _capped(request.receive, MAX_UPLOAD_BYTES))
    form = await limited.form(max_files=1, max_fields=10, max_part_size=MAX_UPLOAD_BYTES)
    try:
        return session, await require_csrf(limited)
    except HTTPException:
        await form.close()
        raise


def _capped(receive: Receive, limit: int) -> Receive:
    """``receive`` that fails with 413 once the body passes ``limit`` (a client may
    stream it without a ``Content-Length``)."""
    received = 0

    async def capped() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise HTTPException(413, TOO_LARGE)
        return message

    return capped


routes: list[BaseRoute] = [
    Route(PATH, mappings_page, name=SECTION),
    Route(PATH, add, methods=["POST"], name="admin:mappings.add"),
    Route(PATH + "/remove", remove, methods=["POST"], name="admin:mappings.remove"),
    Route(PATH + "/export", export, name="admin:mappings.export"),
    Route(IMPORT_PATH, import_csv, methods=["POST"], name="admin:mappings.import"),
]
