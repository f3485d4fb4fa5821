"""What every template can use: ``csrf_token()``, ``static_url()``, ``csp_nonce`` and
``current_session``; and :class:`PageMemo`, which renders a signed-in page once."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import secrets
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, MutableMapping
from typing import Any

import jinja2
from jinja2 import pass_context
from jinja2.runtime import Context
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from bff.resources import static_dir, templates_dir
from bff.web.auth.csrf import csrf_token
from bff.web.auth.guard import current_session
from bff.web.auth.sessions import Session
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


class PageMemo:
    """Signed-in pages rendered once per everything they show, each response still with
    its own CSP nonce.

    A page is a pure function of its template, its context and the session (the
    user's e-mail, the CSRF token derived from the session's secret). It is
    rendered with a placeholder where the nonce goes, kept encoded and split around
    it, and every response joins the pieces with that request's fresh nonce: the
    nonce stays unique per response while the render (about half of a warm dashboard
    view) happens once per (session, context). The placeholder is random per
    process, so no value in a context can fake one. :meth:`respond` keeps the page's
    headers the same way (its policy holds the nonce too), so a view served from the
    memo builds no header and encodes no text.

    The key is the whole input, so nothing needs invalidating: a changed mapping,
    token or scope is a different key. At most ``size`` pages are kept, least
    recently used first out; the cache lives in process memory beside the tokens
    the broker already holds.

    In front of it, the same pages by the identity of their inputs: a warm view
    passes the very objects of the view before (the cached session, pairs and
    embed), and hashing those field by field and comparing them costs more than the
    rest of the lookup. Each such entry holds its inputs, so none of their ids can be
    reused by another object while it exists: equal ids are the same objects.
    """

    def __init__(self, templates: Jinja2Templates, size: int = 1024) -> None:
        self._templates = templates
        self._size = size
        self._pages: OrderedDict[Hashable, _Page] = OrderedDict()
        self._known: dict[tuple[int, ...], tuple[tuple[object, ...], _Page]] = {}
        self._hole = f"nonce-{secrets.token_hex(16)}"

    def respond(
        self,
        request: Request,
        name: str,
        context: Mapping[str, Hashable],
        headers: Callable[[str], Mapping[str, str]],
    ) -> Response:
        """A 200 HTML response of ``name`` rendered with ``context``; ``headers(nonce)``
        gives the page's headers, which must depend on the context and the nonce only
        (it is called once per page, with the placeholder). The context's values are
        immutable, as hashable values are: the same objects are the same page."""
        session = current_session(request)
        inputs = (name, session, *context, *context.values())
        identity = tuple(map(id, inputs))
        known = self._known.get(identity)
        if known is None:
            page = self._page(request, name, session, context, headers)
            if len(self._known) >= self._size:
                del self._known[next(iter(self._known))]
            self._known[identity] = (inputs, page)
        else:
            page = known[1]
        nonce = csp_nonce(request).encode()
        body = nonce.join(page.body)
        raw = [(header, nonce.join(pieces)) for header, pieces in page.headers]
        raw.append((b"content-length", str(len(body)).encode()))
        raw.append((b"content-type", b"text/html; charset=utf-8"))
        return _Prepared(body, raw)

    def _page(
        self,
        request: Request,
        name: str,
        session: Session | None,
        context: Mapping[str, Hashable],
        headers: Callable[[str], Mapping[str, str]],
    ) -> _Page:
        key = (name, session, tuple(context.items()))
        page = self._pages.get(key)
        if page is not None:
            self._pages.move_to_end(key)
            return page
        template = self._templates.get_template(name)
        html = template.render(
            {**context, "request": request, "csp_nonce": self._hole, "current_session": session}
        )
        hole = self._hole.encode()
        page = self._pages[key] = _Page(
            body=tuple(html.encode().split(hole)),
            headers=tuple(
                (header.lower().encode("latin-1"), tuple(value.encode("latin-1").split(hole)))
                for header, value in headers(self._hole).items()
            ),
        )
        if len(self._pages) > self._size:
            self._pages.popitem(last=False)
        return page


@dataclasses.dataclass(frozen=True, slots=True)
class _Page:
    """A rendered page and its headers, each split around the nonce."""

    body: tuple[bytes, ...]
    headers: tuple[tuple[bytes, tuple[bytes, ...]], ...]


class _Prepared(Response):
    """A response whose body and headers are ready: nothing to render or encode."""

    def __init__(self, body: bytes, raw_headers: list[tuple[bytes, bytes]]) -> None:
        self.status_code = 200
        self.background = None
        self.body = body
        self.raw_headers = raw_headers
