"""``/admin/partner-api``: the Partner API credentials page (seed 001).

The list of partner apps, a creation form, and one page per app to change its
allowed origins and pairs. A client secret appears exactly once, in the answer to
the POST that made it (creation or regeneration), never on a page a GET can load
again. Regenerating and revoking take a confirmation step.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from bff.errors import InvalidInputError, NotFoundError, RevokedError
from bff.operations import partner_apps, tenants
from bff.web.admin.console import (
    admin_form,
    confirm_page,
    confirmed,
    field,
    redirect_done,
    render,
    require_admin,
)
from bff.web.services import services

SECTION = "admin:partner-api"
BASE = "/admin/partner-api"
# Above this many sub-tenants, pairs are typed as lines instead of ticked.
MAX_CHECKBOXES = 200
NOTICES = {
    "updated": "The partner app was saved.",
    "revoked": "The credentials were revoked: their tokens and embed sessions have ended.",
}


@dataclasses.dataclass(frozen=True)
class _Input:
    """What the app form holds, kept as typed so a refused form can be shown again."""

    name: str = ""
    origins: str = ""
    pairs: tuple[str, ...] = ()

    @classmethod
    def from_form(cls, form: FormData) -> _Input:
        ticked = [value for value in form.getlist("pair") if isinstance(value, str)]
        typed = field(form, "pairs").splitlines()
        lines = [line.strip() for line in [*ticked, *typed] if line.strip()]
        return cls(field(form, "name"), field(form, "allowed_origins"), tuple(lines))

    @classmethod
    def from_app(cls, app: partner_apps.AppView) -> _Input:
        pairs = tuple(f"{t}/{s}" for t, s in app.pairs)
        return cls(app.name, "\n".join(app.allowed_origins), pairs)

    def origin_list(self) -> list[str]:
        return [line for line in self.origins.splitlines() if line.strip()]

    def pair_list(self) -> list[partner_apps.Pair]:
        pairs = []
        for line in self.pairs:
            tenant_id, slash, sub_tenant_id = line.partition("/")
            if not slash:
                raise InvalidInputError(
                    f"pairs: write each pair as tenant/sub-tenant (e.g. acme/north), not {line!r}",
                    field="pairs",
                )
            pairs.append((tenant_id, sub_tenant_id))
        return pairs


def _app_id(request: Request) -> int:
    raw = request.path_params["app_id"]
    if not raw.isdigit() or len(raw) > 18:
        raise NotFoundError("There is no such partner app.")
    return int(raw)


async def _form_context(request: Request, values: _Input) -> dict[str, Any]:
    """The form's values, and the existing pairs to tick (or None: type them)."""
    found = await tenants.list_tenants(services(request).database)
    choices = [(f"{t.id}/{s.id}", f"{t.name} / {s.name}") for t in found for s in t.sub_tenants]
    return {
        "values": values,
        "choices": choices if len(choices) <= MAX_CHECKBOXES else None,
        "pairs_text": "\n".join(values.pairs),
    }


def _secret_page(request: Request, made: partner_apps.NewSecret, created: bool) -> Response:
    context = {"app": made.app, "client_secret": made.client_secret, "created": created}
    response = render(request, "admin/partner_api_secret.html", context, section=SECTION)
    response.headers["Cache-Control"] = "no-store"
    return response


async def list_page(request: Request) -> Response:
    require_admin(request)
    apps = await partner_apps.list_apps(services(request).database)
    return render(
        request, "admin/partner_api.html", {"apps": apps}, section=SECTION, notices=NOTICES
    )


async def _new_form(request: Request, values: _Input, error: str | None = None) -> Response:
    context = {**await _form_context(request, values), "error": error}
    return render(
        request,
        "admin/partner_api_new.html",
        context,
        section=SECTION,
        status_code=200 if error is None else 422,
    )


async def new_page(request: Request) -> Response:
    require_admin(request)
    return await _new_form(request, _Input())


async def create(request: Request) -> Response:
    session, form = await admin_form(request)
    values = _Input.from_form(form)
    svc = services(request)
    try:
        created = await partner_apps.create_app(
            svc.database,
            session.email,
            values.name,
            values.origin_list(),
            values.pair_list(),
            now=svc.clock.now(),
        )
    except InvalidInputError as exc:
        return await _new_form(request, values, str(exc))
    return _secret_page(request, created, created=True)


async def _app_form(
    request: Request,
    app: partner_apps.AppView,
    values: _Input,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    context = {**await _form_context(request, values), "app": app, "error": error}
    return render(
        request,
        "admin/partner_api_app.html",
        context,
        section=SECTION,
        notices=NOTICES,
        status_code=status_code,
    )


async def app_page(request: Request) -> Response:
    require_admin(request)
    app = await partner_apps.get_app(services(request).database, _app_id(request))
    return await _app_form(request, app, _Input.from_app(app))


async def update(request: Request) -> Response:
    session, form = await admin_form(request)
    app_id = _app_id(request)
    values = _Input.from_form(form)
    svc = services(request)
    try:
        await partner_apps.update_app(
            svc.database,
            session.email,
            app_id,
            name=values.name,
            allowed_origins=values.origin_list(),
            pairs=values.pair_list(),
            live=svc.live(),
        )
    except InvalidInputError as exc:
        app = await partner_apps.get_app(svc.database, app_id)
        return await _app_form(request, app, values, str(exc), 422)
    return redirect_done(f"{BASE}/{app_id}", "updated")


async def regenerate(request: Request) -> Response:
    session, form = await admin_form(request)
    svc = services(request)
    app = await partner_apps.get_app(svc.database, _app_id(request))
    if app.status == "revoked":
        return await _refused_revoked(request, app.id)
    if not confirmed(form):
        return confirm_page(
            request,
            section=SECTION,
            title="Regenerate the client secret",
            question=f"Give {app.name} a new client secret?",
            action=f"{BASE}/{app.id}/secret",
            back=f"{BASE}/{app.id}",
            button="Regenerate secret",
            consequences=[
                "The current secret stops working at once, and so do the tokens issued with it.",
                "The app's open embed sessions end.",
                "The client id stays the same.",
            ],
        )
    try:
        renewed = await partner_apps.regenerate_secret(
            svc.database, session.email, app.id, now=svc.clock.now(), live=svc.live()
        )
    except RevokedError:  # revoked while the admin confirmed
        return await _refused_revoked(request, app.id)
    return _secret_page(request, renewed, created=False)


async def _refused_revoked(request: Request, app_id: int) -> Response:
    app = await partner_apps.get_app(services(request).database, app_id)
    message = "These credentials are revoked and get no new secret; create new credentials."
    return await _app_form(request, app, _Input.from_app(app), message, 409)


async def revoke(request: Request) -> Response:
    session, form = await admin_form(request)
    svc = services(request)
    app = await partner_apps.get_app(svc.database, _app_id(request))
    if not confirmed(form):
        return confirm_page(
            request,
            section=SECTION,
            title="Revoke the credentials",
            question=f"Revoke the credentials of {app.name}?",
            action=f"{BASE}/{app.id}/revoke",
            back=BASE,
            button="Revoke",
            consequences=[
                "The client secret and every token issued with it stop working at once.",
                "The app's open embed sessions end.",
                "This cannot be undone: create new credentials to connect the app again.",
            ],
        )
    await partner_apps.revoke_app(
        svc.database, session.email, app.id, now=svc.clock.now(), live=svc.live()
    )
    return redirect_done(BASE, "revoked")


routes: list[BaseRoute] = [
    Route(BASE, list_page, name=SECTION),
    Route(f"{BASE}/new", new_page, name="admin:partner-api.new"),
    Route(f"{BASE}/new", create, methods=["POST"], name="admin:partner-api.create"),
    Route(BASE + "/{app_id}", app_page, name="admin:partner-api.app"),
    Route(BASE + "/{app_id}", update, methods=["POST"], name="admin:partner-api.update"),
    Route(BASE + "/{app_id}/secret", regenerate, methods=["POST"], name="admin:partner-api.secret"),
    Route(BASE + "/{app_id}/revoke", revoke, methods=["POST"], name="admin:partner-api.revoke"),
]
