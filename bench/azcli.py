"""The baseline: the vendor's start.sh/stop.sh with a real azure-cli, against the local Azure.

azure-cli comes from PyPI into its own virtual environment, ``bench/.venv-az`` (ignored by
git; created on first use, about 400 MB and a minute or two). Each VM of the seed topology
gets what the article's VMs have:

- its own az configuration directory (``AZURE_CONFIG_DIR``), with the local ARM registered
  as a custom cloud and made active (``az cloud register`` / ``az cloud set``);
- the local Azure's CA trusted (``REQUESTS_CA_BUNDLE``: az talks https through requests);
- its managed identity: ``az login --identity`` goes through msal's ManagedIdentityClient,
  which asks ``$AZURE_POD_IDENTITY_AUTHORITY_HOST/metadata/identity/oauth2/token`` (default
  ``http://169.254.169.254``) when no App Service / Service Fabric / Azure ML / Arc variable
  is set; so that variable points it at the VM's own local IMDS. The token's audience is
  the cloud's ``active_directory_resource_id`` (``https://management.core.windows.net/``),
  which the local ARM accepts;
- ``hostname`` answering the VM's name (the scripts pick their NIC by host name): a
  one-line shim first on PATH, then azure-cli's ``bin`` (the scripts call ``az``).

The local Azure does no RBAC, so the VM identities may write the NICs; in Azure the article
grants each VM **Owner** on the resource group for this.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from emulator.stack import LocalStack

from .common import REPO_ROOT

AZ_VENV = REPO_ROOT / "bench" / ".venv-az"
AZ = AZ_VENV / "bin" / "az"
# Pinned so a rerun measures the same client; the newest on PyPI when this was written.
AZURE_CLI_VERSION = "2.91.0"
VENDOR_SCRIPTS = REPO_ROOT / "bench" / "vendor"
CLOUD = "LocalAzure"
# Variables that would send msal to another identity endpoint than the VM's IMDS.
_IDENTITY_VARS = (
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
)


def ensure_azure_cli() -> str:
    """Install azure-cli into bench/.venv-az unless it is there; return ``az version``."""
    if not AZ.exists():
        print(f"installing azure-cli {AZURE_CLI_VERSION} into {AZ_VENV} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(AZ_VENV)], check=True)
        pip = [str(AZ_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, f"azure-cli=={AZURE_CLI_VERSION}"], check=True)
    result = subprocess.run(
        [str(AZ), "version", "--query", '"azure-cli"', "-o", "tsv"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "AZURE_CORE_COLLECT_TELEMETRY": "no"},
    )
    return result.stdout.strip()


def cloud_register_args(arm: str) -> list[str]:
    """``az cloud register`` for the local ARM at ``arm`` (https://127.0.0.1:PORT).

    ``--skip-endpoint-discovery``: otherwise az fetches ``{arm}/metadata/endpoints``, which
    the local ARM does not serve (401). The Entra ID endpoint is required by az but never
    called for a managed identity; it points at the local server so nothing leaves the
    machine."""
    return [
        "cloud",
        "register",
        "--name",
        CLOUD,
        "--skip-endpoint-discovery",
        "--endpoint-resource-manager",
        f"{arm}/",
        "--endpoint-active-directory",
        arm,
        "--endpoint-active-directory-resource-id",
        "https://management.core.windows.net/",
    ]


class AzNode:
    """One VM of the seed topology as the vendor scripts see it: its az, identity, name."""

    def __init__(self, stack: LocalStack, vm: str, work_dir: Path) -> None:
        self.vm = vm
        self.dir = work_dir / f"az-{vm}"
        shim_dir = self.dir / "bin"
        shim_dir.mkdir(parents=True, exist_ok=True)
        hostname = shim_dir / "hostname"
        hostname.write_text(f"#!/bin/sh\necho {vm}\n")
        hostname.chmod(0o755)
        env = {k: v for k, v in os.environ.items() if k not in _IDENTITY_VARS}
        env.update(
            PATH=f"{shim_dir}:{AZ.parent}:/usr/bin:/bin",
            AZURE_CONFIG_DIR=str(self.dir / "azure"),
            REQUESTS_CA_BUNDLE=stack.ready.ca_file,
            AZURE_POD_IDENTITY_AUTHORITY_HOST=stack.ready.imds[vm],
            # A VM would send telemetry to Microsoft; here there is no network for it.
            AZURE_CORE_COLLECT_TELEMETRY="no",
            # `az logout` builds an msal app for the cloud's authority, and msal would ask
            # login.microsoftonline.com to validate an authority it does not know (the local
            # one). az's documented switch for Azure Stack turns that off.
            AZURE_CORE_INSTANCE_DISCOVERY="false",
        )
        self.env = env
        self._az("cloud", "unregister", "--name", CLOUD, check=False)
        self._az(*cloud_register_args(stack.ready.arm))
        self._az("cloud", "set", "--name", CLOUD)

    def _az(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["az", *args], env=self.env, capture_output=True, text=True, check=False
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"az {' '.join(args)} on {self.vm}: {result.stderr.strip()}")
        return result

    def start(self, script: str) -> subprocess.Popen[str]:
        """Start bench/vendor/<script> on this VM (no wait); stdout and stderr together."""
        return subprocess.Popen(
            ["sh", str(VENDOR_SCRIPTS / script)],
            env=self.env,
            cwd=self.dir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group (see common.run_concurrently)
        )
