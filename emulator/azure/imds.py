"""Instance metadata (one plain-http port per VM) and the Function app's identity endpoint.

IMDS knows which VM asks by the port the request arrived on, as a real VM is known
by its link-local hop. Error bodies follow the IMDS documentation's shapes.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import time
import uuid
from typing import Any

from aiohttp import web

from .arm import retry_after_headers
from .core import Emulator
from .requestlog import RequestRecord

__all__ = ["build_identity_app", "build_imds_app"]

# "Supported API versions" of the IMDS documentation (MicrosoftDocs/azure-compute-docs,
# articles/virtual-machines/instance-metadata-service.md), oldest first as /metadata/versions
# lists them.
IMDS_VERSIONS = [
    "2017-03-01",
    "2017-04-02",
    "2017-08-01",
    "2017-10-01",
    "2017-12-01",
    "2018-02-01",
    "2018-04-02",
    "2018-10-01",
    "2019-02-01",
    "2019-03-11",
    "2019-04-30",
    "2019-06-01",
    "2019-06-04",
    "2019-08-01",
    "2019-08-15",
    "2019-11-01",
    "2020-06-01",
    "2020-07-15",
    "2020-09-01",
    "2020-10-01",
    "2020-12-01",
    "2021-01-01",
    "2021-02-01",
    "2021-03-01",
    "2021-05-01",
    "2021-08-01",
    "2021-10-01",
    "2021-11-01",
    "2021-11-15",
    "2021-12-13",
    "2023-07-01",
    "2023-11-15",
    "2024-03-15",
    "2024-07-17",
    "2025-04-07",
]
# The error of a missing or unknown api-version lists the three newest, newest first.
_NEWEST = sorted(IMDS_VERSIONS, reverse=True)[:3]
_BAD_VERSION = (
    "Bad request. api-version is invalid or was not specified in the request. "
    "For more information refer to aka.ms/azureimds"
)
# The identity category was introduced with 2018-02-01 ("use 2018-02-01 or greater").
_IDENTITY_VERSIONS = frozenset(v for v in IMDS_VERSIONS if v >= "2018-02-01")

# "Version introduced" of compute fields (the documentation's schema tables); a request
# with an older api-version does not get them. Nested fields by dotted path.
_COMPUTE_SINCE = {
    "additionalCapabilities": "2021-11-01",
    "azEnvironment": "2018-10-01",
    "evictionPolicy": "2020-12-01",
    "extendedLocation": "2021-03-01",
    "host": "2021-11-15",
    "hostGroup": "2021-11-15",
    "isHostCompatibilityLayerVm": "2020-06-01",
    "licenseType": "2020-09-01",
    "osProfile": "2020-07-15",
    "osProfile.disablePasswordAuthentication": "2020-10-01",
    "physicalZone": "2023-11-15",
    "placementGroupId": "2017-08-01",
    "plan": "2018-04-02",
    "platformSubFaultDomain": "2021-10-01",
    "priority": "2020-12-01",
    "provider": "2018-10-01",
    "publicKeys": "2018-04-02",
    "resourceGroupName": "2017-08-01",
    "resourceId": "2019-03-11",
    "securityProfile": "2020-06-01",
    "securityProfile.encryptionAtHost": "2021-11-01",
    "securityProfile.securityType": "2021-12-13",
    "storageProfile": "2019-06-01",
    "storageProfile.imageReference.communityGalleryImageId": "2023-07-01",
    "storageProfile.imageReference.exactVersion": "2023-07-01",
    "storageProfile.imageReference.sharedGalleryImageId": "2023-07-01",
    "storageProfile.osDisk.encryptionSettings.diskEncryptionKey": "2021-11-01",
    "storageProfile.osDisk.encryptionSettings.keyEncryptionKey": "2021-11-01",
    "storageProfile.resourceDisk": "2021-02-01",
    "subscriptionId": "2017-08-01",
    "tags": "2017-08-01",
    "tagsList": "2019-06-04",
    "userData": "2021-01-01",
    "virtualMachineScaleSet": "2021-03-01",
    "vmScaleSetName": "2017-12-01",
    "zone": "2017-12-01",
}


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        text=json.dumps(body), status=status, headers=headers, content_type="application/json"
    )


def _bad_version() -> web.Response:
    """A missing or unknown api-version: the documented error with the newest versions."""
    return _json({"error": _BAD_VERSION, "newest-versions": _NEWEST}, 400)


def _vm_of(emu: Emulator, request: web.Request) -> str:
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    port = sockname[1] if sockname else 0
    return emu.imds_ports.get(port, "")


def _public_ip(resource_id: str) -> str:
    # Public IP resources are not modelled: derive a stable address from the id.
    digest = hashlib.sha256(resource_id.lower().encode()).digest()
    return f"20.{digest[0]}.{digest[1]}.{max(1, digest[2])}"


def network_json(emu: Emulator, vm_name: str) -> dict[str, Any]:
    """``/metadata/instance/network`` for a VM: its NICs as last applied to the host."""
    vm = emu.topology.vm(vm_name)
    interfaces = []
    for nic_spec in vm.nics if vm else ():
        nic = emu.state.nics.get(nic_spec.name.lower())
        if nic is None:
            continue
        configs = emu.state.applied.get(nic_spec.name.lower(), [])
        addresses, subnets = [], []
        for config in configs:
            props = config.get("properties", {})
            public = props.get("publicIPAddress", {}).get("id")
            addresses.append(
                {
                    "privateIpAddress": props.get("privateIPAddress", ""),
                    "publicIpAddress": _public_ip(public) if public else "",
                }
            )
            subnet_id = props.get("subnet", {}).get("id", "")
            prefix = _subnet_prefix(emu, subnet_id)
            if prefix is not None:
                entry = {"address": str(prefix.network_address), "prefix": str(prefix.prefixlen)}
                if entry not in subnets:
                    subnets.append(entry)
        mac = nic["properties"].get("macAddress", "").replace("-", "")
        interfaces.append(
            {
                "ipv4": {"ipAddress": addresses, "subnet": subnets},
                "ipv6": {"ipAddress": []},
                "macAddress": mac,
            }
        )
    return {"interface": interfaces}


def _subnet_prefix(emu: Emulator, subnet_id: str) -> Any:
    for vnet in emu.topology.vnets:
        for subnet in vnet.subnets:
            if emu.state.ids.subnet(vnet.name, subnet.name).lower() == subnet_id.lower():
                return ipaddress.ip_network(subnet.prefix, strict=False)
    return None


def compute_json(
    emu: Emulator, vm_name: str, api_version: str = IMDS_VERSIONS[-1]
) -> dict[str, Any]:
    """``/metadata/instance/compute`` for a VM, with the fields ``api_version`` has.

    Every primitive is a string; a field that does not apply is an empty string
    (the documentation: "missing or inapplicable values are always included").
    """
    topology = emu.topology
    vm = topology.vm(vm_name)
    assert vm is not None
    tags = emu.state.nics.get(vm.nics[0].name.lower(), {}).get("tags", {})
    disk_id = (
        f"/subscriptions/{topology.subscription_id}/resourceGroups/{topology.group_of(vm)}"
        f"/providers/Microsoft.Compute/disks/{vm.name}_OsDisk_1_{vm.vm_id.replace('-', '')}"
    )
    document = {
        "additionalCapabilities": {"hibernationEnabled": "false"},
        "azEnvironment": "AzurePublicCloud",
        "evictionPolicy": "",
        "extendedLocation": {"name": "", "type": ""},
        "host": {"id": ""},
        "hostGroup": {"id": ""},
        "isHostCompatibilityLayerVm": "false",
        "licenseType": "",
        "location": topology.location,
        "name": vm.name,
        "offer": "RHEL",
        "osProfile": {
            "adminUsername": "azureuser",
            "computerName": vm.name,
            "disablePasswordAuthentication": "true",
        },
        "osType": "Linux",
        "physicalZone": "",
        "placementGroupId": "",
        "plan": {"name": "", "product": "", "publisher": ""},
        "platformFaultDomain": "0",
        "platformSubFaultDomain": "",
        "platformUpdateDomain": "0",
        "priority": "",
        "provider": "Microsoft.Compute",
        "publicKeys": [],
        "publisher": "RedHat",
        "resourceGroupName": topology.group_of(vm),
        "resourceId": emu.state.ids.vm(vm.name),
        "securityProfile": {
            "encryptionAtHost": "false",
            "secureBootEnabled": "false",
            "securityType": "",
            "virtualTpmEnabled": "false",
        },
        "sku": "8-lvm-gen2",
        "storageProfile": {
            "dataDisks": [],
            "imageReference": {
                "communityGalleryImageId": "",
                "exactVersion": "",
                "id": "",
                "offer": "RHEL",
                "publisher": "RedHat",
                "sharedGalleryImageId": "",
                "sku": "8-lvm-gen2",
                "version": "latest",
            },
            "osDisk": {
                "caching": "ReadWrite",
                "createOption": "FromImage",
                "diffDiskSettings": {"option": ""},
                "diskSizeGB": "64",
                "encryptionSettings": {
                    "diskEncryptionKey": {"secretUrl": "", "sourceVault": {"id": ""}},
                    "enabled": "false",
                    "keyEncryptionKey": {"keyUrl": "", "sourceVault": {"id": ""}},
                },
                "image": {"uri": ""},
                "managedDisk": {"id": disk_id, "storageAccountType": "Premium_LRS"},
                "name": disk_id.rsplit("/", 1)[1],
                "osType": "Linux",
                "vhd": {"uri": ""},
                "writeAcceleratorEnabled": "false",
            },
            "resourceDisk": {"size": "8192"},
        },
        "subscriptionId": topology.subscription_id,
        "tags": ";".join(f"{k}:{v}" for k, v in tags.items()),
        "tagsList": [{"name": k, "value": v} for k, v in tags.items()],
        "userData": "",
        "version": "8.6.2022070801",
        "virtualMachineScaleSet": {"id": ""},
        "vmId": vm.vm_id,
        "vmScaleSetName": "",
        "vmSize": vm.size,
        "zone": "",
    }
    for path, since in _COMPUTE_SINCE.items():
        if api_version < since:
            *parents, leaf = path.split(".")
            node: Any = document
            for part in parents:
                node = node.get(part, {}) if isinstance(node, dict) else {}
            if isinstance(node, dict):
                node.pop(leaf, None)
    return document


def _fault_response(
    emu: Emulator, request: web.Request, target: str, vm: str | None, record: RequestRecord
) -> Any:
    rule = emu.faults.take(target, request.method, request.path, vm)
    if rule is None:
        return None
    record.fault = rule.action
    if rule.action == "drop":
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=499)
    if rule.action == "delay":
        return rule
    headers = retry_after_headers(rule.retry_after) if rule.retry_after is not None else None
    return _json(
        {
            "error": rule.code,
            "error_description": rule.message or f"Injected fault ({rule.status}).",
        },
        status=rule.status,
        headers=headers,
    )


async def _token(emu: Emulator, request: web.Request, vm_name: str) -> web.Response:
    query = request.query
    if request.headers.get("Metadata", "").lower() != "true":
        return _json(
            {
                "error": "invalid_request",
                "error_description": "Required metadata header not specified",
            },
            400,
        )
    if query.get("api-version") not in _IDENTITY_VERSIONS:
        return _bad_version()
    resource = query.get("resource")
    if not resource:
        return _json(
            {
                "error": "invalid_request",
                "error_description": "Required audience parameter not specified",
            },
            400,
        )
    principal = emu.vm_principal(vm_name)
    enabled = emu.state.identity_enabled.get(vm_name.lower(), False)
    selector_ok = all(
        query.get(name) in (None, value)
        for name, value in (
            ("client_id", principal.client_id if principal else None),
            ("object_id", principal.object_id if principal else None),
            ("msi_res_id", principal.resource_id if principal else None),
        )
    )
    if principal is None or not enabled or not selector_ok:
        return _json({"error": "invalid_request", "error_description": "Identity not found"}, 400)
    token = emu.issue_token(principal, resource, emu.state.identity_claims.get(vm_name.lower()))
    lifetime = str(token.expires_on - int(time.time()))
    return _json(
        {
            "access_token": token.access_token,
            "refresh_token": "",
            "client_id": principal.client_id,
            "expires_in": lifetime,
            "expires_on": str(token.expires_on),
            "ext_expires_in": lifetime,
            "not_before": str(token.not_before),
            "resource": resource,
            "token_type": "Bearer",
        }
    )


def _instance(emu: Emulator, request: web.Request, vm_name: str, tail: str) -> web.Response:
    if request.headers.get("Metadata", "").lower() != "true":
        return _json({"error": "Bad request. Required metadata header not specified"}, 400)
    version = request.query.get("api-version")
    if version not in IMDS_VERSIONS:
        return _bad_version()
    document: Any = {
        "compute": compute_json(emu, vm_name, version),
        "network": network_json(emu, vm_name),
    }
    for part in [p for p in tail.split("/") if p]:
        if isinstance(document, dict) and part in document:
            document = document[part]
        elif isinstance(document, list) and part.isdigit() and int(part) < len(document):
            document = document[int(part)]
        else:
            return _json({"error": "Not found"}, 404)
    if request.query.get("format") == "text":
        if isinstance(document, dict | list):
            text = "\n".join(
                str(k) for k in (document if isinstance(document, dict) else range(len(document)))
            )
        else:
            text = str(document)
        return web.Response(text=text, content_type="text/plain")
    return _json(document)


def build_imds_app(emu: Emulator) -> web.Application:
    """One aiohttp app serving every VM's IMDS port."""

    async def handle(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        vm_name = _vm_of(emu, request)
        record = RequestRecord(
            seq=0, time=time.time(), target="imds", method=request.method, path=request.path,
            query=request.query_string, status=0, duration_ms=0.0, vm=vm_name,
            principal=emu.vm_principal(vm_name).object_id if emu.vm_principal(vm_name) else None,
            client_request_id=request.headers.get("x-ms-client-request-id"),
        )  # fmt: skip
        emu.state.settle(time.time())
        response = _fault_response(emu, request, "imds", vm_name, record)
        if isinstance(response, web.Response):
            pass
        else:
            if response is not None:  # a delay rule
                await asyncio.sleep(response.delay)
            path = request.path
            if request.method != "GET":
                response = _json({"error": "Method not allowed"}, 405)
            elif path == "/metadata/identity/oauth2/token":
                response = await _token(emu, request, vm_name)
            elif path == "/metadata/versions":
                response = _json({"apiVersions": IMDS_VERSIONS})
            elif path == "/metadata/instance" or path.startswith("/metadata/instance/"):
                response = _instance(emu, request, vm_name, path[len("/metadata/instance") :])
            else:
                response = _json({"error": "Not found"}, 404)
        response.headers["Server"] = "IMDS/150.870.65.1325"
        record.status = 0 if record.fault == "drop" else response.status
        record.duration_ms = round((time.perf_counter() - started) * 1000, 3)
        emu.log.add(record)
        return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def build_identity_app(emu: Emulator) -> web.Application:
    """The App Service / Functions managed-identity endpoint (``IDENTITY_ENDPOINT``)."""

    async def token(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        principal = emu.app_principal()
        record = RequestRecord(
            seq=0, time=time.time(), target="identity", method=request.method, path=request.path,
            query=request.query_string, status=0, duration_ms=0.0, principal=principal.object_id,
        )  # fmt: skip
        response = _fault_response(emu, request, "identity", None, record)
        if not isinstance(response, web.Response):
            if response is not None:
                await asyncio.sleep(response.delay)
            response = _identity_token(emu, request)
        record.status = 0 if record.fault == "drop" else response.status
        record.duration_ms = round((time.perf_counter() - started) * 1000, 3)
        emu.log.add(record)
        return response

    app = web.Application()
    app.router.add_get("/msi/token", token)
    return app


def _identity_token(emu: Emulator, request: web.Request) -> web.Response:
    def error(status: int, message: str) -> web.Response:
        return _json(
            {"statusCode": status, "message": message, "correlationId": str(uuid.uuid4())}, status
        )

    if request.headers.get("X-IDENTITY-HEADER") != emu.app_identity_header:
        return error(400, "The X-IDENTITY-HEADER header is missing or does not match.")
    if not request.query.get("api-version"):
        return error(400, "The api-version parameter is required.")
    resource = request.query.get("resource")
    if not resource:
        return error(400, "The resource parameter is required.")
    principal = emu.app_principal()
    if request.query.get("client_id") not in (None, principal.client_id):
        return error(400, "No managed identity matches the specified client_id.")
    issued = emu.issue_token(principal, resource)
    return _json(
        {
            "access_token": issued.access_token,
            "expires_on": str(issued.expires_on),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": principal.client_id,
        }
    )
