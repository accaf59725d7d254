"""`WechatPayProvider`: the `WalletProvider` Protocol over WeChat Pay API v3.

Flows (docs/providers/wechatpay.md):

* payout = 商家转账 `POST /v3/fund-app/mch-transfer/transfer-bills` to a user's WeChat balance
  (`openid` under the configured AppID), `out_bill_no` = the payout id without its underscore
  (what WeChat Pay deduplicates on), amount in fen. From 2,000.00 CNY the payee's real name is
  required; it is sent RSA-OAEP-encrypted to the newest platform key, named in
  `Wechatpay-Serial`.
* payout status = `GET …/transfer-bills/out-bill-no/{out_bill_no}`; 404 is `not_found` (the
  payout service sends again under the same `out_bill_no` after a while).
* refund of a WeChat Pay *payment* (the gateway's payout service does not initiate refunds;
  `refund` and `refund_status` are for flows that collect money through WeChat Pay): the
  payment's total from `GET /v3/pay/transactions/…`, then `POST /v3/refund/domestic/refunds`
  keyed by our refund id (`out_refund_no`); `GET /v3/refund/domestic/refunds/{out_refund_no}`.
* notifications: `webhooks.py` (signed and encrypted: authoritative).
* A refusal (4xx) of a POST is believed only when WeChat Pay signed it; otherwise the outcome
  is unknown and the status query decides.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

import requests

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
    ProviderUnavailable,
    UnknownProviderStatus,
    WebhookReply,
)
from adapters.http import new_session
from adapters.providers.rsa_keys import (
    KeyFileError,
    KeyRing,
    ensure_private_key,
    load_private_key,
)
from adapters.providers.settings import ProviderContext
from adapters.providers.wechatpay import mapping, signing, webhooks
from adapters.providers.wechatpay.client import Answer, WechatPayClient
from adapters.providers.wechatpay.settings import WechatPaySettings
from gateway.domain.money import Money
from gateway.settings import SettingsError


class WechatPayProvider:
    id = "wechatpay"
    capabilities = ProviderCapabilities(
        payout=True,
        payout_status=True,
        refund=True,
        lookup_account=False,
        signs_webhooks=True,
        identifier_types=("openid",),
    )

    def __init__(
        self,
        settings: WechatPaySettings,
        context: ProviderContext,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        nonce: Callable[[], str] = signing.nonce,
    ) -> None:
        self.settings = settings
        self.context = context
        credentials = settings.credentials(context.data_dir)
        self.credentials = credentials
        try:
            private_key = (
                ensure_private_key(credentials.merchant_private_key_file)
                if credentials.generate_merchant_key
                else load_private_key(credentials.merchant_private_key_file)
            )
            self.keys = KeyRing.from_files(
                credentials.platform_keys, directory=credentials.platform_keys_dir
            )
        except KeyFileError as exc:
            raise SettingsError(f"invalid WeChat Pay keys: {exc}") from None
        self.tolerance = timedelta(seconds=settings.callback_tolerance_seconds)
        self.session = session or new_session(
            user_agent=context.user_agent, pool_size=settings.pool_size, tls=settings.tls
        )
        self.client = WechatPayClient(
            settings.resolved_base_url,
            session=self.session,
            timeouts=settings.timeouts,
            retry=settings.retry_policy,
            mchid=credentials.mchid,
            serial_no=credentials.merchant_serial_no,
            private_key=private_key,
            keys=self.keys,
            clock=context.clock,
            tolerance=self.tolerance,
            sleep=sleep,
            nonce=nonce,
        )

    def close(self) -> None:
        self.session.close()

    # --- WalletProvider ------------------------------------------------------------------------

    def idempotency_key(self, reference: str) -> str:
        return mapping.out_bill_no(reference)

    def check_payout(self, amount: Money, recipient: AccountIdentifier) -> None:
        if recipient.type not in self.capabilities.identifier_types:
            raise NotSupportedByProvider(
                "WeChat Pay pays users by their OpenID", code="recipient_type_not_supported"
            )
        if amount.currency != mapping.CURRENCY:
            raise NotSupportedByProvider(
                "WeChat Pay transfers are in CNY", code="currency_not_supported"
            )
        if amount.minor >= mapping.NAME_REQUIRED_FROM and not recipient.name:
            raise ProviderRejected(
                "WeChat Pay needs the recipient's real name for transfers of 2,000.00 CNY or more",
                code="recipient_name_required",
            )

    def payout(self, request: PayoutRequest) -> PayoutResult:
        self.check_payout(request.amount, request.recipient)
        encrypted, serial = None, None
        if request.recipient.name:
            newest = self.keys.newest()
            if newest is None:
                raise ProviderUnavailable(
                    "No WeChat Pay platform key is loaded to encrypt the recipient's name",
                    code="provider_not_configured",
                )
            serial, key = newest
            encrypted = signing.encrypt_sensitive(key.key, request.recipient.name)
        body = mapping.transfer_body(
            appid=self.credentials.appid,
            out_bill_no=request.idempotency_key,
            openid=request.recipient.value,
            amount=request.amount,
            remark=request.description,
            notify_url=request.callback_url,
            scene_id=self.settings.transfer_scene_id,
            report_infos=self.settings.transfer_scene_report_infos,
            user_recv_perception=self.settings.user_recv_perception,
            encrypted_name=encrypted,
        )
        answer = self.client.create_transfer(body, platform_serial=serial)
        if answer.ok:
            return self._bill(answer, request.idempotency_key)
        return self._refused(answer)

    def _bill(self, answer: Answer, out_bill_no: str) -> PayoutResult:
        if answer.body is None:
            raise ProviderOutcomeUnknown(
                "WeChat Pay's answer is not a JSON object", code="provider_bad_response"
            )
        result = mapping.transfer_result(answer.body)
        if result.request_id != out_bill_no:
            raise UnknownProviderStatus(
                "WeChat Pay answered about another transfer", provider_code="out_bill_no"
            )
        return self._with_merchant(result)

    def _with_merchant(self, result: PayoutResult) -> PayoutResult:
        """A user confirmation needs our mchId and AppID beside WeChat's package_info."""
        if result.recipient_action is None:
            return result
        action = {
            **result.recipient_action,
            "mch_id": self.credentials.mchid,
            "app_id": self.credentials.appid,
        }
        return replace(result, recipient_action=action)

    def _refused(self, answer: Answer) -> PayoutResult:
        """A non-2xx answer to a money-moving POST: a failed result if it is a signed refusal,
        else the exception its rule calls for."""
        rule = mapping.error_rule(answer.status, answer.body)
        if rule.outcome == "rejected":
            if not answer.verified:
                # An unsigned refusal could come from anywhere on the path: do not release the
                # customer's money on its word; the (signed) status query decides.
                raise ProviderOutcomeUnknown(
                    "WeChat Pay's refusal could not be verified",
                    code="provider_bad_signature",
                    provider_code=mapping.provider_code(answer.status, answer.body),
                )
            return mapping.refused(rule, answer.status, answer.body)
        raise mapping.error_for(rule, answer.status, answer.body)

    def payout_status(self, refs: ProviderRefs) -> PayoutResult:
        answer = self.client.transfer(refs.idempotency_key)
        if answer.ok:
            return self._bill(answer, refs.idempotency_key)
        rule = mapping.error_rule(answer.status, answer.body)
        if rule.outcome == "not_found":
            return PayoutResult(state="not_found", provider_status="not_found")
        raise mapping.error_for(rule, answer.status, answer.body)

    def refund(self, refs: ProviderRefs, amount: Money, *, reference: str) -> PayoutResult:
        """Refund (part of) a WeChat Pay payment: `refs.transaction_reference` is its
        transaction_id (else `refs.idempotency_key` its out_trade_no); `reference` (our refund
        id) becomes the out_refund_no WeChat Pay deduplicates on."""
        if not mapping.OUT_REFUND_NO.match(reference):
            raise ValueError(f"{reference!r} cannot be a WeChat Pay out_refund_no")
        transaction_id = refs.transaction_reference
        payment = self.client.payment(
            transaction_id=transaction_id,
            out_trade_no=None if transaction_id else refs.idempotency_key,
        )
        if not payment.ok:
            rule = mapping.error_rule(payment.status, payment.body)
            if rule.outcome == "not_found":
                raise ProviderRejected("WeChat Pay has no such payment", code="payment_not_found")
            raise mapping.error_for(rule, payment.status, payment.body)
        total = mapping.payment_total(payment.body or {})
        if amount.currency != mapping.CURRENCY or amount.minor <= 0 or amount.minor > total:
            raise ProviderRejected(
                "The refund must be a positive CNY amount not above the payment",
                code="refund_amount_invalid",
            )
        body = mapping.refund_body(
            out_refund_no=reference,
            transaction_id=transaction_id,
            out_trade_no=refs.idempotency_key,
            amount=amount,
            total=total,
            reason="",
            notify_url=self.context.callback_url(self.id),
        )
        answer = self.client.create_refund(body)
        if answer.ok:
            return self._refund(answer, reference)
        return self._refused(answer)

    def refund_status(self, refs: ProviderRefs, *, reference: str) -> PayoutResult:
        """Where a refund stands (`reference` = its out_refund_no)."""
        answer = self.client.refund(reference)
        if answer.ok:
            return self._refund(answer, reference)
        rule = mapping.error_rule(answer.status, answer.body)
        if rule.outcome == "not_found":
            return PayoutResult(state="not_found", provider_status="not_found")
        raise mapping.error_for(rule, answer.status, answer.body)

    def _refund(self, answer: Answer, reference: str) -> PayoutResult:
        if answer.body is None:
            raise ProviderOutcomeUnknown(
                "WeChat Pay's answer is not a JSON object", code="provider_bad_response"
            )
        result = mapping.refund_result(answer.body)
        if result.request_id != reference:
            raise UnknownProviderStatus(
                "WeChat Pay answered about another refund", provider_code="out_refund_no"
            )
        return result

    def lookup_account(self, identifier: AccountIdentifier) -> AccountName:
        raise NotSupportedByProvider(
            "WeChat Pay offers no name enquiry", code="not_supported_by_provider"
        )

    def verify_and_parse_webhook(
        self, method: str, headers: dict[str, str], body: bytes
    ) -> ProviderNotification:
        notification = webhooks.verify(
            method,
            headers,
            body,
            keys=self.keys,
            apiv3_key=self.credentials.apiv3_key,
            now=self.context.clock.now(),
            tolerance=self.tolerance,
            mchid=self.credentials.mchid,
        )
        return webhooks.parse(notification)

    def webhook_reply(self, *, accepted: bool, status: int, message: str) -> WebhookReply | None:
        """WeChat Pay: 204 without a body when taken; `{"code": "FAIL", "message": …}` with
        the error status otherwise (it retries)."""
        if accepted:
            return WebhookReply(204)
        return WebhookReply(
            status,
            webhooks.failure_body(message),
            "application/json",
        )
