"""Bearer-token checks at the fake ARM, and token validation through the published JWKS."""

from __future__ import annotations

import time

import jwt
import pytest
import requests

from emulator.azure.control import AzureControl, ReadyInfo

from .conftest import NIC1
from .helpers import arm_get, nic_path

API = {"api-version": "2026-03-01"}


def test_request_without_token_gets_arm_401(azure_ready: ReadyInfo) -> None:
    response = arm_get(azure_ready, nic_path(azure_ready, NIC1), None, **API)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "AuthenticationFailed"
    assert set(response.json()["error"]) == {"code", "message"}  # ARM's envelope, no details
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer authorization_uri="https://login.windows.net/"')
    assert 'error="invalid_token"' in challenge


@pytest.mark.parametrize(
    ("token_args", "code"),
    [
        ({"forge": "bad-signature"}, "InvalidAuthenticationToken"),
        ({"forge": "alg-none"}, "InvalidAuthenticationToken"),
        ({"resource": "api://ipmover"}, "InvalidAuthenticationTokenAudience"),
        ({"claims": {"exp": int(time.time()) - 60}}, "ExpiredAuthenticationToken"),
        (
            {"claims": {"iss": "https://sts.windows.net/other-tenant/"}},
            "InvalidAuthenticationTokenTenant",
        ),
    ],
)
def test_bad_tokens_get_401_with_arm_codes(
    azure_control: AzureControl, azure_ready: ReadyInfo, token_args: dict, code: str
) -> None:
    token = azure_control.token("app", **token_args)

    response = arm_get(azure_ready, nic_path(azure_ready, NIC1), token, **API)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == code
    assert "WWW-Authenticate" in response.headers


def test_both_arm_audiences_are_accepted(
    azure_control: AzureControl, azure_ready: ReadyInfo
) -> None:
    for resource in ("https://management.azure.com", "https://management.core.windows.net/"):
        token = azure_control.token("server01", resource)
        assert arm_get(azure_ready, nic_path(azure_ready, NIC1), token, **API).status_code == 200


def test_imds_token_validates_against_published_jwks(azure_ready: ReadyInfo) -> None:
    audience = "api://ipmover"
    raw = requests.get(
        f"{azure_ready.imds['server02']}/metadata/identity/oauth2/token",
        params={"api-version": "2018-02-01", "resource": audience},
        headers={"Metadata": "true"},
        timeout=5,
    ).json()
    config = requests.get(azure_ready.openid_config, verify=azure_ready.ca_file, timeout=5).json()
    jwks = requests.get(config["jwks_uri"], verify=azure_ready.ca_file, timeout=5).json()
    kid = jwt.get_unverified_header(raw["access_token"])["kid"]
    key = next(jwt.PyJWK(k) for k in jwks["keys"] if k["kid"] == kid)

    claims = jwt.decode(
        raw["access_token"], key, algorithms=["RS256"], audience=audience, issuer=config["issuer"]
    )

    assert config["issuer"] == azure_ready.issuer
    assert claims["tid"] == azure_ready.tenant_id
    assert claims["oid"] == claims["sub"]
    assert claims["idtyp"] == "app" and claims["ver"] == "1.0" and claims["appidacr"] == "2"
    assert claims["xms_mirid"].endswith(
        "/resourcegroups/TestGroup1/providers/Microsoft.Compute/virtualMachines/server02"
    )
    assert claims["exp"] - claims["iat"] >= 86400


def test_mirid_can_be_limited_to_arm_audience(azure_control: AzureControl) -> None:
    azure_control.update_settings(mirid_claim="arm-only")

    custom = jwt.decode(
        azure_control.token("server01", "api://ipmover"), options={"verify_signature": False}
    )
    arm = jwt.decode(azure_control.token("server01"), options={"verify_signature": False})

    assert "xms_mirid" not in custom
    assert "xms_mirid" in arm
