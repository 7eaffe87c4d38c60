"""The admin API driving real calls: a real websocket gateway linked to the same Redis
(`parley.admin_link.GatewayLink`), real call clients (`telephony.ws.client`), a model server that
speaks what its configuration says (the fake, so transcripts are known) or the real one with a tiny
random model.

Configured through the API -> used by the next call -> found through the API with its
transcript; media websockets authenticate once keys exist; live calls and hang-up; metrics.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re

import httpx
import numpy as np
import pytest
import torch

from agent.settings import AgentSettings
from model.config import ModelConfig
from model.interaction import InteractionModel
from model.runner import Runner
from model.server import ModelServer, ModelServerSettings
from parley.admin_link import GatewayLink
from parley.call import place_call
from parley.gateway_app import run_agent_gateway
from telephony.ws.client import NativeCallClient, TwilioCallClient
from telephony.ws.settings import Settings
from telephony.ws.signature import twilio_signature
from tests.admin.conftest import AdminProcess, make_key
from tests.fakes.model_server import FakeModelServer, Step
from tests.helpers import voiced_wav as caller_wav

pytestmark = pytest.mark.timeout(180)

NUMBER = "+15555550199"
MARK = re.compile(r"MARK-[A-Z]+")


def speaks_its_mark(seq: int, session) -> Step:
    """Says the MARK-... word of its configuration (the agent's instructions) in micro-turn 1, then
    looks something up in micro-turn 3."""
    mark = MARK.search(session.config)
    if seq == 1:
        return Step("speak", text=mark.group(0) if mark else "no mark", audio=1000)
    if seq == 2:
        return Step("speak", text=" ok", audio=1000)
    if seq == 3:
        return Step(
            "listen",
            audio="silence",
            tool_call={"id": "t1", "name": "search_faq", "arguments": {"query": "opening hours"}},
        )
    return Step("listen", audio="silence")


def agent_body(mark: str, greeting: str) -> dict:
    return {
        "name": "shop-line",
        "languages": ["en"],
        "greeting": greeting,
        "instructions": f"Answer the shop's phone. {mark} Keep it short.",
        "tools": ["search_faq"],
    }


def gateway_settings(model_url: str, **kw) -> tuple[Settings, AgentSettings]:
    return Settings(host="127.0.0.1", port=0, **kw), AgentSettings(model_url=model_url)


def talk(client) -> asyncio.Task:
    """The caller's side of a phone line: 20 ms of silence every 20 ms until the call closes."""
    chunk = np.zeros(client.rate // 50, np.int16)

    async def run() -> None:
        while client.closed is None:
            await client.send_audio(chunk)
            await asyncio.sleep(0.02)  # the caller's real-time pace, not synchronisation

    return asyncio.create_task(run())


async def ended(gw) -> None:
    """Until the gateway holds no call: by then every record is written."""
    await gw.stats.wait_for(lambda: gw.stats.calls_live == 0, 10)


async def test_configure_call_find_update_and_delete_through_the_api(
    admin, admin_key, redis_server, tmp_path, caplog
):
    caplog.set_level(logging.DEBUG)
    wav = caller_wav(tmp_path / "caller.wav", 1.0)
    async with admin.async_client(admin_key) as api, FakeModelServer(speaks_its_mark) as model:
        assert (
            await api.post("/v1/agents", json=agent_body("MARK-ONE", "Hello from version one."))
        ).status_code == 201
        assert (
            await api.post("/v1/numbers", json={"number": NUMBER, "agent": "shop-line"})
        ).status_code == 201
        token = (await api.post("/v1/agents/shop-line/stream-tokens", json={"label": "test"})).json()["token"]

        async with run_agent_gateway(*gateway_settings(model.url), link=GatewayLink(redis_server.url)) as gw:
            # Twilio's webhook: the dialled number picks the agent, and travels on to the stream.
            async with httpx.AsyncClient() as http:
                twiml = (
                    await http.post(gw.http_url + "/twiml", data={"To": NUMBER, "From": "+15550001111"})
                ).text
            assert '<Parameter name="agent" value="shop-line"/>' in twiml
            assert f'<Parameter name="number" value="{NUMBER}"/>' in twiml and "15550001111" not in twiml

            # The call names another agent; the number decides.
            first = await place_call(
                "support",
                wav,
                tmp_path / "one.wav",
                url=gw.url,
                protocol="twilio",
                linger_s=0.4,
                token=token,
                parameters={"number": NUMBER},
            )
            await ended(gw)
            assert first["close_code"] == 1000, first
            assert "MARK-ONE" in model.sessions[-1].config

            page = (await api.get("/v1/calls", params={"number": NUMBER})).json()
            assert page["total"] == 1 and page["items"][0]["agent"] == "shop-line"
            call_id = page["items"][0]["call_id"]
            call = (await api.get(f"/v1/calls/{call_id}")).json()
            assert call["status"] == "ended" and call["protocol"] == "twilio" and call["number"] == NUMBER
            assert (
                call["agent_version"] == 1 and call["agent_config"]["greeting"] == "Hello from version one."
            )
            assert [e["text"] for e in call["transcript"] if e["role"] == "agent"] == ["MARK-ONE ok"]
            assert call["ended"]["by"] == "caller" and call["duration_s"] > 1.0
            assert call["timeline"]["counters"]["caller_frames"] >= 5
            assert any(e["kind"] == "floor" and e["floor"] == "speak" for e in call["timeline"]["events"])
            assert call["turn_latency_ms"] and all(0 <= ms < 1000 for ms in call["turn_latency_ms"])
            [tool] = call["tool_calls"]  # no workers here: the gateway answers "tool unavailable" at once
            assert (tool["name"], tool["arguments"], tool["outcome"]) == (
                "search_faq",
                {"query": "opening hours"},
                "error",
            )
            assert 0 <= tool["latency_ms"] < 1000

            # Update: the next call runs the new version, no restart.
            updated = await api.patch(
                "/v1/agents/shop-line",
                json={
                    "instructions": "Answer the shop's phone. MARK-TWO Keep it short.",
                    "greeting": "Hello from version two.",
                },
            )
            assert updated.json()["version"] == 2
            second = await place_call(
                "support",
                wav,
                tmp_path / "two.wav",
                url=gw.url,
                protocol="twilio",
                linger_s=0.4,
                token=token,
                parameters={"number": NUMBER},
            )
            await ended(gw)
            assert second["close_code"] == 1000 and "MARK-TWO" in model.sessions[-1].config
            newest = (await api.get("/v1/calls", params={"agent": "shop-line"})).json()
            assert newest["total"] == 2 and newest["items"][1]["call_id"] == call_id  # newest first
            call = (await api.get(f"/v1/calls/{newest['items'][0]['call_id']}")).json()
            assert (
                call["agent_version"] == 2 and call["agent_config"]["greeting"] == "Hello from version two."
            )
            assert call["transcript"][0]["text"] == "MARK-TWO ok"

            # Pagination and filters.
            one = (await api.get("/v1/calls", params={"agent": "shop-line", "limit": 1, "offset": 1})).json()
            assert one["total"] == 2 and [c["call_id"] for c in one["items"]] == [call_id]
            assert (await api.get("/v1/calls", params={"agent": "shop-line", "protocol": "native"})).json()[
                "total"
            ] == 0
            assert (await api.get("/v1/calls", params={"number": NUMBER, "ended_by": "caller"})).json()[
                "total"
            ] == 2

            # Delete the agent: its number now refuses calls, saying why.
            await api.delete("/v1/agents/shop-line")
            refused = await place_call(
                "support",
                wav,
                tmp_path / "three.wav",
                url=gw.url,
                protocol="twilio",
                linger_s=0.2,
                token=token,
                parameters={"number": NUMBER},
            )
            assert refused["close_code"] == 4404
            assert "'shop-line' does not exist" in refused["close_reason"]
            async with httpx.AsyncClient() as http:
                r = await http.post(gw.http_url + "/twiml", data={"To": NUMBER})
            assert r.status_code == 404 and "does not exist" in r.text
            by_name = await place_call(
                "shop-line",
                wav,
                tmp_path / "four.wav",
                url=gw.url,
                protocol="native",
                linger_s=0.2,
                token=token,
            )
            assert (by_name["close_code"], by_name["close_reason"]) == (4404, "agent 'shop-line' was deleted")
            await api.delete(f"/v1/numbers/{NUMBER}")

    metrics = httpx.get(admin.url + "/metrics").text
    assert float(re.search(r"^parley_turn_taking_latency_seconds_count (\S+)$", metrics, re.M).group(1)) >= 2
    assert float(re.search(r"^parley_tool_latency_seconds_count (\S+)$", metrics, re.M).group(1)) >= 2
    ours = ("agent", "telephony", "admin", "workers", "model")  # not the test's own client libraries
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.split(".")[0] in ours)
    assert "call" in logged  # the gateway did log the calls
    assert "MARK-" not in logged and "5555550199" not in logged and "0001111" not in logged
    assert "opening hours" not in logged
    admin_log = admin.log_path.read_text()
    assert "MARK-" not in admin_log and "5555550199" not in admin_log


async def test_media_websockets_need_a_stream_token_or_a_twilio_signature(
    admin, admin_key, redis_server, tmp_path
):
    wav = caller_wav(tmp_path / "caller.wav", 0.4)
    async with admin.async_client(admin_key) as api, FakeModelServer(speaks_its_mark) as model:
        support = (await api.post("/v1/agents/support/stream-tokens", json={})).json()
        other = (await api.post("/v1/agents/translate-en-es/stream-tokens", json={})).json()
        settings = gateway_settings(model.url, twilio_auth_token="twilio-secret")
        async with run_agent_gateway(*settings, link=GatewayLink(redis_server.url)) as gw:

            async def native(**kw) -> tuple:
                summary = await place_call(
                    "support", wav, tmp_path / "n.wav", url=gw.url, protocol="native", linger_s=0.2, **kw
                )
                return summary["close_code"], summary["close_reason"]

            assert await native() == (
                4401,
                "stream token required (Authorization: Bearer <token>, or a 'token' parameter)",
            )
            assert await native(token="pst_0123456789ab_" + "x" * 43) == (
                4401,
                "invalid stream token for agent 'support'",
            )
            assert (await native(token=other["token"]))[0] == 4401  # another agent's token
            assert (await native(token=support["token"]))[0] == 1000
            assert (await native(parameters={"token": support["token"]}))[0] == 1000  # in the start message
            await api.delete(f"/v1/agents/support/stream-tokens/{support['id']}")
            assert (await native(token=support["token"]))[0] == 4401  # revoked

            # Twilio: the handshake's X-Twilio-Signature over the stream URL, keyed with the auth token.
            url = gw.url + "/twilio"
            for signature, code in (
                (twilio_signature("twilio-secret", url), None),
                (twilio_signature("wrong-secret", url), 4401),
                (None, 4401),
            ):
                headers = {"X-Twilio-Signature": signature} if signature else {}
                client = await TwilioCallClient(url, "support", headers=headers).open()
                talker = talk(client)
                try:
                    if code is None:  # accepted: agent audio comes back
                        await client.wait_for(lambda c=client: c.counters["agent_packets"] > 0, 10)
                    else:
                        await client.wait_for(lambda c=client: c.closed is not None, 10)
                        assert client.closed == (4401, "missing or invalid X-Twilio-Signature")
                finally:
                    talker.cancel()
                    await client.stop()
            await ended(gw)
            # POST /twiml is signed too (URL + sorted form fields).
            form = {"To": "+15555550100", "CallSid": "CA1"}
            async with httpx.AsyncClient() as http:
                good = twilio_signature("twilio-secret", gw.http_url + "/twiml", form)
                assert (
                    await http.post(gw.http_url + "/twiml", data=form, headers={"X-Twilio-Signature": good})
                ).status_code == 200
                assert (
                    await http.post(
                        gw.http_url + "/twiml",
                        data={**form, "CallSid": "CA2"},
                        headers={"X-Twilio-Signature": good},
                    )
                ).status_code == 403


async def test_no_key_no_media_auth(tmp_path):
    """Before any API key exists, the gateway takes calls as it always did."""
    from procs.redis_server import EmbeddedRedis

    wav = caller_wav(tmp_path / "caller.wav", 0.4)
    with EmbeddedRedis(tmp_path / "fresh") as fresh:
        async with FakeModelServer(speaks_its_mark) as model:
            async with run_agent_gateway(*gateway_settings(model.url), link=GatewayLink(fresh.url)) as gw:
                summary = await place_call(
                    "support", wav, tmp_path / "n.wav", url=gw.url, protocol="native", linger_s=0.2
                )
                await ended(gw)
        assert summary["close_code"] == 1000
        assert fresh.client().zcard("parley:call:index") == 1  # recorded all the same


async def test_live_calls_and_hang_up_through_the_api(admin, admin_key, redis_server, tmp_path):
    async with admin.async_client(admin_key) as api, FakeModelServer(speaks_its_mark) as model:
        token = (await api.post("/v1/agents/support/stream-tokens", json={})).json()["token"]
        async with run_agent_gateway(*gateway_settings(model.url), link=GatewayLink(redis_server.url)) as gw:
            client = await NativeCallClient(
                gw.url + "/stream", "support", headers={"Authorization": f"Bearer {token}"}
            ).open()
            talker = talk(client)
            try:
                await client.wait_for(lambda: any(e["kind"] == "started" for e in client.events), 10)
                call_id = next(e["call_id"] for e in client.events if e["kind"] == "started")
                live = (await api.get("/v1/calls/live")).json()
                assert [c["call_id"] for c in live] == [call_id] and live[0]["status"] == "live"
                assert (await api.get(f"/v1/calls/{call_id}")).json()["status"] == "live"
                async with admin.async_client(
                    await asyncio.to_thread(make_key, redis_server.url, "read")
                ) as reader:
                    assert (await reader.post(f"/v1/calls/{call_id}/hangup")).status_code == 403
                accepted = await api.post(f"/v1/calls/{call_id}/hangup")
                assert accepted.status_code == 202 and accepted.json()["gateways"] >= 1
                await client.wait_for(lambda c=client: c.closed is not None, 10)
                assert client.closed[0] == 1000
            finally:
                talker.cancel()
                await client.close()
            await ended(gw)
        record = (await api.get(f"/v1/calls/{call_id}")).json()
        assert record["status"] == "ended" and record["ended"]["by"] == "admin"
        assert (await api.get("/v1/calls/live")).json() == []
        r = await api.post(f"/v1/calls/{call_id}/hangup")
        assert r.status_code == 409 and "ended already" in r.json()["detail"]
        assert (await api.post("/v1/calls/nope/hangup")).status_code == 404


async def test_a_bridged_call_is_two_live_legs_one_hang_up_and_one_record(
    admin, admin_key, redis_server, tmp_path
):
    async with admin.async_client(admin_key) as api, FakeModelServer(speaks_its_mark) as model:
        tokens = {
            name: (await api.post(f"/v1/agents/{name}/stream-tokens", json={})).json()["token"]
            for name in ("translate-en-es", "translate-es-en")
        }
        async with run_agent_gateway(*gateway_settings(model.url), link=GatewayLink(redis_server.url)) as gw:

            def party(agent: str, room: str) -> NativeCallClient:
                auth = {"Authorization": f"Bearer {tokens[agent]}"}
                return NativeCallClient(gw.url + "/stream", agent, parameters={"room": room}, headers=auth)

            def room_status(client, status: str) -> dict | None:
                return next((e for e in client.events if e["kind"] == "room" and e["status"] == status), None)

            a = await party("translate-en-es", "new").open()
            await a.wait_for(lambda: room_status(a, "waiting") is not None, 10)
            b = await party("translate-es-en", room_status(a, "waiting")["room"]).open()
            talkers = [talk(a), talk(b)]
            try:
                for client in (a, b):
                    await client.wait_for(lambda c=client: room_status(c, "joined") is not None, 10)
                ids = [next(e["call_id"] for e in c.events if e["kind"] == "started") for c in (a, b)]
                live = (await api.get("/v1/calls/live")).json()
                assert sorted(c["call_id"] for c in live) == sorted(ids)
                accepted = await api.post(f"/v1/calls/{ids[1]}/hangup")  # B's leg: the whole call ends
                assert accepted.status_code == 202
                for client in (a, b):
                    await client.wait_for(lambda c=client: c.closed is not None, 10)
                    assert client.closed[0] == 1000 and room_status(client, "ended") is not None
            finally:
                for task in talkers:
                    task.cancel()
                await asyncio.gather(a.close(), b.close())
            await ended(gw)
        record = (await api.get(f"/v1/calls/{ids[0]}")).json()
        assert record["status"] == "ended" and record["ended"]["by"] == "admin"
        assert [leg["call_id"] for leg in record["bridge"]["legs"]] == ids
        assert [i["agent"] for i in record["bridge"]["interpreters"]] == [
            "translate-en-es",
            "translate-es-en",
        ]
        assert (await api.get("/v1/calls/live")).json() == []
        assert (await api.get(f"/v1/calls/{ids[1]}")).status_code == 404  # its record is the call's


async def test_a_real_tiny_model_call_and_the_metrics(redis_server, admin_key, tmp_path):
    torch.manual_seed(3)
    model = InteractionModel(ModelConfig.from_name("tiny")).eval()
    wav = caller_wav(tmp_path / "caller.wav", 1.0)
    async with ModelServer(
        Runner(model, 2), ModelServerSettings(port=0, max_slots=2), model_name="tiny"
    ) as server:
        health = server.url.replace("ws://", "http://").replace("/session", "/healthz")
        admin = AdminProcess(
            redis_server.url, tmp_path / "admin.log", model_health_urls=json.dumps([health])
        ).start()
        try:
            async with admin.async_client(admin_key) as api:
                before = (await api.get("/metrics")).text
                token = (await api.post("/v1/agents/support/stream-tokens", json={})).json()["token"]
                settings = gateway_settings(server.url)
                async with run_agent_gateway(*settings, link=GatewayLink(redis_server.url)) as gw:
                    summary = await place_call(
                        "support",
                        wav,
                        tmp_path / "tiny.wav",
                        url=gw.url,
                        protocol="native",
                        linger_s=0.6,
                        token=token,
                    )
                    await ended(gw)
                assert summary["close_code"] == 1000
                page = (
                    await api.get("/v1/calls", params={"agent": "support", "protocol": "native", "limit": 1})
                ).json()
                call = (await api.get(f"/v1/calls/{page['items'][0]['call_id']}")).json()
                assert call["model"] == "tiny" and call["turns_received"] >= 5
                assert call["agent_config"]["name"] == "support"
                text = (await api.get("/metrics")).text
        finally:
            admin.stop()

    def value(exposition: str, name: str) -> float:
        match = re.search(rf"^{re.escape(name)} (\S+)$", exposition, re.M)
        return float(match.group(1)) if match else 0.0

    assert value(text, "parley_calls_started_total") == value(before, "parley_calls_started_total") + 1
    assert value(text, "parley_calls_ended_total") == value(before, "parley_calls_ended_total") + 1
    assert value(text, "parley_live_calls") == 0
    server_label = health.split("//")[1].split("/")[0]
    assert value(text, f'parley_model_up{{server="{server_label}"}}') == 1
    assert value(text, f'parley_model_tick_ms{{quantile="0.99",server="{server_label}"}}') > 0
    assert f'parley_model_late_frames_total{{server="{server_label}"}}' in text
    assert 'parley_worker_queue_depth{queue="tools"} 0.0' in text
    assert "parley_turn_taking_latency_seconds_bucket" in text and "parley_tool_latency_seconds_count" in text
