"""``/_control``: the test and benchmark API (faults, request log, state, settings, tokens).

No authentication: the emulator only listens on 127.0.0.1. The typed client is
``emulator.azure.control.AzureControl``.
"""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
from aiohttp import web

from .core import Emulator
from .faults import FaultRule
from .requestlog import RequestRecord
from .tokens import UserPrincipal

__all__ = ["add_control_routes", "add_discovery_routes"]


_DEFAULT_UPN = "operator@contoso.example"


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(body), status=status, content_type="application/json")


def _bad(message: str, status: int = 400) -> web.Response:
    return _json({"error": message}, status)


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw:
        return {}
    body = json.loads(raw)
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    return body


def add_control_routes(app: web.Application, emu: Emulator) -> None:
    """Register every ``/_control`` route on ``app``."""
    routes = web.RouteTableDef()

    @routes.get("/_control/health")
    async def health(request: web.Request) -> web.Response:
        return _json({"ok": True})

    @routes.post("/_control/reset")
    async def reset(request: web.Request) -> web.Response:
        body = await _body(request)
        emu.reset(
            state=bool(body.get("state", True)),
            faults=bool(body.get("faults", True)),
            log=bool(body.get("log", True)),
            settings=bool(body.get("settings", True)),
        )
        return _json({"ok": True})

    @routes.get("/_control/faults")
    async def list_faults(request: web.Request) -> web.Response:
        return _json([rule.to_dict() for rule in emu.faults.rules()])

    @routes.post("/_control/faults")
    async def add_fault(request: web.Request) -> web.Response:
        try:
            body = await _body(request)
            if "count" in body:
                body["remaining"] = body.pop("count")
            allowed = FaultRule.__dataclass_fields__.keys() - {"id", "hits", "_pattern"}
            unknown = set(body) - allowed
            if unknown:
                return _bad(f"unknown fault fields: {sorted(unknown)}")
            rule = emu.faults.add(FaultRule(**body))
        except (ValueError, TypeError) as exc:
            return _bad(str(exc))
        return _json(rule.to_dict(), 201)

    @routes.delete("/_control/faults")
    async def clear_faults(request: web.Request) -> web.Response:
        emu.faults.clear()
        return _json({"ok": True})

    @routes.get("/_control/requests")
    async def requests(request: web.Request) -> web.Response:
        since = int(request.query.get("since", "0"))
        return _json({"next": emu.log.next_seq - 1, "requests": emu.log.since(since)})

    @routes.delete("/_control/requests")
    async def clear_requests(request: web.Request) -> web.Response:
        emu.log.clear()
        return _json({"ok": True})

    @routes.get("/_control/counters")
    async def counters(request: web.Request) -> web.Response:
        return _json(emu.log.counters_dict())

    @routes.get("/_control/settings")
    async def get_settings(request: web.Request) -> web.Response:
        return _json(emu.settings.to_dict())

    @routes.patch("/_control/settings")
    async def patch_settings(request: web.Request) -> web.Response:
        try:
            emu.settings.update(await _body(request))
        except (ValueError, TypeError) as exc:
            return _bad(str(exc))
        return _json(emu.settings.to_dict())

    @routes.get("/_control/topology")
    async def topology(request: web.Request) -> web.Response:
        return _json(emu.topology.to_dict())

    @routes.get("/_control/nics")
    async def nics(request: web.Request) -> web.Response:
        emu.state.settle_now()
        return _json(emu.network.list_nics())

    @routes.get("/_control/nics/{name}")
    async def get_nic(request: web.Request) -> web.Response:
        emu.state.settle_now()
        nic = emu.state.nics.get(request.match_info["name"].lower())
        return _json(nic) if nic is not None else _bad("no such NIC", 404)

    @routes.put("/_control/nics/{name}")
    async def put_nic(request: web.Request) -> web.Response:
        try:
            body = await _body(request)
        except ValueError as exc:
            return _bad(str(exc))
        return _json(emu.network.set_nic_raw(request.match_info["name"], body))

    @routes.get("/_control/ips/{ip}")
    async def ip_holder(request: web.Request) -> web.Response:
        emu.state.settle_now()
        nic = emu.network.ip_holder(request.match_info["ip"])
        vm = None
        if nic is not None:
            vm = next(
                (
                    v.name
                    for v in emu.topology.vms
                    if any(n.name.lower() == nic.lower() for n in v.nics)
                ),
                None,
            )
        resource = emu.network.holders().get(request.match_info["ip"])
        return _json({"ip": request.match_info["ip"], "nic": nic, "vm": vm, "resource": resource})

    @routes.put("/_control/ips/{ip}")
    async def hold_ip(request: web.Request) -> web.Response:
        try:
            holder = (await _body(request)).get("holder")
        except ValueError as exc:
            return _bad(str(exc))
        if not isinstance(holder, str) or not holder:
            return _bad("holder must be a resource id")
        emu.network.set_foreign_holder(request.match_info["ip"], holder)
        return _json({"ip": request.match_info["ip"], "holder": holder})

    @routes.delete("/_control/ips/{ip}")
    async def let_go_ip(request: web.Request) -> web.Response:
        emu.network.set_foreign_holder(request.match_info["ip"], None)
        return _json({"ok": True})

    @routes.get("/_control/operations")
    async def operations(request: web.Request) -> web.Response:
        emu.state.settle_now()
        return _json([op.to_dict() for op in emu.state.operations.values()])

    @routes.put("/_control/identities/{vm}")
    async def identity(request: web.Request) -> web.Response:
        vm = emu.topology.vm(request.match_info["vm"])
        if vm is None:
            return _bad("no such VM", 404)
        body = await _body(request)
        claims = body.get("claims")
        if claims is not None and not isinstance(claims, dict):
            return _bad("claims must be an object (claim -> value, null removes one)")
        emu.state.set_identity_enabled(vm.name, bool(body.get("enabled", True)))
        if claims is not None:
            emu.state.identity_claims[vm.name.lower()] = claims
        return _json({"vm": vm.name, "enabled": emu.state.identity_enabled[vm.name.lower()]})

    @routes.post("/_control/tokens")
    async def token(request: web.Request) -> web.Response:
        try:
            body = await _body(request)
        except ValueError as exc:
            return _bad(str(exc))
        who = str(body.get("principal", "app"))
        resource = str(body.get("resource", "https://management.azure.com/"))
        roles = body.get("roles")
        if roles is not None and (
            not isinstance(roles, list) or not all(isinstance(r, str) for r in roles)
        ):
            return _bad("roles must be a list of strings")
        if who == "user":
            user = UserPrincipal.named(str(body.get("upn") or _DEFAULT_UPN), body.get("oid"))
            issued = emu.issue_user_token(
                user,
                resource,
                scopes=str(body.get("scopes") or "user_impersonation"),
                roles=roles,
                overrides=body.get("claims") or None,
            )
        else:
            principal = emu.app_principal() if who == "app" else emu.vm_principal(who)
            if principal is None:
                return _bad("no such principal", 404)
            issued = emu.issue_token(principal, resource, body.get("claims") or None, roles)
        access_token = issued.access_token
        if isinstance(body.get("header"), dict):
            access_token = emu.issuer.with_header(access_token, body["header"])
        forge = body.get("forge")
        if not forge:
            return _json({"access_token": access_token, "expires_on": issued.expires_on})
        claims = jwt.decode(access_token, options={"verify_signature": False})
        try:
            return _json({"access_token": emu.issuer.forge(claims, str(forge))})
        except ValueError as exc:
            return _bad(str(exc))

    @routes.get("/_control/keys")
    async def keys(request: web.Request) -> web.Response:
        return _json(emu.issuer.keys())

    @routes.post("/_control/keys/rotate")
    async def rotate_key(request: web.Request) -> web.Response:
        try:
            body = await _body(request)
        except ValueError as exc:
            return _bad(str(exc))
        kid = emu.issuer.rotate(keep_previous=bool(body.get("keep_previous", True)))
        return _json({"kid": kid, "keys": emu.issuer.keys()})

    @routes.delete("/_control/keys/{kid}")
    async def drop_key(request: web.Request) -> web.Response:
        try:
            emu.issuer.drop(request.match_info["kid"])
        except KeyError:
            return _bad("no such key", 404)
        except ValueError as exc:
            return _bad(str(exc), 409)
        return _json({"keys": emu.issuer.keys()})

    app.router.add_routes(routes)


def add_discovery_routes(app: web.Application, emu: Emulator) -> None:
    """OpenID configuration and JWKS, v1 and v2 paths, for any tenant segment.

    Each fetch is logged with target ``issuer`` (how often validators refetch keys).
    """

    def logged(document: Any) -> Any:
        async def handler(request: web.Request) -> web.Response:
            response = _json(document())
            emu.log.add(
                RequestRecord(
                    seq=0, time=time.time(), target="issuer", method=request.method,
                    path=request.path, query=request.query_string, status=response.status,
                    duration_ms=0.0,
                )
            )  # fmt: skip
            return response

        return handler

    openid = logged(lambda: emu.issuer.openid_configuration(emu.arm_base))
    keys = logged(emu.issuer.jwks)
    app.router.add_get("/{tenant}/.well-known/openid-configuration", openid)
    app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", openid)
    app.router.add_get("/{tenant}/discovery/keys", keys)
    app.router.add_get("/{tenant}/discovery/v2.0/keys", keys)
