"""Client credentials, access tokens and their rejection, through the HTTP API."""

from __future__ import annotations

import base64
from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def _token(client, basic_id: str, basic_secret: str, **form: str):  # type: ignore[no-untyped-def]
    return client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", **form},
        auth=(basic_id, basic_secret),
    )


def test_basic_auth_issues_a_bearer_token_that_works(client, make_partner) -> None:  # type: ignore[no-untyped-def]
    partner = make_partner()
    response = _token(client, partner.id, partner.secret)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    me = client.get("/v1/partners/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json()["id"] == partner.id
    assert "client_secret_hash" not in me.text


def test_the_profile_is_the_partners_public_view(client, make_partner, container) -> None:  # type: ignore[no-untyped-def]
    partner = make_partner(settlement_account="6222020200112233", settlement_currency="CNY")
    me = client.get("/v1/partners/me", headers=partner.auth)
    assert me.status_code == 200
    assert me.json() == container.partners.get(partner.id)
    assert me.json()["settlement_account"] == "****2233"


def test_client_secret_post_works_and_scopes_can_be_narrowed(client, make_partner) -> None:  # type: ignore[no-untyped-def]
    partner = make_partner()
    response = client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": partner.id,
            "client_secret": partner.secret,
            "scope": "partner:read",
        },
    )
    assert response.status_code == 200
    assert response.json()["scope"] == "partner:read"


def test_the_token_is_an_eddsa_jwt_verifiable_with_the_jwks(client, make_partner) -> None:  # type: ignore[no-untyped-def]
    partner = make_partner()
    token = _token(client, partner.id, partner.secret).json()["access_token"]
    keys = client.get("/.well-known/jwks.json").json()["keys"]
    header = jwt.get_unverified_header(token)
    jwk = next(k for k in keys if k["kid"] == header["kid"])
    public_key = jwt.PyJWK(jwk).key
    claims = jwt.decode(token, public_key, algorithms=["EdDSA"], audience="wallet-gateway")
    assert claims["sub"] == partner.id
    assert "d" not in jwk  # the private part is never published


def test_wrong_secret_and_unknown_client_get_the_same_answer(client, make_partner) -> None:  # type: ignore[no-untyped-def]
    partner = make_partner()
    wrong = _token(client, partner.id, partner.secret + "x")
    unknown = _token(client, "ptn_01nonexistent0000000000000", partner.secret)
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "invalid_client"
        assert response.json()["error"] == "invalid_client"
    assert wrong.json()["detail"] == unknown.json()["detail"]
    assert partner.secret not in wrong.text


def test_unsupported_grant_and_excess_scope_are_refused(client, make_partner) -> None:  # type: ignore[no-untyped-def]
    partner = make_partner()
    grant = client.post(
        "/oauth/token", data={"grant_type": "password"}, auth=(partner.id, partner.secret)
    )
    assert grant.status_code == 400 and grant.json()["error"] == "unsupported_grant_type"
    scope = _token(client, partner.id, partner.secret, scope="admin:write")
    assert scope.status_code == 400 and scope.json()["error"] == "invalid_scope"


def test_both_authentication_methods_at_once_is_invalid(client, make_partner) -> None:  # type: ignore[no-untyped-def]
    partner = make_partner()
    response = _token(
        client, partner.id, partner.secret, client_id=partner.id, client_secret=partner.secret
    )
    assert response.status_code == 400


def test_missing_client_authentication_is_a_401_with_a_challenge(client) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/oauth/token", data={"grant_type": "client_credentials"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic")


@pytest.mark.parametrize("used_before", [False, True], ids=["fresh", "already-verified"])
def test_expired_token_is_rejected(client, make_partner, clock, used_before) -> None:  # type: ignore[no-untyped-def]
    """Also when the token was verified (and remembered) while it was still valid."""
    partner = make_partner()
    if used_before:
        assert client.get("/v1/partners/me", headers=partner.auth).status_code == 200
    try:
        clock.advance(timedelta(seconds=1000))
        response = client.get("/v1/partners/me", headers=partner.auth)
    finally:
        clock.advance(timedelta(seconds=-1000))
    assert response.status_code == 401
    assert response.json()["code"] == "token_expired"
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_missing_scope_is_a_403_naming_the_scope(client, make_partner) -> None:  # type: ignore[no-untyped-def]
    partner = make_partner()
    narrow = _token(client, partner.id, partner.secret, scope="events:read").json()["access_token"]
    response = client.get("/v1/partners/me", headers={"Authorization": f"Bearer {narrow}"})
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"
    assert "partner:read" in response.json()["detail"]


def test_a_token_from_another_key_or_audience_is_rejected(client, make_partner, container) -> None:  # type: ignore[no-untyped-def]
    partner = make_partner()
    active = container.tokens.keys.active
    claims = {
        "iss": container.tokens.issuer,
        "sub": partner.id,
        "aud": "wallet-gateway",
        "iat": 1,
        "exp": 4102444800,
        "ver": 1,
        "scope": "partner:read",
    }
    forged = jwt.encode(
        claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": active.kid}
    )
    other_audience = jwt.encode(
        {**claims, "aud": "someone-else"},
        active.private_key,
        algorithm="EdDSA",
        headers={"kid": active.kid},
    )
    unsigned = jwt.encode(claims, None, algorithm="none")  # type: ignore[arg-type]
    for token in (forged, other_audience, unsigned, "not-a-jwt"):
        response = client.get("/v1/partners/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, token
        assert response.json()["code"] == "invalid_token"


@pytest.mark.parametrize("status", ["suspended", "revoked"])
def test_suspended_or_revoked_partners_lose_access_at_once(
    client, make_partner, container, status
) -> None:  # type: ignore[no-untyped-def]
    partner = make_partner()
    assert client.get("/v1/partners/me", headers=partner.auth).status_code == 200
    container.partners.set_status(partner.id, status, actor="test")
    response = client.get("/v1/partners/me", headers=partner.auth)
    assert response.status_code == 401
    assert response.json()["code"] == "token_revoked"
    assert status in response.json()["detail"]
    token = _token(client, partner.id, partner.secret)
    assert token.status_code == 401 and token.json()["code"] == "partner_inactive"


def test_resuming_requires_a_new_token(client, make_partner, container) -> None:  # type: ignore[no-untyped-def]
    partner = make_partner()
    container.partners.set_status(partner.id, "suspended", actor="test")
    container.partners.set_status(partner.id, "active", actor="test")
    assert client.get("/v1/partners/me", headers=partner.auth).status_code == 401
    fresh = _token(client, partner.id, partner.secret).json()["access_token"]
    assert (
        client.get("/v1/partners/me", headers={"Authorization": f"Bearer {fresh}"}).status_code
        == 200
    )


def test_secret_rotation_ends_the_old_secret_and_its_tokens(
    client, make_partner, container
) -> None:  # type: ignore[no-untyped-def]
    partner = make_partner()
    assert client.get("/v1/partners/me", headers=partner.auth).status_code == 200  # now cached
    new_secret = container.partners.rotate_secret(partner.id, actor="test")
    assert client.get("/v1/partners/me", headers=partner.auth).status_code == 401
    assert _token(client, partner.id, partner.secret).status_code == 401
    assert _token(client, partner.id, new_secret).status_code == 200


def test_signing_key_rotation_keeps_old_tokens_valid(client, make_partner, container) -> None:  # type: ignore[no-untyped-def]
    partner = make_partner()
    old_kid = container.tokens.keys.active.kid
    container.tokens.keys.add_key()
    assert container.tokens.keys.active.kid != old_kid
    assert client.get("/v1/partners/me", headers=partner.auth).status_code == 200
    kids = {k["kid"] for k in client.get("/.well-known/jwks.json").json()["keys"]}
    assert {old_kid, container.tokens.keys.active.kid} <= kids


def test_basic_credentials_are_form_url_decoded(client, make_partner) -> None:  # type: ignore[no-untyped-def]
    partner = make_partner()
    raw = f"{partner.id}:{partner.secret.replace('-', '%2D')}"
    header = "Basic " + base64.b64encode(raw.encode()).decode()
    response = client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, headers={"Authorization": header}
    )
    assert response.status_code == 200


def test_rate_limit_headers_and_429(client, make_partner) -> None:  # type: ignore[no-untyped-def]
    partner = make_partner(rate_limit="3/minute")
    responses = [client.get("/v1/partners/me", headers=partner.auth) for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert responses[0].headers["ratelimit-limit"] == "3"
    assert responses[1].headers["ratelimit-remaining"] == "1"
    refused = responses[3]
    assert refused.json()["code"] == "rate_limited"
    assert int(refused.headers["retry-after"]) >= 1
