"""The /admin page in headless Chromium against a real server: sign in with a token,
see the users' roles (read from a loopback Keycloak admin API stand-in), change a setting,
see the new version saved and applied by the running process."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from cityos.app import create_app
from cityos.bootstrap import build_platform
from cityos.migrate import upgrade
from cityos_kernel.bus import MemoryBus
from cityos_kernel.settings import PlatformSettings
from cityos_support.layer import SupportLayer
from tests.fixtures.support import LoopbackIssuer
from tests.support.keycloak_standin import KeycloakStandIn, StandInUser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def keycloak_admin_api() -> Iterator[KeycloakStandIn]:
    standin = KeycloakStandIn()
    standin.users = [
        StandInUser("ana", ["platform-admin", "offline_access"], tenants=["*"]),
        StandInUser("directory-user", ["manager"], tenants=["citya"], federated=True),
    ]
    standin.start()
    try:
        yield standin
    finally:
        standin.stop()


@pytest.fixture
def served_platform(
    database_url: str,
    oidc_issuer: LoopbackIssuer,
    keycloak_admin_api: KeycloakStandIn,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[str]:
    monkeypatch.setenv("CITYOS_AUDIT_SIGNING_KEY", base64.b64encode(os.urandom(32)).decode())
    monkeypatch.setenv("CITYOS_KEYCLOAK_ADMIN_URL", keycloak_admin_api.url)
    monkeypatch.setenv("CITYOS_KEYCLOAK_ADMIN_PASSWORD", keycloak_admin_api.admin_password)
    upgrade(database_url, [SupportLayer()])
    settings = PlatformSettings(env="production", auth="keycloak", auth_issuer=oidc_issuer.url)
    platform = build_platform(
        settings, [SupportLayer()], database_url=database_url, bus=MemoryBus()
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(platform), host="127.0.0.1", port=port, log_config=None, lifespan="on"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the platform did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(20)


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("install Debian's chromium and chromium-driver (scripts/install-system-deps)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--window-size=1400,1000",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.mark.postgres
@pytest.mark.slow
def test_sign_in_change_a_setting_and_see_it_applied(
    served_platform: str, browser: webdriver.Chrome, oidc_issuer: LoopbackIssuer, tmp_path: Path
) -> None:
    token = oidc_issuer.token(roles=("platform-admin",), subject="admin-ana", tenants=("*",))
    wait = WebDriverWait(browser, 15)
    browser.get(f"{served_platform}/admin")
    browser.find_element(By.ID, "token").send_keys(token)
    browser.find_element(By.ID, "login").click()
    wait.until(expected_conditions.text_to_be_present_in_element((By.ID, "whoami"), "admin-ana"))

    # The users' roles summary, read from Keycloak's admin API.
    wait.until(expected_conditions.text_to_be_present_in_element((By.ID, "users"), "ana"))
    users = browser.find_element(By.ID, "users").text
    assert "ana platform-admin *" in users
    assert "directory-user manager citya federated" in users
    assert "offline_access" not in users

    retention = wait.until(
        expected_conditions.element_to_be_clickable(
            (By.CSS_SELECTOR, "button[data-key='retention']")
        )
    )
    assert "(v0)" in retention.text
    retention.click()
    wait.until(
        lambda driver: "history_days" in driver.find_element(By.ID, "editor").get_attribute("value")
    )
    editor = browser.find_element(By.ID, "editor")
    value = json.loads(editor.get_attribute("value") or "{}")
    value["history_days"] = 123
    editor.clear()
    editor.send_keys(json.dumps(value))
    browser.find_element(By.ID, "comment").send_keys("shorter history")
    browser.find_element(By.ID, "save").click()
    wait.until(
        expected_conditions.text_to_be_present_in_element((By.ID, "status"), "saved version 1")
    )

    # The history shows who changed it and why; the process applied the broadcast change.
    wait.until(
        expected_conditions.text_to_be_present_in_element((By.ID, "history"), "shorter history")
    )
    assert "admin-ana" in browser.find_element(By.ID, "history").text
    wait.until(expected_conditions.text_to_be_present_in_element((By.ID, "applied"), "retention 1"))
    browser.save_screenshot(os.environ.get("CITYOS_ADMIN_SCREENSHOT", str(tmp_path / "admin.png")))

    stored = httpx.get(
        f"{served_platform}/admin/api/config/retention",
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    assert (stored["version"], stored["value"]["history_days"]) == (1, 123)


@pytest.mark.postgres
@pytest.mark.slow
def test_a_token_without_the_role_is_turned_away(
    served_platform: str, browser: webdriver.Chrome, oidc_issuer: LoopbackIssuer
) -> None:
    browser.get(f"{served_platform}/admin")
    browser.find_element(By.ID, "token").send_keys(oidc_issuer.token(roles=("citizen",)))
    browser.find_element(By.ID, "login").click()
    WebDriverWait(browser, 15).until(
        expected_conditions.text_to_be_present_in_element((By.ID, "login-status"), "403")
    )
    assert not browser.find_element(By.ID, "app").is_displayed()
