"""``POST /api/v1/oauth/token``: client credentials for a short-lived partner bearer token.

The client-credentials grant of RFC 6749 §4.4: ``application/x-www-form-urlencoded``
with ``grant_type=client_credentials``, the client id and secret either in the form
(``client_id``, ``client_secret``) or in HTTP Basic (§2.3.1: each form-urlencoded, then
joined with ``:`` and base64-encoded), never both. The answer is
``{"access_token", "token_type": "Bearer", "expires_in": 3600}`` (the token:
:mod:`bff.web.partner.bearer`), with ``Cache-Control: no-store``.

Errors are RFC 6749 §5.2 JSON, with the problem-details fields alongside
(``type``, ``title``, ``status``, ``detail``), checked in this order:

- 400 ``invalid_request``: not form-encoded, a malformed or repeated parameter, no
  ``grant_type``, credentials in both places;
- 400 ``unsupported_grant_type``: a grant other than ``client_credentials``;
- 401 ``invalid_client`` with ``WWW-Authenticate: Basic realm="bff"``: no credentials,
  an unusable ``Authorization`` header, an unknown client id, a wrong secret, a revoked
  app. The last three answer the very same bytes after the same work
  (:func:`~bff.operations.partner_apps.authenticate_client`);
- 429 ``slow_down`` with ``Retry-After``: too many failed attempts for this client id
  or from this address (:mod:`bff.web.partner.limits`: 10 and 30 a minute); the secret
  is then not checked.
"""

from __future__ import annotations

import base64
import binascii
import logging
from http import HTTPStatus
from urllib.parse import parse_qsl, unquote_plus

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bff.operations.partner_apps import authenticate_client
from bff.web.partner.limits import TokenAttempt
from bff.web.services import services

logger = logging.getLogger(__name__)

PATH = "/api/v1/oauth/token"
FORM_TYPE = "application/x-www-form-urlencoded"
GRANT_TYPE = "client_credentials"
# grant_type, client_id, client_secret and a few a client library may add (scope).
_MAX_FIELDS = 10
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="bff"'}

_DESCRIPTIONS = {
    "invalid_client": "Client authentication failed.",
    "unsupported_grant_type": f"Only grant_type={GRANT_TYPE} is supported.",
    "slow_down": "Too many failed attempts; retry later.",
}


class _Refused(Exception):
    def __init__(self, status: int, error: str, description: str | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.description = description or _DESCRIPTIONS[error]


def _error(
    status: int, error: str, description: str, headers: dict[str, str] | None = None
) -> Response:
    body = {
        "error": error,
        "error_description": description,
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": description,
    }
    return JSONResponse(body, status_code=status, headers={**_NO_STORE, **(headers or {})})


def _invalid_request(description: str) -> _Refused:
    return _Refused(400, "invalid_request", description)


async def _form(request: Request) -> dict[str, str]:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != FORM_TYPE:
        raise _invalid_request(f"Send the parameters as {FORM_TYPE}.")
    body = await request.body()
    try:
        pairs = parse_qsl(
            body.decode("ascii"),
            keep_blank_values=True,
            strict_parsing=bool(body),
            errors="strict",
            max_num_fields=_MAX_FIELDS,
        )
    except ValueError:  # not ASCII, a malformed pair, bad UTF-8 in an escape, too many
        raise _invalid_request("The form body is malformed.") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise _invalid_request(f"The parameter {name[:40]} is given more than once.")
        form[name] = value
    return form


def _basic_credentials(authorization: str) -> tuple[str, str]:
    """The client id and secret of an HTTP Basic header, as RFC 6749 §2.3.1 encodes them."""
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        raise _Refused(401, "invalid_client", "Use HTTP Basic or the form for client credentials.")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        client_id, colon, client_secret = decoded.partition(":")
        if not colon:
            raise ValueError("no colon")
        return unquote_plus(client_id, errors="strict"), unquote_plus(
            client_secret, errors="strict"
        )
    except (binascii.Error, ValueError):
        raise _Refused(
            401, "invalid_client", "The Basic credentials are not client_id:client_secret."
        ) from None


def _credentials(request: Request, form: dict[str, str]) -> tuple[str, str]:
    authorization = request.headers.get("authorization")
    if authorization is not None:
        if "client_secret" in form:
            raise _invalid_request("Send the client credentials in one place, not two.")
        client_id, client_secret = _basic_credentials(authorization)
        if form.get("client_id", client_id) != client_id:
            raise _invalid_request("The client_id differs from the Basic credentials.")
        return client_id, client_secret
    form_id, form_secret = form.get("client_id"), form.get("client_secret")
    if not form_id or form_secret is None:
        raise _Refused(401, "invalid_client", "Send client_id and client_secret.")
    return form_id, form_secret


async def issue_token(request: Request) -> Response:
    try:
        form = await _form(request)
        grant_type = form.get("grant_type")
        if not grant_type:
            raise _invalid_request("grant_type is required.")
        if grant_type != GRANT_TYPE:
            raise _Refused(400, "unsupported_grant_type")
        client_id, client_secret = _credentials(request, form)
    except _Refused as refused:
        headers = _BASIC_CHALLENGE if refused.status == 401 else None
        return _error(refused.status, refused.error, refused.description, headers)
    return await _authenticate(request, client_id, client_secret)


async def _authenticate(request: Request, client_id: str, client_secret: str) -> Response:
    svc = services(request)
    address = request.client.host if request.client else "unknown"
    attempt = await svc.partner.limits.reserve_token_attempt(client_id, address)
    if not isinstance(attempt, TokenAttempt):
        logger.warning("partner token requests over the limit", extra={"retry_after": attempt})
        return _error(
            429,
            "slow_down",
            f"Too many failed attempts; retry in {attempt} s.",
            {"Retry-After": str(attempt)},
        )
    now = svc.clock.now()
    found = await authenticate_client(svc.database, client_id, client_secret, now)
    if found is None:
        logger.info("partner token refused: invalid client")
        return _error(401, "invalid_client", _DESCRIPTIONS["invalid_client"], _BASIC_CHALLENGE)
    await svc.partner.limits.succeeded(attempt)
    issued = svc.partner.tokens.issue(
        client_id=found.app.client_id, app_id=found.app.id, generation=found.generation, now=now
    )
    body = {
        "access_token": issued.access_token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
    }
    return JSONResponse(body, headers=_NO_STORE)


routes: list[BaseRoute] = [Route(PATH, issue_token, methods=["POST"], name="partner:token")]
