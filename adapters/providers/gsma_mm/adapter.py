"""`GsmaMmProvider`: the `WalletProvider` Protocol over the GSMA Mobile Money API.

Flows (docs/providers/gsma_mm.md):

* payout = `POST /transactions/type/disbursement` with `X-CorrelationID` (our payout id as a
  UUID: the provider's idempotency key) and `X-Callback-URL`. 201 carries the transaction,
  202 a request state (asynchronous: a callback or polling tells the end). `duplicateRequest`
  means the provider already has it: we ask where it stands instead.
* payout status, by what we know: the transaction reference (`GET /transactions/{ref}`), else
  the request state (`GET /requeststates/{serverCorrelationId}`, then the transaction it
  points at), else our correlation id (`GET /responses/{clientCorrelationId}`: the answer we
  lost). A 404 there is `not_found`: the provider never got (or has not processed) the request.
* name enquiry = `GET /accounts/{identifierType}/{identifier}/accountname`.
* callbacks: `webhooks.py` (verified, then only a hint).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

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
    UnknownProviderStatus,
)
from adapters.http import new_session
from adapters.providers.gsma_mm import mapping, webhooks
from adapters.providers.gsma_mm.client import (
    Answer,
    ApiKeyAuth,
    Authenticator,
    GsmaMmClient,
    OAuth2ClientCredentials,
)
from adapters.providers.gsma_mm.settings import GsmaMmSettings
from adapters.providers.settings import ProviderContext
from gateway.domain.money import Money


def _expect(answer: Answer, operation: str) -> dict[str, Any]:
    """The JSON object of a 2xx answer; anything else here is a broken answer."""
    if answer.body is None:
        raise ProviderOutcomeUnknown(
            f"The provider's {operation} answer (HTTP {answer.status}) is not a JSON object",
            code="provider_bad_response",
        )
    return answer.body


_INTEGRATION = mapping.ErrorRule(
    "rejected", "provider_integration_error", "The provider refused the request"
)


def _refusal(answer: Answer, operation: str, *, lookup: bool = False) -> mapping.ErrorRule:
    """The rule for a non-2xx answer: its errorObject, else what the HTTP status alone says.

    A bare 404 is "not found" only for lookups; on a POST it means a wrong URL (nothing done).
    """
    error = answer.body or {}
    if "errorCategory" in error:
        return mapping.error_rule(error.get("errorCategory"), error.get("errorCode"))
    if answer.status in (429, 502, 503, 504):
        return mapping.CATEGORY_DEFAULTS["serviceUnavailable"]
    if answer.status >= 500:
        return mapping.CATEGORY_DEFAULTS["internal"]
    if answer.status == 404 and lookup:
        return mapping.CATEGORY_DEFAULTS["identification"]
    if answer.status in (401, 403):
        return mapping.CATEGORY_DEFAULTS["authorisation"]
    if 400 <= answer.status < 500:
        return _INTEGRATION
    raise ProviderOutcomeUnknown(
        f"The provider's {operation} answer was HTTP {answer.status}",
        code="provider_bad_response",
    )


def _lookup_error(rule: mapping.ErrorRule, answer: Answer) -> Exception:
    """A refused status query says nothing about the payout: it stays in doubt and is asked
    again later. Our credentials refused keep their code, so operators see why."""
    if rule.code == "provider_authentication_failed":
        rule = replace(rule, outcome="unavailable")
    elif rule.outcome == "rejected":
        rule = mapping.CATEGORY_DEFAULTS["internal"]
    return mapping.error_for(rule, answer.body or {})


class GsmaMmProvider:
    id = "gsma_mm"
    capabilities = ProviderCapabilities(
        payout=True,
        payout_status=True,
        refund=False,
        lookup_account=True,
        signs_webhooks=False,
        identifier_types=("msisdn", "walletid", "accountid"),
    )

    def __init__(
        self,
        settings: GsmaMmSettings,
        context: ProviderContext,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.context = context
        self.session = session or new_session(
            user_agent=context.user_agent, pool_size=settings.pool_size, tls=settings.tls
        )
        auth: Authenticator = Authenticator()
        api_key = settings.api_key.get_secret_value() if settings.api_key else None
        if settings.auth == "oauth2":
            assert settings.client_id is not None and settings.client_secret is not None
            auth = OAuth2ClientCredentials(
                settings.resolved_token_url,
                settings.client_id,
                settings.client_secret.get_secret_value(),
                session=self.session,
                timeouts=settings.timeouts,
                retry=settings.retry_policy,
                clock=context.clock,
                api_key=api_key,
                sleep=sleep,
            )
        elif settings.auth == "api_key":
            assert api_key is not None
            auth = ApiKeyAuth(api_key)
        self.client = GsmaMmClient(
            settings.resolved_base_url,
            session=self.session,
            timeouts=settings.timeouts,
            retry=settings.retry_policy,
            auth=auth,
            clock=context.clock,
            sleep=sleep,
        )

    def close(self) -> None:
        self.session.close()

    # --- WalletProvider ------------------------------------------------------------------------

    def idempotency_key(self, reference: str) -> str:
        return mapping.correlation_id(reference)

    def _check_identifier(self, identifier: AccountIdentifier) -> None:
        if identifier.type not in self.capabilities.identifier_types:
            raise NotSupportedByProvider(
                f"This provider identifies wallets by "
                f"{', '.join(self.capabilities.identifier_types)}, not {identifier.type}",
                code="recipient_type_not_supported",
            )

    def payout(self, request: PayoutRequest) -> PayoutResult:
        self._check_identifier(request.recipient)
        body = mapping.disbursement_body(
            request,
            debit_party=self.settings.debit_party,
            requesting_organisation_id=self.settings.requesting_organisation_id,
            now=self.context.clock.now(),
        )
        answer = self.client.create_disbursement(
            body, correlation_id=request.idempotency_key, callback_url=request.callback_url
        )
        if answer.status == 201:
            return mapping.transaction_result(_expect(answer, "disbursement"))
        if answer.status == 202:
            return self._from_request_state(_expect(answer, "disbursement"))
        if 200 <= answer.status < 300:
            raise ProviderOutcomeUnknown(
                f"Unexpected HTTP {answer.status} to a disbursement", code="provider_bad_response"
            )
        rule = _refusal(answer, "disbursement")
        if rule.outcome == "duplicate":
            # The provider has this correlation id already (an earlier attempt got through).
            return self.payout_status(ProviderRefs(idempotency_key=request.idempotency_key))
        if rule.outcome == "not_found":
            # identification on a disbursement: the credit party does not exist.
            return PayoutResult(
                state="failed",
                provider_status="failed",
                failure_code=rule.code,
                failure_message=rule.message,
                provider_code=mapping.provider_code(answer.body or {}),
            )
        if rule.outcome == "rejected":
            return PayoutResult(
                state="failed",
                provider_status="rejected",
                failure_code=rule.code,
                failure_message=rule.message,
                provider_code=mapping.provider_code(answer.body or {}),
            )
        raise mapping.error_for(rule, answer.body or {})

    def _from_request_state(self, obj: dict[str, Any]) -> PayoutResult:
        view = mapping.request_state(obj)
        if view.state == "pending":
            return PayoutResult(
                state="pending",
                provider_status="pending",
                request_id=view.server_correlation_id,
                transaction_reference=view.object_reference,
            )
        if view.state == "failed":
            return mapping.failed_result(
                view.error or {"errorCategory": "internal", "errorCode": "genericError"},
                request_id=view.server_correlation_id,
            )
        if view.object_reference:  # completed: the transaction's own status decides
            return self._transaction(view.object_reference, request_id=view.server_correlation_id)
        return PayoutResult(
            state="succeeded", provider_status="completed", request_id=view.server_correlation_id
        )

    def _transaction(self, reference: str, *, request_id: str | None = None) -> PayoutResult:
        answer = self.client.transaction(reference)
        return self._transaction_answer(answer, request_id=request_id)

    def _transaction_answer(self, answer: Answer, *, request_id: str | None) -> PayoutResult:
        if answer.status == 200:
            return mapping.transaction_result(_expect(answer, "transaction"), request_id=request_id)
        rule = _refusal(answer, "transaction", lookup=True)
        if rule.outcome == "not_found":
            return PayoutResult(state="not_found", provider_status="not_found")
        raise _lookup_error(rule, answer)

    def payout_status(self, refs: ProviderRefs) -> PayoutResult:
        if refs.transaction_reference:
            return self._transaction(refs.transaction_reference, request_id=refs.request_id)
        if refs.request_id:
            answer = self.client.request_state(refs.request_id)
            if answer.status == 200:
                return self._from_request_state(_expect(answer, "request state"))
            rule = _refusal(answer, "request state", lookup=True)
            if rule.outcome != "not_found":
                raise _lookup_error(rule, answer)
            # The provider forgot the request state (they expire): fall through to /responses.
        answer = self.client.response(refs.idempotency_key)
        if answer.status == 200:
            link = _expect(answer, "response").get("link")
            if not isinstance(link, str) or not link:
                raise UnknownProviderStatus(
                    "The provider's response has no link", provider_code="link"
                )
            return self._transaction_answer(self.client.follow(link), request_id=refs.request_id)
        rule = _refusal(answer, "response", lookup=True)
        if rule.outcome == "not_found":
            return PayoutResult(state="not_found", provider_status="not_found")
        raise _lookup_error(rule, answer)

    def refund(self, refs: ProviderRefs, amount: Money, *, reference: str) -> PayoutResult:
        raise NotSupportedByProvider(
            "Refunds of payouts are not offered through this provider", code="refund_not_supported"
        )

    def lookup_account(self, identifier: AccountIdentifier) -> AccountName:
        self._check_identifier(identifier)
        answer = self.client.account_name(identifier.type, identifier.value)
        if answer.status == 200:
            return mapping.account_name(_expect(answer, "name enquiry"))
        rule = _refusal(answer, "name enquiry", lookup=True)
        if rule.outcome in ("not_found", "rejected"):
            code = "recipient_not_found" if rule.outcome == "not_found" else rule.code
            raise ProviderRejected(
                rule.message, code=code, provider_code=mapping.provider_code(answer.body or {})
            )
        raise mapping.error_for(rule, answer.body or {})

    def verify_and_parse_webhook(
        self, method: str, headers: dict[str, str], body: bytes
    ) -> ProviderNotification:
        key = self.settings.callback_api_key
        document = webhooks.verify(
            method,
            headers,
            body,
            api_key=key.get_secret_value() if key is not None else None,
            now=self.context.clock.now(),
            tolerance=timedelta(seconds=self.settings.callback_tolerance_seconds),
        )
        return webhooks.parse(headers, body, document)
