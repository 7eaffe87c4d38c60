"""Settings of the SIP gateway (`parley sip`): one pydantic-settings class, `SipSettings`.

Every field can be set from the environment with the `PARLEY_SIP_` prefix (`PARLEY_SIP_PORT=5080`,
`PARLEY_SIP_NUMBERS='{"+15550001": "support"}'`, `PARLEY_SIP_TRUNKS='[{"name": "carrier",
"addresses": ["203.0.113.0/24"]}]'`) or passed as keyword arguments, which win. Numbers and trunks
can also come from JSON files (`numbers_file`, `trunks_file`); entries in the environment are
added on top of a file's.

Ports, for worker i of N (defaults):

    public SIP (Kamailio; with N = 1 the worker itself)   host:5060 UDP and TCP
    worker SIP behind Kamailio                            worker_host:5070+i UDP
    worker RTP                                            host:20000+100*i ... +49 (a gap of 50 follows)
    health and counters of the whole gateway              health_host:8081 GET /healthz

Nothing here knows about agents or the model: the number plan maps numbers to names (slugs) that
the connector resolves, and the model server's address, tool and connect timeouts are the agent's
settings (agent/settings.py; `parley sip` reads them from `PARLEY_SIP_*` too).
"""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from telephony.leg import NAME

MAX_CALLS_PER_PROCESS = 4  # PJSUA_MAX_CALLS of the pjsua2-python wheel
CODECS = {"PCMU": "PCMU/8000/1", "PCMA": "PCMA/8000/1", "G722": "G722/16000/1"}  # name -> pjsua codec id
# Characters safe inside a Kamailio string literal and a digest header: no quotes, backslashes, `$`.
CREDENTIAL = r"[A-Za-z0-9._~!&'()*+,;=:@%-]{1,64}"
_SEPARATORS = re.compile(r"[\s\-.()]")  # RFC 3966 visual separators
NUMBER = re.compile(r"\+?[A-Za-z0-9*#_]{1,64}")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def normalize_number(user: str) -> str:
    """The dialled number as the number plan keys it: URI parameters and visual separators dropped
    (`+1 (555) 000-1;npdi` -> `+15550001`)."""
    user = user.split(";", 1)[0]
    if user.lower().startswith("tel:"):
        user = user[4:]
    return _SEPARATORS.sub("", user)


class Trunk(BaseModel):
    """A carrier or PBX allowed to send calls: by source address, by digest credentials, or both
    (then either suffices)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=f"^{NAME}$", max_length=40, description="Slug naming the trunk in logs.")
    addresses: tuple[str, ...] = Field(
        (), description="Source addresses or networks (CIDR) whose INVITEs are accepted without auth."
    )
    username: str | None = Field(None, pattern=f"^{CREDENTIAL}$", description="Digest user name.")
    password: SecretStr | None = Field(None, description="Digest password (no quotes, backslash or $).")

    @field_validator("addresses")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"trunk address {entry!r} is not an IP address or CIDR network") from None
        return value

    @field_validator("password")
    @classmethod
    def _password(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(CREDENTIAL, value.get_secret_value()):
            raise ValueError("trunk password must be 1-64 characters without quotes, backslashes or $")
        return value

    @model_validator(mode="after")
    def _some_way_in(self) -> Trunk:
        if (self.username is None) != (self.password is None):
            raise ValueError(f"trunk {self.name!r}: username and password go together")
        if not self.addresses and self.username is None:
            raise ValueError(f"trunk {self.name!r} needs addresses, or a username and password")
        return self

    def networks(self) -> tuple[Network, ...]:
        return tuple(ipaddress.ip_network(a, strict=False) for a in self.addresses)


LOOPBACK_TRUNK = Trunk(name="loopback", addresses=("127.0.0.0/8", "::1/128"))


class SipSettings(BaseSettings):
    """The SIP gateway's configuration."""

    model_config = SettingsConfigDict(env_prefix="PARLEY_SIP_", extra="ignore", frozen=True)

    # --- where it listens ----------------------------------------------------------------------
    host: str = Field("0.0.0.0", description="Address of the public SIP port and of the workers' RTP.")
    port: int = Field(5060, ge=1, le=65535, description="Public SIP port (UDP and TCP).")
    public_address: str | None = Field(
        None,
        description=(
            "Address callers reach this machine on, written into SDP and Record-Route/Contact; "
            "default: `host` when it is a specific address, else the interface the OS picks."
        ),
    )
    workers: int = Field(
        1, ge=1, le=64, description="User-agent processes (4 calls each); more than 1 puts Kamailio in front."
    )
    calls_per_worker: int = Field(
        MAX_CALLS_PER_PROCESS,
        ge=1,
        le=MAX_CALLS_PER_PROCESS,
        description="Concurrent calls per worker; the pjsua2-python wheel is compiled for at most 4.",
    )
    worker_host: str = Field("127.0.0.1", description="Address the workers' SIP listens on behind Kamailio.")
    worker_port_base: int = Field(5070, ge=1, le=65535, description="Worker i's SIP port is this + i.")
    rtp_port_base: int = Field(
        20000, ge=1024, le=65535, description="Worker i's RTP ports start at this + i * rtp_port_block."
    )
    rtp_port_block: int = Field(
        100,
        ge=20,
        description="RTP ports reserved per worker; the first half is its range, the second half a gap.",
    )
    health_host: str = Field("127.0.0.1", description="Address of GET /healthz.")
    health_port: int = Field(8081, ge=0, le=65535, description="Port of GET /healthz; 0 picks a free one.")

    # --- calls ---------------------------------------------------------------------------------
    numbers: dict[str, str] = Field(
        default_factory=dict,
        description='Dialled number (request-URI user part) -> agent name, e.g. {"+15550001": "support"}.',
    )
    numbers_file: Path | None = Field(None, description="A JSON object of number -> agent, read at start.")
    trunks: tuple[Trunk, ...] = Field(
        (LOOPBACK_TRUNK,),
        description="Who may send INVITEs (default: this machine only). Everyone else gets 403 or 407.",
    )
    trunks_file: Path | None = Field(None, description="A JSON list of trunks, used instead of `trunks`.")
    realm: str = Field("parley", pattern=f"^{CREDENTIAL}$", description="Digest realm of the challenges.")
    codecs: tuple[str, ...] = Field(
        ("PCMU", "PCMA", "G722"),
        description="Codecs offered and accepted, highest priority first; all others off.",
    )
    clock_rate: int = Field(
        16000, description="Conference-bridge clock of the workers (8000 or 16000; G.722 wants 16000)."
    )
    transfer_uri: str = Field(
        "sip:{number}@{host}",
        description="Refer-To of a transfer; {number} is the agent's hand-off number, "
        "{host} the caller's host.",
    )
    outbound_trunk: str | None = Field(
        None,
        description=(
            "Where calls Parley places (a translation line's second party) go: the carrier's "
            "'IP:port' (UDP). Kamailio relays every INVITE a worker sends there and nowhere else; "
            "with one worker the worker sends it there itself. Unset: no call is ever placed."
        ),
    )
    agent_prefetch_ms: int = Field(
        80,
        ge=0,
        le=400,
        description=(
            "Agent audio waits this long before it starts playing, so that the model's frames, which "
            "arrive every 200 ms with some jitter, play without gaps."
        ),
    )
    hangup_drain_s: float = Field(
        1.0, ge=0, description="Seconds queued agent audio may play after the agent hangs up."
    )
    transfer_timeout_s: float = Field(5.0, gt=0, description="Seconds to wait for the REFER to be accepted.")
    max_call_s: float = Field(4 * 3600.0, gt=0, description="Calls are hung up after this long.")
    rtp_timeout_s: float = Field(
        60.0, ge=0, description="A call with no RTP from the caller for this long is hung up; 0: never."
    )

    # --- processes -----------------------------------------------------------------------------
    kamailio_bin: str = Field("kamailio", description="The Kamailio binary (Debian package `kamailio`).")
    kamcmd_bin: str = Field("kamcmd", description="Kamailio's RPC command-line client.")
    kamailio_modules: Path | None = Field(
        None, description="Kamailio's modules directory; default: the Debian/Ubuntu location found."
    )
    probe_interval_s: int = Field(
        2, ge=1, le=60, description="Kamailio's OPTIONS probe interval for workers."
    )
    fr_timer_ms: int = Field(
        1500, ge=200, description="How long Kamailio waits for a worker's first reply before trying the next."
    )
    recycle_after_calls: int = Field(
        2000,
        ge=0,
        description="A worker restarts when idle after this many calls (RSS grows ~28 kB a call); 0: never.",
    )
    poll_ms: int = Field(
        50, ge=1, le=200, description="How often a worker runs pjsip's timers (SIP sockets wake it at once)."
    )
    run_dir: Path | None = Field(
        None, description="Where the generated Kamailio files go; default: a temp dir."
    )
    pjsip_log_level: int = Field(1, ge=0, le=6, description="pjsip's own log level (stderr).")

    @field_validator("host", "worker_host", "health_host", "public_address")
    @classmethod
    def _ip(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"{value!r} must be an IP address (SIP and SDP carry it as is)") from None
        return value

    @field_validator("outbound_trunk")
    @classmethod
    def _outbound_trunk(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host, _, port = value.rpartition(":")
        try:
            ipaddress.ip_address(host.strip("[]"))
            ok = host != "" and 1 <= int(port) <= 65535
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"outbound_trunk {value!r} must be 'IP:port' (e.g. 203.0.113.5:5060)")
        return value

    @field_validator("numbers")
    @classmethod
    def _numbers(cls, value: dict[str, str]) -> dict[str, str]:
        out = {}
        for number, agent in value.items():
            key = normalize_number(str(number))
            if not NUMBER.fullmatch(key):
                raise ValueError(f"numbers: {number!r} is not a dialable number or user name")
            if not isinstance(agent, str) or not re.fullmatch(NAME, agent):
                raise ValueError(f"numbers: {number!r} maps to {agent!r}, which is not an agent name (slug)")
            out[key] = agent
        return out

    @field_validator("codecs")
    @classmethod
    def _codecs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        value = tuple(c.upper() for c in value)
        unknown = [c for c in value if c not in CODECS]
        if unknown or not value or len(set(value)) != len(value):
            raise ValueError(f"codecs {list(value)} must be distinct names from {sorted(CODECS)}")
        return value

    @field_validator("clock_rate")
    @classmethod
    def _clock(cls, value: int) -> int:
        if value not in (8000, 16000):
            raise ValueError(f"clock_rate {value} must be 8000 or 16000")
        return value

    @field_validator("transfer_uri")
    @classmethod
    def _transfer_uri(cls, value: str) -> str:
        if "{number}" not in value or not value.startswith(("sip:", "sips:", "tel:")):
            raise ValueError(f"transfer_uri {value!r} must be a sip:/sips:/tel: URI containing {{number}}")
        try:
            value.format(number="+1", host="h")
        except (KeyError, IndexError, ValueError):
            raise ValueError(f"transfer_uri {value!r} may only use {{number}} and {{host}}") from None
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> SipSettings:
        if self.workers > 1:
            worker_ports = range(self.worker_port_base, self.worker_port_base + self.workers)
            if self.port in worker_ports:
                raise ValueError(
                    f"port {self.port} falls among the worker ports worker_port_base={self.worker_port_base} "
                    f"... +workers-1={worker_ports[-1]}"
                )
            if self.worker_port_base + self.workers - 1 > 65535:
                raise ValueError("worker_port_base + workers - 1 is past port 65535")
        last = self.rtp_port_base + self.workers * self.rtp_port_block - 1
        if last > 65535:
            raise ValueError(
                f"rtp_port_base={self.rtp_port_base} + workers={self.workers} * rtp_port_block="
                f"{self.rtp_port_block} runs past port 65535"
            )
        if self.rtp_port_block // 2 < 4 * self.calls_per_worker:
            raise ValueError(
                f"rtp_port_block={self.rtp_port_block} is too small for "
                f"calls_per_worker={self.calls_per_worker} "
                "(half the block must hold 4 ports a call)"
            )
        return self

    # --- derived -------------------------------------------------------------------------------
    @property
    def multi(self) -> bool:
        """Kamailio in front (more than one worker)."""
        return self.workers > 1

    def worker_sip_port(self, index: int) -> int:
        return self.worker_port_base + index if self.multi else self.port

    def worker_rtp_range(self, index: int) -> tuple[int, int]:
        """(first port, how many) of worker `index`'s RTP range; the rest of its block is the gap."""
        return self.rtp_port_base + index * self.rtp_port_block, self.rtp_port_block // 2

    def advertised_address(self) -> str | None:
        if self.public_address:
            return self.public_address
        return None if self.host in ("0.0.0.0", "::", "") else self.host

    def outbound_uri(self, number: str) -> str | None:
        """The request-URI of a call to `number` (E.164, checked by the caller): to Kamailio, which
        relays it to the trunk, or with one worker to the trunk itself. None: no outbound trunk."""
        if self.outbound_trunk is None:
            return None
        if not self.multi:
            return f"sip:{number}@{self.outbound_trunk}"
        host = self.host if self.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        return f"sip:{number}@{f'[{host}]' if ':' in host else host}:{self.port}"

    def load_numbers(self) -> dict[str, str]:
        """The number plan: `numbers_file` (if any) overlaid with `numbers`. Raises ValueError."""
        plan: dict[str, str] = {}
        if self.numbers_file is not None:
            try:
                data = json.loads(self.numbers_file.read_text())
            except (OSError, ValueError) as exc:
                raise ValueError(f"numbers_file {self.numbers_file}: {exc}") from None
            if not isinstance(data, dict):
                raise ValueError(
                    f"numbers_file {self.numbers_file} must hold a JSON object of number -> agent"
                )
            plan.update(self.model_validate({"numbers": data}).numbers)
        plan.update(self.numbers)
        return plan

    def load_trunks(self) -> tuple[Trunk, ...]:
        """The trunks: `trunks_file` when set, else `trunks`. Raises ValueError."""
        if self.trunks_file is None:
            return self.trunks
        try:
            data = json.loads(self.trunks_file.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"trunks_file {self.trunks_file}: {exc}") from None
        if not isinstance(data, list):
            raise ValueError(f"trunks_file {self.trunks_file} must hold a JSON list of trunks")
        trunks = tuple(Trunk.model_validate(t) for t in data)
        names = [t.name for t in trunks]
        if len(set(names)) != len(names):
            raise ValueError(f"trunks_file {self.trunks_file}: two trunks share a name")
        return trunks
