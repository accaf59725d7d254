"""`AlipayProvider`: the `WalletProvider` Protocol over the Alipay OpenAPI.

Flows (docs/providers/alipay.md):

* payout = `alipay.fund.trans.uni.transfer` (TRANS_ACCOUNT_NO_PWD, DIRECT_TRANSFER) to an
  Alipay account by user id, OpenID or logon id (the last with the holder's real name),
  `out_biz_no` = the payout id without its underscore, `trans_amount` in yuan ("250.00").
* payout status = `alipay.fund.trans.common.query` by `out_biz_no`; `ORDER_NOT_EXIST` is
  `not_found` (the payout service sends again under the same `out_biz_no` after a while).
* refund of an Alipay *payment* (`alipay.trade.refund`, keyed by our refund id as
  `out_request_no`; `fund_change` N is confirmed with `alipay.trade.fastpay.refund.query`):
  the payout service does not initiate refunds; `refund` / `refund_status` serve flows that
  collect money through Alipay.
* notifications: `webhooks.py` (RSA2-signed and recent: authoritative); Alipay wants
  `success` back.
* A refusal of a money-moving call is believed only when Alipay signed it.
* certificate mode (`GATEWAY_ALIPAY_SIGNING_MODE=certificate`, `certificates.py`): the SNs of
  the application certificate and of Alipay's root chain go with every request; answers and
  notifications are verified with Alipay's certificates, known by their SN. The files are read
  and checked here, at start-up (a bad one is a `SettingsError` naming it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from adapters.base import (
    AccountIdentifier,
    AccountName,
    NotSupportedByProvider,
    PayoutRequest,
    PayoutResult,
    ProviderCapabilities,
    ProviderNotification,
    ProviderOutcomeUnknown,
    ProviderRefs,
    ProviderRejected,
    UnknownProviderStatus,
    WebhookReply,
)
from adapters.http import new_session
from adapters.providers.alipay import certificates, mapping, webhooks
from adapters.providers.alipay.client import AlipayClient, Answer, CertificateSerials
from adapters.providers.alipay.settings import AlipayCredentials, AlipaySettings
from adapters.providers.rsa_keys import (
    KeyFileError,
    KeyRing,
    ensure_private_key,
    load_private_key,
)
from adapters.providers.settings import ProviderContext
from gateway.domain.money import Money
from gateway.settings import SettingsError


class AlipayProvider:
    id = "alipay"
    capabilities = ProviderCapabilities(
        payout=True,
        payout_status=True,
        refund=True,
        lookup_account=False,
        signs_webhooks=True,
        identifier_types=tuple(mapping.IDENTITY_TYPES),
    )

    def __init__(
        self,
        settings: AlipaySettings,
        context: ProviderContext,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.context = context
        credentials = settings.credentials(context.data_dir)
        self.credentials = credentials
        self.notification_max_age = timedelta(seconds=settings.notification_max_age_seconds)
        self.certificate_mode = credentials.signing_mode == "certificate"
        serials: CertificateSerials | None = None
        try:
            private_key = (
                ensure_private_key(credentials.app_private_key_file)
                if credentials.generate_app_key
                else load_private_key(credentials.app_private_key_file)
            )
            if self.certificate_mode:
                serials, self.keys = _certificates(credentials, private_key)
            else:
                self.keys = KeyRing.from_files(
                    [(path.name, path) for path in credentials.alipay_public_keys],
                    directory=credentials.alipay_public_keys_dir,
                )
        except KeyFileError as exc:
            raise SettingsError(f"invalid Alipay keys: {exc}") from None
        self.session = session or new_session(
            user_agent=context.user_agent, pool_size=settings.pool_size, tls=settings.tls
        )
        self.client = AlipayClient(
            settings.gateway_url,
            session=self.session,
            timeouts=settings.timeouts,
            retry=settings.retry_policy,
            app_id=credentials.app_id,
            private_key=private_key,
            keys=self.keys,
            clock=context.clock,
            sleep=sleep,
            certificates=serials,
        )

    def close(self) -> None:
        self.session.close()

    # --- WalletProvider ------------------------------------------------------------------------

    def idempotency_key(self, reference: str) -> str:
        return mapping.out_biz_no(reference)

    def check_payout(self, amount: Money, recipient: AccountIdentifier) -> None:
        if recipient.type not in mapping.IDENTITY_TYPES:
            raise NotSupportedByProvider(
                "Alipay pays accounts by user id, OpenID or logon id",
                code="recipient_type_not_supported",
            )
        if amount.currency != mapping.CURRENCY:
            raise NotSupportedByProvider(
                "Alipay transfers are in CNY", code="currency_not_supported"
            )
        if recipient.type == "alipay_user_id" and not mapping.USER_ID.match(recipient.value):
            raise ProviderRejected(
                "An Alipay user id is 16 digits starting with 2088", code="recipient_invalid"
            )
        if recipient.type in mapping.NAME_REQUIRED and not recipient.name:
            raise ProviderRejected(
                "Alipay needs the account holder's real name to pay a logon id",
                code="recipient_name_required",
            )

    def payout(self, request: PayoutRequest) -> PayoutResult:
        self.check_payout(request.amount, request.recipient)
        biz = mapping.transfer_biz(
            out_biz_no=request.idempotency_key,
            amount=request.amount,
            recipient=request.recipient,
            title=request.description or self.settings.order_title,
            remark=request.description,
        )
        answer = self.client.call(
            mapping.METHOD_TRANSFER, biz, read=False, notify_url=request.callback_url
        )
        if answer.ok:
            return self._order(answer, request.idempotency_key)
        return self._refused(answer)

    def _order(self, answer: Answer, out_biz_no: str) -> PayoutResult:
        result = mapping.transfer_result(answer.value)
        if result.request_id is not None and result.request_id != out_biz_no:
            raise UnknownProviderStatus(
                "Alipay answered about another transfer", provider_code="out_biz_no"
            )
        return result

    def _refused(self, answer: Answer) -> PayoutResult:
        rule = mapping.error_rule(answer.value)
        if rule.outcome == "rejected":
            if not answer.verified:
                raise ProviderOutcomeUnknown(
                    "Alipay's refusal could not be verified",
                    code="provider_bad_signature",
                    provider_code=mapping.provider_code(answer.value),
                )
            return mapping.refused(rule, answer.value)
        raise mapping.error_for(rule, answer.value)

    def payout_status(self, refs: ProviderRefs) -> PayoutResult:
        answer = self.client.call(
            mapping.METHOD_TRANSFER_QUERY,
            mapping.transfer_query_biz(refs.idempotency_key),
            read=True,
        )
        if answer.ok:
            return self._order(answer, refs.idempotency_key)
        rule = mapping.error_rule(answer.value)
        if rule.outcome == "not_found" and answer.verified:
            return PayoutResult(state="not_found", provider_status="ORDER_NOT_EXIST")
        raise mapping.error_for(rule, answer.value)

    def refund(self, refs: ProviderRefs, amount: Money, *, reference: str) -> PayoutResult:
        """Refund (part of) an Alipay payment: `refs.transaction_reference` is its trade_no
        (else `refs.idempotency_key` its out_trade_no); `reference` (our refund id) is the
        out_request_no Alipay deduplicates on."""
        if not mapping.OUT_NO.match(reference):
            raise ValueError(f"{reference!r} cannot be an Alipay out_request_no")
        if amount.currency != mapping.CURRENCY or amount.minor <= 0:
            raise ProviderRejected(
                "The refund must be a positive CNY amount", code="refund_amount_invalid"
            )
        trade_no = refs.transaction_reference
        biz = mapping.refund_biz(
            trade_no=trade_no,
            out_trade_no=None if trade_no else refs.idempotency_key,
            amount=amount,
            out_request_no=reference,
        )
        answer = self.client.call(
            mapping.METHOD_REFUND, biz, read=False, notify_url=self.context.callback_url(self.id)
        )
        if not answer.ok:
            return self._refused(answer)
        if answer.value.get("fund_change") == "Y":
            return PayoutResult(
                state="succeeded",
                provider_status="fund_change=Y",
                request_id=reference,
                transaction_reference=str(answer.value.get("trade_no") or "")[:100] or None,
                amount=amount,
            )
        # N: this request moved no money now (e.g. it was carried out before): ask.
        return self.refund_status(refs, reference=reference)

    def refund_status(self, refs: ProviderRefs, *, reference: str) -> PayoutResult:
        trade_no = refs.transaction_reference
        answer = self.client.call(
            mapping.METHOD_REFUND_QUERY,
            mapping.refund_query_biz(
                trade_no=trade_no,
                out_trade_no=None if trade_no else refs.idempotency_key,
                out_request_no=reference,
            ),
            read=True,
        )
        if answer.ok:
            return mapping.refund_query_result(answer.value)
        raise mapping.error_for(mapping.error_rule(answer.value), answer.value)

    def lookup_account(self, identifier: AccountIdentifier) -> AccountName:
        raise NotSupportedByProvider(
            "Alipay offers no name enquiry", code="not_supported_by_provider"
        )

    def verify_and_parse_webhook(
        self, method: str, headers: dict[str, str], body: bytes
    ) -> ProviderNotification:
        params = webhooks.verify(
            method,
            headers,
            body,
            keys=self.keys,
            app_id=self.credentials.app_id,
            now=self.context.clock.now(),
            max_age=self.notification_max_age,
            by_cert_sn=self.certificate_mode,
        )
        return webhooks.parse(params, body)

    def webhook_reply(self, *, accepted: bool, status: int, message: str) -> WebhookReply | None:
        """Alipay: the plain text `success` when taken; anything else makes it send again, so
        a refusal keeps the gateway's problem+json (useful in Alipay's delivery log)."""
        if accepted:
            return WebhookReply(200, webhooks.SUCCESS, "text/plain; charset=utf-8")
        return None


def _certificates(
    credentials: AlipayCredentials, private_key: rsa.RSAPrivateKey
) -> tuple[CertificateSerials, KeyRing]:
    """Certificate mode's SNs and Alipay's certificates, read and checked (`KeyFileError`)."""
    if credentials.app_cert_file is None or credentials.alipay_root_cert_file is None:
        raise KeyFileError("certificate mode needs the application and root certificate files")
    serials = CertificateSerials(
        app_cert_sn=certificates.load_app_certificate(credentials.app_cert_file, private_key),
        alipay_root_cert_sn=certificates.load_root_cert_sn(credentials.alipay_root_cert_file),
    )
    fixed = dict(certificates.load_alipay_certificate(path) for path in credentials.alipay_certs)
    ring = KeyRing(
        fixed,
        directory=credentials.alipay_certs_dir,
        pattern="*.crt",
        loader=certificates.load_alipay_certificate,
    )
    if not ring.ids():
        where = credentials.alipay_certs_dir or ", ".join(map(str, credentials.alipay_certs))
        raise KeyFileError(f"{where}: no Alipay certificate (alipayCertPublicKey_RSA2.crt)")
    return serials, ring
