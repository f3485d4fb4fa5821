"""Handing a bff session over to ``BFF_PROXY_ORIGIN``: tickets and proxy sessions.

With a proxy origin the vendor dashboard runs there only (:mod:`bff.web.dashboard.proxy_origin`),
so the browser's bff session cookie never reaches it. Each dashboard frame hands the
page's session over:

1. The frame opens ``GET /vendor-frame`` on bff's own origin with the page's session
   (first-party, or a partner's embedded one). :meth:`ProxySessions.mint` stores a
   single-use ticket bound to that session, its user and its pair, in the launch
   tickets' table (:func:`bff.operations.launches.create_handoff`: hashed, 60 s,
   redeemed by deleting it), and the frame is sent on with a 303 to
   ``{proxy origin}/handoff?ticket=T``.
2. :meth:`ProxySessions.redeem` uses the ticket up there, checks the session it came
   from again, sets the proxy session cookie and answers 303 to the dashboard under
   ``/vendor/``. A used, expired or unknown ticket: 410.
3. :meth:`ProxySessions.authorizer` turns each proxied request's cookie into a
   :class:`~bff.web.dashboard.proxy.Grant` for the proxy. An unsafe request another
   origin started (``Origin``, ``Sec-Fetch-Site``) is refused first (403), as bff's
   cross-site check refuses it on bff's origin.

**The proxy session** is no record of its own: its cookie holds the parent session's
id, the user, the pair and (for an embedded parent) the partner origin, sealed
(Fernet: encrypted and authenticated) under a key derived from ``BFF_SECRET_KEYS``
for this purpose alone, so it is no bff session cookie and cannot become one. Every
proxied request loads the parent session (from the session store's cache, which
sees sign-out, revocation and expiry at once) and asks the mappings for the pair:
the proxy session ends with its parent, and loses a pair whose mapping is removed.
The opened cookie is remembered by its sealed value (immutable: any other bytes are
another value, opened afresh), so a proxied request decrypts it once per process;
its own lifetime, the parent session and the mapping are still checked every time.
It can do nothing but proxy that one pair for that one user; on bff's origin it is
an unknown cookie.

The cookie is ``__Host-bff_proxy_session`` (``bff_proxy_session`` when the proxy
origin is plain http): ``Path=/; Secure; HttpOnly; SameSite=None; Partitioned``,
host-only. ``SameSite=None`` because the proxy origin is framed by bff's (another
site, or a partner's page above it); ``Partitioned`` keeps it to the top-level
site that framed it, where Chromium's third-party cookie restriction still stores
it, and a page of any other site never sends it.

**Where no cookie is stored at all**, the proxy cannot work: the vendor's own
requests (its scripts, data, navigation) cannot carry a header, and a handle in
the URL would reach logs, history and ``Referer``. The proxy then answers the
frame's first request with a framed notice saying the browser refused the cookie
(401); embedded in a partner page, the embed page has already told the host page
``cookies-blocked`` (the same browser refused its embed cookie).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import quote, urlsplit

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from bff.errors import InvalidInputError, NotFoundError
from bff.operations import launches
from bff.origins import clean_origin
from bff.settings import Settings
from bff.web.auth.cookies import append_set_cookie, parse_cookie_header, set_cookie_header
from bff.web.auth.guard import login_url
from bff.web.auth.sessions import Session
from bff.web.dashboard.delivery import PAGE_HEADERS
from bff.web.dashboard.proxy import Grant, framed_page
from bff.web.dashboard.vendor_target import VendorTarget
from bff.web.security import origin_of
from bff.web.services import Services, services

logger = logging.getLogger(__name__)

Pair = tuple[str, str]
# The token and pair of a proxied request: page.proxy_grant, injected (page imports this).
GrantFor = Callable[[Request, str, int, Pair], Awaitable["Grant | Response"]]

HANDOFF_PATH = "/handoff"
TICKET_SECONDS = int(launches.TICKET_LIFETIME.total_seconds())
# Sealed values are a few hundred characters; anything longer is not ours.
MAX_SEALED = 1000
# Opened proxy session cookies remembered per process (a few hundred bytes each).
OPENED_PASSES = 4096
# Where the proxy's responses learn that the pass's parent is a partner's embed session.
PARTNER_ORIGIN = "bff.proxy_partner_origin"
_KDF_INFO = b"bff proxy handoff v1"
_TICKET, _PASS = "handoff", "proxy-session"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

LINK_INVALID = "This dashboard link has expired or was already used. Reload the page."
COOKIES_REFUSED = (
    "This browser did not keep the cookie the dashboard needs on this address. "
    "Allow cookies for this site, then reload the page."
)


class ProxySeal:
    """Seals small JSON values for one purpose: encrypted, authenticated, timestamped.
    The newest ``BFF_SECRET_KEYS`` key seals; every listed key opens."""

    def __init__(self, secret_keys: Sequence[str]) -> None:
        self._fernet = MultiFernet([Fernet(_derive(key)) for key in secret_keys])

    def seal(self, purpose: str, fields: dict[str, object], *, now: float) -> str:
        data = json.dumps({"p": purpose, **fields}, separators=(",", ":")).encode()
        return self._fernet.encrypt_at_time(data, int(now)).decode("ascii")

    def open(
        self, purpose: str, value: str | None, *, max_age: int, now: float
    ) -> dict[str, object] | None:
        """The fields sealed for ``purpose`` at most ``max_age`` seconds ago, else None."""
        if not value or len(value) > MAX_SEALED:
            return None
        try:
            raw = self._fernet.decrypt_at_time(
                value.encode("ascii"), ttl=max_age, current_time=int(now)
            )
            data = json.loads(raw)
        except (InvalidToken, UnicodeEncodeError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("p") != purpose:
            return None
        return data


def sealed_at(value: str) -> int:
    """When a value :meth:`ProxySeal.open` accepted was sealed (the Fernet timestamp)."""
    return int.from_bytes(base64.urlsafe_b64decode(value)[1:9], "big")


def _derive(key: str) -> bytes:
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KDF_INFO).derive(key.encode())
    return base64.urlsafe_b64encode(raw)


@dataclasses.dataclass(frozen=True)
class ProxyPass:
    """What a proxy session cookie says: whose session it came from, and the one pair."""

    parent_id: str = dataclasses.field(repr=False)
    user_id: int
    pair: Pair
    # The partner page above an embedded parent: it may frame the proxied pages too.
    partner_origin: str | None = None

    def fields(self) -> dict[str, object]:
        return {
            "s": self.parent_id,
            "u": self.user_id,
            "t": self.pair[0],
            "b": self.pair[1],
            "o": self.partner_origin,
        }

    @classmethod
    def from_fields(cls, fields: dict[str, object]) -> ProxyPass | None:
        parent, user, tenant, sub_tenant, origin = (
            fields.get(name) for name in ("s", "u", "t", "b", "o")
        )
        if not (
            isinstance(parent, str)
            and isinstance(user, int)
            and isinstance(tenant, str)
            and isinstance(sub_tenant, str)
            and (origin is None or isinstance(origin, str))
        ):
            return None
        return cls(parent, user, (tenant, sub_tenant), origin)


class ProxySessions:
    """Minting and redeeming handoff tickets, and the proxy session they start, for one
    set of settings (``proxy_origin`` set)."""

    def __init__(self, settings: Settings) -> None:
        if settings.proxy_origin is None:
            raise ValueError("ProxySessions needs BFF_PROXY_ORIGIN")
        self.proxy_origin = settings.proxy_origin
        self.public_origin = _public_origin(settings.public_url)
        self.seal = ProxySeal(settings.secret_keys)
        # Opened proxy session cookies by sealed value: the pass and when it was sealed.
        self._opened: dict[str, tuple[ProxyPass, int]] = {}
        https = urlsplit(settings.proxy_origin).scheme == "https"
        self.cookie_name = f"{'__Host-' if https else ''}bff_proxy_session"
        self.target = (
            VendorTarget.from_dashboard_url(settings.dashboard_url)
            if settings.dashboard_url and settings.dashboard_delivery == "proxy"
            else None
        )

    # On bff's origin -----------------------------------------------------------------

    async def mint(self, svc: Services, session: Session, pair: Pair) -> str:
        """A single-use handoff of ``session``'s view of ``pair``; the URL that redeems it."""
        now = svc.clock.now()
        ticket = self.seal.seal(_TICKET, {"s": session.id}, now=now.timestamp())
        framed_by = session.embed_origin if session.embedded and session.embed_origin else None
        await launches.create_handoff(
            svc.database,
            ticket,
            session.user_id,
            pair,
            framed_by or self.public_origin,
            now=now,
        )
        return f"{self.proxy_origin}{HANDOFF_PATH}?ticket={quote(ticket, safe='')}"

    # On the proxy origin -------------------------------------------------------------

    async def redeem(self, request: Request) -> Response:
        """``GET /handoff?ticket=T``: the proxy session cookie, and 303 to the dashboard."""
        if request.method != "GET":
            # A HEAD (a link checker, a prefetch) must not use the ticket up.
            return Response(status_code=405, headers={"Allow": "GET"})
        svc = services(request)
        now = svc.clock.now()
        ticket = request.query_params.get("ticket", "")
        try:
            handoff = await launches.redeem_handoff(svc.database, ticket, now=now)
        except NotFoundError:
            logger.info("refused a proxy handoff: its ticket is unknown, used or expired")
            return framed_page(request, 410, "Link expired", LINK_INVALID)
        opened = self.seal.open(_TICKET, ticket, max_age=TICKET_SECONDS, now=now.timestamp())
        parent_id = opened.get("s") if opened is not None else None
        parent = await svc.sessions.load(parent_id) if isinstance(parent_id, str) else None
        if parent is None or parent.user_id != handoff.user_id:
            logger.info("refused a proxy handoff: the session it came from has ended")
            return self._ended(request, embedded=False)
        partner = parent.embed_origin if parent.embedded else None
        _note_partner(request, partner)
        if not await _serves(svc, parent, handoff.pair):
            logger.info(
                "refused a proxy handoff for a pair no longer mapped",
                extra={"user_id": parent.user_id},
            )
            return framed_page(request, 403, "No access", "You do not have access to that tenant.")
        if self.target is None:
            return framed_page(
                request, 404, "No dashboard here", "The dashboard is not proxied by this server."
            )
        proxy_pass = ProxyPass(parent.id, parent.user_id, handoff.pair, partner)
        response = RedirectResponse(self.target.browser_entry, 303, headers=PAGE_HEADERS)
        lifetime = svc.sessions.expires_at(parent) - now
        self._set_cookie(
            response, proxy_pass, max_age=max(int(lifetime.total_seconds()), 1), now=now.timestamp()
        )
        logger.info("started a proxy session", extra={"user_id": parent.user_id})
        return response

    def pass_of(self, request: Request, svc: Services) -> ProxyPass | None:
        """The request's proxy session cookie, opened; None when absent, expired or not
        ours. Only a value that opened is remembered, never one that did not."""
        sent = parse_cookie_header(request.headers.get("cookie", "")).get(self.cookie_name)
        if not sent:
            return None
        lifetime = int(svc.sessions.max_age.total_seconds())
        now = int(svc.clock.now().timestamp())
        known = self._opened.get(sent)
        if known is not None:
            # Fernet's own rule: too old once sealed-at + lifetime is in the past.
            if known[1] + lifetime >= now:
                return known[0]
            del self._opened[sent]
            return None
        opened = self.seal.open(_PASS, sent, max_age=lifetime, now=now)
        proxy_pass = None if opened is None else ProxyPass.from_fields(opened)
        if proxy_pass is not None:
            if len(self._opened) >= OPENED_PASSES:
                self._opened.clear()
            self._opened[sent] = (proxy_pass, sealed_at(sent))
        return proxy_pass

    def authorizer(self, grant_for: GrantFor) -> Callable[[Request], Awaitable[Grant | Response]]:
        """The proxy's ``authorize`` for proxy sessions: the pass's pair, while the session
        it came from lives and the pair is still its own."""

        async def authorize(request: Request) -> Grant | Response:
            if self._from_elsewhere(request):
                logger.warning("refused a proxied %s from another origin", request.method)
                return framed_page(
                    request, 403, "Request refused", "This request came from another site."
                )
            svc = services(request)
            proxy_pass = self.pass_of(request, svc)
            if proxy_pass is None:
                if self.cookie_name in request.cookies:
                    return self._ended(request, embedded=False, clear=True)
                return framed_page(request, 401, "Cookies blocked", COOKIES_REFUSED)
            _note_partner(request, proxy_pass.partner_origin)
            parent = await svc.sessions.load(proxy_pass.parent_id)
            if parent is None or parent.user_id != proxy_pass.user_id:
                embedded = proxy_pass.partner_origin is not None
                return self._ended(request, embedded=embedded, clear=True)
            if not await _serves(svc, parent, proxy_pass.pair):
                logger.info(
                    "refused a proxied request for a pair no longer mapped",
                    extra={"user_id": parent.user_id},
                )
                return framed_page(
                    request, 403, "No access", "You do not have access to that tenant."
                )
            return await grant_for(request, parent.id, parent.user_id, proxy_pass.pair)

        return authorize

    def _from_elsewhere(self, request: Request) -> bool:
        """An unsafe request that another origin started (bff's cross-site check, which
        does not run here, for the proxy origin; same-site counts as elsewhere too)."""
        if request.method in _SAFE_METHODS:
            return False
        site = request.headers.get("sec-fetch-site", "").lower()
        if site in ("cross-site", "same-site"):
            return True
        origin = request.headers.get("origin")
        if origin is None:
            return False
        origin = origin.strip().lower()
        if origin == "null":
            return site != "same-origin"
        return origin != self.proxy_origin

    def _set_cookie(
        self, response: Response, proxy_pass: ProxyPass, *, max_age: int, now: float
    ) -> None:
        value = self.seal.seal(_PASS, proxy_pass.fields(), now=now)
        self._cookie(response, value, max_age)

    def _cookie(self, response: Response, value: str, max_age: int) -> None:
        header = set_cookie_header(
            self.cookie_name,
            value,
            max_age=max_age,
            secure=True,
            same_site="None",
            partitioned=True,
        )
        append_set_cookie(response.headers, header)

    def _ended(self, request: Request, *, embedded: bool, clear: bool = False) -> Response:
        if embedded:
            # No sign-in link: the partner page that frames this starts a new session.
            message = "This dashboard session has ended. Reload the page that shows it to continue."
            link = None
        else:
            message = "Your session has ended. Sign in again to see the dashboard."
            link = (self.public_origin + login_url(reason="expired"), "Sign in")
        response = framed_page(request, 401, "Session ended", message, link=link)
        if clear:
            self._cookie(response, "", 0)
        return response


async def _serves(svc: Services, parent: Session, pair: Pair) -> bool:
    """The parent session may still see ``pair``: an embedded one its own, a first-party
    one any pair its user is mapped to right now."""
    if parent.embedded:
        return parent.scope == pair
    return await svc.mappings.allows(parent.user_id, pair)


def _note_partner(request: Request, origin: str | None) -> None:
    if origin is not None:
        request.scope.setdefault("state", {})[PARTNER_ORIGIN] = origin


def partner_origin(state: dict[str, object]) -> str | None:
    """The partner origin a proxy-origin response may also be framed by, if any (checked
    again before it goes into a header)."""
    found = state.get(PARTNER_ORIGIN)
    return found if isinstance(found, str) and _ORIGIN.fullmatch(found) else None


# A stored partner origin: scheme, host and port, nothing that could end a directive.
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+")


def _public_origin(public_url: str) -> str:
    try:
        return clean_origin(origin_of(public_url), "BFF_PUBLIC_URL")
    except InvalidInputError:
        return origin_of(public_url)
