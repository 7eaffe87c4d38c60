"""The reasoner on a local llama.cpp model (llama-cpp-python): `LocalReasoner`.

A decision renders the call as workers.reasoner's prompt, generates under the decision's JSON
schema as a grammar, and parses the result. Several llama.cpp contexts keep several calls'
histories evaluated, so a call's next decision reads only what is new; decisions take turns first
come, first served. workers.reasoner_settings chooses it (or an endpoint) from the environment.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workers.reasoner import (
    _TEXT_START,
    MAX_GRAMMARS,
    MAX_REPLY_CHARS,
    Brief,
    Decision,
    _check_history,
    _decided,
    _error,
    _salvage_reply,
    chat_messages,
    chatml,
    decision_schema,
    parse_decision,
    shipped_adapter_path,
    smollm2_path,
)

log = logging.getLogger("workers.reasoner")


@dataclass
class _Slot:
    llm: Any
    grammars: dict[str, Any] = field(default_factory=dict)
    busy: bool = False
    used: int = 0  # when it last decided (a counter): the least recently used is reused first

    def shared(self, tokens: np.ndarray) -> int:
        """How many leading tokens of `tokens` this context already holds (evaluated, in its KV)."""
        held = self.llm.input_ids[: self.llm.n_tokens]
        n = min(len(held), len(tokens))
        differ = np.flatnonzero(held[:n] != tokens[:n])
        return int(differ[0]) if len(differ) else n


class _FairPool:
    """Turns handed out first come, first served: a released turn goes straight to the thread that
    has waited longest (queue.Queue let the releasing thread take it back at once, so one
    conversation ran on while the others starved, and waits hid from the percentiles)."""

    def __init__(self, turns: int) -> None:
        self._free = turns
        self._waiters: collections.deque[threading.Event] = collections.deque()
        self._lock = threading.Lock()

    def get(self) -> None:
        with self._lock:
            if self._free and not self._waiters:
                self._free -= 1
                return
            waiter = threading.Event()
            self._waiters.append(waiter)
        waiter.wait()

    def put(self) -> None:
        with self._lock:
            if self._waiters:
                self._waiters.popleft().set()
            else:
                self._free += 1


# A context whose shared prefix is this close to the best one's is as good: among those, the least
# recently used is taken, so a new call does not evict a live call's history for a few tokens.
_AS_GOOD_TOKENS = 64


def _set_adapter(llm: Any, path: Path) -> None:
    """Apply the LoRA adapter at `path` to `llm`'s context (llama.cpp applies it at run time; the
    adapter stays with its model, freed with it)."""
    import ctypes

    from llama_cpp import llama_cpp as C

    adapter = C.llama_adapter_lora_init(llm._model.model, str(path).encode())
    if adapter is None:
        raise ValueError(f"not a LoRA adapter llama.cpp can load: {path}")
    llm._parley_adapter = adapter
    if C.llama_set_adapters_lora(
        llm._ctx.ctx, (C.llama_adapter_lora_p_ctypes * 1)(adapter), 1, (ctypes.c_float * 1)(1.0)
    ):
        raise RuntimeError(f"the LoRA adapter could not be set: {path}")


class LocalReasoner:
    """llama-cpp-python over a GGUF, loaded on first use and shared by threads.

    `contexts` llama.cpp contexts hold the KV cache of as many conversations: a decision takes the
    free context that already holds the longest prefix of its prompt (its own call's, after the
    first decision), so it evaluates only what happened since its call's last decision instead of
    the whole call (~0.9k tokens on the support brief). `instances` decisions run at once (each on
    `n_threads` threads), in the order they asked. Grammars are built once per brief and context.
    `adapter`: a LoRA adapter GGUF applied over the model; "shipped" (the default) is Parley's
    fine-tuned one when the model is the packaged SmolLM2 (`shipped_adapter_path`), None none."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        adapter: str | Path | None = "shipped",
        n_threads: int = 2,
        instances: int = 1,
        contexts: int = 8,
        n_ctx: int = 2048,
        max_reply_tokens: int = 60,
        max_reply_chars: int = MAX_REPLY_CHARS,
        prefix_cache_mb: int = 0,
    ) -> None:
        self.model_path = Path(model_path) if model_path else None
        if adapter == "shipped":
            adapter = shipped_adapter_path() if self.model_path is None else None
        self.adapter = Path(adapter) if adapter else None
        self.n_threads, self.instances, self.n_ctx = n_threads, instances, n_ctx
        self.contexts = max(contexts, instances)
        self.max_reply_tokens, self.max_reply_chars = max_reply_tokens, max_reply_chars
        self.prefix_cache_mb = prefix_cache_mb
        self._slots: list[_Slot] = []
        self._turns: _FairPool | None = None
        self._lock = threading.Lock()
        self._clock = self._opening = 0

    def _new_context(self) -> Any:
        from llama_cpp import Llama, LlamaRAMCache

        # The adapter is set on the context here, not through Llama(lora_path=...), which turns
        # memory mapping off (for llama.cpp versions that merged adapters into the weights): every
        # context then held a private copy of the weights, ~165 MB against ~63 MB mapped.
        llm = Llama(
            model_path=str(self.model_path or smollm2_path()),
            n_ctx=self.n_ctx,
            n_threads=self.n_threads,
            n_batch=512,
            verbose=False,
        )
        if self.adapter:
            _set_adapter(llm, self.adapter)
        if self.prefix_cache_mb:
            llm.set_cache(LlamaRAMCache(capacity_bytes=self.prefix_cache_mb << 20))
        return llm

    def _load(self) -> _FairPool:
        with self._lock:
            if self._turns is None:
                self._slots.append(_Slot(self._new_context()))
                self._turns = _FairPool(self.instances)
            return self._turns

    def _tokens(self, prompt: str) -> np.ndarray:
        return np.asarray(self._slots[0].llm.tokenize(prompt.encode(), add_bos=False, special=True), np.intc)

    def _take(self, prompt: str) -> tuple[_Slot, np.ndarray]:
        """The free context best placed for `prompt`, marked busy, and the prompt's tokens.
        Contexts open as calls need them (~65 MB each beside the mapped weights), up to
        `contexts`: a call whose best context holds another call's history gets a new one while
        there is room, and otherwise takes the least recently used of those that share as much of
        its prompt (one holding no other call first)."""
        with self._lock:
            tokens = self._tokens(prompt)
            free = [s for s in self._slots if not s.busy]
            shared = {id(s): s.shared(tokens) for s in free}
            best = max(shared.values(), default=0)
            fits = [s for s in free if shared[id(s)] >= best - _AS_GOOD_TOKENS]
            foreign = {id(s): s.llm.n_tokens - shared[id(s)] > _AS_GOOD_TOKENS for s in fits}
            slot = min(fits, key=lambda s: (foreign[id(s)], s.used)) if fits else None
            self._clock += 1
            room = len(self._slots) + self._opening < self.contexts
            if slot is None or (room and foreign[id(slot)]):
                self._opening += 1
                slot = None
            else:
                slot.busy, slot.used = True, self._clock
                return slot, tokens
        try:
            slot = _Slot(self._new_context(), busy=True, used=self._clock)
        finally:
            with self._lock:
                self._opening -= 1
                if slot is not None:
                    self._slots.append(slot)
        return slot, tokens

    def _release(self, slot: _Slot) -> None:
        with self._lock:
            slot.busy = False

    def warm(self, brief: Brief | None = None, contexts: int = 1) -> None:
        """Load the model and open `contexts` contexts (at most `self.contexts`), as a server has
        them after its first calls; with a brief, also evaluate its shared prompt prefix (the
        system text and demo call: the part every call of that agent reuses) in each."""
        turns = self._load()
        with self._lock:
            more = min(contexts, self.contexts) - len(self._slots)
        fresh = [_Slot(self._new_context()) for _ in range(max(0, more))]
        with self._lock:
            self._slots += fresh
        if brief is None:
            return
        tokens = self._tokens(chatml(chat_messages(brief, [])))
        for slot in list(self._slots):
            turns.get()
            try:
                with self._lock:
                    if slot.busy:
                        continue
                    slot.busy = True
                try:
                    if slot.shared(tokens) < len(tokens):
                        slot.llm.create_completion(tokens.tolist(), max_tokens=1, temperature=0.0)
                finally:
                    self._release(slot)
            finally:
                turns.put()

    def _schema_text(self, brief: Brief) -> str:
        # Built per decision (microseconds): a cache keyed by id(brief) held every task's Brief.
        return json.dumps(decision_schema(brief, self.max_reply_chars))

    def _grammar(self, slot: _Slot, brief: Brief) -> Any:
        from llama_cpp import LlamaGrammar

        text = self._schema_text(brief)  # the key: each task builds its own Brief of the same agent
        grammar = slot.grammars.get(text)
        if grammar is None:
            if len(slot.grammars) >= MAX_GRAMMARS:
                slot.grammars.clear()
            grammar = slot.grammars[text] = LlamaGrammar.from_json_schema(text, verbose=False)
        return grammar

    def decide(self, brief: Brief, history: list[dict]) -> Decision:
        t0 = time.perf_counter()
        bad = _check_history(history)
        if bad:
            return _error(bad, t0)
        try:
            turns = self._load()
        except Exception as exc:  # a missing model or library: the call hears an error, not a crash
            log.error("reasoner: model failed to load: %s", type(exc).__name__)
            return _error("model unavailable", t0)
        turns.get()
        try:
            slot, tokens = self._take(chatml(chat_messages(brief, history)))
            try:
                return self._decide(slot, brief, tokens.tolist(), t0)
            finally:
                self._release(slot)
        except Exception as exc:
            log.error("reasoner: generation failed: %s", type(exc).__name__, extra={"agent": brief.name})
            return _error("generation failed", t0)
        finally:
            turns.put()

    def _decide(self, slot: _Slot, brief: Brief, tokens: list[int], t0: float) -> Decision:
        if len(tokens) + self.max_reply_tokens + 40 > self.n_ctx:
            return _error("history too long for the model's context", t0)
        out, first, n, finish = "", None, 0, None
        stream = slot.llm.create_completion(
            tokens,
            max_tokens=self.max_reply_tokens + 40,
            temperature=0.0,
            grammar=self._grammar(slot, brief),
            stream=True,
        )
        for chunk in stream:
            n += 1
            out += chunk["choices"][0]["text"]
            finish = chunk["choices"][0].get("finish_reason") or finish
            if first is None and _TEXT_START.search(out) and not out.endswith('"'):
                first = time.perf_counter() - t0
        decision = parse_decision(brief, out, self.max_reply_chars)
        if decision.kind == "error" and finish == "length":
            decision = _salvage_reply(out, self.max_reply_chars)
        return _decided(brief, decision, t0, first if decision.kind == "reply" else None, len(tokens), n)
