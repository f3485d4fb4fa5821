"""``/admin/tenants``: tenants and sub-tenants: create, rename, delete.

A delete always goes through a confirmation step that says what goes with it; for a
tenant or sub-tenant in use that step cascades (its mappings and partner-app pairs
go too). If a use appears between the two steps the operation refuses, and the page
asks again, for the cascade this time.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from bff.errors import InUseError
from bff.operations import tenants
from bff.web.admin.console import (
    admin_form,
    confirm_page,
    confirmed,
    field,
    redirect_done,
    render,
    require_admin,
)
from bff.web.errors import REFUSED, refusal_status
from bff.web.services import services

PATH = "/admin/tenants"
SECTION = "admin:tenants"
NOTICES = {
    "tenant-created": "Tenant created.",
    "sub-tenant-created": "Sub-tenant created.",
    "renamed": "Name changed.",
    "deleted": "Deleted.",
}


async def tenants_page(request: Request) -> Response:
    require_admin(request)
    return await _page(request)


async def _page(
    request: Request,
    *,
    error: Exception | None = None,
    kept_for: str = "",
    kept: Mapping[str, str] | None = None,
) -> Response:
    """The list; after a refused form, its message and the admin's input for the form
    ``kept_for`` names."""
    found = await tenants.list_tenants(services(request).database)
    context = {
        "tenants": found,
        "error": str(error) if error else None,
        "kept_for": kept_for,
        "kept": kept or {},
    }
    status = 200 if error is None else refusal_status(error)
    return render(
        request,
        "admin/tenants.html",
        context,
        section=SECTION,
        notices=NOTICES,
        status_code=status,
    )


async def create_tenant(request: Request) -> Response:
    session, form = await admin_form(request)
    kept = {"id": field(form, "id"), "name": field(form, "name")}
    try:
        await tenants.create_tenant(
            services(request).database, session.email, kept["id"], kept["name"] or None
        )
    except REFUSED as exc:
        return await _page(request, error=exc, kept_for="tenant", kept=kept)
    return redirect_done(PATH, "tenant-created")


async def create_sub_tenant(request: Request) -> Response:
    session, form = await admin_form(request)
    tenant_id = request.path_params["tenant_id"]
    kept = {"id": field(form, "id"), "name": field(form, "name")}
    try:
        await tenants.create_sub_tenant(
            services(request).database, session.email, tenant_id, kept["id"], kept["name"] or None
        )
    except REFUSED as exc:
        return await _page(request, error=exc, kept_for=f"sub:{tenant_id}", kept=kept)
    return redirect_done(PATH, "sub-tenant-created")


async def rename(request: Request) -> Response:
    session, form = await admin_form(request)
    tenant_id = request.path_params["tenant_id"]
    sub_tenant_id = request.path_params.get("sub_tenant_id")
    name = field(form, "name")
    database = services(request).database
    try:
        if sub_tenant_id is None:
            await tenants.rename_tenant(database, session.email, tenant_id, name)
        else:
            await tenants.rename_sub_tenant(database, session.email, tenant_id, sub_tenant_id, name)
    except REFUSED as exc:
        target = tenant_id if sub_tenant_id is None else f"{tenant_id}/{sub_tenant_id}"
        return await _page(request, error=exc, kept_for=f"rename:{target}", kept={"name": name})
    return redirect_done(PATH, "renamed")


async def delete(request: Request) -> Response:
    session, form = await admin_form(request)
    tenant_id = request.path_params["tenant_id"]
    sub_tenant_id = request.path_params.get("sub_tenant_id")
    svc = services(request)
    try:
        if not confirmed(form):
            usage = await tenants.usage(svc.database, tenant_id, sub_tenant_id)
            return _confirm(request, usage)
        cascade = field(form, "cascade") == "yes"
        if sub_tenant_id is None:
            await tenants.delete_tenant(
                svc.database, session.email, tenant_id, cascade=cascade, live=svc.live()
            )
        else:
            await tenants.delete_sub_tenant(
                svc.database,
                session.email,
                tenant_id,
                sub_tenant_id,
                cascade=cascade,
                live=svc.live(),
            )
    except InUseError:
        # A use appeared since the first step: ask again, for the cascade.
        usage = await tenants.usage(svc.database, tenant_id, sub_tenant_id)
        page = _confirm(request, usage, refused=True)
        page.status_code = 409
        return page
    except REFUSED as exc:
        return await _page(request, error=exc)
    return redirect_done(PATH, "deleted")


def _confirm(request: Request, usage: tenants.Usage, *, refused: bool = False) -> Response:
    tenant_id = request.path_params["tenant_id"]
    sub_tenant_id = request.path_params.get("sub_tenant_id")
    what = (
        f"tenant {tenant_id}"
        if sub_tenant_id is None
        else f"sub-tenant {sub_tenant_id} of {tenant_id}"
    )
    consequences = []
    if sub_tenant_id is None and usage.sub_tenants:
        consequences.append(f"{usage.sub_tenants} sub-tenant(s) will be deleted.")
    if usage.mappings:
        consequences.append(
            f"{usage.mappings} mapping(s) will be removed; sessions showing them end at once."
        )
    if usage.partner_app_pairs:
        consequences.append(
            f"{usage.partner_app_pairs} partner-app pair(s) will be removed from their apps."
        )
    consequences.append("Cached vendor tokens for its pairs are discarded.")
    question = f"Delete the {what}?"
    if usage.in_use:
        question = f"The {what} is in use. Delete it together with everything that uses it?"
    if refused:
        question = (
            f"Not deleted: the {what} came into use after the first step. "
            "Delete it together with everything that uses it?"
        )
    return confirm_page(
        request,
        section=SECTION,
        title=f"Delete {what}",
        question=question,
        action=request.url.path,
        back=PATH,
        button="Delete with everything listed" if usage.in_use else "Delete",
        consequences=consequences,
        hidden=[("cascade", "yes")] if usage.in_use else [],
    )


_TENANT = PATH + "/{tenant_id}"
_SUB = _TENANT + "/sub-tenants/{sub_tenant_id}"

routes: list[BaseRoute] = [
    Route(PATH, tenants_page, name=SECTION),
    Route(PATH, create_tenant, methods=["POST"], name="admin:tenants.create"),
    Route(_TENANT + "/rename", rename, methods=["POST"], name="admin:tenants.rename"),
    Route(_TENANT + "/delete", delete, methods=["POST"], name="admin:tenants.delete"),
    Route(
        _TENANT + "/sub-tenants",
        create_sub_tenant,
        methods=["POST"],
        name="admin:tenants.create_sub",
    ),
    Route(_SUB + "/rename", rename, methods=["POST"], name="admin:tenants.rename_sub"),
    Route(_SUB + "/delete", delete, methods=["POST"], name="admin:tenants.delete_sub"),
]
