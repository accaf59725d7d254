"""Shared fixtures: one migrated database and one app per test session, on SQLite or PostgreSQL.

`pytest --db=postgresql` (or GATEWAY_TEST_DB=postgresql) runs the suite on a fresh PostgreSQL
database created for the session (and dropped after). Under CI=true an unreachable PostgreSQL
fails the run; locally it skips that leg with a message.
"""

from __future__ import annotations

import io
import logging
import os
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.domain.clock import OffsetClock
from gateway.settings import Settings, load_settings

ADMIN_POSTGRES_URL = os.environ.get(
    "GATEWAY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db",
        choices=["sqlite", "postgresql"],
        default=os.environ.get("GATEWAY_TEST_DB", "sqlite"),
        help="database backend for the suite",
    )


def pytest_report_header(config: pytest.Config) -> str:
    return f"database backend: {config.getoption('--db')}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # An empty run must never look like a pass (pytest's exit code 5).
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--db") != "postgresql":
        skip = pytest.mark.skip(reason="needs PostgreSQL (run with --db=postgresql)")
        for item in items:
            if "postgres_only" in item.keywords:
                item.add_marker(skip)


def _postgres_database(worker: str) -> Iterator[str]:
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(ADMIN_POSTGRES_URL)
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        connection = psycopg.connect(conninfo, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL at {admin.host}:{admin.port} is unreachable: {exc}"
        if os.environ.get("CI"):
            pytest.exit(message + " (required under CI)", returncode=3)
        pytest.exit(message + "; skipping the PostgreSQL leg locally", returncode=0)
    name = f"wgt_{worker}_{uuid.uuid4().hex[:10]}"
    with connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    if request.config.getoption("--db") == "postgresql":
        yield from _postgres_database(worker)
    else:
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'gateway.db'}"


@pytest.fixture(scope="session")
def clock() -> OffsetClock:
    return OffsetClock()


@pytest.fixture
def restore_clock(clock: OffsetClock) -> Iterator[OffsetClock]:
    """For tests that move the session clock: it is put back afterwards (tokens and other
    tests judge time by the real clock too)."""
    before = clock.offset
    yield clock
    clock.offset = before


def make_settings(database_url: str, data_dir: Any, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": database_url,
        "data_dir": data_dir,
        "log_format": "json",
        "rate_limit_default": "10000/second",
        "run_workers_in_process": False,
        "idempotency_wait_seconds": 5.0,
        "step_up_thresholds": {"CNY": "5000.00"},
    }
    values.update(overrides)
    return load_settings(**values)


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(database_url, tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def core_simulator(clock: OffsetClock) -> Iterator[Any]:
    """ONE core-banking simulator per session, on a free loopback port, with an in-memory
    ledger and the session clock. Tests open their own accounts (`open_account()`) and inject
    faults (`inject()` / `with core_simulator.fault(...)`); faults are reset after each test."""
    from adapters.core_banking.simulator import CoreBankingSimulator

    simulator = CoreBankingSimulator(":memory:", clock=clock, validate_responses=True)
    server = simulator.serve("127.0.0.1", 0)
    yield simulator
    server.shutdown()
    simulator.ledger.close()


@pytest.fixture(autouse=True)
def _reset_core_simulator(request: pytest.FixtureRequest) -> Iterator[None]:
    simulator = (
        request.getfixturevalue("core_simulator")
        if "core_simulator" in request.fixturenames
        else None
    )
    yield
    if simulator is not None:
        simulator.reset_faults()


class EnvelopeRecorder:
    """A zeep plugin keeping what the adapter sent and received (after our own plugin ran)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any, dict[str, str]]] = []
        self.received: list[tuple[str, Any]] = []

    def egress(self, envelope: Any, http_headers: Any, operation: Any, binding_options: Any) -> Any:
        from copy import deepcopy

        self.sent.append((operation.name, deepcopy(envelope), dict(http_headers)))
        return envelope, http_headers

    def ingress(self, envelope: Any, http_headers: Any, operation: Any) -> Any:
        from copy import deepcopy

        self.received.append((operation.name, deepcopy(envelope)))
        return envelope, http_headers


def make_core_banking(simulator: Any, **options: Any) -> Any:
    """The real SOAP adapter pointed at the session simulator (over a loopback socket)."""
    from adapters.core_banking.soap import SoapCoreBanking

    values: dict[str, Any] = {
        "connect_timeout": 2.0,
        "timeout": 10.0,
        "retry_backoff": 0.01,
        "retry_backoff_max": 0.05,
        "source_system": "GATEWAY-TESTS",
    }
    values.update(options)
    return SoapCoreBanking(simulator.server.soap_url, **values)


@pytest.fixture(scope="session")
def core_banking(core_simulator: Any) -> Iterator[Any]:
    adapter = make_core_banking(core_simulator)
    yield adapter
    adapter.close()


class Bank:
    """Test-facing helpers over the session's core-banking simulator."""

    def __init__(self, simulator: Any) -> None:
        self.simulator = simulator

    def open_account(
        self,
        holder: str = "WANG Wei",
        currency: str = "CNY",
        *,
        mobile: str | None = "+8613800138000",
        status: str = "ACTIVE",
        balance: str = "10000.00",
        debit_allowed: bool = True,
        credit_allowed: bool = True,
        kind: str = "customer",
    ) -> str:
        return str(
            self.simulator.open_account(
                name=holder,
                currency=currency,
                balance=balance,
                mobile=mobile,
                status=status,
                debit_allowed=debit_allowed,
                credit_allowed=credit_allowed,
                kind=kind,
            )
        )

    def deposit(self, account: str, amount: str, description: str = "Cash deposit") -> None:
        from decimal import Decimal

        self.simulator.ledger.credit(account, Decimal(amount), description=description)

    def available(self, account: str) -> str:
        """The available balance as the core reports it, e.g. '9900.00'."""
        from gateway.domain.money import Money

        balance = self.simulator.balance(account)
        currency = self.simulator.ledger.get_account(account)["currency"]
        return Money.from_decimal(balance.available, currency).value

    def postings(self, reference: str) -> int:
        return int(self.simulator.posting_count(reference))


@pytest.fixture(scope="session")
def core(core_simulator: Any) -> Bank:
    return Bank(core_simulator)


# The GSMA Mobile Money sandbox's credentials in tests (the adapter is configured to match).
GSMA_API_KEY = "test-gsma-api-key"
GSMA_CALLBACK_KEY = "test-gsma-callback-key"
GSMA_CLEARING_ACCOUNT = "9100000000000201"  # the core simulator's seeded gsma_mm clearing account
GSMA_PROCESSING_SECONDS = 30.0


@pytest.fixture(scope="session")
def gsma_sandbox(clock: OffsetClock) -> Iterator[Any]:
    """ONE GSMA Mobile Money sandbox per session on a free loopback port, on the session clock.

    A disbursement completes GSMA_PROCESSING_SECONDS after it is sent (tests move the clock);
    callbacks are not sent by a background thread: tests deliver them when they choose
    (`gsma_sandbox.deliver_callbacks(sender)`). Faults are reset after each test."""
    from adapters.providers.gsma_mm_sandbox import GsmaMmSandbox

    sandbox = GsmaMmSandbox(
        clock=clock,
        api_key=GSMA_API_KEY,
        callback_api_key=GSMA_CALLBACK_KEY,
        processing_delay=GSMA_PROCESSING_SECONDS,
    )
    server = sandbox.serve("127.0.0.1", 0, deliver_callbacks=False)
    sandbox.server = server  # type: ignore[attr-defined]
    yield sandbox
    server.shutdown()


@pytest.fixture(autouse=True)
def _reset_gsma_sandbox(request: pytest.FixtureRequest) -> Iterator[None]:
    sandbox = (
        request.getfixturevalue("gsma_sandbox") if "gsma_sandbox" in request.fixturenames else None
    )
    yield
    if sandbox is not None:
        sandbox.reset_faults()


def gsma_settings(sandbox: Any, **overrides: Any) -> dict[str, Any]:
    """GATEWAY_GSMA_MM_* values pointing the adapter at the session sandbox (fast retries)."""
    values: dict[str, Any] = {
        "base_url": sandbox.server.base_url,
        "auth": "api_key",
        "api_key": GSMA_API_KEY,
        "callback_api_key": GSMA_CALLBACK_KEY,
        "clearing_account": {"KES": GSMA_CLEARING_ACCOUNT},
        "disbursement_account": "accountid:2999",
        "connect_timeout_seconds": 2.0,
        "read_timeout_seconds": 5.0,
        "retry_backoff_seconds": 0.01,
        "retry_backoff_max_seconds": 0.05,
    }
    values.update(overrides)
    return values


# The WeChat Pay and Alipay sandboxes in tests: the committed test keys (tests/fixtures/*/
# test-keys), the core simulator's seeded clearing accounts, and how long a transfer takes.
FIXTURES = Path(__file__).resolve().parent / "fixtures"
WECHATPAY_APIV3_KEY = "testAPIv3key0000wallet0gateway01"  # 32 bytes, tests only
WECHATPAY_CLEARING_ACCOUNT = "9100000000000202"
ALIPAY_CLEARING_ACCOUNT = "9100000000000203"
CN_PROCESSING_SECONDS = 30.0


def _copy_keys(source: Path, target: Path, names: dict[str, str]) -> Path:
    for name, destination in names.items():
        path = target / destination
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes((source / name).read_bytes())
    return target


@pytest.fixture(scope="session")
def wechatpay_sandbox(
    clock: OffsetClock, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """ONE WeChat Pay sandbox per session on a free loopback port, on the session clock.

    Transfers settle CN_PROCESSING_SECONDS after they are accepted (tests move the clock);
    notifications are sent when tests say so (`deliver_callbacks(sender)`)."""
    from adapters.providers.wechatpay_sandbox import WechatPaySandbox

    keys = _copy_keys(
        FIXTURES / "wechatpay" / "test-keys",
        tmp_path_factory.mktemp("wechatpay-sandbox"),
        {
            "merchant_private_key.pem": "merchant_private_key.pem",
            "wechatpay_public_key_private.pem": "sandbox/platform_private_key.pem",
        },
    )
    sandbox = WechatPaySandbox.from_files(
        keys_dir=keys,
        apiv3_key=WECHATPAY_APIV3_KEY.encode(),
        clock=clock,
        processing_delay=CN_PROCESSING_SECONDS,
    )
    server = sandbox.serve("127.0.0.1", 0, deliver_callbacks=False)
    sandbox.server = server  # type: ignore[attr-defined]
    sandbox.keys_dir = keys  # type: ignore[attr-defined]
    yield sandbox
    server.shutdown()


def wechatpay_settings(sandbox: Any, **overrides: Any) -> dict[str, Any]:
    """GATEWAY_WECHATPAY_* values pointing the adapter at the session sandbox."""
    values: dict[str, Any] = {
        "base_url": sandbox.server.base_url,
        "mchid": sandbox.mchid,
        "appid": sandbox.appid,
        "merchant_serial_no": sandbox.merchant_serial_no,
        "merchant_private_key_file": sandbox.keys_dir / "merchant_private_key.pem",
        "apiv3_key": WECHATPAY_APIV3_KEY,
        "platform_keys_dir": sandbox.keys_dir / "platform-keys",
        "clearing_account": {"CNY": WECHATPAY_CLEARING_ACCOUNT},
        "connect_timeout_seconds": 2.0,
        "read_timeout_seconds": 5.0,
        "retry_backoff_seconds": 0.01,
        "retry_backoff_max_seconds": 0.05,
    }
    values.update(overrides)
    return values


@pytest.fixture(scope="session")
def alipay_sandbox(clock: OffsetClock, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """ONE Alipay sandbox per session (like `wechatpay_sandbox`)."""
    from adapters.providers.alipay_sandbox import AlipaySandbox

    keys = _copy_keys(
        FIXTURES / "alipay" / "test-keys",
        tmp_path_factory.mktemp("alipay-sandbox"),
        {
            "app_private_key.pem": "app_private_key.pem",
            "alipay_private_key.pem": "sandbox/alipay_private_key.pem",
        },
    )
    sandbox = AlipaySandbox.from_files(
        keys_dir=keys, clock=clock, processing_delay=CN_PROCESSING_SECONDS
    )
    server = sandbox.serve("127.0.0.1", 0, deliver_callbacks=False)
    sandbox.server = server  # type: ignore[attr-defined]
    sandbox.keys_dir = keys  # type: ignore[attr-defined]
    yield sandbox
    server.shutdown()


def alipay_settings(sandbox: Any, **overrides: Any) -> dict[str, Any]:
    """GATEWAY_ALIPAY_* values pointing the adapter at the session sandbox."""
    values: dict[str, Any] = {
        "base_url": sandbox.server.base_url + "/gateway.do",
        "app_id": sandbox.app_id,
        "app_private_key_file": sandbox.keys_dir / "app_private_key.pem",
        "alipay_public_keys_dir": sandbox.keys_dir / "alipay-public-keys",
        "clearing_account": {"CNY": ALIPAY_CLEARING_ACCOUNT},
        "connect_timeout_seconds": 2.0,
        "read_timeout_seconds": 5.0,
        "retry_backoff_seconds": 0.01,
        "retry_backoff_max_seconds": 0.05,
    }
    values.update(overrides)
    return values


@pytest.fixture(autouse=True)
def _reset_cn_sandboxes(request: pytest.FixtureRequest) -> Iterator[None]:
    sandboxes = [
        request.getfixturevalue(name)
        for name in ("wechatpay_sandbox", "alipay_sandbox")
        if name in request.fixturenames
    ]
    yield
    for sandbox in sandboxes:
        sandbox.reset_faults()


@pytest.fixture(scope="session")
def container(
    settings: Settings,
    clock: OffsetClock,
    core_banking: Any,
    gsma_sandbox: Any,
    wechatpay_sandbox: Any,
    alipay_sandbox: Any,
) -> Iterator[Any]:
    from adapters.providers.registry import ProviderRegistry
    from gateway.container import build_container
    from gateway.store import migrate

    providers = ProviderRegistry.from_settings(
        settings,
        clock=clock,
        overrides={
            "gsma_mm": gsma_settings(gsma_sandbox),
            "wechatpay": wechatpay_settings(wechatpay_sandbox),
            "alipay": alipay_settings(alipay_sandbox),
        },
    )
    gateway = build_container(settings, clock=clock, core_banking=core_banking, providers=providers)
    migrate.upgrade(gateway.db.engine)
    yield gateway
    gateway.close()


@pytest.fixture(scope="session")
def app(container: Any) -> Any:
    from gateway.app import create_app

    return create_app(container=container, validate_responses=True)


@pytest.fixture(scope="session")
def client(app: Any) -> Iterator[Any]:
    with app.test_client() as test_client:
        yield test_client


@dataclass
class PartnerCredentials:
    id: str
    secret: str
    kind: str
    token: str
    scopes: list[str]
    tokens: Any = None

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def renew(self) -> PartnerCredentials:
        """A new token at the clock's current time (after a test moved time forward)."""
        issued = self.tokens.issue(
            partner_id=self.id, kind=self.kind, scopes=self.scopes, version=1
        )
        self.token = issued.access_token
        return self


@pytest.fixture(scope="session")
def make_partner(container: Any) -> Callable[..., PartnerCredentials]:
    """Create a partner and mint it a token through the token service (fast, no HTTP)."""

    def make(
        kind: str = "wallet", scopes: list[str] | None = None, **extra: Any
    ) -> PartnerCredentials:
        view, secret = container.partners.create(
            name=f"test {kind} {secrets.token_hex(3)}",
            kind=kind,
            scopes=scopes,
            actor="test",
            **extra,
        )
        issued = container.tokens.issue(
            partner_id=view["id"], kind=kind, scopes=view["scopes"], version=1
        )
        return PartnerCredentials(
            view["id"], secret, kind, issued.access_token, view["scopes"], container.tokens
        )

    return make


@pytest.fixture
def captured_logs() -> Iterator[Callable[[], str]]:
    """Everything logged during the test, rendered exactly as production renders it."""
    from gateway.observability.logging import build_formatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(build_formatter("json"))
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream.getvalue
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


@pytest.fixture
def funded(client: Any, container: Any, core: Any, make_partner: Any) -> Any:
    """`funded(balance=...)`: a wallet, its settlement account and an active link (flows.py)."""
    from tests.flows import make_funded

    return make_funded(client, container, core, make_partner)
