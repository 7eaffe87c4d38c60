"""SIP settings, message parsing, trunk admission and the generated Kamailio configuration."""

from __future__ import annotations

import hashlib
import shutil
import subprocess

import pytest
from pydantic import ValidationError

from telephony.sip import kamailio
from telephony.sip.message import (
    digest_params,
    header,
    offered_codec,
    request_line,
    source_ip,
    uri_host,
    uri_user,
)
from telephony.sip.settings import SipSettings, Trunk, normalize_number
from telephony.sip.trunks import TrunkPolicy
from tests.telephony.sip.conftest import need

INVITE = (
    "INVITE sip:%2B1555%200001;npdi@gw.example.com:5060;user=phone SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 203.0.113.9:5060;branch=z9hG4bK1\r\n"
    'f: "Carrier" <sip:+14155550123@carrier.example.net>;tag=77\r\n'
    "t: <sip:+15550001@gw.example.com>\r\n"
    "i: abc@203.0.113.9\r\n"
    "Subject: folded\r\n continued\r\n"
    "Content-Type: application/sdp\r\n\r\n"
    "v=0\r\nm=audio 4000 RTP/AVP 18 8 0 101\r\na=rtpmap:18 G729/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
)


def test_numbers_are_normalised_and_checked():
    assert normalize_number("+1 (555) 000-1;npdi") == "+15550001"
    assert normalize_number("tel:+1.555.0001") == "+15550001"
    s = SipSettings(numbers={"+1 555 0001": "support", "sales": "translate-en-es"})
    assert s.load_numbers() == {"+15550001": "support", "sales": "translate-en-es"}
    with pytest.raises(ValidationError, match="agent name"):
        SipSettings(numbers={"+15550001": "Not An Agent"})
    with pytest.raises(ValidationError, match="dialable"):
        SipSettings(numbers={"+1555<0001>": "support"})


def test_numbers_come_from_the_environment_and_a_file(tmp_path, monkeypatch):
    path = tmp_path / "numbers.json"
    path.write_text('{"+15550009": "support", "+15550001": "support"}')
    monkeypatch.setenv("PARLEY_SIP_NUMBERS", '{"+15550001": "translate-en-es"}')
    monkeypatch.setenv("PARLEY_SIP_NUMBERS_FILE", str(path))
    plan = SipSettings().load_numbers()
    assert plan == {"+15550009": "support", "+15550001": "translate-en-es"}  # the environment wins


def test_settings_cross_checks_name_the_fields():
    with pytest.raises(ValidationError, match="at most 4|less than or equal to 4"):
        SipSettings(calls_per_worker=5)
    with pytest.raises(ValidationError, match="worker_port_base"):
        SipSettings(workers=4, port=5072, worker_port_base=5070)
    with pytest.raises(ValidationError, match="rtp_port_base"):
        SipSettings(workers=64, rtp_port_base=60000)
    with pytest.raises(ValidationError, match="codecs"):
        SipSettings(codecs=("PCMU", "speex"))
    with pytest.raises(ValidationError, match="transfer_uri"):
        SipSettings(transfer_uri="sip:{caller}@x")
    with pytest.raises(ValidationError, match="IP address"):
        SipSettings(public_address="voice.example.com")
    s = SipSettings(workers=3, rtp_port_base=20000, rtp_port_block=100)
    assert [s.worker_rtp_range(i) for i in range(3)] == [(20000, 50), (20100, 50), (20200, 50)]
    assert [s.worker_sip_port(i) for i in range(3)] == [5070, 5071, 5072]
    assert SipSettings(workers=1).worker_sip_port(0) == 5060


def test_trunks_need_a_way_in_and_safe_credentials():
    with pytest.raises(ValidationError, match="needs addresses"):
        Trunk(name="x")
    with pytest.raises(ValidationError, match="go together"):
        Trunk(name="x", username="u")
    with pytest.raises(ValidationError, match="not an IP"):
        Trunk(name="x", addresses=("carrier.example.com",))
    with pytest.raises(ValidationError, match="password"):
        Trunk(name="x", username="u", password='a"b')
    assert SipSettings().load_trunks()[0].addresses == ("127.0.0.0/8", "::1/128")  # default: this machine


def test_message_parsing():
    assert request_line(INVITE) == ("INVITE", "sip:%2B1555%200001;npdi@gw.example.com:5060;user=phone")
    assert request_line("SIP/2.0 200 OK\r\n\r\n") is None
    assert request_line("\x00\xff garbage") is None
    assert uri_user(request_line(INVITE)[1]) == "+1555 0001;npdi"
    assert normalize_number(uri_user(request_line(INVITE)[1])) == "+15550001"
    assert uri_user("tel:+15550001;phone-context=x") == "+15550001"
    assert uri_user("<sip:gw.example.com>") is None
    assert header(INVITE, "from").startswith('"Carrier" <sip:+14155550123')
    assert header(INVITE, "Call-ID") == "abc@203.0.113.9"
    assert header(INVITE, "subject") == "folded continued"
    assert header(INVITE, "authorization") is None
    assert uri_host(header(INVITE, "from")) == "carrier.example.net"
    assert source_ip("[::1]:5060") == "::1" and source_ip("10.0.0.1:5062") == "10.0.0.1"
    # the answerer follows the offer's order among the codecs it accepts (never G.729, never speex)
    assert offered_codec(INVITE, ("PCMU", "PCMA", "G722")) == "PCMA"
    assert offered_codec(INVITE, ("G722",)) is None
    assert digest_params('Digest username="a b", realm="r", nc=00000001, qop=auth') == {
        "username": "a b",
        "realm": "r",
        "nc": "00000001",
        "qop": "auth",
    }
    assert digest_params("Basic abc") is None


def _digest(policy: TrunkPolicy, user: str, password: str, nonce: str, uri: str = "sip:+15550001@gw") -> str:
    def md5(s):
        return hashlib.md5(s.encode()).hexdigest()

    ha1, ha2 = md5(f"{user}:{policy.realm}:{password}"), md5(f"INVITE:{uri}")
    response = md5(f"{ha1}:{nonce}:00000001:c0ffee:auth:{ha2}")
    return (
        f'Proxy-Authorization: Digest username="{user}", realm="{policy.realm}", nonce="{nonce}", '
        f'uri="{uri}", response="{response}", algorithm=MD5, qop=auth, nc=00000001, cnonce="c0ffee"\r\n'
    )


def test_trunk_policy_addresses_and_digest():
    now = [1_000_000.0]
    policy = TrunkPolicy(
        [
            Trunk(name="carrier", addresses=("203.0.113.0/24",)),
            Trunk(name="pbx", username="pbx", password="s3cret"),
        ],
        "parley",
        clock=lambda: now[0],
    )
    bare = "INVITE sip:+15550001@gw SIP/2.0\r\nVia: x\r\n\r\n"
    assert policy.check("203.0.113.9", "INVITE", bare).trunk == "carrier"
    assert policy.check("::ffff:203.0.113.9", "INVITE", bare).trunk == "carrier"
    challenge = policy.check("198.51.100.7", "INVITE", bare)
    assert (challenge.accepted, challenge.code) == (False, 407)
    assert challenge.headers[0][0] == "Proxy-Authenticate" and 'qop="auth"' in challenge.headers[0][1]
    nonce = digest_params(challenge.headers[0][1])["nonce"]
    signed = bare.replace("Via: x\r\n", "Via: x\r\n" + _digest(policy, "pbx", "s3cret", nonce))
    assert policy.check("198.51.100.7", "INVITE", signed).trunk == "pbx"
    wrong = bare.replace("Via: x\r\n", "Via: x\r\n" + _digest(policy, "pbx", "guess", nonce))
    assert policy.check("198.51.100.7", "INVITE", wrong).code == 403
    forged = bare.replace("Via: x\r\n", "Via: x\r\n" + _digest(policy, "pbx", "s3cret", "12345.deadbeef"))
    assert policy.check("198.51.100.7", "INVITE", forged).code == 403
    now[0] += 3600  # an old nonce: challenged again, marked stale
    stale = policy.check("198.51.100.7", "INVITE", signed)
    assert stale.code == 407 and "stale=true" in stale.headers[0][1]
    assert (
        TrunkPolicy([Trunk(name="c", addresses=("10.0.0.0/8",))]).check("1.2.3.4", "INVITE", bare).code == 403
    )
    proxy = TrunkPolicy.proxy_only(["127.0.0.0/8", "192.0.2.10"])
    assert (
        proxy.check("127.0.0.1", "INVITE", bare).accepted
        and not proxy.check("192.0.2.11", "INVITE", bare).accepted
    )


def test_kamailio_configuration_is_accepted_by_kamailio(tmp_path):
    need("kamailio")
    settings = SipSettings(
        workers=3,
        host="127.0.0.1",
        port=5999,
        worker_port_base=6100,
        trunks=[
            Trunk(name="carrier", addresses=("203.0.113.0/24", "127.0.0.1/32")),
            Trunk(name="pbx", username="pbx", password="s3cret"),
        ],
    )
    cfg = kamailio.write_files(settings, tmp_path, settings.load_trunks())
    text = cfg.read_text()
    assert oct(cfg.stat().st_mode & 0o777) == "0o600"  # it holds trunk passwords
    assert (
        'ds_select_dst("1", "10", "3")' in text and "maxload=4" in (tmp_path / "dispatcher.list").read_text()
    )
    assert "sip:127.0.0.1:6102" in (tmp_path / "dispatcher.list").read_text()
    assert 'case "pbx"' in text and "proxy_challenge" in text and "203.0.113.0/24" in text
    check = subprocess.run(
        [shutil.which("kamailio") or "/usr/sbin/kamailio", "-c", "-f", str(cfg)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert check.returncode == 0, check.stderr[-2000:]


def test_frame_port_moves_bytes_without_swig_iteration():
    pytest.importorskip("pjsua2")
    import pjsua2 as pj

    from telephony.sip.media import read_vector, vector_layout_ok, write_vector

    assert vector_layout_ok()
    vec = pj.ByteVector(b"\x01\x02\x03")
    write_vector(vec, bytes(range(200)) * 32)
    assert vec.size() == 6400 and read_vector(vec) == bytes(range(200)) * 32


def test_the_outbound_trunk_is_an_address_and_the_only_place_outbound_invites_go(tmp_path):
    for bad in ("carrier.example:5060", "203.0.113.5", "203.0.113.5:0", "203.0.113.5:99999", ":5060"):
        with pytest.raises(ValidationError) as info:
            SipSettings(outbound_trunk=bad)
        assert "outbound_trunk" in str(info.value)
    assert SipSettings().outbound_uri("+34911234567") is None  # no trunk: no call is ever placed
    one = SipSettings(outbound_trunk="203.0.113.5:5060")
    assert one.outbound_uri("+34911234567") == "sip:+34911234567@203.0.113.5:5060"
    many = SipSettings(workers=2, host="127.0.0.1", port=5999, outbound_trunk="203.0.113.5:5060")
    assert many.outbound_uri("+34911234567") == "sip:+34911234567@127.0.0.1:5999"  # through Kamailio
    closed = kamailio.render_config(SipSettings(workers=2, port=5999), tmp_path, tmp_path, ())
    outbound = closed.split("route[OUTBOUND] {", 1)[1].split("}", 1)[0]
    assert 'sl_send_reply("403", "Forbidden")' in outbound and "t_relay" not in outbound
    text = kamailio.render_config(many, tmp_path, tmp_path, ())
    outbound = text.split("route[OUTBOUND] {", 1)[1].split("\n}", 1)[0]
    assert '$ru = "sip:" + $rU + "@203.0.113.5:5060";' in outbound  # whatever host the worker named
    assert '"^[+][1-9][0-9]{6,14}$"' in outbound
