"""Markdown for docs/benchmarks.md, from the sections' results (written by ``python -m bench``)."""

from __future__ import annotations

import json
import math
import pickle
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .azcli import cloud_register_args
from .client import ClientFigures
from .common import REPO_ROOT
from .pacemaker import carry_over
from .races import OUTCOMES, SCENARIOS, RaceResult
from .scale import LAYOUT_LABELS, ScaleRun
from .scale import NIC_UPDATE as SCALE_NIC_UPDATE
from .timing import CASES, CaseResult, Setting, TimingResult

# Figures of the last run (ignored by git): the report's text can be redone without
# measuring again, e.g. after a wording fix.
LAST_RUN = REPO_ROOT / "bench" / ".last-run.pickle"
ASYNC_10: Setting = ("async", 10.0)  # NIC updates answered Updating, Retry-After: 10
SYNC: Setting = ("sync", 10.0)  # answered in the PUT: no Retry-After is sent


def _setting_title(setting: Setting) -> str:
    mode, retry_after = setting
    if mode == "sync":
        return "NIC updates answered in the PUT (`Succeeded`, no `Retry-After`)"
    return f"NIC updates answered `Updating`, ARM `Retry-After: {retry_after:g}`" + (
        " (as recorded)" if retry_after == 10 else ""
    )


@dataclass
class Report:
    """Everything one run of the benchmark measured, as far as it got."""

    command: str
    machine: dict[str, str]
    quick: bool
    az_version: str | None = None
    timing: TimingResult | None = None
    races: RaceResult | None = None
    scale: list[ScaleRun] | None = None
    scale_sizes: tuple[int, ...] = ()
    scale_layouts: tuple[str, ...] = ()
    client: ClientFigures | None = None
    seconds: float | None = None  # whole run; None while it is still going
    notes: list[str] = field(default_factory=list)

    def write(self, path: Path) -> None:
        """Write the Markdown file (atomically, so a reader never sees half of it), and keep
        the figures in bench/.last-run.pickle so ``--render`` can redo the text alone."""
        tmp = path.with_suffix(".tmp")
        # Section 5 (python -m bench.pacemaker, needs root) is measured on its own: keep it.
        old = path.read_text() if path.exists() else ""
        tmp.write_text(carry_over(old, self.markdown()))
        tmp.replace(path)
        LAST_RUN.write_bytes(pickle.dumps(self))

    @staticmethod
    def load_last() -> Report:
        """The figures of the last run on this machine (see ``write``)."""
        report = pickle.loads(LAST_RUN.read_bytes())
        if not isinstance(report, Report):
            raise TypeError(f"{LAST_RUN} holds no report")
        return report

    def markdown(self) -> str:
        parts = [self._header()]
        summary = self._summary()
        if summary:
            parts.append(summary)
        if self.timing:
            parts.append(_timing(self.timing, self.az_version))
        if self.races:
            parts.append(_races(self.races))
        if self.scale is not None:
            parts.append(_scale(self.scale, self.scale_sizes, self.scale_layouts))
        if self.client:
            parts.append(_client(self.client))
        parts.append(_caveats())
        return "\n\n".join(parts) + "\n"

    def _header(self) -> str:
        m = self.machine
        took = (
            f"{self.seconds / 60:.1f} minutes"
            if self.seconds is not None
            else "**incomplete: the run stopped before its end**"
        )
        lines = [
            "# Benchmarks",
            "",
            "Written by the benchmark itself; do not edit by hand, run it again:",
            "",
            "```sh",
            ".venv/bin/python -m bench            # everything, 20 to 35 minutes here",
            ".venv/bin/python -m bench --quick    # fewer runs and sizes, a few minutes",
            "```",
            "",
            "Everything runs on this machine against the project's local stand-ins: the",
            "local Azure (ARM network API with NIC updates that take a set time and answer",
            "`Retry-After`, IMDS per VM, throttling) and the local Functions host running",
            "the mover ([local Azure](local-azure.md)). Each figure stands beside its",
            "baseline **from the same run**, medians of several runs, because a 2-core",
            "machine is noisy; compare the ratios more than the seconds.",
            "",
            "| | |",
            "|---|---|",
            f"| command | `{self.command}`{' (quick)' if self.quick else ''} |",
            f"| date | {m['date']} |",
            f"| git commit | {m['commit']} |",
            f"| machine | {m['nproc']} cores, {m['cpu']}, {m['ram']} RAM |",
            f"| system | {m['os']}, Python {m['python']} |",
            f"| whole run took | {took} |",
        ]
        lines += [f"\n{note}" for note in self.notes]
        return "\n".join(lines)

    def _summary(self) -> str:
        """The key figures in a few lines (each from the sections below)."""
        lines = []
        if self.timing and ASYNC_10 in self.timing.cases:
            table = self.timing.cases[ASYNC_10]
            take, switch, start = table["takeover"], table["switchover"], table["start"]
            o, v = take["ours"].median_seconds(), take["vendor"].median_seconds()
            vendor_take = (
                f"{_s(v)} s"
                if take["vendor"].ok_samples
                else f"failed in {len(take['vendor'].samples) - len(take['vendor'].ok_samples)}"
                f" of {len(take['vendor'].samples)} runs (the IP stays on the dead node)"
            )
            lines.append(
                f"- **Takeover** from a crashed holder (NIC updates of "
                f"{self.timing.nic_update:g} s answered `Updating`, ARM `Retry-After: 10`): "
                f"ours {_s(o)} s (floor "
                f"{_s(take['ours'].median_floor())} s); the vendor's scripts: {vendor_take}."
            )
            so, sv = switch["ours"].median_seconds(), switch["vendor"].median_seconds()
            lines.append(
                f"- **Planned switchover** (stop.sh, then start.sh): ours {_s(so)} s, vendor "
                f"{_s(sv)} s ({_x(sv / so)} ours). **Start**: ours "
                f"{_s(start['ours'].median_seconds())} s, vendor "
                f"{_s(start['vendor'].median_seconds())} s."
            )
        if self.timing and SYNC in self.timing.cases:
            table = self.timing.cases[SYNC]
            so = table["switchover"]["ours"].median_seconds()
            sv = table["switchover"]["vendor"].median_seconds()
            lines.append(
                f"- With NIC updates answered in the PUT (`Succeeded`, no `Retry-After`): "
                f"takeover ours {_s(table['takeover']['ours'].median_seconds())} s; "
                f"switchover ours {_s(so)} s, vendor {_s(sv)} s ({_x(sv / so)} ours)."
            )
        if self.races:
            parts = []
            for side in ("ours", "vendor"):
                total: Counter[str] = Counter()
                for scenario in SCENARIOS:
                    total.update(self.races.counts(scenario.name, side))
                parts.append(
                    f"{side}: " + ", ".join(f"{total[o]} {o}" for o in OUTCOMES if total.get(o))
                )
            lines.append(
                f"- **Races** ({len(SCENARIOS)} scenarios, {self.races.runs} runs each): "
                + "; ".join(parts)
                + "."
            )
        if self.scale:
            lines.append(
                "- **Scale** (N clusters failing over at once through one host): "
                + "; ".join(_scale_brief(r) for r in self.scale)
                + "."
            )
        if self.client:
            wall, rss = self.client.wall, self.client.rss_kib
            lines.append(
                f"- **Node client**: `status` {wall['ipmover status'] * 1000:.0f} ms / "
                f"{rss['ipmover status'] / 1024:.1f} MiB, `acquire` "
                f"{wall['ipmover acquire'] * 1000:.0f} ms / "
                f"{rss['ipmover acquire'] / 1024:.1f} MiB; `python3 -c pass` "
                f"{wall['python3 -c pass'] * 1000:.0f} ms / "
                f"{rss['python3 -c pass'] / 1024:.1f} MiB."
            )
        return "## Key figures\n\n" + "\n".join(lines) if lines else ""


def _scale_brief(r: ScaleRun) -> str:
    name = f"N={r.n}" + ("" if r.layout == "shared" else f" (resource groups {_groups(r)})")
    if r.unfinished:
        done = r.n - r.unfinished
        return (
            f"{name}: did not finish within the {r.time_limit:.0f} s limit ({r.posted} of "
            f"{r.n} requests taken in, {done} ended, {r.failures} counted failed)"
        )
    return (
        f"{name}: {r.total:.0f} s ({_x(r.total / r.bound)} its bound of {r.bound:.0f} s), "
        f"{r.failures} failed, {r.throttled} 429s, {r.cpu_per_move:.3f} host CPU s per move"
    )


# -- section 1 --------------------------------------------------------------------------


def _s(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}"


def _x(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}x"


def _timing(result: TimingResult, az_version: str | None) -> str:
    lines = [
        "## 1. Start and takeover time: node client vs the vendor's scripts",
        "",
        f"NIC updates take {result.nic_update:g} s; medians of "
        + ", ".join(
            f"{n} runs with {_setting_title(setting)}" for setting, n in result.runs.items()
        )
        + ", both sides alternating in the same run. Azure was recorded answering NIC",
        "updates both ways: `Updating` and `Retry-After: 10` (the client polls), or",
        "`Succeeded` in the PUT once the update is done (nothing to wait for).",
        "",
        "- **ours**: `node_client/expresscluster/start.sh` (and `stop.sh`), i.e. `ipmover "
        "acquire`/`release` → the mover app, until the VM's instance metadata shows the IP;",
        "- **vendor**: the article's `start.sh`/`stop.sh` "
        "([bench/vendor/](../bench/vendor/)) run unchanged with "
        f"azure-cli {az_version or '?'} from PyPI, logged in as the VM's managed identity;",
        "- **start**: IP on no NIC → start.sh on server01; **takeover**: IP still on the",
        "  NIC of server01, which crashed (no stop.sh) → start.sh on server02;",
        "  **switchover**: stop.sh on server01, then start.sh on server02 (a planned move",
        "  of the group, the vendor scripts' best case);",
        "- **floor**: the NIC operations' own time (what no client can go below);",
        "- **ARM r/w**: ARM reads / writes per move, of the identity that made them (the",
        "  app's for ours, the VMs' for the vendor's: az runs as the VM);",
        "- a cell is the median of the runs that succeeded (exit 0 and the IP on the",
        "  right node); a side that never succeeded shows how it failed instead.",
    ]
    for setting, table in result.cases.items():
        lines += [
            "",
            f"### {_setting_title(setting)}",
            "",
            "| case | ours s | vendor s | vendor / ours | floor s | ours / floor "
            "| ours ARM r/w | vendor ARM r/w | ok ours | ok vendor |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for case in CASES:
            ours, vendor = table[case]["ours"], table[case]["vendor"]
            runs = len(ours.samples)
            o, v = ours.median_seconds(), vendor.median_seconds()
            floor = ours.median_floor()
            if math.isnan(floor):
                floor = vendor.median_floor()
            vendor_cell = _s(v)
            if not vendor.ok_samples and vendor.samples:
                failed = [s.seconds for s in vendor.samples]
                codes = sorted({c for s in vendor.samples for c in s.codes if c})
                where = sorted({", ".join(s.holder) or "no NIC" for s in vendor.samples})
                vendor_cell = (
                    f"**failed** (exit {', '.join(map(str, codes))} after "
                    f"{_s(sorted(failed)[len(failed) // 2])} s; IP left on {'/'.join(where)})"
                )
            lines.append(
                f"| {case} | {_s(o)} | {vendor_cell} | {_x(v / o if o > 0 else math.nan)} "
                f"| {_s(floor)} | {_x(o / floor if floor > 0 else math.nan)} "
                f"| {_rw(ours)} | {_rw(vendor)} "
                f"| {len(ours.ok_samples)}/{runs} | {len(vendor.ok_samples)}/{runs} |"
            )
        lines += ["", "<details><summary>every run (seconds)</summary>", ""]
        for case in CASES:
            for side in ("ours", "vendor"):
                runs_text = ", ".join(
                    f"{s.seconds:.2f}" + ("" if s.ok else " (failed)")
                    for s in table[case][side].samples
                )
                lines.append(f"- {case}, {side}: {runs_text}")
        lines += ["", "</details>"]
    lines += ["", _timing_reading(result), "", _vendor_setup()]
    return "\n".join(lines)


def _timing_reading(result: TimingResult) -> str:
    """Where each side's time over the floor goes, from the medians above."""
    lines = ["Reading it:"]
    for setting, table in result.cases.items():
        start = table["start"]
        floor = start["ours"].median_floor()
        o, v = start["ours"].median_seconds(), start["vendor"].median_seconds()
        lines.append(
            f"With {_setting_title(setting)} a start costs ours {_s(o - floor)} s over "
            f"the floor and the vendor's script {_s(v - floor)} s."
        )
    lines += [
        "The vendor's extra time is azure-cli's poller, which waits the `Retry-After` ARM",
        "sends before it looks again (10 s for an update that took 2) when an update is",
        "answered `Updating`, plus the start-up of a Python CLI for each of its 3 to 6",
        "`az` commands per script (`login`, `check-ip-address` once or twice, `ip-config",
        "create`/`delete`, `logout`). Ours follows the NIC operation every 0.5 s whatever",
        "`Retry-After` says, and does not poll at all when the PUT already answered",
        "`Succeeded`; its extra second is the client's start, the IMDS token, the",
        "orchestration's steps, and the wait until instance metadata shows the IP.",
    ]
    return "\n".join(lines)


def _rw(case: CaseResult) -> str:
    reads, writes = case.median_of("reads"), case.median_of("writes")
    if math.isnan(reads):
        return "-"
    return f"{reads:g} / {writes:g}"


def _vendor_setup() -> str:
    register = " ".join(["az", *cloud_register_args("https://127.0.0.1:PORT")])
    return "\n".join(
        [
            "### How the vendor's scripts run here",
            "",
            "azure-cli is installed from PyPI into its own virtual environment",
            "(`bench/.venv-az`, created on first use). Each VM gets its own az",
            "configuration directory in which the local ARM is registered once, as a",
            "custom cloud:",
            "",
            "```sh",
            register,
            "az cloud set --name LocalAzure",
            "```",
            "",
            "and the scripts run with",
            "`PATH=<dir with a hostname shim answering the VM's name>:bench/.venv-az/bin:"
            "/usr/bin:/bin`,",
            "`AZURE_CONFIG_DIR=<that VM's directory>`, `REQUESTS_CA_BUNDLE=<the local CA>`,",
            "`AZURE_POD_IDENTITY_AUTHORITY_HOST=<the VM's local IMDS>` (msal's",
            "`ManagedIdentityClient`, which `az login --identity` uses, reads it instead",
            "of `http://169.254.169.254`), `AZURE_CORE_COLLECT_TELEMETRY=no` and",
            "`AZURE_CORE_INSTANCE_DISCOVERY=false` (else `az logout` asks",
            "login.microsoftonline.com about the unknown local authority). `az login",
            "--identity` then asks the VM's IMDS for a token for",
            "`https://management.core.windows.net/`, which the local ARM accepts.",
            "",
            "The local Azure does no RBAC: any valid token may write the NICs. In Azure",
            "the article gives each VM **Owner** on the resource group for these",
            "scripts; ours need no role on the VMs at all.",
            "",
            "Changes to the article's scripts: the `<-- ...` notes after each setting",
            "are comments (as printed they are not shell), the `HostName1` line the",
            "article's copy lost is restored, `AZPath` is `az` (found on PATH) instead",
            "of `/root/bin/az`. Nothing else.",
            "",
            "Why the vendor's takeover fails: its awk looks for `inUseWithResource` in",
            "the output of `check-ip-address`, a field that neither the network API's",
            "definition nor azure-mgmt-network's model has, and az prints no such field",
            "(the local ARM does not send it by default either), so the script finds an empty NIC",
            "name and runs",
            '`az network nic ip-config delete --nic-name ""`, which fails (here with',
            "the local ARM's `MethodNotAllowed` for a PUT on the collection; Azure",
            "answers that request with another error, and the script exits 1 the same",
            'way). The same empty name breaks its "already in use for this host"',
            "check, so its start.sh only works while the IP is on no NIC.",
        ]
    )


# -- section 2 --------------------------------------------------------------------------


def _races(result: RaceResult) -> str:
    lines = [
        "## 2. Races: outcomes, vendor's scripts vs ours",
        "",
        f"Each scenario {result.runs} times per side, scripts started at the same moment",
        "as subprocesses, NIC updates and `Retry-After` as in section 1's first table.",
        "Outcome of a run, first that applies: *IP lost* (on no NIC), *IP on the wrong",
        "node* (on the stopping node, on a node whose start failed, or on two),",
        "*failed* (where it should be, but a script exited non-zero, so the cluster sees",
        "a failed resource), *succeeded*.",
        "",
        "| scenario | side | " + " | ".join(OUTCOMES) + " |",
        "|---|---|" + "---|" * len(OUTCOMES),
    ]
    for scenario in SCENARIOS:
        for side in ("vendor", "ours"):
            counts = result.counts(scenario.name, side)
            cells = " | ".join(str(counts.get(o, 0)) for o in OUTCOMES)
            lines.append(f"| {scenario.name}: {scenario.description} | {side} | {cells} |")
    lines += ["", "Exit codes and where the IP ended, per run:", ""]
    for scenario in SCENARIOS:
        for side in ("vendor", "ours"):
            runs = result.results[scenario.name][side]
            text = "; ".join(
                f"{r.outcome} ({', '.join(f'{k} → {v}' for k, v in r.codes.items())}; "
                f"IP on {', '.join(r.holder) or 'no NIC'})"
                for r in runs
            )
            lines.append(f"- {scenario.name}, {side}: {text}")
    return "\n".join(lines)


# -- section 3 --------------------------------------------------------------------------


def _groups(r: ScaleRun) -> str:
    return LAYOUT_LABELS.get(r.layout, r.layout)


def _concurrency() -> str:
    """What the app's host.json allows at once per instance (else the extension's default)."""
    durable = json.loads((REPO_ROOT / "host.json").read_text())["extensions"]["durableTask"]

    def limit(key: str) -> str:
        value = durable.get(key)
        return str(value) if value else "10 per core, the default"

    return (
        f"episodes: {limit('maxConcurrentOrchestratorFunctions')}; "
        f"activities: {limit('maxConcurrentActivityFunctions')}"
    )


def _scale(runs: list[ScaleRun], sizes: tuple[int, ...], layouts: tuple[str, ...] = ()) -> str:
    processes = sorted({r.worker_processes for r in runs}) or [1]
    lines = [
        "## 3. Scale: N clusters failing over at once through one Function app",
        "",
        "`topology=scale:N`: N two-node clusters in one resource group; `scale-rg:N`: the",
        "same with each cluster's VMs and NICs in a resource group of its own (*resource",
        "groups*: shared / per cluster); *NICs named*: as per cluster, with each member's",
        "`nicId` in the configuration, so that a move reads no VM. Each IP is on its member",
        "n2's NIC (n2 crashed);",
        "every member n1 posts `acquire` at once (16 client threads post; the bench notices",
        "ends through the host's management API once a second and reads each ended request",
        "once through the mover's API, so it adds one POST and one GET per move). NIC",
        f"updates take {SCALE_NIC_UPDATE:g} s; ARM's default throttling (per identity: reads",
        "250 burst / 25 per s, writes 200 / 10 per s). The local Functions host runs",
        f"{'/'.join(map(str, processes))} worker process(es) (`FUNCTIONS_WORKER_PROCESS_COUNT`)",
        f"and the app's host.json concurrency ({_concurrency()}). Total: first POST to the",
        "last request's end; request times from",
        "the requests' own records. Each N is bounded (the limit includes posting); what",
        "has not finished by then counts as failed. Baselines: the floor (two NIC updates,",
        "as if every move ran in parallel for free) and the time ARM's write budget alone",
        "imposes on one identity for 2N writes (the first 200 at once, then 10 a second);",
        "*vs bound* is the total over the larger of the two. Host CPU: the host process",
        "(HTTP, durable state, scheduling) + its worker processes (the app, the Durable",
        "SDK's replays), per requested move in its own column.",
        "",
        "| N | resource groups | total s | vs floor | vs bound | write budget s "
        "| request median / max s | failures | ARM reads / writes / 429s | posting took s "
        "| host CPU s: host + workers (cores busy) | host CPU s per move | local Azure CPU s "
        "| host state MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        failures = str(r.failures)
        not_posted = r.n - r.posted - r.refused
        details = []
        if r.unfinished:
            details.append(f"{r.unfinished} unfinished at the {r.time_limit:.0f} s limit")
        if not_posted:
            details.append(f"{not_posted} of them never posted")
        if r.refused:
            details.append(f"{r.refused} POSTs refused")
        if details:
            failures += f" ({', '.join(details)})"
        if r.wrong_place:
            failures += f"; {r.wrong_place} IPs not on n1"
        if r.errors:
            failures += "; " + ", ".join(r.errors)
        vs_floor, vs_bound = _x(r.total / r.floor), _x(r.total / r.bound)
        if r.unfinished:  # the total is the limit, not a time: no ratio to take
            vs_floor = vs_bound = "did not finish"
        cpu = r.host_cpu + r.worker_cpu
        busy = cpu / r.total if r.total > 0 else math.nan
        groups = _groups(r)
        lines.append(
            f"| {r.n} | {groups} | {r.total:.1f} | {vs_floor} | {vs_bound} "
            f"| {r.write_budget:.0f} | {_s(r.median_request)} / {_s(r.max_request)} "
            f"| {failures} | {r.reads} / {r.writes} / {r.throttled} | {r.post_seconds:.1f} "
            f"| {r.host_cpu:.1f} + {r.worker_cpu:.1f} ({busy:.2f}) | {r.cpu_per_move:.3f} "
            f"| {r.azure_cpu:.0f} | {r.store_mb:.0f} |"
        )
    measured = {(r.n, r.layout) for r in runs}
    missing = [
        f"{n} ({layout})"
        for n in sizes
        for layout in (layouts or ("shared",))
        if (n, layout) not in measured
    ]
    if missing:
        lines += ["", f"Not measured in this run: N = {', '.join(missing)}."]
    lines += ["", _scale_reading(runs)]
    return "\n".join(lines)


def _scale_reading(runs: list[ScaleRun]) -> str:
    """What the table says, from its own figures."""
    throttled = sum(r.throttled for r in runs)
    lines = [
        "Reading it:",
        "",
        "- ARM throttled no request."
        if not throttled
        else f"- ARM answered {throttled} requests with 429 (honoured with `Retry-After`).",
    ]
    for r in runs:
        if not r.total:
            continue
        cpu = r.host_cpu + r.worker_cpu
        limit = "ARM's write budget" if r.write_budget > r.floor else "the NIC updates"
        groups = "one resource group" if r.layout == "shared" else f"resource groups {_groups(r)}"
        if r.unfinished:
            outcome = f"did not finish in {r.time_limit:.0f} s"
        else:
            outcome = f"{_x(r.total / r.bound)} the bound set by {limit}"
        reads = ""
        if r.read_budget > r.bound:
            reads = (
                f"; the {r.reads - r.throttled} reads ARM answered need {r.read_budget:.0f} s "
                f"of its read budget alone ({r.read_burst} at once, then {r.read_rate:g} a "
                f"second), longer than the bound of {r.bound:.0f} s"
            )
        lines.append(
            f"- N={r.n}, {groups}: {outcome}{reads}; the host kept {cpu / r.total:.2f} of "
            f"this machine's cores busy on average ({r.host_cpu / r.total:.2f} the host "
            "process, which as one Python process can use at most one)."
        )
    lines += [
        "- In Azure a Functions app scales out over instances, each with its own cores;",
        "  here one host shares 2 cores with the local Azure and the load generator.",
    ]
    return "\n".join(lines)


# -- section 4 --------------------------------------------------------------------------


def _client(figures: ClientFigures) -> str:
    base_wall = figures.wall["python3 -c pass"]
    base_rss = figures.rss_kib["python3 -c pass"]
    lines = [
        "## 4. Node client: start-up time and peak memory",
        "",
        f"`{figures.python}` (Python {figures.version}), median of {figures.runs} runs",
        "each, alternating; maximum RSS from GNU time. Against the node client tests'",
        "fake IMDS + API on loopback, so this is the client's own cost: `status` reads",
        "instance metadata (IP present, exit 0); `acquire` gets a token, posts, is told",
        "the move is done, checks instance metadata.",
        "",
        "| command | median ms | over baseline ms | max RSS MiB | over baseline MiB |",
        "|---|---|---|---|---|",
    ]
    for name, wall in figures.wall.items():
        rss = figures.rss_kib[name]
        lines.append(
            f"| `{name}` | {wall * 1000:.1f} | {(wall - base_wall) * 1000:+.1f} "
            f"| {rss / 1024:.1f} | {(rss - base_rss) / 1024:+.1f} |"
        )
    return "\n".join(lines)


def _caveats() -> str:
    return "\n".join(
        [
            "## What these figures are not",
            "",
            "- Azure's own NIC updates vary (about 10 s is typical, sometimes much more);",
            "  here they take a fixed time, so the floor is exact and the difference",
            "  between the sides is what each client adds on top of ARM.",
            "- The local Azure answers in microseconds; real ARM and IMDS round trips",
            "  (tens of ms) would add to both sides, more to the side with more requests.",
            "- The local Functions host (one host process and its worker processes) runs on",
            "  the same 2 cores as everything else, including the load generator; Azure",
            "  Functions would scale out.",
        ]
    )
