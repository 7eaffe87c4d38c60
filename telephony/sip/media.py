"""A call's audio inside a worker: pooled pjsua2 AudioMediaPorts, and no per-byte Python.

Each call gets a pooled `CallMedia`: two 16 kHz mono ports on the worker's conference bridge (the
bridge resamples between them and the call's codec: 8 kHz G.711, 16 kHz G.722):

    CallerPort  200 ms frames   call audio -> onFrameReceived (5 a second, 6400 bytes each)
                                -> loop.call_soon_threadsafe(the leg's callback, bytes)
    AgentPort    40 ms frames   the leg's 200 ms frames, cut in five, -> onFrameRequested -> call audio

Caller audio comes in the model's 200 ms frames directly. Agent audio goes out in 40 ms pieces
from a small jitter buffer: playout starts `prefetch_ms` after the first frame of a run arrives
and then follows the model's frames as they come, so the delay is the same for every call (a
200 ms outbound port would add anywhere from 0 to 200 ms, and a call whose frames land just after
the bridge's pull would hear gaps). The buffer holds at most `max_buffer_ms`; past that the
oldest audio is dropped; an empty buffer while a run plays is an underrun (the model's frame was
late), counted in 40 ms pulls.

The callbacks run on the bridge's clock thread and do nothing else: no pjsua2 calls, no locks
beyond the GIL. Samples move with one memcpy each way: `read_vector`/`write_vector` reach the
std::vector behind pjsua2's `ByteVector` through ctypes (its first two words are the begin and
end pointers in libstdc++); `bytes(vec)` would convert element by element (~3 us a byte).
`vector_layout_ok()` checks that layout once per process; if it ever fails, the slow SWIG paths
are used instead.

Ports are created once per worker and never freed (freeing a port while the clock thread may
call it crashes the process). This module knows nothing of SIP, sessions or agents.
"""

from __future__ import annotations

import collections
import ctypes
import dataclasses
import logging
from collections.abc import Callable

import pjsua2 as pj

from model.protocol import FRAME_BYTES, MICRO_TURN_MS, SAMPLE_RATE

logger = logging.getLogger(__name__)

FRAME_MS = MICRO_TURN_MS
CHUNK_MS = 40
CHUNK_BYTES = SAMPLE_RATE * CHUNK_MS // 1000 * 2  # 1280: what the bridge pulls every 40 ms
SILENCE = bytes(FRAME_BYTES)
SILENT_CHUNK = bytes(CHUNK_BYTES)
_PTR = ctypes.sizeof(ctypes.c_void_p)


def _span(vec: pj.ByteVector) -> tuple[int, int]:
    addr = int(vec.this)
    begin = ctypes.c_void_p.from_address(addr).value or 0
    end = ctypes.c_void_p.from_address(addr + _PTR).value or 0
    return begin, end - begin


def read_vector(vec: pj.ByteVector) -> bytes:
    """The bytes of a pjsua2 ByteVector, in one copy."""
    begin, size = _span(vec)
    return ctypes.string_at(begin, size) if size > 0 else b""


def write_vector(vec: pj.ByteVector, data: bytes) -> None:
    """Replace a ByteVector's contents with `data`, in one copy."""
    vec.resize(len(data))
    begin, size = _span(vec)
    if size != len(data):
        raise RuntimeError("ByteVector layout is not the expected std::vector")
    ctypes.memmove(begin, data, size)


def vector_layout_ok() -> bool:
    """Whether `read_vector`/`write_vector` see what SWIG sees (checked once per process)."""
    try:
        probe = bytes(range(256)) * 3
        vec = pj.ByteVector(probe)
        if read_vector(vec) != probe:
            return False
        write_vector(vec, probe[::-1])
        return vec.size() == len(probe) and bytes(vec) == probe[::-1]
    except Exception:
        logger.exception("ByteVector layout check failed")
        return False


def _port_format(frame_ms: int) -> pj.MediaFormatAudio:
    fmt = pj.MediaFormatAudio()
    fmt.init(pj.PJMEDIA_FORMAT_PCM, SAMPLE_RATE, 1, frame_ms * 1000, 16)
    return fmt


@dataclasses.dataclass
class MediaCounters:
    caller_frames: int = 0  # 200 ms frames of caller audio handed to the call
    agent_frames: int = 0  # 200 ms frames of agent audio queued
    agent_chunks_played: int = 0  # CHUNK_MS pieces the bridge pulled with audio
    agent_chunks_dropped: int = 0  # past max_buffer_ms (the oldest audio goes)
    agent_chunks_cleared: int = 0  # dropped by an interrupt (barge-in): not lost
    underruns: int = 0  # pulls that found no audio while a run was playing


class CallerPort(pj.AudioMediaPort):
    """Receives a call's audio from the bridge in 200 ms frames (clock thread)."""

    def __init__(self, name: str, fast: bool) -> None:
        super().__init__()
        self._fast = fast
        self.target: Callable[[bytes], None] | None = None  # set while attached
        self.loop = None
        self.counters: MediaCounters | None = None
        self.errors = 0
        self.createPort(name, _port_format(FRAME_MS))

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:
        try:
            target, counters = self.target, self.counters
            if target is None or counters is None or frame.type != pj.PJMEDIA_FRAME_TYPE_AUDIO:
                return  # not in a call, or the bridge's keep-alive NULL frame
            data = read_vector(frame.buf) if self._fast else bytes(frame.buf)
            if len(data) != FRAME_BYTES:
                data = (data + SILENCE)[:FRAME_BYTES]
            counters.caller_frames += 1
            self.loop.call_soon_threadsafe(target, data)
        except Exception:
            self.errors += 1
            if self.errors <= 3:
                logger.exception("caller media callback failed")

    def onFrameRequested(self, frame: pj.MediaFrame) -> None:
        frame.type = pj.PJMEDIA_FRAME_TYPE_NONE  # never a source


class AgentPort(pj.AudioMediaPort):
    """Feeds a call agent audio in CHUNK_MS pieces from a small jitter buffer (clock thread side)."""

    def __init__(self, name: str, fast: bool, prefetch_ms: int, max_buffer_ms: int) -> None:
        super().__init__()
        self._fast = fast
        self.prefetch = max(0, -(-prefetch_ms // CHUNK_MS))  # whole pieces, rounded up
        self.max_chunks = max(FRAME_MS, max_buffer_ms) // CHUNK_MS
        self.chunks: collections.deque[bytes] = collections.deque()
        self.playing = False  # a run of agent audio is under way
        self.hold = 0  # pulls still to wait before a run starts playing
        self.on_drained: Callable[[], None] | None = None  # once, when the buffer runs empty
        self.loop = None
        self.counters: MediaCounters | None = None
        self.errors = 0
        self.createPort(name, _port_format(CHUNK_MS))

    def onFrameRequested(self, frame: pj.MediaFrame) -> None:
        try:
            data = SILENT_CHUNK
            counters = self.counters
            if counters is not None:
                if self.hold > 0:
                    self.hold -= 1
                elif self.chunks:
                    data = self.chunks.popleft()
                    self.playing = True
                    counters.agent_chunks_played += 1
                    if not self.chunks and self.on_drained is not None:
                        drained, self.on_drained = self.on_drained, None
                        self.loop.call_soon_threadsafe(drained)
                elif self.playing:
                    counters.underruns += 1
            if self._fast:
                write_vector(frame.buf, data)
            else:
                frame.buf = pj.ByteVector(data)
            frame.size = CHUNK_BYTES
            frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
        except Exception:
            self.errors += 1
            if self.errors <= 3:
                logger.exception("agent media callback failed")

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:
        pass  # never a sink


class CallMedia:
    """One call's pair of ports. `attach`/`push`/`clear`/... run on the event loop."""

    def __init__(self, index: int, fast: bool, prefetch_ms: int, max_buffer_ms: int) -> None:
        self.caller = CallerPort(f"caller{index}", fast)
        self.agent = AgentPort(f"agent{index}", fast, prefetch_ms, max_buffer_ms)
        self.counters = MediaCounters()
        self._audio: pj.AudioMedia | None = None

    def attach(self, loop, on_frame: Callable[[bytes], None]) -> None:
        self.counters = MediaCounters()
        self.agent.chunks.clear()
        self.agent.playing, self.agent.hold, self.agent.on_drained = False, 0, None
        for port in (self.caller, self.agent):
            port.loop = loop
            port.counters = self.counters
        self.caller.target = on_frame

    def connect(self, audio: pj.AudioMedia) -> None:
        """Wire the call's conference port to ours (again after a re-INVITE: idempotent)."""
        audio.startTransmit(self.caller)
        self.agent.startTransmit(audio)
        self._audio = audio

    def detach(self) -> MediaCounters:
        self.caller.target = None
        self.caller.counters = self.agent.counters = None
        self.agent.chunks.clear()
        self.agent.on_drained = None
        if self._audio is not None:  # the call's port is usually gone already; harmless if not
            try:
                self.agent.stopTransmit(self._audio)
            except pj.Error:
                pass
            self._audio = None
        return self.counters

    def push(self, frame: bytes) -> None:
        """Queue one 200 ms agent frame (6400 bytes)."""
        if len(frame) != FRAME_BYTES:
            raise ValueError(f"CallMedia.push: {len(frame)} bytes, expected {FRAME_BYTES}")
        agent = self.agent
        if not agent.chunks and not agent.playing:
            agent.hold = agent.prefetch  # a run starts: give it the same head start every time
        self.counters.agent_frames += 1
        agent.chunks.extend(frame[i : i + CHUNK_BYTES] for i in range(0, FRAME_BYTES, CHUNK_BYTES))
        while len(agent.chunks) > agent.max_chunks:
            agent.chunks.popleft()
            self.counters.agent_chunks_dropped += 1

    def clear(self) -> None:
        """Drop all queued agent audio now (barge-in); the next frame starts a new run."""
        self.counters.agent_chunks_cleared += len(self.agent.chunks)
        self.agent.chunks.clear()
        self.agent.playing = False

    def watch_drain(self, on_drained: Callable[[], None]) -> bool:
        """Call `on_drained` (on the loop) once the buffer runs empty; True if it is empty now."""
        if not self.agent.chunks:
            return True
        self.agent.on_drained = on_drained
        return False

    def stop_playing(self) -> None:
        """No more agent audio is coming (the call is ending): an empty buffer is no underrun."""
        self.agent.playing = False


class MediaPool:
    """The worker's CallMedia, created once (ports are never freed: see the module docstring)."""

    def __init__(self, count: int, *, prefetch_ms: int = 80, max_buffer_ms: int = 600) -> None:
        fast = vector_layout_ok()
        if not fast:
            logger.warning("ByteVector layout unexpected: moving audio the slow way (per byte)")
        self.fast = fast
        self._all = [CallMedia(i, fast, prefetch_ms, max_buffer_ms) for i in range(count)]
        self._free = list(reversed(self._all))

    def acquire(self) -> CallMedia | None:
        return self._free.pop() if self._free else None

    def release(self, media: CallMedia) -> None:
        media.detach()
        if media not in self._free:
            self._free.insert(0, media)

    @property
    def free(self) -> int:
        return len(self._free)

    def close(self) -> None:
        for media in self._all:
            media.detach()
