"""Who is calling the admin API: a personal API key (``Authorization: Bearer``), or the
console's session plus an ``X-CSRF-Token`` header on every unsafe request.

No valid credentials is a 401 problem; a non-admin on an admin route a 403. A key is
looked up on every request, so a deleted key or a disabled owner fails at once.
Embedded (partner iframe) sessions are not admin credentials and count as none.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from starlette.exceptions import HTTPException
from starlette.requests import Request

from bff.operations import api_keys
from bff.web.auth.csrf import HEADER as CSRF_HEADER
from bff.web.auth.csrf import UNSAFE_METHODS, check_csrf_token
from bff.web.auth.guard import current_session
from bff.web.services import services

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="bff"'}


@dataclasses.dataclass(frozen=True)
class Caller:
    user_id: int
    email: str
    is_admin: bool
    via: Literal["api-key", "session"]


class CredentialsRequired(HTTPException):
    def __init__(self, detail: str) -> None:
        super().__init__(401, detail, headers=CHALLENGE)


async def authenticate(request: Request) -> Caller:
    """The caller, or HTTPException 401 (no or bad credentials) / 403 (session without
    its CSRF header on an unsafe request)."""
    authorization = request.headers.get("authorization")
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise CredentialsRequired("Send a personal API key as 'Authorization: Bearer <token>'.")
        svc = services(request)
        owner = await api_keys.authenticate(svc.database, token.strip(), now=svc.clock.now())
        if owner is None:
            raise CredentialsRequired("This API key is not valid.")
        return Caller(owner.user_id, owner.email, owner.is_admin, "api-key")
    session = current_session(request)
    if session is None or session.embedded:
        raise CredentialsRequired("Sign in, or send a personal API key as a bearer token.")
    if request.method in UNSAFE_METHODS and not check_csrf_token(
        request, request.headers.get(CSRF_HEADER)
    ):
        raise HTTPException(403, f"Send the console's {CSRF_HEADER} header with this request.")
    return Caller(session.user_id, session.email, session.is_admin, "session")


async def authenticate_admin(request: Request) -> Caller:
    caller = await authenticate(request)
    if not caller.is_admin:
        raise HTTPException(403, "This needs an administrator.")
    return caller
