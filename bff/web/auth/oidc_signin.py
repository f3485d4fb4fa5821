"""Sign-in through the organisation's OpenID Connect provider.

``GET /login/oidc`` starts the flow; its state, nonce, PKCE verifier and the
``next`` path travel in a short-lived cookie, encrypted and bound to its purpose
with the app's secret box, so nothing about the flow is kept server-side and
nothing in it is readable or forgeable by the browser. ``GET /login/oidc/callback``
checks the state against that cookie, exchanges the code, validates the ID token
and signs in the existing user with that *verified* e-mail address. Unknown
e-mails are refused unless ``BFF_OIDC_ALLOW_SIGNUP`` is on.
"""

from __future__ import annotations

import hmac
import json
import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bff import identifiers
from bff.errors import InvalidIdentifierError, SecretDecryptionError
from bff.store.users import add_user, find_user
from bff.web.auth.oidc import OIDCClient, OIDCError
from bff.web.auth.redirects import safe_next
from bff.web.auth.signin import complete_sign_in, render_login
from bff.web.services import services

logger = logging.getLogger(__name__)

FLOW_SECONDS = 600
_FLOW_CONTEXT = "cookie:oidc-flow"
UNREACHABLE = "The identity provider could not be reached. Please try again later."
NOT_VERIFIED = (
    "Your identity provider did not confirm your e-mail address, "
    "so it cannot be matched to an account."
)
NO_ACCOUNT = "There is no account for this e-mail address. Ask an administrator to add you."
FLOW_INVALID = "This sign-in attempt expired or was not started here. Please try again."


def _client(request: Request) -> OIDCClient:
    client = services(request).auth.oidc
    if client is None:
        raise HTTPException(404)
    return client


async def start(request: Request) -> Response:
    client = _client(request)
    svc = services(request)
    next_path = safe_next(request.query_params.get("next"))
    try:
        flow = await client.start()
    except OIDCError as exc:
        logger.warning("OpenID Connect provider unavailable: %s", exc)
        svc.auth.metrics.login("oidc", "error")
        return render_login(request, next_path=next_path, error=UNREACHABLE, status=502)
    sealed = svc.secret_box.encrypt(
        json.dumps(
            {
                "state": flow.state,
                "nonce": flow.nonce,
                "verifier": flow.code_verifier,
                "next": next_path,
                "expires": svc.clock.now().timestamp() + FLOW_SECONDS,
            }
        ),
        _FLOW_CONTEXT,
    )
    response = RedirectResponse(flow.url, status_code=303)
    svc.auth.cookies.set(response, svc.auth.cookies.oidc_name, sealed, max_age=FLOW_SECONDS)
    return response


async def callback(request: Request) -> Response:
    client = _client(request)
    svc = services(request)
    cookies = svc.auth.cookies
    flow = _open_flow(request)
    state = request.query_params.get("state", "")
    next_path = safe_next(str(flow.get("next", "")) if flow else None)

    def refuse(message: str, status: int, outcome: str = "refused") -> Response:
        svc.auth.metrics.login("oidc", "error" if outcome == "error" else "refused")
        response = render_login(request, next_path=next_path, error=message, status=status)
        cookies.delete(response, cookies.oidc_name)
        return response

    # An error answer signs nobody in, so it needs no state check (some providers omit it).
    if "error" in request.query_params:
        return refuse("Sign-in was cancelled or refused at the identity provider.", 403)
    if (
        flow is None
        or "code" not in request.query_params
        or not hmac.compare_digest(state.encode(), str(flow["state"]).encode())
    ):
        return refuse(FLOW_INVALID, 400)
    try:
        identity = await client.finish(
            code=request.query_params["code"],
            code_verifier=str(flow["verifier"]),
            nonce=str(flow["nonce"]),
        )
    except OIDCError as exc:
        logger.warning("OpenID Connect sign-in failed: %s", exc)
        return refuse(UNREACHABLE, 502, "error")
    if identity.email is None or not identity.email_verified:
        logger.info("OpenID Connect e-mail not verified", extra={"subject": identity.subject})
        return refuse(NOT_VERIFIED, 403)
    try:
        email = identifiers.email(identity.email)
    except InvalidIdentifierError:
        return refuse(NOT_VERIFIED, 403)

    async with svc.database.session() as db:
        user = await find_user(db, email)
        if user is None and client.settings.allow_signup:
            user = await add_user(db, email, None)
            logger.info("user signed up through OpenID Connect", extra={"user_id": user.id})
        user_id = user.id if user is not None and not user.disabled else None
    if user_id is None:
        return refuse(NO_ACCOUNT, 403)

    svc.auth.metrics.login("oidc", "success")
    response = RedirectResponse(next_path, status_code=303)
    cookies.delete(response, cookies.oidc_name)
    await complete_sign_in(request, response, user_id)
    logger.info("signed in", extra={"user_id": user_id, "method": "oidc"})
    return response


def _open_flow(request: Request) -> dict[str, object] | None:
    svc = services(request)
    sealed = request.cookies.get(svc.auth.cookies.oidc_name)
    if not sealed or len(sealed) > 4096:
        return None
    try:
        flow = json.loads(svc.secret_box.decrypt(sealed, _FLOW_CONTEXT))
    except (SecretDecryptionError, ValueError):
        return None
    if not isinstance(flow, dict) or not isinstance(flow.get("expires"), float | int):
        return None
    if flow["expires"] < svc.clock.now().timestamp() or not all(
        isinstance(flow.get(key), str) for key in ("state", "nonce", "verifier")
    ):
        return None
    return flow


routes = [
    Route("/login/oidc", start, methods=["GET"], name="auth:oidc"),
    Route("/login/oidc/callback", callback, methods=["GET"], name="auth:oidc-callback"),
]
