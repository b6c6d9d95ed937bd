"""The emulator's shared parts, wired together once and handed to every server."""

from __future__ import annotations

import copy
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .faults import FaultInjector
from .network import NetworkService
from .requestlog import RequestLog
from .settings import Settings
from .state import AzureState
from .throttling import Throttler
from .tokens import IssuedToken, Principal, TokenIssuer, UserPrincipal, is_arm_audience
from .topology import Topology

__all__ = ["Emulator"]


@dataclass
class Emulator:
    """State, settings and services shared by the ARM, IMDS and identity servers."""

    state: AzureState
    settings: Settings
    issuer: TokenIssuer
    initial_settings: Settings = field(init=False)
    network: NetworkService = field(init=False)
    faults: FaultInjector = field(default_factory=FaultInjector)
    log: RequestLog = field(default_factory=RequestLog)
    throttler: Throttler = field(init=False)
    arm_base: str = ""
    app_identity_header: str = field(default_factory=lambda: uuid.uuid4().hex)
    imds_ports: dict[int, str] = field(default_factory=dict)  # listening port -> VM name
    imds_urls: dict[str, str] = field(default_factory=dict)  # VM name -> base URL

    def __post_init__(self) -> None:
        self.initial_settings = copy.deepcopy(self.settings)
        self.network = NetworkService(self.state, self.settings)
        self.throttler = Throttler(self.settings)

    @classmethod
    def create(cls, topology: Topology, directory: Path | None, settings: Settings) -> Emulator:
        """Open (or initialise) the state in ``directory`` and build the services."""
        state = AzureState.open(directory, topology) if directory else AzureState(topology, None)
        issuer = TokenIssuer(directory, state.topology.tenant_id)
        return cls(state=state, settings=settings, issuer=issuer)

    @property
    def topology(self) -> Topology:
        """The topology in effect (from the state file when one existed)."""
        return self.state.topology

    def set_arm_base(self, base_url: str) -> None:
        """Record where the ARM server listens; the token issuer lives there too."""
        self.arm_base = base_url
        self.network.base_url = base_url
        self.issuer.issuer = f"{base_url}/{self.topology.tenant_id}/"

    # -- identities -------------------------------------------------------------------

    def vm_principal(self, vm_name: str) -> Principal | None:
        """The system-assigned identity of VM ``vm_name`` (None if no such VM)."""
        vm = self.topology.vm(vm_name)
        if vm is None:
            return None
        return Principal(
            name=vm.name,
            object_id=vm.principal_id,
            client_id=str(uuid.uuid5(uuid.UUID(vm.principal_id), "client")),
            resource_id=self.state.ids.vm_mirid(vm.name),
        )

    def app_principal(self) -> Principal:
        """The Function app's identity."""
        app = self.topology.app_identity
        return Principal(
            name=app.name,
            object_id=app.principal_id,
            client_id=app.client_id,
            resource_id=self.state.ids.site_mirid(app.name),
        )

    def principal_name(self, object_id: str | None) -> str | None:
        """A readable name for an object id seen in a token (VM or app name)."""
        if object_id is None:
            return None
        if object_id == self.topology.app_identity.principal_id:
            return self.topology.app_identity.name
        vm = next((v for v in self.topology.vms if v.principal_id == object_id), None)
        return vm.name if vm else object_id

    def issue_token(
        self,
        principal: Principal,
        resource: str,
        overrides: dict[str, Any] | None = None,
        roles: list[str] | None = None,
    ) -> IssuedToken:
        """An app-only token as the identity endpoints hand it out, honouring ``mirid_claim``
        (by default only tokens for ARM carry ``xms_mirid``, a first-party-only claim)."""
        mode = self.settings.mirid_claim
        include_mirid = mode == "all" or (mode == "arm-only" and is_arm_audience(resource))
        return self.issuer.issue(
            principal,
            resource,
            self.settings.token_lifetime,
            time.time(),
            include_mirid,
            overrides,
            roles,
        )

    def issue_user_token(
        self,
        user: UserPrincipal,
        resource: str,
        *,
        scopes: str = "user_impersonation",
        roles: list[str] | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> IssuedToken:
        """A delegated token of ``user`` (an operator signed in to the Azure CLI)."""
        return self.issuer.issue_user(
            user, resource, time.time(), scopes=scopes, roles=roles, overrides=overrides
        )

    # -- control ----------------------------------------------------------------------

    def reset(
        self, *, state: bool = True, faults: bool = True, log: bool = True, settings: bool = True
    ) -> None:
        """Return to a known starting point (used between tests)."""
        if faults:
            self.faults.clear()
        if log:
            self.log.clear()
            self.throttler.reset()
        if settings:
            for name, value in self.initial_settings.to_dict().items():
                setattr(self.settings, name, value)
        if state:
            self.state.reset()
            self.state.save()
            self.issuer.reset_keys()
            self.network.restart_alternation()
