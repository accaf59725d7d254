"""The README's walkthrough, run verbatim (only the port differs) against a real server."""

from __future__ import annotations

import re
import subprocess

from tests.e2e.conftest import ROOT


def _walkthrough() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("<!-- walkthrough:start -->")[1].split("<!-- walkthrough:end -->")[0]
    return re.search(r"```bash\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]


def test_the_readme_walkthrough_works(live_gateway) -> None:  # type: ignore[no-untyped-def]
    script = _walkthrough().replace("127.0.0.1:8080", f"127.0.0.1:{live_gateway.port}")
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=ROOT,
        env=live_gateway.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert '"kind":"wallet"' in out and '"name":"Demo Wallet"' in out  # step 3
    assert '"status":"active"' in out  # step 6: the link is verified
    assert '"status":"succeeded"' in out  # step 7: the top-up moved money
    assert '"available":{"value":"49900.00","currency":"CNY"}' in out  # step 8
    assert "HTTP/1.1 401" in out and "application/problem+json" in out  # step 4
    assert '"code": "unauthorized"' in out
    assert 'gateway_http_requests_total{method="GET",operation="partners.me",status="200"}' in out
    assert "wgs_" not in live_gateway.logs()  # the secret never reached the server's logs
    assert (
        '"provider":"gsma_mm"' in out and '"status":"processing"' in out
    )  # step 9: the payout is on its way
    # step 10: through WeChat Pay and Alipay too (their sandboxes answer processing/DEALING)
    assert '"provider":"wechatpay"' in out and '"provider":"alipay"' in out
    assert '"status":"failed"' not in out
