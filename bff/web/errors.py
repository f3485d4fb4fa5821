"""Exception handlers: RFC 9457 problem+json under ``/api/``, friendly pages elsewhere.

The operations' refusals map onto statuses here: invalid input 422 (a weak
password too), forbidden 403, not found 404, already exists, in use and revoked
409. Their messages are written for the user and carry no secret, so they are
shown.

No handler ever shows a traceback or an exception's text to the client; the
request id on the page lets an operator find the logged details.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ExceptionHandler

from bff.errors import (
    AlreadyExistsError,
    DatabaseBusyError,
    ForbiddenError,
    InUseError,
    InvalidInputError,
    NotFoundError,
    RevokedError,
    UpstreamRejected,
    UpstreamUnavailable,
)
from bff.logs import request_id
from bff.passwords import WeakPasswordError
from bff.web.services import services

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"
MAX_RETRY_AFTER = 3600


class ProblemResponse(JSONResponse):
    media_type = "application/problem+json"


def problem(
    status: int, detail: str, *, headers: Mapping[str, str] | None = None, **extra: Any
) -> Response:
    body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status}
    body["detail"] = detail
    body.update(extra)
    return ProblemResponse(body, status_code=status, headers=headers)


def wants_problem(request: Request) -> bool:
    return request.url.path.startswith(API_PREFIX)


def error_page(
    request: Request,
    status: int,
    title: str,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    retry_after: int | None = None,
) -> Response:
    if wants_problem(request):
        return problem(status, message, headers=headers)
    context = {
        "title": title,
        "message": message,
        "status": status,
        "request_id": request_id.get(),
        "retry_after": retry_after,
    }
    return services(request).templates.TemplateResponse(
        request, "error.html", context, status_code=status, headers=headers
    )


async def http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    phrase = HTTPStatus(exc.status_code).phrase
    detail = exc.detail if exc.detail != phrase else _FRIENDLY.get(exc.status_code, phrase)
    return error_page(request, exc.status_code, phrase, detail, headers=exc.headers)


UNAVAILABLE = "Dashboard temporarily unavailable"


def unavailable_retry(exc: UpstreamUnavailable) -> tuple[int, str]:
    """Whole seconds until a retry (what the vendor asked, within bounds; else 30),
    and the sentence that tells the user so."""
    retry = max(1, min(MAX_RETRY_AFTER, round(exc.retry_after or 30)))
    return retry, f"The dashboard is temporarily unavailable. Retrying in {retry} s."


async def upstream_unavailable(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, UpstreamUnavailable)
    retry, message = unavailable_retry(exc)
    logger.warning("vendor unavailable: %s", exc)
    return error_page(
        request,
        503,
        UNAVAILABLE,
        message,
        headers={"Retry-After": str(retry), "Cache-Control": "no-store"},
        retry_after=retry,
    )


async def upstream_rejected(request: Request, exc: Exception) -> Response:
    logger.error("vendor rejected our request (configuration error): %s", exc)
    return error_page(
        request,
        502,
        "Dashboard not available",
        "The dashboard connection is misconfigured. An administrator has been notified.",
        headers={"Cache-Control": "no-store"},
    )


# The operations' refusals and their statuses, for the API's problems and the pages alike.
REFUSALS: dict[type[Exception], int] = {
    InvalidInputError: 422,
    WeakPasswordError: 422,
    NotFoundError: 404,
    AlreadyExistsError: 409,
    InUseError: 409,
    RevokedError: 409,
    ForbiddenError: 403,
}


REFUSED = tuple(REFUSALS)


def refusal_status(exc: Exception) -> int:
    """The status that answers a refusal (a class in :data:`REFUSALS`)."""
    return next(code for kind, code in REFUSALS.items() if isinstance(exc, kind))


async def operation_refused(request: Request, exc: Exception) -> Response:
    """An operation refused its input; the message names the field and is safe to show."""
    status = refusal_status(exc)
    phrase = HTTPStatus(status).phrase
    field = getattr(exc, "field", None)
    if wants_problem(request):
        extra = {"field": field} if field else {}
        return problem(status, str(exc), **extra)
    return error_page(request, status, phrase, str(exc))


async def database_busy(request: Request, exc: Exception) -> Response:
    logger.warning("database busy: %s", exc)
    return error_page(
        request,
        503,
        "Busy",
        "The service is busy for a moment. Please retry.",
        headers={"Retry-After": "2", "Cache-Control": "no-store"},
    )


async def server_error(request: Request, exc: Exception) -> Response:
    # Starlette sends errors raised outside its exception layer (in a middleware) here.
    if isinstance(exc, DatabaseBusyError):
        return await database_busy(request, exc)
    logger.error("unhandled error", exc_info=exc)
    return error_page(
        request, 500, "Something went wrong", "Something went wrong on our side. Please retry."
    )


_FRIENDLY = {
    404: "There is nothing at this address.",
    405: "This address does not accept that kind of request.",
}

EXCEPTION_HANDLERS: dict[Any, ExceptionHandler] = {
    HTTPException: http_exception,
    UpstreamUnavailable: upstream_unavailable,
    UpstreamRejected: upstream_rejected,
    DatabaseBusyError: database_busy,
    **dict.fromkeys(REFUSALS, operation_refused),
    Exception: server_error,
}
