"""The launch page in a real browser (Debian's Chromium driven by Playwright): a person
signs in with a wallet, fills the form, clicks Launch, watches the steps stream in, sees the
token go live with their wallet as its creator, and signs out. The page runs under its
strict Content-Security-Policy: any script it refused would show as a console error."""

from __future__ import annotations

import os
import shutil

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from tests.conftest import CI
from tests.support.server import serve, stop

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DEV_BADGE = "development wallet — local networks only"


@pytest.fixture
def browser():
    if not os.path.exists(CHROMIUM):
        if CI:
            pytest.fail("chromium is required under CI=true (.ci/run installs it)")
        pytest.skip("chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            yield b
        finally:
            b.close()


def _page(browser):
    """A fresh page and what went wrong in it: console errors (a CSP refusal is one),
    uncaught exceptions and files of the page that did not load. API answers the test
    provokes (401, 422) are not among them."""
    page = browser.new_context().new_page()
    errors: list[str] = []
    page.on(
        "console",
        lambda m: (
            errors.append(m.text) if m.type == "error" and not m.text.startswith("Failed to load resource") else None
        ),
    )
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on(
        "response",
        lambda r: (
            errors.append(f"{r.status} {r.url}")
            if r.status >= 400 and "/v1/" not in r.url and not r.url.endswith("/favicon.ico")
            else None
        ),
    )
    return page, errors


def _session_token(page) -> str:
    return page.evaluate("JSON.parse(sessionStorage.getItem('tokenforge.session.v1')).token")


def _launch(page, name: str, symbol: str, supply: str = "5000") -> None:
    page.fill("input[name=name]", name)
    page.fill("input[name=symbol]", symbol)
    page.fill("input[name=supply]", supply)
    page.click("#submit")


def test_a_person_signs_in_with_the_development_wallet_launches_and_signs_out(tmp_path, browser):
    proc, base = serve(tmp_path / "data", "solana", None)
    try:
        page, errors = _page(browser)
        page.goto(base + "/")
        # on the embedded default the development wallet is offered, clearly labelled
        page.wait_for_selector("#dev-wallet:not([hidden])", timeout=10_000)
        assert DEV_BADGE in page.inner_text("#dev-wallet")
        assert page.locator("#chain option").all_inner_texts() == ["Solana"]  # the chains this server runs

        # without signing in, a launch is refused and the page says to sign in
        _launch(page, "Anon Coin", "ANON")
        page.wait_for_selector("#message.error", timeout=10_000)
        assert page.inner_text("#message").startswith("Sign in first")

        page.click("#signin-dev")
        page.wait_for_selector("#signed-in:not([hidden])", timeout=15_000)
        wallet = page.inner_text("#wallet")
        assert 32 <= len(wallet) <= 44 and not wallet.startswith("0x")
        assert page.inner_text("#wallet-kind") == DEV_BADGE
        assert page.input_value("#creator") == wallet  # the supply goes to the signed-in wallet

        _launch(page, "Page Coin", "PAGE")
        page.wait_for_selector("#message.ok", timeout=30_000)
        steps = page.locator("#steps li").all_inner_texts()
        assert [s.split(" — ")[0] for s in steps] == ["queued", "submitting", "submitted", "confirmed"]
        assert page.inner_text("#message").startswith("Live at ")
        row = page.locator("#tokens tr", has_text="PAGE")
        assert "live" in row.inner_text()
        assert row.locator("code.creator").inner_text() == wallet
        token = httpx.get(f"{base}/v1/tokens", params={"creator": wallet}).json()["items"]
        assert [t["symbol"] for t in token] == ["PAGE"]

        # bad input is explained next to the form, naming the field, and nothing launches
        page.evaluate("document.querySelector('input[name=symbol]').removeAttribute('pattern')")
        _launch(page, "Page Coin", "ok")  # refused by the API (the browser check is removed)
        page.wait_for_selector("#message.error", timeout=10_000)
        assert "symbol" in page.inner_text("#message")

        # the same development wallet comes back after a reload (kept in this browser)
        token_before = _session_token(page)
        page.reload()
        page.wait_for_selector("#signed-in:not([hidden])", timeout=10_000)
        assert page.inner_text("#wallet") == wallet

        page.click("#signout")
        page.wait_for_selector("#signed-out:not([hidden])", timeout=10_000)
        assert page.input_value("#creator") == ""
        whoami = httpx.get(f"{base}/v1/auth/session", headers={"Authorization": f"Bearer {token_before}"})
        assert whoami.status_code == 401  # the session was revoked on the server, not only forgotten here
        assert whoami.json()["type"] == "/problems/credential-revoked"

        page.click("#signin-dev")
        page.wait_for_selector("#signed-in:not([hidden])", timeout=15_000)
        assert page.inner_text("#wallet") == wallet
        assert errors == [], errors
    finally:
        stop(proc)


def test_a_browser_wallet_signs_in_over_eip1193_and_launches_for_its_address(tmp_path, browser):
    """An injected EIP-1193 provider whose personal_sign is eth-account's: the page asks for
    the account, has the wallet sign the EIP-4361 message, and launches for that address."""
    account = Account.create()
    signed: list[str] = []

    def wallet_request(method: str, params: list) -> object:
        if method == "eth_requestAccounts":
            return [account.address.lower()]  # as many wallets answer: no checksum
        if method == "personal_sign":
            message = bytes.fromhex(params[0][2:]).decode("utf-8")
            assert params[1] == account.address
            signed.append(message)
            return account.sign_message(encode_defunct(text=message)).signature.to_0x_hex()
        raise ValueError(f"unsupported {method}")

    proc, base = serve(tmp_path / "data", "ethereum", None)
    try:
        page, errors = _page(browser)
        page.expose_function("walletRequest", wallet_request)
        page.add_init_script(
            "window.ethereum = {request: ({method, params}) => window.walletRequest(method, params || [])};"
        )
        page.goto(base + "/")
        page.wait_for_selector("#signin-evm:not([hidden])", timeout=10_000)
        assert page.is_hidden("#no-wallet")
        page.click("#signin-evm")
        page.wait_for_selector("#signed-in:not([hidden])", timeout=15_000)
        assert page.inner_text("#wallet") == account.address
        assert page.inner_text("#wallet-kind") == "EVM · creator"
        [message] = signed
        host = base.removeprefix("http://")
        assert message.startswith(f"{host} wants you to sign in with your Ethereum account:\n{account.address}\n")
        assert "\nChain ID: 1337\n" in message  # the embedded chain's id, as /v1/auth/nonce named it

        _launch(page, "Wallet Coin", "WALL", supply="7")
        page.wait_for_selector("#message.ok", timeout=60_000)
        row = page.locator("#tokens tr", has_text="WALL")
        assert row.locator("code.creator").inner_text() == account.address

        # the development wallet signs EIP-4361 with its own secp256k1 key, made in the browser
        page.click("#signout")
        page.wait_for_selector("#signed-out:not([hidden])", timeout=10_000)
        page.click("#signin-dev")
        page.wait_for_selector("#signed-in:not([hidden])", timeout=15_000)
        dev = page.inner_text("#wallet")
        assert dev != account.address
        assert dev.startswith("0x") and dev != dev.lower()  # EIP-55 checksummed
        whoami = httpx.get(f"{base}/v1/auth/session", headers={"Authorization": f"Bearer {_session_token(page)}"})
        assert whoami.json()["wallet"] == dev and whoami.json()["family"] == "evm"
        assert errors == [], errors
    finally:
        stop(proc)
