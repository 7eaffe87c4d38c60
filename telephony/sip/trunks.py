"""Who may call in: the trunk check a worker runs on every new INVITE.

`TrunkPolicy.check(source_ip, method, msg)` returns an `Admission`: accepted (and by which trunk),
or refused with the SIP response to send: 407 with a Digest challenge when some trunk
authenticates by password and the request carried no valid credentials, 403 otherwise. A source
inside a trunk's `addresses` is accepted without credentials; otherwise valid Digest credentials
(RFC 2617/7616 MD5, qop=auth or none, in Proxy-Authorization or Authorization) of a trunk with a
username are. Nonces are stateless: a timestamp and its HMAC under a per-process secret, valid for
`nonce_ttl_s`; an expired but otherwise valid nonce gets a fresh challenge with stale=true.

Behind Kamailio the proxy runs these checks itself (the same trunks, in its generated
configuration) and each worker accepts only its proxy's addresses (`TrunkPolicy.proxy_only`).
Log lines name trunks and outcomes, never user names, numbers or credentials.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import ipaddress
import os
import time
from collections.abc import Callable, Iterable

from telephony.sip.message import digest_params, header
from telephony.sip.settings import Trunk


@dataclasses.dataclass(frozen=True)
class Admission:
    accepted: bool
    trunk: str | None = None  # the trunk that let the call in
    code: int = 200  # the SIP response for a refusal: 403 or 407
    reason: str = ""
    headers: tuple[tuple[str, str], ...] = ()  # e.g. the Proxy-Authenticate challenge


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


class TrunkPolicy:
    def __init__(
        self,
        trunks: Iterable[Trunk],
        realm: str = "parley",
        *,
        secret: bytes | None = None,
        nonce_ttl_s: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.trunks = tuple(trunks)
        self.realm = realm
        self._nets = [(t.name, net) for t in self.trunks for net in t.networks()]
        self._users = {t.username: t for t in self.trunks if t.username is not None}
        self._secret = secret or os.urandom(32)
        self._ttl = nonce_ttl_s
        self._clock = clock

    @classmethod
    def proxy_only(cls, addresses: Iterable[str]) -> TrunkPolicy:
        """A worker behind Kamailio: only the proxy's own addresses may send it INVITEs."""
        nets = tuple(sorted({str(ipaddress.ip_network(a, strict=False)) for a in addresses}))
        return cls([Trunk(name="kamailio", addresses=nets)])

    # --- the check -------------------------------------------------------------------------------
    def check(self, source_ip: str, method: str, msg: str) -> Admission:
        trunk = self.by_address(source_ip)
        if trunk is not None:
            return Admission(True, trunk)
        if not self._users:
            return Admission(False, code=403, reason="Forbidden")
        creds = digest_params(header(msg, "proxy-authorization") or header(msg, "authorization"))
        if creds is None:
            return self._challenge(stale=False)
        verdict = self._verify(creds, method)
        if verdict == "ok":
            return Admission(True, self._users[creds["username"]].name)
        if verdict == "stale":
            return self._challenge(stale=True)
        return Admission(False, code=403, reason="Forbidden")

    def by_address(self, source_ip: str) -> str | None:
        try:
            ip = ipaddress.ip_address(source_ip)
        except ValueError:
            return None
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        for name, net in self._nets:
            if ip.version == net.version and ip in net:
                return name
        return None

    # --- digest ----------------------------------------------------------------------------------
    def nonce(self) -> str:
        stamp = f"{int(self._clock()):x}"
        mac = hmac.new(self._secret, stamp.encode(), hashlib.sha256).hexdigest()[:24]
        return f"{stamp}.{mac}"

    def _nonce_state(self, nonce: str) -> str:
        stamp, _, mac = nonce.partition(".")
        want = hmac.new(self._secret, stamp.encode(), hashlib.sha256).hexdigest()[:24]
        if not hmac.compare_digest(mac, want):
            return "bad"
        try:
            age = self._clock() - int(stamp, 16)
        except ValueError:
            return "bad"
        return "ok" if -5 <= age <= self._ttl else "stale"

    def _verify(self, creds: dict[str, str], method: str) -> str:
        trunk = self._users.get(creds.get("username", ""))
        needed = ("realm", "nonce", "uri", "response")
        if trunk is None or trunk.password is None or any(k not in creds for k in needed):
            return "bad"
        if creds["realm"] != self.realm or creds.get("algorithm", "MD5").upper() != "MD5":
            return "bad"
        ha1 = _md5(f"{trunk.username}:{self.realm}:{trunk.password.get_secret_value()}")
        ha2 = _md5(f"{method}:{creds['uri']}")
        qop = creds.get("qop")
        if qop is None:
            expected = _md5(f"{ha1}:{creds['nonce']}:{ha2}")
        elif qop.lower() == "auth" and "nc" in creds and "cnonce" in creds:
            expected = _md5(f"{ha1}:{creds['nonce']}:{creds['nc']}:{creds['cnonce']}:auth:{ha2}")
        else:
            return "bad"
        if not hmac.compare_digest(expected, creds["response"].lower()):
            return "bad"
        return self._nonce_state(creds["nonce"])

    def _challenge(self, stale: bool) -> Admission:
        value = f'Digest realm="{self.realm}", nonce="{self.nonce()}", algorithm=MD5, qop="auth"'
        if stale:
            value += ", stale=true"
        return Admission(
            False, code=407, reason="Proxy Authentication Required", headers=(("Proxy-Authenticate", value),)
        )
