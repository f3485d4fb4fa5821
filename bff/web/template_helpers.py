"""What every template can use: ``csrf_token()``, ``static_url()``, ``csp_nonce`` and
``current_session``."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import MutableMapping
from typing import Any

import jinja2
from jinja2 import pass_context
from jinja2.runtime import Context
from starlette.requests import Request
from starlette.templating import Jinja2Templates

from bff.resources import static_dir, templates_dir
from bff.web.auth import current_session
from bff.web.csrf import csrf_token
from bff.web.security import csp_nonce


class _Environment(jinja2.Environment):
    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        # Jinja layers a template's globals over the environment's with a ChainMap,
        # which every render then copies key by key (about 15 us a page). bff sets
        # its globals before the first template loads, so a plain dict holds the same.
        return {**self.globals, **(d or {})}


def create_templates() -> Jinja2Templates:
    """bff's templates, with the helpers installed."""
    env = _Environment(
        loader=jinja2.FileSystemLoader(templates_dir()),
        autoescape=True,
        # The templates ship with the package: no stat() of each file on every render.
        auto_reload=False,
    )
    templates = Jinja2Templates(env=env)
    templates.env.globals["csrf_token"] = _csrf_token
    templates.env.globals["static_url"] = static_url
    templates.context_processors.append(_request_context)
    return templates


@functools.cache
def static_url(path: str) -> str:
    """A site-relative URL that changes with the file's content, so browsers may cache it.

    Site-relative rather than Starlette's ``url_for``: that builds an absolute URL
    from the request's ``Host`` header, and walks the routes on every call.
    """
    digest = hashlib.sha256((static_dir() / path).read_bytes()).hexdigest()[:12]
    return f"/static/{path}?v={digest}"


@pass_context
def _csrf_token(context: Context) -> str:
    request: Request = context["request"]
    return csrf_token(request)


def _request_context(request: Request) -> dict[str, Any]:
    return {"csp_nonce": csp_nonce(request), "current_session": current_session(request)}
