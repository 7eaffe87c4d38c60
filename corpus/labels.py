"""Per-micro-turn training labels from a rendered call, and the teacher-forced `Batch` built from them.

Labels are made exactly as the model is served (README.md "Training data and training"). Alignment,
with N = 3200 samples = one micro-turn and D = vocoder_delay_samples(cfg) (640 by default):
- Input: micro-turn k reads caller samples [kN, (k+1)N), i.e. dMel frames [10k, 10k+10) of the whole
  caller channel, which is what DMel.stream computes at serving from the same frames.
- Output: micro-turn k's agent audio plays over W_k = [(k+1)N, (k+2)N) (`output_window`); everything
  the agent does is labelled by the window it happens in.
- Agent audio: the vocoder outputs audio D samples after the frames it was analysed from, so the
  agent levels are analysed from the agent channel advanced by N + D (`agent_shift_samples`, zero-padded
  at the end); frame j is then centred at j*hop + n_fft/2 + N, where the vocoder's synthesis window
  for frame j lands on the call clock.
Floor, text, tool-call and event rules are on `_floor`, `_text`, `_tools` and `_events`.

What it does not know: voices, effects, timing relations (corpus.render owns those).
"""

from __future__ import annotations

import functools
from collections import deque
from dataclasses import dataclass

import numpy as np
import torch

from agent.events import (
    SESSION_TOOLS,
    TOOL_PENDING_AFTER_S,
    TOOL_PENDING_EVERY_S,
    tool_pending_payload,
    tool_pending_times,
)
from corpus.render import MS, CorpusCache, Event, RenderedCall, config_text
from model.config import MICRO_TURN_SAMPLES, ModelConfig
from model.dmel import DMel
from model.interaction import KIND_EVENT, KIND_TURN, Batch
from model.protocol import FLOOR_STATES
from model.tokenizer import EVENT_KINDS, SPECIAL, ByteTokenizer, event_word_ids, prompter_advance, reply_bytes
from model.vocoder import vocoder_delay_samples

N = MICRO_TURN_SAMPLES
FLOOR = {name: i for i, name in enumerate(FLOOR_STATES)}
TOKENIZER = ByteTokenizer()
PENDING_GAP_S = 0.4


def output_window(k: int) -> tuple[int, int]:
    """Call samples [start, end) that micro-turn k's agent output is played over."""
    return (k + 1) * N, (k + 2) * N


def agent_shift_samples(cfg: ModelConfig) -> int:
    """How far the agent channel is advanced before dMel analysis for the audio labels."""
    return N + vocoder_delay_samples(cfg)


@functools.lru_cache(maxsize=8)
def dmel_analyzer(cfg: ModelConfig) -> DMel:
    """One DMel per config, shared by the labels and the vocoder's training (buffers only)."""
    return DMel(cfg)


def dmel_levels(audio: np.ndarray, cfg: ModelConfig) -> np.ndarray:
    """audio [T*N] -> quantised dMel levels [T, frames_per_turn, n_mels] uint8."""
    dmel = dmel_analyzer(cfg)
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(audio, np.float32))[None]  # [1, T*N]
        levels = dmel.quantize(dmel.log_mel(x))[0]  # [T*F, M]
    return levels.view(-1, cfg.frames_per_turn, cfg.n_mels).to(torch.uint8).numpy()


def config_prefix(text: str, cfg: ModelConfig) -> list[int]:
    """The pinned prefix, encoded as model.server encodes a hello's config (tokenizer.encode_prefix)."""
    return TOKENIZER.encode_prefix(text, cfg.max_prefix)


@dataclass(eq=False)
class CallLabels:
    agent: str
    seed: int
    held_out: bool
    prefix: list[int]  # pinned config tokens (<= max_prefix)
    caller: np.ndarray  # [T, F, M] uint8 caller dMel levels
    audio: np.ndarray  # [T, F, M] uint8 agent dMel levels (advanced, see the module docstring)
    floor: np.ndarray  # [T] int64 index into FLOOR_STATES
    text: np.ndarray  # [T, max_text_tokens] int64: bytes, EOT, PAD
    tool: np.ndarray  # [T, max_tool_tokens] int64: "name {json}" bytes, EOT, PAD; all PAD when none
    events: list[list[int]]  # [T] event tokens injected before micro-turn k ("words": one marker an event)
    dropped_text_bytes: int = 0  # text bytes past the call's end (0 in practice)
    dropped_event_tokens: int = 0  # event tokens still queued when the call ended
    event_words: list[list[list[int]]] | None = None  # "words": [T][event] its hashed word ids
    event_payloads: list[list[tuple[str, str]]] | None = None  # "words": [T][event] (kind, payload)
    prompter: np.ndarray | None = None  # [T, prompter_bytes] int64: the reply not yet said, PAD after

    @property
    def n_turns(self) -> int:
        return len(self.floor)

    @property
    def n_positions(self) -> int:
        return self.n_turns + sum(len(e) for e in self.events)


# -- the pieces -----------------------------------------------------------------------------------


def _floor(call: RenderedCall, t: int, first_text_turn: dict[int, int]) -> np.ndarray:
    """Floor per micro-turn; precedence speak > yield > backchannel > listen.

    "speak" if an agent turn or filler sounds anywhere in W_k (its pauses included) or its first text
    byte is written in micro-turn k: the floor leads the audio as the text does (were it to start a
    micro-turn after the text, the floor head would only learn to copy "text was written").
    "backchannel" likewise for an agent backchannel. "yield" on the first window starting at or after
    the cut of a barged-in agent turn (cut = caller onset + 200 ms; the window holding the cut is
    still "speak": the agent stops inside it). Else "listen".
    first_text_turn: index in call.says -> the micro-turn holding that say's first text byte."""
    speak, bc, yld = (np.zeros(t, bool) for _ in range(3))
    for i, s in enumerate(call.says):
        if s.speaker != "agent" or s.end_sample <= s.start_sample:
            continue
        lo, hi = max(0, s.start_sample // N - 1), min(t - 1, (s.end_sample - 1) // N - 1)
        lo = min(lo, first_text_turn.get(i, lo))
        (bc if s.role == "backchannel" else speak)[lo : hi + 1] = True
        if s.cut_sample is not None:
            k = -(-s.cut_sample // N) - 1  # first window starting at or after the cut
            if 0 <= k < t:
                yld[k] = True
    floor = np.full(t, FLOOR["listen"], np.int64)
    floor[bc] = FLOOR["backchannel"]
    floor[yld] = FLOOR["yield"]
    floor[speak] = FLOOR["speak"]
    return floor


def with_tool_pending(call: RenderedCall) -> list[Event]:
    """The call's events (config excluded) plus the `tool_pending` notices a live call gets while a
    slow tool works (agent.session sends them at the same times with the same payload). With a
    background model (`call.background`) the tools are its own, and it says so at once: a
    `tool_pending` of 0 seconds when it calls one (agent.background)."""
    events = [e for e in call.events if e.kind != "config"]
    answers = [e for e in events if e.kind in ("tool_result", "tool_error")]
    notices = []
    for tool in call.tool_calls:  # in time order, as are the answers: each takes the next answer
        answer = next((a for a in answers if a.t_ms >= tool.t_ms), None)
        if answer is None:
            continue
        answers.remove(answer)
        if tool.name in SESSION_TOOLS:  # carried out by the session itself, never pending
            continue
        if call.background:
            notices.append(Event(tool.t_ms, "tool_pending", tool_pending_payload(0)))
        # Not one due within PENDING_GAP_S of the answer: live, the answer would follow it at once;
        # here it would hold up the answer's tokens behind it while the words are already placed.
        waited = (answer.t_ms - tool.t_ms) / 1000 - PENDING_GAP_S
        for s in tool_pending_times(TOOL_PENDING_AFTER_S, TOOL_PENDING_EVERY_S, waited):
            notices.append(Event(tool.t_ms + round(s * 1000), "tool_pending", tool_pending_payload(s)))
    return sorted(events + notices, key=lambda e: e.t_ms)  # stable: a notice never ties its answer


def _events(
    call: RenderedCall, t: int, cfg: ModelConfig
) -> tuple[list[list[int]], list[list[Event]], dict[int, int], int]:
    """(the stream tokens before each micro-turn, the events they belong to, event arrival ms ->
    micro-turn of its first token, tokens or events dropped).

    Events join a queue at the micro-turn during which they arrive (t // 200 ms), as the model
    server's scheduler queues them. `event_repr` "bytes": each event's tokens
    (tokenizer.encode_event), at most max_event_tokens a micro-turn, so long events continue over
    the next micro-turns; "words": whole events, one marker each, at most max_event_tokens a
    micro-turn. An event is listed at every micro-turn one of its tokens is injected at. The
    config event is not here: it is the pinned prefix (`config_prefix`)."""
    arrivals = with_tool_pending(call)
    tokens: list[list[int]] = [[] for _ in range(t)]
    groups: list[list[Event]] = [[] for _ in range(t)]
    first: dict[int, int] = {}

    def encoded(e: Event) -> list[int]:
        if cfg.event_repr == "words":
            return [EVENT_KINDS[e.kind]]
        return TOKENIZER.encode_event(e.kind, e.payload)

    queue: deque[tuple[int, Event]] = deque()  # (token, the event it belongs to)
    i = 0
    for k in range(t):
        while i < len(arrivals) and arrivals[i].t_ms * MS // N <= k:
            queue.extend((tok, arrivals[i]) for tok in encoded(arrivals[i]))
            i += 1
        for _ in range(min(len(queue), cfg.max_event_tokens)):
            tok, e = queue.popleft()
            tokens[k].append(tok)
            if not groups[k] or groups[k][-1] is not e:
                groups[k].append(e)
            first.setdefault(e.t_ms, k)
    late = sum(len(encoded(e)) for e in arrivals[i:])
    return tokens, groups, first, len(queue) + late


def _prompter(groups: list[list[Event]], text: np.ndarray, cfg: ModelConfig) -> np.ndarray:
    """[T, prompter_bytes]: what each micro-turn shows of the reply not yet said. A reply event
    replaces the reply when it is injected (before that micro-turn reads the window); after each
    micro-turn the cursor moves by `prompter_advance` of the text written, as serving does."""
    n = cfg.prompter_bytes
    out = np.full((len(groups), n), SPECIAL.PAD, np.int64)
    reply: list[int] = []
    pos = 0
    for k, g in enumerate(groups):
        for e in g:
            if e.kind == "reply":
                reply, pos = reply_bytes(e.payload, cfg.max_reply_bytes), 0
        window = reply[pos : pos + n]
        out[k, : len(window)] = window
        pos += prompter_advance(text[k].tolist(), window)
    return out


def pack_bytes(targets: list[int], lower: list[int], capacity: int) -> list[int]:
    """A micro-turn for each byte: byte order kept, at most `capacity` per micro-turn, never
    before lower[i]; at targets[i] when there is room, else the latest earlier micro-turn with
    room, and later only when earlier is not allowed."""
    n = len(targets)
    slots = [0] * n
    used: dict[int, int] = {}
    nxt = None
    for i in reversed(range(n)):  # as late as possible, but not after the target
        s = targets[i] if nxt is None else min(targets[i], nxt)
        if used.get(s, 0) >= capacity:
            s -= 1
        slots[i], nxt = s, s
        used[s] = used.get(s, 0) + 1
    used.clear()
    prev = 0
    for i in range(n):  # lower bounds; carry later where the earlier micro-turns are full
        s = max(slots[i], lower[i], prev)
        while used.get(s, 0) >= capacity:
            s += 1
        slots[i], prev = s, s
        used[s] = used.get(s, 0) + 1
    return slots


def _text(
    call: RenderedCall, t: int, cfg: ModelConfig, first_event_turn: dict[int, int]
) -> tuple[np.ndarray, dict[int, int], int]:
    """(text [T, max_text_tokens], say index -> micro-turn of its first byte, bytes dropped).

    The agent's spoken words (a word = whitespace token plus one space) as UTF-8 bytes, each targeted
    at the micro-turn ONE before the one whose window holds the word's onset (text leads audio by
    ~200 ms): target = onset // N - 2. A Say answering an event (tool result, timer, keys) is never
    targeted before the micro-turn that event's first token is injected at. Each micro-turn holds
    max_text_tokens - 1 bytes, then EOT, then PAD; overflow is placed by `pack_bytes`. Bytes of one
    character may straddle micro-turns (StreamDecoder copes)."""
    data, targets, lower, owner = [], [], [], []
    agent = sorted(
        (i for i, s in enumerate(call.says) if s.speaker == "agent"), key=lambda i: call.says[i].start_sample
    )
    for i in agent:
        s = call.says[i]
        floor_turn = 0
        if s.not_before_sample:
            ms = s.not_before_sample // MS
            floor_turn = first_event_turn.get(ms, s.not_before_sample // N)
        for w in s.words:
            target = max(w.start_sample // N - 2, floor_turn, 0)
            for byte in TOKENIZER.encode(w.text + " "):
                data.append(byte)
                targets.append(target)
                lower.append(floor_turn)
                owner.append(i)
    text = np.full((t, cfg.max_text_tokens), SPECIAL.PAD, np.int64)
    fill = np.zeros(t, np.int64)
    dropped = 0
    first: dict[int, int] = {}
    for byte, k, i in zip(data, pack_bytes(targets, lower, cfg.max_text_tokens - 1), owner):
        if k >= t:
            dropped += 1
            continue
        text[k, fill[k]] = byte
        fill[k] += 1
        first.setdefault(i, k)
    text[np.arange(t), fill] = SPECIAL.EOT
    return text, first, dropped


def tool_call_tokens(name: str, arguments_json: str, cfg: ModelConfig) -> list[int]:
    """What the model decodes after its TOOL start token: 'name {json}' bytes then EOT, fitted."""
    tokens = TOKENIZER.encode_tool_call(name, arguments_json)[1:]
    if len(tokens) > cfg.max_tool_tokens:
        tokens = tokens[: cfg.max_tool_tokens - 1] + [SPECIAL.EOT]
    return tokens


def _tools(call: RenderedCall, t: int, cfg: ModelConfig) -> np.ndarray:
    """Each tool call at the micro-turn whose window holds its issue time (just after the filler).
    With a background model the interaction model calls only `end_call` (it hears the goodbye):
    the background model calls the rest."""
    tool = np.full((t, cfg.max_tool_tokens), SPECIAL.PAD, np.int64)
    for tc in call.tool_calls:
        if call.background and tc.name != "end_call":
            continue
        k = max(0, tc.t_ms * MS // N - 1)  # the window holding the issue time
        while k < t - 1 and tool[k, 0] != SPECIAL.PAD:
            k += 1
        tokens = tool_call_tokens(tc.name, tc.arguments_json, cfg)
        tool[min(k, t - 1), : len(tokens)] = tokens
    return tool


def micro_turn_labels(call: RenderedCall, cfg: ModelConfig) -> CallLabels:
    """Every label of every micro-turn of `call` (see the module docstring for the alignment)."""
    if call.sample_rate != 16_000 or call.n_samples % N:
        raise ValueError(
            f"calls must be 16 kHz and a whole number of micro-turns, got "
            f"{call.sample_rate} Hz, {call.n_samples} samples"
        )
    t = call.n_turns
    shift = agent_shift_samples(cfg)
    advanced = np.zeros(call.n_samples, np.float32)
    advanced[: max(0, call.n_samples - shift)] = call.agent[shift:]
    tokens, groups, first_turn, dropped_events = _events(call, t, cfg)
    text, first_text_turn, dropped_text = _text(call, t, cfg, first_turn)
    words = cfg.event_repr == "words"
    # The agent's configuration as serving renders it today, not as it was when the call was cached.
    config = config_text(call.script.agent)
    return CallLabels(
        agent=call.script.agent,
        seed=call.seed,
        held_out=call.held_out,
        prefix=config_prefix(config, cfg),
        caller=dmel_levels(call.caller, cfg),
        audio=dmel_levels(advanced, cfg),
        floor=_floor(call, t, first_text_turn),
        text=text,
        tool=_tools(call, t, cfg),
        events=tokens,
        dropped_text_bytes=dropped_text,
        dropped_event_tokens=dropped_events,
        event_words=(
            [[event_word_ids(e.payload, cfg.event_words, cfg.event_buckets) for e in g] for g in groups]
            if words
            else None
        ),
        event_payloads=[[(e.kind, e.payload) for e in g] for g in groups] if words else None,
        prompter=_prompter(groups, text, cfg) if cfg.prompter_bytes else None,
    )


# -- batches --------------------------------------------------------------------------------------


def _crop_start(labels: CallLabels, max_positions: int, rng: np.random.Generator | None) -> int:
    """First micro-turn of the crop: 0, or (with rng) uniform among those that fill the crop."""
    sizes = np.array([len(e) + 1 for e in labels.events])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    total = int(sizes.sum())
    if rng is None or total <= max_positions:
        return 0
    candidates = np.nonzero(starts + max_positions <= total)[0]
    return int(rng.choice(candidates)) if len(candidates) else 0


def to_batch(calls: list[CallLabels], cfg: ModelConfig, max_positions: int, seed: int | None = None) -> Batch:
    """Calls as right-padded stream positions: for each micro-turn its event tokens, then the
    micro-turn. Longer calls are cropped to max_positions: from the start when seed is None, else
    from a seeded random micro-turn (a crop begins with that micro-turn's events and ends after the
    last micro-turn that fits whole). The prefix is the pinned config, whatever the crop."""
    b, t = len(calls), max_positions
    f, m = cfg.frames_per_turn, cfg.n_mels
    p = max([1] + [len(c.prefix) for c in calls])
    prefix = torch.full((b, p), SPECIAL.PAD, dtype=torch.int64)
    kind = torch.zeros(b, t, dtype=torch.int64)
    token = torch.full((b, t), SPECIAL.PAD, dtype=torch.int64)
    caller = torch.zeros(b, t, f, m, dtype=torch.int64)
    floor = torch.zeros(b, t, dtype=torch.int64)
    text = torch.full((b, t, cfg.max_text_tokens), SPECIAL.PAD, dtype=torch.int64)
    tool = torch.full((b, t, cfg.max_tool_tokens), SPECIAL.PAD, dtype=torch.int64)
    audio = torch.zeros(b, t, f, m, dtype=torch.int64)
    words = torch.zeros(b, t, cfg.event_words, dtype=torch.int64) if cfg.event_repr == "words" else None
    prompter = (
        torch.full((b, t, cfg.prompter_bytes), SPECIAL.PAD, dtype=torch.int64) if cfg.prompter_bytes else None
    )
    for row, c in enumerate(calls):
        prefix[row, : len(c.prefix)] = torch.tensor(c.prefix, dtype=torch.int64)
        rng = None if seed is None else np.random.default_rng([seed, row])
        turns, positions, ev_pos, ev_tok = [], [], [], []
        pos = 0
        for k in range(_crop_start(c, t, rng), c.n_turns):
            ev = c.events[k]
            if pos + len(ev) + 1 > t:
                break
            ev_pos.extend(range(pos, pos + len(ev)))
            ev_tok.extend(ev)
            if words is not None:
                for j, ids in enumerate(c.event_words[k]):
                    words[row, pos + j, : len(ids)] = torch.tensor(ids, dtype=torch.int64)
            pos += len(ev)
            turns.append(k)
            positions.append(pos)
            pos += 1
        ks, ps = torch.tensor(turns, dtype=torch.int64), torch.tensor(positions, dtype=torch.int64)
        kind[row, ev_pos] = KIND_EVENT
        token[row, ev_pos] = torch.tensor(ev_tok, dtype=torch.int64)
        kind[row, ps] = KIND_TURN
        caller[row, ps] = torch.from_numpy(c.caller)[ks].long()
        audio[row, ps] = torch.from_numpy(c.audio)[ks].long()
        floor[row, ps] = torch.from_numpy(c.floor)[ks]
        text[row, ps] = torch.from_numpy(c.text)[ks]
        tool[row, ps] = torch.from_numpy(c.tool)[ks]
        if prompter is not None:
            prompter[row, ps] = torch.from_numpy(c.prompter)[ks]
    prefix_len = torch.tensor([len(c.prefix) for c in calls], dtype=torch.int64)
    return Batch(
        prefix=prefix,
        prefix_len=prefix_len,
        kind=kind,
        token=token,
        caller=caller,
        floor=floor,
        text=text,
        tool=tool,
        audio=audio,
        event_words=words,
        prompter=prompter,
    )


def build_example(
    agent: str,
    seed: int,
    cfg: ModelConfig,
    held_out: bool = False,
    cache: CorpusCache | None = None,
    agent_voice: str = "espeak",
) -> CallLabels:
    """Labels of call (agent, seed): rendered once into the corpus cache, labelled for `cfg`. The
    agent's voice is the cache's, or `agent_voice` (corpus.render) for the default cache."""
    return micro_turn_labels((cache or CorpusCache(agent_voice=agent_voice)).call(agent, seed, held_out), cfg)
