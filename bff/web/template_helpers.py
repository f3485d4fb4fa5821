"""What every template can use: ``csrf_token()``, ``csp_nonce`` and ``current_session``."""

from __future__ import annotations

from typing import Any

from jinja2 import pass_context
from jinja2.runtime import Context
from starlette.requests import Request
from starlette.templating import Jinja2Templates

from bff.web.auth import current_session
from bff.web.csrf import csrf_token
from bff.web.security import csp_nonce


def install(templates: Jinja2Templates) -> None:
    templates.env.globals["csrf_token"] = _csrf_token
    templates.context_processors.append(_request_context)


@pass_context
def _csrf_token(context: Context) -> str:
    request: Request = context["request"]
    return csrf_token(request)


def _request_context(request: Request) -> dict[str, Any]:
    return {"csp_nonce": csp_nonce(request), "current_session": current_session(request)}
