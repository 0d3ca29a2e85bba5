"""A real browser for tests: Debian's Chromium driven by selenium, offline, with every wait
bounded. Nothing here downloads a browser or a driver: both must be installed (``chromium``
and ``chromium-driver``), and tests skip, saying so, only when they are not."""

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from tests.process_tests import require_live

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
NOT_INSTALLED = (
    None
    if CHROMIUM and CHROMEDRIVER
    else "browser tests need Chromium and its driver (apt-get install chromium chromium-driver)"
)
# Seconds any one step may take: a page load, an element showing up, a response arriving.
WAIT_SECONDS = 20
# Offline and quiet: no updates, sync, first-run pages or background requests to the internet.
CHROMIUM_ARGUMENTS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1400,1000",
)


def start_chromium(profile: Path) -> WebDriver:
    """Headless Chromium with a profile of its own in ``profile``. The driver's path is given,
    so selenium never runs Selenium Manager (which would try to download one)."""
    require_live("Chromium")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in CHROMIUM_ARGUMENTS:
        options.add_argument(argument)
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(WAIT_SECONDS)
    driver.set_script_timeout(WAIT_SECONDS)
    return driver


def wait(driver: WebDriver) -> WebDriverWait:
    return WebDriverWait(driver, WAIT_SECONDS)


def shown(driver: WebDriver, selector: str) -> WebElement:
    """The element, once it is visible."""
    return wait(driver).until(
        EC.visibility_of_element_located((By.CSS_SELECTOR, selector)), f"no {selector!r}"
    )


def click(driver: WebDriver, selector: str) -> None:
    """Click the element once it is clickable, scrolled to the middle of the window first
    so that no sticky header sits over it."""
    element = wait(driver).until(
        EC.element_to_be_clickable((By.CSS_SELECTOR, selector)), f"{selector!r} not clickable"
    )
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()


def replace_text(element: WebElement, text: str) -> None:
    """Type ``text`` over whatever the field holds, with key strokes, so the page's scripts
    (React's, in Swagger UI) see the change as they would a person's."""
    element.send_keys(Keys.CONTROL, "a")
    element.send_keys(Keys.DELETE)
    element.send_keys(text)


def paste_text(driver: WebDriver, element: WebElement, text: str) -> None:
    """Put ``text`` in the field at once, as a paste would, with the one ``input`` event that
    React listens to. (Typed key by key, 200 characters take Swagger UI 20 seconds: it renders
    the page again after each key.)"""
    driver.execute_script(
        "const [field, text] = arguments;"
        "const prototype = Object.getPrototypeOf(field);"
        "Object.getOwnPropertyDescriptor(prototype, 'value').set.call(field, text);"
        "field.dispatchEvent(new Event('input', {bubbles: true}));",
        element,
        text,
    )


def until(driver: WebDriver, condition: Callable[[], Any], message: str) -> Any:
    """``condition()``'s first truthy value, trying again until the wait runs out."""
    return wait(driver).until(lambda _: condition(), message)


def reset(driver: WebDriver, base_url: str) -> None:
    """Forget the previous test: no cookies, nothing in the origin's storage (Swagger UI keeps
    its authorization there)."""
    driver.get(f"{base_url}/healthz")
    driver.delete_all_cookies()
    driver.execute_script("window.localStorage.clear(); window.sessionStorage.clear();")


def admin_login(driver: WebDriver, base_url: str, username: str, password: str) -> None:
    """Sign in with the admin's login form, as an operator would."""
    driver.get(f"{base_url}/admin/login/?next=/admin/")
    shown(driver, "#id_username").send_keys(username)
    driver.find_element(By.ID, "id_password").send_keys(password)
    click(driver, "#login-form [type=submit]")
    wait(driver).until(EC.url_to_be(f"{base_url}/admin/"), "the login was refused")
    shown(driver, "#user-tools")


def session_of(driver: WebDriver) -> requests.Session:
    """A requests session that carries the browser's cookies (its admin login)."""
    session = requests.Session()
    for cookie in driver.get_cookies():
        session.cookies.set(cookie["name"], cookie["value"], path=cookie.get("path", "/"))
    return session


def save_evidence(driver: WebDriver, folder: Path) -> list[Path]:
    """A screenshot and the page's HTML, to see what the browser saw when a test failed."""
    screenshot, page = folder / "failure.png", folder / "failure.html"
    driver.save_screenshot(str(screenshot))
    page.write_text(driver.page_source)
    return [screenshot, page]
