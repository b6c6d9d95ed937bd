"""Bearer-token checks at the fake ARM, and token validation through the published JWKS."""

from __future__ import annotations

import time

import jwt
import pytest
import requests

from emulator.azure.control import AzureControl, ControlError, ReadyInfo

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


# The claims of a managed identity's app-only v1 token as Azure's activity log records them
# (aud, iss, iat, nbf, exp, aio, appid, appidacr, idp, idtyp, oid, rh, sub, tid, uti, ver,
# xms_tcdt; xms_mirid only for ARM, a first-party audience): docs/local-azure.md.
APP_ONLY_CLAIMS = {
    "aud", "iss", "iat", "nbf", "exp", "aio", "appid", "appidacr", "idp", "idtyp",
    "oid", "rh", "sub", "tid", "uti", "ver", "xms_tcdt",
}  # fmt: skip


def _claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


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
    header = jwt.get_unverified_header(raw["access_token"])
    key = next(jwt.PyJWK(k) for k in jwks["keys"] if k["kid"] == header["kid"])

    claims = jwt.decode(
        raw["access_token"], key, algorithms=["RS256"], audience=audience, issuer=config["issuer"]
    )

    assert header == {"typ": "JWT", "alg": "RS256", "x5t": header["kid"], "kid": header["kid"]}
    assert config["issuer"] == azure_ready.issuer
    assert set(claims) == APP_ONLY_CLAIMS, "a custom audience gets no xms_mirid"
    assert claims["tid"] == azure_ready.tenant_id
    assert claims["oid"] == claims["sub"]
    assert claims["idp"] == claims["iss"]
    assert claims["idtyp"] == "app" and claims["ver"] == "1.0" and claims["appidacr"] == "2"
    assert claims["iat"] == claims["nbf"]
    assert claims["exp"] - claims["iat"] == 86400 + 300  # 24 h from now, back-dated 5 min
    assert "scp" not in claims and "roles" not in claims


def test_only_tokens_for_arm_carry_xms_mirid_by_default(azure_control: AzureControl) -> None:
    custom = _claims(azure_control.token("server01", "api://ipmover"))
    arm = _claims(azure_control.token("server01"))

    assert "xms_mirid" not in custom
    assert arm["xms_mirid"].endswith(
        "/resourcegroups/TestGroup1/providers/Microsoft.Compute/virtualMachines/server01"
    )
    assert set(arm) == APP_ONLY_CLAIMS | {"xms_mirid"}


@pytest.mark.parametrize(("mode", "custom", "arm"), [("all", True, True), ("never", False, False)])
def test_mirid_claim_setting(
    azure_control: AzureControl, mode: str, custom: bool, arm: bool
) -> None:
    azure_control.update_settings(mirid_claim=mode)

    assert ("xms_mirid" in _claims(azure_control.token("server01", "api://ipmover"))) is custom
    assert ("xms_mirid" in _claims(azure_control.token("server01"))) is arm


def test_app_only_tokens_may_carry_app_roles(azure_control: AzureControl) -> None:
    claims = _claims(azure_control.token("server01", "api://ipmover", roles=["IpMover.Node"]))

    assert claims["roles"] == ["IpMover.Node"]
    assert claims["idtyp"] == "app" and "scp" not in claims


def test_user_tokens_are_delegated_v1_tokens(azure_control: AzureControl) -> None:
    plain = _claims(azure_control.user_token("api://ipmover", upn="ops@contoso.example"))
    with_role = _claims(azure_control.user_token("api://ipmover", roles=["IpMover.Operator"]))

    assert plain["scp"] == "user_impersonation"
    assert plain["upn"] == plain["unique_name"] == "ops@contoso.example"
    assert plain["appid"] == "04b07795-8ddb-461a-bbee-02f9e1bf7b46"  # the Azure CLI
    assert plain["appidacr"] == "0" and plain["ver"] == "1.0"
    assert plain["sub"] != plain["oid"], "sub is pairwise for users"
    assert "idtyp" not in plain, "Entra ID emits idtyp in app-only tokens only"
    assert "roles" not in plain
    assert with_role["roles"] == ["IpMover.Operator"]
    assert 3600 <= plain["exp"] - plain["iat"] - 300 <= 5400  # 60 to 90 minutes


def test_arm_accepts_a_rotated_key_and_refuses_a_dropped_one(
    azure_control: AzureControl, azure_ready: ReadyInfo
) -> None:
    first = azure_control.signing_keys()[0]["kid"]
    old_token = azure_control.token("app")

    second = azure_control.rotate_key()
    new_token = azure_control.token("app")
    both = arm_get(azure_ready, nic_path(azure_ready, NIC1), old_token, **API).status_code
    azure_control.drop_key(first)
    dropped = arm_get(azure_ready, nic_path(azure_ready, NIC1), old_token, **API)

    assert jwt.get_unverified_header(new_token)["kid"] == second != first
    assert both == 200
    assert arm_get(azure_ready, nic_path(azure_ready, NIC1), new_token, **API).status_code == 200
    assert dropped.status_code == 401
    assert dropped.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert [k["kid"] for k in azure_control.signing_keys()] == [second]


def test_the_published_key_set_follows_rotation_and_reset(
    azure_control: AzureControl, azure_ready: ReadyInfo
) -> None:
    def published() -> list[str]:
        jwks = requests.get(azure_ready.jwks_uri, verify=azure_ready.ca_file, timeout=5).json()
        return [k["kid"] for k in jwks["keys"]]

    first = published()
    second = azure_control.rotate_key()
    kept = published()
    third = azure_control.rotate_key(keep_previous=False)
    replaced = published()
    azure_control.reset()

    assert kept == [*first, second]
    assert replaced == [*first, third]
    assert published() == first
    with pytest.raises(ControlError):
        azure_control.drop_key(first[0])  # the signing key after the reset
    assert azure_control.requests(target="issuer"), "key fetches are logged"
