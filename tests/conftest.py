"""Fixtures: a fresh PostgreSQL database per run, real Redis and RabbitMQ, a real SMTP server,
and headless Chromium for the pages the server serves (`browser`, `page`, `screenshot`).

Every test gets its own namespace (Redis keys, RabbitMQ queues, bus channels), so
rate limits and queues never leak between tests; the run's database is dropped at
the end. Service addresses come from HOTSPOT_TEST_* variables with local defaults.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import pytest
import redis
import socketio
from aiohttp import web
from aiohttp.test_utils import TestClient
from aiosmtpd.controller import Controller
from playwright.async_api import Browser, BrowserContext, Page, async_playwright
from playwright.async_api import Error as PlaywrightError

from config import Settings
from jobs import analytics as analytics_jobs
from jobs import campaigns as campaign_jobs
from jobs import media as media_jobs
from jobs import notifications as notification_jobs
from jobs import outreach as outreach_jobs
from jobs import persistence as persistence_jobs
from jobs import slides as slide_jobs
from server.app import create_app
from tests.browser_helpers import (
    TIMEOUT_MS,
    VIEWPORT,
    Screenshots,
    chromium_problem,
    launch_options,
    safe_name,
)

ADMIN_DSN = os.environ.get("HOTSPOT_TEST_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("HOTSPOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("HOTSPOT_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
JWT_SECRET = "test-secret-" + "x" * 40
# The browser tests' Chromium (scripts/ensure-browser.sh installs Debian's), and where their
# screenshots are kept: <folder>/<test module>/<test name>/NN-<name>.png, default ./var/screenshots.
CHROMIUM = os.environ.get("HOTSPOT_TEST_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(os.environ.get("HOTSPOT_TEST_SCREENSHOTS", "")
                   or Path(__file__).resolve().parent.parent / "var" / "screenshots")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A database made for this test run, dropped afterwards."""
    name = f"hotspot_test_{secrets.token_hex(4)}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(ADMIN_DSN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    base = ADMIN_DSN.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@dataclass
class MailSink:
    """What the test SMTP server received."""

    messages: list[Message] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = message_from_bytes(envelope.original_content or envelope.content)
        with self.lock:
            self.messages.append(msg)
        return "250 OK"

    async def wait_for(self, to: str, subject_part: str = "", timeout: float = 10.0) -> Message:
        """The first message to `to` whose subject contains subject_part."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for msg in self.messages:
                    if msg["To"] == to and subject_part in (msg["Subject"] or ""):
                        return msg
            await asyncio.sleep(0.05)
        raise AssertionError(f"no mail to {to} with {subject_part!r} within {timeout}s")

    def to(self, address: str) -> list[Message]:
        with self.lock:
            return [m for m in self.messages if m["To"] == address]


def mail_text(msg: Message) -> str:
    for part in msg.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode()
    raise AssertionError("no text part")


def token_from_mail(msg: Message) -> str:
    for line in mail_text(msg).splitlines():
        if "token in the app:" in line:
            return line.rsplit(":", 1)[1].strip()
    raise AssertionError("no token in mail")


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[tuple[MailSink, int]]:
    sink = MailSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    yield sink, port
    controller.stop()


# Every queue the job contracts declare (a missing one leaked its queues on every run).
JOB_QUEUES = (analytics_jobs.QUEUE, campaign_jobs.QUEUE, media_jobs.QUEUE,
              notification_jobs.QUEUE, outreach_jobs.QUEUE, persistence_jobs.QUEUE,
              slide_jobs.QUEUE)


@pytest.fixture(scope="session")
def namespaces() -> Iterator[list[str]]:
    """Every namespace the run used, so its queues and keys are removed at the end."""
    used: list[str] = []
    yield used

    async def drop_queues() -> None:
        connection = await aio_pika.connect(AMQP_URL)
        async with connection:
            channel = await connection.channel()
            suffixes = ["", ".dead", *(f".retry.{n}" for n in range(1, 12))]
            for ns in used:
                for queue in JOB_QUEUES:
                    for suffix in suffixes:
                        try:
                            await channel.queue_delete(f"{ns}.{queue}{suffix}")
                        except aio_pika.exceptions.ChannelClosed:
                            channel = await connection.channel()

    asyncio.run(drop_queues())
    client = redis.Redis.from_url(REDIS_URL)
    for ns in used:
        keys = list(client.scan_iter(match=f"{ns}:*", count=1000))
        if keys:
            client.delete(*keys)
    client.close()


@pytest.fixture
def mail(smtp_server: tuple[MailSink, int]) -> MailSink:
    return smtp_server[0]


@pytest.fixture
def settings(
    database_url: str, smtp_server: tuple[MailSink, int], namespaces: list[str], tmp_path: Path
) -> Settings:
    namespace = f"t{secrets.token_hex(5)}"
    namespaces.append(namespace)
    return Settings(
        env="dev",
        database_url=database_url,
        database_pool_min=1,
        database_pool_max=5,
        redis_url=REDIS_URL,
        amqp_url=AMQP_URL,
        inprocess_workers=True,
        namespace=namespace,
        jwt_secret=JWT_SECRET,
        smtp_url=f"smtp://127.0.0.1:{smtp_server[1]}",
        data_dir=tmp_path / "var",
        argon2_time_cost=1,
        argon2_memory_kib=1024,
        argon2_parallelism=1,
        log_format="text",
    )


def process_env(settings: Settings, **extra: str) -> dict[str, str]:
    """Environment for a real `hotspot` process using this test's services and namespace."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTSPOT_")}
    env.update({
        "HOTSPOT_DATABASE_URL": settings.database_url or "",
        "HOTSPOT_REDIS_URL": settings.redis_url or "",
        "HOTSPOT_AMQP_URL": settings.amqp_url or "",
        "HOTSPOT_NAMESPACE": settings.namespace,
        "HOTSPOT_JWT_SECRET": settings.jwt_secret or "",
        "HOTSPOT_SMTP_URL": settings.smtp_url or "",
        "HOTSPOT_DATA_DIR": str(settings.data_dir),
        "HOTSPOT_ARGON2_TIME_COST": "1",
        "HOTSPOT_ARGON2_MEMORY_KIB": "1024",
        "HOTSPOT_ARGON2_PARALLELISM": "1",
        # Several servers run at once (tests, other runs): none takes the fixed metrics port.
        "HOTSPOT_METRICS_PORT": "0",
        **extra,
    })
    return env


AppFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def make_client(aiohttp_client: Any, settings: Settings) -> AppFactory:
    """Start an app (settings overridable) behind a real TCP port; returns its test client."""

    async def make(**overrides: Any) -> TestClient[Any, Any]:
        app: web.Application = create_app(settings.model_copy(update=overrides))
        return await aiohttp_client(app)  # type: ignore[no-any-return]

    return make


@pytest.fixture
async def client(make_client: AppFactory) -> TestClient[Any, Any]:
    return await make_client()


def unique_name(prefix: str = "u") -> str:
    return f"{prefix}{secrets.token_hex(5)}"


@dataclass
class Account:
    id: str
    username: str
    email: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


async def signup(client: TestClient[Any, Any], **fields: Any) -> Account:
    username = fields.pop("username", unique_name())
    body = {"username": username, "email": f"{username}@example.com",
            "password": "correct horse battery", **fields}
    resp = await client.post("/v1/auth/signup", json=body)
    assert resp.status == 201, await resp.text()
    data = await resp.json()
    return Account(id=data["user"]["id"], username=data["user"]["username"], email=body["email"],
                   password=body["password"], access_token=data["access_token"],
                   refresh_token=data["refresh_token"])


@pytest.fixture
async def account(client: TestClient[Any, Any]) -> Account:
    return await signup(client)


SocketFactory = Callable[..., Awaitable[socketio.AsyncClient]]


@pytest.fixture
async def connect_socket(client: TestClient[Any, Any]) -> AsyncIterator[SocketFactory]:
    """Open python-socketio clients against the test server; all are closed afterwards."""
    opened: list[socketio.AsyncClient] = []

    async def connect(token: str | None = None, target: TestClient[Any, Any] | None = None,
                      **kwargs: Any) -> socketio.AsyncClient:
        sio = socketio.AsyncClient(reconnection=False)
        url = str((target or client).make_url("/"))
        auth = {"token": token} if token is not None else None
        opened.append(sio)
        await sio.connect(url, auth=auth, transports=["websocket"], wait_timeout=5, **kwargs)
        return sio

    yield connect
    for sio in opened:
        if sio.connected:
            await sio.disconnect()


# Browser tests. Playwright's objects belong to the event loop that started them, and
# every test (with its app, client and socket fixtures) runs on a loop of its own, so
# Playwright and Chromium are started per test, not per session: about 1.3 s a test,
# mostly the Playwright driver's start. The browser is closed when the test ends.


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[
        None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the test item, so fixtures can tell a failed test."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Headless Chromium (Debian's /usr/bin/chromium); fails the test if it cannot start."""
    problem = chromium_problem(CHROMIUM)
    if problem is not None:
        pytest.fail(problem, pytrace=False)
    async with async_playwright() as playwright:
        try:
            chromium = await playwright.chromium.launch(**launch_options(CHROMIUM))
        except PlaywrightError as exc:
            pytest.fail(f"Chromium ({CHROMIUM}) did not start headless; try `{CHROMIUM} --headless "
                        f"--no-sandbox --dump-dom about:blank` to see why. {exc}", pytrace=False)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
def screenshot(request: pytest.FixtureRequest) -> Screenshots:
    """`await screenshot(page, name)` saves var/screenshots/<module>/<test>/NN-<name>.png."""
    return Screenshots(SCREENSHOTS / safe_name(request.node.path.stem) / safe_name(request.node.name))


PageFactory = Callable[..., Awaitable[Page]]


@pytest.fixture
async def new_page(
    browser: Browser, screenshot: Screenshots, request: pytest.FixtureRequest
) -> AsyncIterator[PageFactory]:
    """Open a page in a fresh browser context (its own cookies and storage) per call.

    Keyword arguments go to `browser.new_context` (e.g. locale, viewport). When the test
    fails, every open page is saved as a `failure` screenshot before its context closes.
    """
    contexts: list[BrowserContext] = []

    async def make(**context_options: Any) -> Page:
        context = await browser.new_context(**{"viewport": VIEWPORT, **context_options})
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return await context.new_page()

    yield make
    report = getattr(request.node, "report_call", None)
    for context in contexts:
        if report is not None and report.failed:
            for open_page in context.pages:
                try:
                    await screenshot(open_page, "failure")
                except PlaywrightError:
                    pass  # a crashed or closed page: the test's own error says enough
        await context.close()


@pytest.fixture
async def page(new_page: PageFactory) -> Page:
    """One page in a fresh browser context."""
    return await new_page()
