"""The admin console in a real Chromium against the real demo servers: onboarding a
tenant end to end, partner credentials, the CSV import, a screenshot of every page
(no console errors, no CSP violations) and keyboard focus. Screenshots go to
test-artifacts/admin-*.png."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Error, Page, expect

from bff.demo.run import Demo, running_demo
from bff.demo.seed import DemoAccount

pytestmark = pytest.mark.browser

TIMEOUT_MS = 10_000
PARTNER_ORIGIN = "https://partner.example"
# The message a console page shows after a successful form.
NOTICE = ".flash.info[role=status]"
# Every page of the console and the pages it links to: (artifact name, path, h1).
PAGES = [
    ("overview", "/admin/", "Overview"),
    ("users", "/admin/users", "Users"),
    ("tenants", "/admin/tenants", "Tenants"),
    ("mappings", "/admin/mappings", "Mappings"),
    ("connections", "/admin/connections", "Vendor connections"),
    ("partner-api", "/admin/partner-api", "Partner API"),
    ("tokens", "/admin/tokens", "Token cache"),
    ("audit", "/admin/audit", "Audit log"),
    ("account-api-keys", "/account/api-keys", "Personal API keys"),
    ("api-docs", "/api/docs", "API documentation"),
]


@pytest.fixture(autouse=True)
def expect_timeout() -> Iterator[None]:
    """``expect`` waits as long as actions do here; its global default is back afterwards."""
    expect.set_options(timeout=TIMEOUT_MS)
    yield
    expect.set_options(timeout=None)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    with running_demo(port=0, directory=tmp_path) as running:
        yield running


@pytest.fixture(scope="module")
def shared_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """One demo for the read-only page tour."""
    with running_demo(port=0, directory=tmp_path_factory.mktemp("demo")) as running:
        yield running


@contextmanager
def new_page(browser: Browser) -> Iterator[Page]:
    """A page in a context of its own (its own cookies), closed afterwards."""
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def watch_errors(page: Page) -> list[str]:
    """Console errors (a CSP violation is one in Chromium) and uncaught exceptions of ``page``."""
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        source = message.location["url"] or page.url
        # Chromium asks for /favicon.ico on its own; the app serves none (yet).
        if message.type == "error" and not source.endswith("/favicon.ico"):
            errors.append(f"console: {message.text} ({source})")

    def on_page_error(error: Error) -> None:
        errors.append(f"uncaught: {error} ({page.url})")

    page.on("console", on_console)
    page.on("pageerror", on_page_error)
    return errors


def admin_of(demo: Demo) -> DemoAccount:
    return next(account for account in demo.accounts if account.is_admin)


def account(demo: Demo, email: str) -> DemoAccount:
    return next(account for account in demo.accounts if account.email == email)


def sign_in(page: Page, email: str, password: str) -> None:
    """Fill the sign-in form the page shows and submit it with Enter."""
    expect(page.locator("h1")).to_have_text("Sign in")
    page.fill("#email", email)
    page.fill("#password", password)
    page.press("#password", "Enter")
    expect(page).not_to_have_url(re.compile(r"/login"))


def sign_in_admin(page: Page, demo: Demo, path: str) -> None:
    """Open ``path`` signed out, sign in as the demo admin there and land back on it."""
    admin = admin_of(demo)
    page.goto(demo.url + path)
    expect(page).to_have_url(re.compile(r"/login\?"))
    sign_in(page, admin.email, admin.password)
    expect(page).to_have_url(demo.url + path)


def test_onboard_tenant_user_and_mapping(browser: Browser, demo: Demo, artifacts: Path) -> None:
    email = "new.user@initech.test"
    password = f"Browser-{secrets.token_urlsafe(12)}"
    with new_page(browser) as page:
        errors = watch_errors(page)
        sign_in_admin(page, demo, "/admin/tenants")

        page.fill("#tenant-id", "initech")
        page.fill("#tenant-name", "Initech")
        page.press("#tenant-name", "Enter")
        expect(page.locator(NOTICE)).to_have_text("Tenant created.")
        row = page.locator("table.data tbody tr", has=page.locator("code", has_text="initech"))
        expect(row).to_contain_text("Initech")
        page.screenshot(path=artifacts / "admin-onboard-1-tenant.png", full_page=True)

        # A tenant without sub-tenants shows its "Add a sub-tenant" form open.
        expect(page.locator("#sub-id-initech")).to_be_visible()
        page.fill("#sub-id-initech", "hq")
        page.fill("#sub-name-initech", "Headquarters")
        page.press("#sub-name-initech", "Enter")
        expect(page.locator(NOTICE)).to_have_text("Sub-tenant created.")
        expect(row.locator("ul.sub-tenants")).to_contain_text("Headquarters hq")
        page.screenshot(path=artifacts / "admin-onboard-2-sub-tenant.png", full_page=True)

        page.get_by_role("link", name="Users", exact=True).click()
        expect(page.locator("h1")).to_have_text("Users")
        page.fill("#new-email", email)
        page.fill("#new-password", password)
        page.press("#new-password", "Enter")
        expect(page.locator(NOTICE)).to_have_text("The user was created.")
        expect(page.locator("table.data tbody")).to_contain_text(email)
        page.screenshot(path=artifacts / "admin-onboard-3-user.png", full_page=True)

        page.get_by_role("link", name="Mappings", exact=True).click()
        expect(page.locator("h1")).to_have_text("Mappings")
        page.fill("#add-email", email)
        page.fill("#add-tenant", "initech")
        page.fill("#add-sub-tenant", "hq")
        page.get_by_role("button", name="Add mapping").click()
        expect(page.locator(NOTICE)).to_have_text("Mapping added.")
        rows = page.locator("table.data tbody tr")
        expect(rows).to_have_count(1)  # the list is filtered to the user just mapped
        expect(rows.locator("td")).to_have_text([email, "initech", "hq", "Remove"])
        page.screenshot(path=artifacts / "admin-onboard-4-mapping.png", full_page=True)
        assert errors == []

    with new_page(browser) as user_page:
        user_page.goto(f"{demo.url}/login")
        sign_in(user_page, email, password)
        frame = user_page.frame_locator("iframe.dashboard")
        expect(frame.locator("h1")).to_have_text("Insights for tenant initech / sub-tenant hq")
        user_page.screenshot(path=artifacts / "admin-onboard-5-user-dashboard.png", full_page=True)


def test_partner_credentials_shown_once_regenerated_and_revoked(
    browser: Browser, demo: Demo, artifacts: Path
) -> None:
    with new_page(browser) as page:
        errors = watch_errors(page)
        sign_in_admin(page, demo, "/admin/partner-api")

        empty = page.locator("section.empty-state")
        expect(empty.get_by_role("heading", name="No credentials yet")).to_be_visible()
        expect(empty.get_by_role("link", name="Create credentials")).to_be_visible()
        expect(page.locator("a.back")).to_have_attribute("href", "/admin/")
        expect(page.get_by_role("link", name="API documentation")).to_have_attribute(
            "href", "/api/docs"
        )
        page.screenshot(path=artifacts / "admin-partner-1-empty.png", full_page=True)

        empty.get_by_role("link", name="Create credentials").click()
        expect(page).to_have_url(f"{demo.url}/admin/partner-api/new")
        page.fill("#name", "Partner portal")
        page.fill("#allowed_origins", PARTNER_ORIGIN)
        page.check("input[name=pair][value='acme/north']")
        page.screenshot(path=artifacts / "admin-partner-2-new.png", full_page=True)
        page.get_by_role("button", name="Create credentials").click()

        expect(page.locator("h1")).to_have_text("Credentials created")
        client_id = page.locator("#client-id").inner_text().strip()
        secret = page.locator("#client-secret").inner_text().strip()
        assert client_id and secret and client_id != secret
        page.screenshot(path=artifacts / "admin-partner-3-secret.png", full_page=True)

        # Loaded again, the list and the app's page name the client id, never the secret.
        page.goto(f"{demo.url}/admin/partner-api")
        expect(page.locator("h1")).to_have_text("Partner API")
        assert secret not in page.content()
        row = page.locator("table.data tbody tr", has_text="Partner portal")
        expect(row.locator("code")).to_have_text(client_id)
        expect(row.locator(".badge")).to_have_text("Active")
        page.screenshot(path=artifacts / "admin-partner-4-list.png", full_page=True)
        row.get_by_role("link", name="Manage").click()
        expect(page.locator("h1")).to_have_text("Partner portal")
        expect(page.locator("#client-id")).to_have_text(client_id)
        expect(page.locator("#allowed_origins")).to_have_value(PARTNER_ORIGIN)
        assert secret not in page.content()
        page.screenshot(path=artifacts / "admin-partner-5-app.png", full_page=True)

        page.get_by_role("button", name="Regenerate secret").click()
        expect(page.locator("h1")).to_have_text("Regenerate the client secret")
        page.screenshot(path=artifacts / "admin-partner-6-confirm-regenerate.png", full_page=True)
        page.get_by_role("button", name="Regenerate secret").click()
        expect(page.locator("h1")).to_have_text("New client secret")
        expect(page.locator("#client-id")).to_have_text(client_id)
        new_secret = page.locator("#client-secret").inner_text().strip()
        assert new_secret and new_secret != secret
        page.screenshot(path=artifacts / "admin-partner-7-new-secret.png", full_page=True)

        page.goto(f"{demo.url}/admin/partner-api")
        content = page.content()
        assert secret not in content and new_secret not in content
        row.get_by_role("button", name="Revoke").click()
        expect(page.locator("h1")).to_have_text("Revoke the credentials")
        page.screenshot(path=artifacts / "admin-partner-8-confirm-revoke.png", full_page=True)
        page.get_by_role("button", name="Revoke").click()
        expect(page).to_have_url(f"{demo.url}/admin/partner-api?done=revoked")
        expect(page.locator(NOTICE)).to_contain_text("The credentials were revoked")
        expect(row.locator(".badge")).to_have_text("Revoked")
        expect(row.get_by_role("button")).to_have_count(0)
        page.screenshot(path=artifacts / "admin-partner-9-revoked.png", full_page=True)
        assert errors == []


def upload_csv(page: Page, text: str) -> None:
    """Choose ``text`` as the CSV file of the mappings page and ask for the preview."""
    page.set_input_files(
        "#csv-file", {"name": "m.csv", "mimeType": "text/csv", "buffer": text.encode()}
    )
    page.get_by_role("button", name="Preview import").click()


def mapping_rows(page: Page) -> list[str]:
    cells = page.locator("table.data tbody tr").evaluate_all(
        "rows => rows.map(row => [...row.querySelectorAll('td')].slice(0, 3)"
        ".map(cell => cell.textContent.trim()).join(' '))"
    )
    return sorted(str(row) for row in cells)


def test_csv_import_previews_then_applies(browser: Browser, demo: Demo, artifacts: Path) -> None:
    viewer = account(demo, "viewer@demo.test")
    analyst = account(demo, "analyst@demo.test")
    listing = f"{demo.url}/admin/mappings?email={viewer.email}"
    with new_page(browser) as page:
        errors = watch_errors(page)
        sign_in_admin(page, demo, "/admin/mappings")
        page.goto(listing)
        before = mapping_rows(page)
        assert before == [f"{viewer.email} globex apac"]

        page.goto(f"{demo.url}/admin/mappings")
        upload_csv(
            page,
            "email,tenant_id,sub_tenant_id\n"
            f"{viewer.email},acme,north\n"
            f"{viewer.email},acme,south\n"
            f"{analyst.email},acme,north\n",
        )
        expect(page.locator("h1")).to_contain_text("Import preview")
        stats = page.locator(".cards .stat")
        expect(stats).to_have_text(["2 to add", "0 to remove", "1 unchanged", "0 error(s)"])
        apply = page.get_by_role("button", name="Apply")
        expect(apply).to_be_visible()
        page.screenshot(path=artifacts / "admin-import-1-preview.png", full_page=True)

        # Nothing is applied by the preview: the list, seen from another tab, is unchanged.
        other = page.context.new_page()
        other.goto(listing)
        expect(other.locator("h1")).to_have_text("Mappings")
        assert mapping_rows(other) == before
        other.close()

        apply.click()
        expect(page).to_have_url(f"{demo.url}/admin/mappings?done=imported")
        expect(page.locator(NOTICE)).to_contain_text("The import was applied.")
        page.goto(listing)
        expect(page.locator("table.data tbody tr")).to_have_count(3)
        assert mapping_rows(page) == sorted(
            [
                f"{viewer.email} acme north",
                f"{viewer.email} acme south",
                f"{viewer.email} globex apac",
            ]
        )
        page.screenshot(path=artifacts / "admin-import-2-applied.png", full_page=True)

        page.goto(f"{demo.url}/admin/mappings")
        upload_csv(
            page,
            "email,tenant_id,sub_tenant_id\n"
            f"{viewer.email},globex,emea\n"
            "nobody@demo.test,acme,north\n",
        )
        expect(page.locator("h1")).to_contain_text("Import preview")
        expect(page.locator(".cards .stat").last).to_have_text("1 error(s)")
        error_rows = page.locator("section[aria-labelledby=errors] tbody tr")
        expect(error_rows).to_have_count(1)
        expect(error_rows.locator("td")).to_have_text(["3", "no user nobody@demo.test"])
        expect(page.get_by_role("button", name="Apply")).to_have_count(0)
        page.screenshot(path=artifacts / "admin-import-3-error.png", full_page=True)
        # Chromium logs the refused preview's own 422; nothing else may show.
        refused = "status of 422 (Unprocessable Entity) (" + demo.url + "/admin/mappings/import)"
        assert [error for error in errors if not error.endswith(refused)] == []
        assert len(errors) == 1


@pytest.mark.parametrize(("name", "path", "title"), PAGES, ids=[name for name, *_ in PAGES])
def test_every_page_renders_without_errors(
    browser: Browser, shared_demo: Demo, artifacts: Path, name: str, path: str, title: str
) -> None:
    with new_page(browser) as page:
        errors = watch_errors(page)
        sign_in_admin(page, shared_demo, "/admin/")
        page.goto(shared_demo.url + path)
        expect(page.locator("h1").first).to_have_text(title)
        page.wait_for_load_state("load")
        page.screenshot(path=artifacts / f"admin-{name}.png", full_page=True)
        assert errors == []


def test_console_errors_catch_csp_violations(browser: Browser, shared_demo: Demo) -> None:
    """The page tour's check is not vacuous: an inline style is blocked and reported."""
    with new_page(browser) as page:
        errors = watch_errors(page)
        sign_in_admin(page, shared_demo, "/admin/users")
        with page.expect_console_message(lambda message: message.type == "error"):
            page.evaluate("document.body.insertAdjacentHTML('beforeend', '<p style=\"x\">x</p>')")
        assert any("Content Security Policy" in error for error in errors)


def test_keyboard_reaches_search_and_create_form(browser: Browser, shared_demo: Demo) -> None:
    with new_page(browser) as page:
        sign_in_admin(page, shared_demo, "/admin/users")
        expect(page.locator("h1")).to_have_text("Users")
        reached: list[str] = []
        for _ in range(60):
            page.keyboard.press("Tab")
            focused = str(page.evaluate("document.activeElement.id"))
            if focused:
                reached.append(focused)
            if focused == "q":
                outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
                assert outline not in ("", "none")
            if focused == "new-password":
                break
        assert "q" in reached
        order = [id_ for id_ in reached if id_ in ("q", "new-email", "new-password")]
        assert order == ["q", "new-email", "new-password"]
