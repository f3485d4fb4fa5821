"""How the vendor token reaches the vendor's dashboard: the four delivery modes.

| mode       | iframe src                     | token travels                              |
|------------|--------------------------------|--------------------------------------------|
| `proxy`    | ``/vendor/…`` on the BFF, or   | never to the browser (added by the proxy)  |
|            | ``/vendor-frame``, handing over|                                            |
|            | to ``BFF_PROXY_ORIGIN``        |                                            |
| `post`     | ``about:blank``                | a form field POSTed into the iframe        |
| `fragment` | dashboard URL ``#token=…``     | the fragment, which no server ever sees    |
| `query`    | dashboard URL ``?token=…``     | the query: vendor logs and Referer see it  |

Whatever the mode, the page that carries a token is ``no-store`` and
``no-referrer``, its CSP names only the vendor origin (or ``'self'`` for the
proxy; with ``BFF_PROXY_ORIGIN``, ``'self'`` and that origin, where the frame's
handoff leads) in ``frame-src``, and the token is in the page body only.

``proxy`` without ``BFF_PROXY_ORIGIN`` runs the vendor's code on bff's own origin,
where it could act as the signed-in user: allowed only while ``BFF_PUBLIC_URL`` is
on localhost (development, with a start-up warning); :func:`check_proxy_origin`
makes ``bff serve`` refuse it anywhere else.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from urllib.parse import quote, urlsplit

from bff.errors import ConfigurationError
from bff.settings import DeliveryMode, Settings
from bff.web.dashboard.vendor_target import VendorTarget

logger = logging.getLogger(__name__)

# The iframe's name, the POST form's target.
FRAME_NAME = "vendor-dashboard"
PAGE_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
# With BFF_PROXY_ORIGIN: the frame's first stop on bff's origin, which hands it over.
VENDOR_FRAME_PATH = "/vendor-frame"
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclasses.dataclass(frozen=True)
class Embed:
    """What the dashboard page needs to embed the vendor dashboard in one mode."""

    mode: DeliveryMode
    iframe_src: str = dataclasses.field(repr=False)
    frame_src: tuple[str, ...]
    form_action: tuple[str, ...]
    post_action: str | None = None
    post_token: str | None = dataclasses.field(default=None, repr=False)


# Every view of a pair asks again with the same token until it is renewed.
@functools.lru_cache(maxsize=1024)
def embed(
    mode: DeliveryMode, dashboard_url: str, token: str, proxy_origin: str | None = None
) -> Embed:
    """The embed for ``mode``; ``token`` is ignored in proxy mode, where the proxy adds it
    (on ``proxy_origin`` when given)."""
    target = _target(dashboard_url)
    vendor = (target.origin,)
    if mode == "proxy" and proxy_origin is not None:
        return Embed(mode, VENDOR_FRAME_PATH, ("'self'", proxy_origin), ("'self'",))
    if mode == "proxy":
        return Embed(mode, target.browser_entry, ("'self'",), ("'self'",))
    if mode == "post":
        return Embed(
            mode,
            "about:blank",
            vendor,
            ("'self'", target.origin),
            post_action=dashboard_url,
            post_token=token,
        )
    if mode == "fragment":
        return Embed(mode, f"{dashboard_url}#token={quote(token, safe='')}", vendor, ("'self'",))
    separator = "&" if "?" in dashboard_url else "?"
    return Embed(
        mode, f"{dashboard_url}{separator}token={quote(token, safe='')}", vendor, ("'self'",)
    )


@functools.lru_cache(maxsize=8)
def _target(dashboard_url: str) -> VendorTarget:
    # Every page view embeds from the same setting; parse it once.
    return VendorTarget.from_dashboard_url(dashboard_url)


def warn_about_delivery(settings: Settings) -> None:
    """Start-up warnings for a risky or incomplete delivery configuration."""
    if settings.dashboard_url is None:
        logger.warning("BFF_DASHBOARD_URL is not set: the dashboard page cannot embed anything")
    if settings.dashboard_delivery == "proxy" and settings.proxy_origin is None:
        logger.warning(
            "BFF_DASHBOARD_DELIVERY=proxy without BFF_PROXY_ORIGIN runs the vendor's dashboard "
            "code on bff's own origin, where it can act as the signed-in user; allowed for "
            "development on localhost only"
        )
    if settings.dashboard_delivery == "query":
        logger.warning(
            "BFF_DASHBOARD_DELIVERY=query puts vendor tokens in the iframe URL, where the "
            "vendor's access logs, proxies and Referer headers can see them; prefer proxy or post"
        )


def check_proxy_origin(settings: Settings) -> None:
    """``proxy`` delivery needs ``BFF_PROXY_ORIGIN`` unless ``BFF_PUBLIC_URL`` is on
    localhost: :class:`ConfigurationError` naming it otherwise."""
    if settings.dashboard_delivery != "proxy" or settings.proxy_origin is not None:
        return
    if urlsplit(settings.public_url).hostname in _LOCAL_HOSTS:
        return
    raise ConfigurationError(
        "BFF_PROXY_ORIGIN",
        "is required with BFF_DASHBOARD_DELIVERY=proxy (a second host name for the vendor "
        "dashboard, e.g. https://vendor-proxy.example.com), so vendor code never runs on "
        "bff's origin",
    )
