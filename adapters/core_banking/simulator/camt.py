"""ISO 20022 messages from the simulator's ledger: camt.054 notifications and camt.053 statements.

What a bank's core sends its settlement counterpart: a notification of each booked entry
(camt.054, intraday) and, after each day, a statement per account (camt.053, with opening and
closing balances). Messages are written incrementally with `lxml.etree.xmlfile`, so a statement
of any number of entries is produced in bounded memory (as `Iterator[bytes]` parts).

End-to-end ids are the posting's ExternalReference (the gateway's `tr_`/`rf_`/`fee_` id); a
reversal carries the reversed posting's reference with `RvslInd` true. `AcctSvcrRef` is the
core's reference of the posting, `NtryRef` the entry's own id. Versions 001.02, 001.04 and
001.08 validate against the official schemas (tests check every one).

`CamtPusher` posts them to a gateway (`POST /core/v1/iso20022`) as a `core` partner.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from xml.sax.saxutils import escape

import requests
from lxml import etree
from lxml.builder import ElementMaker

from adapters.core_banking.simulator.ledger import Ledger, parse_stamp, to_decimal
from gateway.domain.clock import Clock, SystemClock
from gateway.domain.money import CURRENCY_EXPONENTS
from gateway.observability.logging import get_logger

log = get_logger("adapters.core_banking.simulator.camt")
VERSIONS = ("001.02", "001.04", "001.08")
RECONCILED_KINDS = ("settlement", "clearing", "fee")
_FLUSH_EVERY = 200  # elements per yielded part


@dataclass(frozen=True)
class CamtEntry:
    """One booked entry, as a camt `Ntry` reports it."""

    entry_id: int
    account: str
    amount: Decimal
    currency: str
    credit_debit: str  # CRDT | DBIT
    booking_date: date
    value_date: date
    core_reference: str
    reference: str | None  # EndToEndId
    reversal: bool = False
    description: str | None = None
    booked_at: datetime | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> CamtEntry:
        reversal = row["kind"] == "REVERSAL"
        return cls(
            entry_id=int(row["id"]),
            account=row["account"],
            amount=to_decimal(int(row["amount_units"])),
            currency=row["currency"],
            credit_debit=row["credit_debit"],
            booking_date=date.fromisoformat(row["booking_date"]),
            value_date=date.fromisoformat(row["value_date"]),
            core_reference=row["core_reference"],
            reference=row["original_reference"] if reversal else row["external_reference"],
            reversal=reversal,
            description=row["description"],
            booked_at=parse_stamp(row["booked_at"]) if row.get("booked_at") else None,
        )

    def but(self, **changes: Any) -> CamtEntry:
        """A copy with some fields changed (tests plant breaks this way)."""
        return replace(self, **changes)


def namespace(message: str, version: str) -> str:
    if version not in VERSIONS:
        raise ValueError(f"unsupported camt version {version} (one of {', '.join(VERSIONS)})")
    return f"urn:iso:std:iso:20022:tech:xsd:{message}.{version}"


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _text(value: str) -> str:
    return escape(value, {'"': "&quot;"})


def _amount(value: Decimal, currency: str) -> str:
    """The amount with the currency's minor-unit digits (e.g. 100.00 CNY)."""
    digits = CURRENCY_EXPONENTS.get(currency, 2)
    return f"{value.quantize(Decimal(1).scaleb(-digits)):f}"


class _Builder:
    """Elements of one message version, serialised without repeating the namespace (the
    enclosing `Document` declares it)."""

    def __init__(self, ns: str, version: str) -> None:
        self.E = ElementMaker(namespace=ns, nsmap={None: ns})
        self.version = version
        self._declaration = f' xmlns="{ns}"'.encode()

    def serialize(self, node: etree._Element) -> bytes:
        return etree.tostring(node, encoding="utf-8").replace(self._declaration, b"", 1)

    def header(self, message_id: str, created: datetime) -> etree._Element:
        x = self.E
        return x.GrpHdr(
            x.MsgId(message_id[:35]),
            x.CreDtTm(_stamp(created)),
            x.MsgPgntn(x.PgNb("1"), x.LastPgInd("true")),
        )

    def account(self, number: str, currency: str) -> etree._Element:
        x = self.E
        return x.Acct(x.Id(x.Othr(x.Id(number))), x.Ccy(currency))

    def balance(self, code: str, amount: Decimal, currency: str, on: date) -> etree._Element:
        x = self.E
        return x.Bal(
            x.Tp(x.CdOrPrtry(x.Cd(code))),
            x.Amt(_amount(abs(amount), currency), Ccy=currency),
            x.CdtDbtInd("CRDT" if amount >= 0 else "DBIT"),
            x.Dt(x.Dt(on.isoformat())),
        )

    def entry_bytes(self, entry: CamtEntry) -> bytes:
        """One `Ntry`, written directly (a statement may hold millions: lxml element building
        would cost ten times as much). Text is escaped; the schema tests check the result."""
        amount = f'<Amt Ccy="{_text(entry.currency)}">{_amount(entry.amount, entry.currency)}</Amt>'
        status = "<Sts><Cd>BOOK</Cd></Sts>" if self.version == "001.08" else "<Sts>BOOK</Sts>"
        parts = [
            f"<Ntry><NtryRef>NTRY{entry.entry_id:012d}</NtryRef>{amount}"
            f"<CdtDbtInd>{entry.credit_debit}</CdtDbtInd>",
            "<RvslInd>true</RvslInd>" if entry.reversal else "",
            status,
            f"<BookgDt><Dt>{entry.booking_date.isoformat()}</Dt></BookgDt>"
            f"<ValDt><Dt>{entry.value_date.isoformat()}</Dt></ValDt>"
            f"<AcctSvcrRef>{_text(entry.core_reference[:35])}</AcctSvcrRef>"
            f"<BkTxCd><Prtry><Cd>{'REVERSAL' if entry.reversal else 'TRANSFER'}</Cd></Prtry>"
            "</BkTxCd>",
        ]
        if entry.reference:
            parts.append(
                f"<NtryDtls><TxDtls><Refs><EndToEndId>{_text(entry.reference[:35])}</EndToEndId>"
                "</Refs>"
            )
            if self.version != "001.02":  # required from 001.04 (optional again in 001.08)
                parts.append(f"{amount}<CdtDbtInd>{entry.credit_debit}</CdtDbtInd>")
            parts.append("</TxDtls></NtryDtls>")
        if entry.description:
            parts.append(f"<AddtlNtryInf>{_text(entry.description[:500])}</AddtlNtryInf>")
        parts.append("</Ntry>")
        return "".join(parts).encode()


def _frame(ns: str, root: str) -> tuple[bytes, bytes]:
    head = f'<?xml version="1.0" encoding="UTF-8"?>\n<Document xmlns="{ns}"><{root}>'
    return head.encode(), f"</{root}></Document>\n".encode()


def iter_notification(
    entries: Iterable[CamtEntry],
    *,
    message_id: str,
    created: datetime,
    version: str = "001.08",
    currencies: dict[str, str] | None = None,
) -> Iterator[bytes]:
    """A camt.054: one `Ntfctn` per account (in order of first entry), its entries inside."""
    ns = namespace("camt.054", version)
    build = _Builder(ns, version)
    x = build.E
    head, tail = _frame(ns, "BkToCstmrDbtCdtNtfctn")
    by_account: dict[str, list[CamtEntry]] = {}
    for entry in entries:
        by_account.setdefault(entry.account, []).append(entry)
    parts = [head, build.serialize(build.header(message_id, created))]
    for index, (account, items) in enumerate(by_account.items(), start=1):
        currency = (currencies or {}).get(account, items[0].currency)
        parts += [
            b"<Ntfctn>",
            build.serialize(x.Id(f"{message_id[:30]}-{index}")),
            build.serialize(x.CreDtTm(_stamp(created))),
            build.serialize(build.account(account, currency)),
        ]
        for entry in items:
            parts.append(build.entry_bytes(entry))
            if len(parts) >= _FLUSH_EVERY:
                yield b"".join(parts)
                parts = []
        parts.append(b"</Ntfctn>")
    parts.append(tail)
    yield b"".join(parts)


def iter_statement(
    entries: Iterable[CamtEntry],
    *,
    account: str,
    currency: str,
    day: date,
    opening: Decimal,
    closing: Decimal,
    message_id: str,
    created: datetime,
    version: str = "001.08",
) -> Iterator[bytes]:
    """A camt.053 statement of one account for one booking day (`entries` of that day),
    produced part by part: any number of entries in bounded memory."""
    ns = namespace("camt.053", version)
    build = _Builder(ns, version)
    x = build.E
    start = datetime.combine(day, datetime.min.time(), UTC)
    head, tail = _frame(ns, "BkToCstmrStmt")
    parts = [
        head,
        build.serialize(build.header(message_id, created)),
        b"<Stmt>",
        build.serialize(x.Id(f"{account}-{day:%Y%m%d}"[:35])),
        build.serialize(x.CreDtTm(_stamp(created))),
        build.serialize(
            x.FrToDt(
                x.FrDtTm(_stamp(start)),
                x.ToDtTm(_stamp(start + timedelta(days=1, microseconds=-1000))),
            )
        ),
        build.serialize(build.account(account, currency)),
        build.serialize(build.balance("OPBD", opening, currency, day - timedelta(days=1))),
        build.serialize(build.balance("CLBD", closing, currency, day)),
    ]
    for entry in entries:
        parts.append(build.entry_bytes(entry))
        if len(parts) >= _FLUSH_EVERY:
            yield b"".join(parts)
            parts = []
    parts += [b"</Stmt>", tail]
    yield b"".join(parts)


# --- from the ledger ---------------------------------------------------------------------------


def ledger_entries(
    ledger: Ledger,
    *,
    after: int = 0,
    accounts: list[str] | None = None,
    day: date | None = None,
    limit: int | None = None,
) -> list[CamtEntry]:
    rows = ledger.booked_entries(after=after, accounts=accounts, day=day, limit=limit)
    return [CamtEntry.from_row(row) for row in rows]


def reconciled_accounts(ledger: Ledger) -> list[str]:
    """The bank's own accounts a settlement counterpart receives messages for."""
    return [row["number"] for row in ledger.accounts() if row["kind"] in RECONCILED_KINDS]


def notification_for(
    ledger: Ledger,
    *,
    after: int = 0,
    accounts: list[str] | None = None,
    version: str = "001.08",
    created: datetime | None = None,
    limit: int = 5000,
) -> tuple[bytes, int] | None:
    """A camt.054 of the entries booked after entry `after` (None if there are none),
    with the id of the last entry it holds (the next cursor)."""
    entries = ledger_entries(ledger, after=after, accounts=accounts, limit=limit)
    if not entries:
        return None
    entries.sort(key=lambda e: (e.account, e.entry_id))
    first, last = min(e.entry_id for e in entries), max(e.entry_id for e in entries)
    # Made from the entries alone (even its time), so building it again gives the same bytes:
    # a resend after a lost answer is then recognised by the gateway as a resend.
    latest = max((e.booked_at for e in entries if e.booked_at), default=None)
    data = b"".join(
        iter_notification(
            entries,
            message_id=f"SIM054-{first}-{last}",
            created=created or latest or _cut_off(max(e.booking_date for e in entries)),
            version=version,
        )
    )
    return data, last


def _cut_off(day: date) -> datetime:
    """The end of a booking day: a statement's time, the same however often it is built."""
    return datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC)


def statement_parts(
    ledger: Ledger,
    account: str,
    day: date,
    *,
    version: str = "001.08",
    created: datetime | None = None,
) -> Iterator[bytes]:
    """The camt.053 of one account for one day, from the ledger, part by part."""
    info = ledger.get_account(account)
    return iter_statement(
        ledger_entries(ledger, accounts=[account], day=day),
        account=account,
        currency=info["currency"],
        day=day,
        opening=ledger.balance_at_end_of(account, day - timedelta(days=1)),
        closing=ledger.balance_at_end_of(account, day),
        message_id=f"SIM053-{account}-{day:%Y%m%d}",
        created=created or _cut_off(day),
        version=version,
    )


def statement_for(
    ledger: Ledger,
    account: str,
    day: date,
    *,
    version: str = "001.08",
    created: datetime | None = None,
) -> bytes:
    """The camt.053 of one account for one day, from the ledger."""
    return b"".join(statement_parts(ledger, account, day, version=version, created=created))


# --- pushing to a gateway ----------------------------------------------------------------------


class PushFailed(Exception):
    pass


class CamtPusher:
    """Push new entries (camt.054) and each finished day's statements (camt.053) to a gateway.

    The cursor (last pushed entry) and the last statement day live in the simulator's own
    database, so a restart neither loses nor (harmfully) repeats anything; a repeat would be
    harmless anyway, since message ids are derived from the content's range and the gateway
    answers a resend with its first result.
    """

    def __init__(
        self,
        ledger: Ledger,
        *,
        gateway_url: str,
        client_id: str,
        client_secret: str,
        version: str = "001.08",
        interval: float = 10.0,
        clock: Clock | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.ledger = ledger
        self.gateway_url = gateway_url.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.version = version
        self.interval = interval
        self.clock = clock or SystemClock()
        self.timeout = timeout
        self._session = requests.Session()
        self._token: tuple[str, datetime] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # --- HTTP ---------------------------------------------------------------------------------

    def _bearer(self) -> str:
        now = self.clock.now()
        if self._token is None or self._token[1] <= now:
            response = self._session.post(
                f"{self.gateway_url}/oauth/token",
                data={"grant_type": "client_credentials", "scope": "settlement:write"},
                auth=(self.client_id, self.client_secret),
                timeout=self.timeout,
            )
            if response.status_code != 200:
                raise PushFailed(f"token request answered {response.status_code}")
            body = response.json()
            expires = now + timedelta(seconds=max(int(body["expires_in"]) - 30, 30))
            self._token = (str(body["access_token"]), expires)
        return self._token[0]

    def post(self, data: bytes | Iterator[bytes]) -> dict[str, Any]:
        """POST one message (an iterator of parts is sent chunked, never held whole)."""
        response = self._session.post(
            f"{self.gateway_url}/core/v1/iso20022",
            data=data,
            headers={
                "Authorization": f"Bearer {self._bearer()}",
                "Content-Type": "application/xml",
            },
            timeout=self.timeout,
        )
        if response.status_code == 401:
            self._token = None
        if response.status_code != 200:
            raise PushFailed(f"the gateway answered {response.status_code}: {response.text[:300]}")
        return dict(response.json())

    # --- what to push -------------------------------------------------------------------------

    def push_notifications(self) -> int:
        """Push every entry booked since the last push; returns how many."""
        pushed = 0
        with self._lock:
            while True:
                after = int(self.ledger.get_state("camt054_cursor") or 0)
                built = notification_for(
                    self.ledger,
                    after=after,
                    accounts=reconciled_accounts(self.ledger),
                    version=self.version,
                )
                if built is None:
                    # Entries on other accounts move the cursor too: nothing to tell.
                    last = self.ledger.last_entry_id()
                    if last > after:
                        self.ledger.set_state("camt054_cursor", str(last))
                    return pushed
                data, last = built
                result = self.post(data)
                pushed += int(result.get("entries", 0))
                self.ledger.set_state("camt054_cursor", str(last))

    def push_statements(self, day: date) -> list[dict[str, Any]]:
        """Push the camt.053 of `day` for every reconciled account."""
        with self._lock:
            results = []
            for account in reconciled_accounts(self.ledger):
                parts = statement_parts(self.ledger, account, day, version=self.version)
                results.append(self.post(parts))
            return results

    def push_finished_days(self) -> int:
        """Statements for every day that ended since the last one pushed."""
        today = self.clock.now().astimezone(UTC).date()
        last = self.ledger.get_state("camt053_day")
        if last is None:  # first run: start from today, history is not replayed
            self.ledger.set_state("camt053_day", (today - timedelta(days=1)).isoformat())
            return 0
        day = date.fromisoformat(last) + timedelta(days=1)
        done = 0
        while day < today:
            self.push_notifications()  # the day's entries first, then its statements
            self.push_statements(day)
            self.ledger.set_state("camt053_day", day.isoformat())
            day += timedelta(days=1)
            done += 1
        return done

    # --- the loop -----------------------------------------------------------------------------

    def run_once(self) -> None:
        self.push_notifications()
        self.push_finished_days()

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.wait(self.interval):
                try:
                    self.run_once()
                except (PushFailed, requests.RequestException) as exc:
                    log.warning("camt_push_failed", error=str(exc)[:300])
                except Exception:
                    log.exception("camt_push_crashed")

        self._thread = threading.Thread(target=loop, name="camt-pusher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._session.close()
