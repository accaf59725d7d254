"""Another partner's link is a 404 on every sub-resource, and touching it changes nothing."""

from __future__ import annotations

from tests.flows import create_active_link, link_body, post_json


def test_another_partners_link_transactions_are_a_404(
    client, container, core, make_partner
) -> None:  # type: ignore[no-untyped-def]
    owner = make_partner()
    link = create_active_link(client, container, core, owner)
    intruder = make_partner()
    response = client.get(f"/v1/links/{link['id']}/transactions", headers=intruder.auth)
    assert response.status_code == 404
    assert response.json()["code"] == "link_not_found"
    assert client.get(f"/v1/links/{link['id']}/transactions", headers=owner.auth).status_code == 200


def test_another_partner_cannot_resend_the_code(client, container, core, make_partner) -> None:  # type: ignore[no-untyped-def]
    owner = make_partner()
    mobile = "+8613700007777"
    created = post_json(client, "/v1/links", owner, link_body(core.open_account(mobile=mobile)))
    link = created.json()
    sent = len(container.notifier.messages(to=mobile, limit=100))
    intruder = make_partner()
    response = post_json(client, f"/v1/links/{link['id']}/otp", intruder)
    assert response.status_code == 404
    assert response.json()["code"] == "link_not_found"
    assert len(container.notifier.messages(to=mobile, limit=100)) == sent  # no text went out
    # The owner's allowance of codes is untouched.
    assert post_json(client, f"/v1/links/{link['id']}/otp", owner).status_code == 200
