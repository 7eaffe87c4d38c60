"""Real-time pacing of outgoing audio: 20 ms packets on a monotonic clock, for one call.

The owner pushes agent audio one frame at a time (a 200 ms model frame, already resampled and
encoded, as bytes of whole samples); `Pacer` cuts it into packets of `packet_ms` (20 ms) and calls
an async `send(packet)` once per packet period. Bytes that do not fill a packet carry over to the
next push; only `close(drain=True)` sends a partial one, padded with silence. It knows nothing of
the model, of codecs beyond the size and silence of one packet (`Pacer.for_encoding`), or of any
transport: `send` is whatever puts bytes on the wire.

Clock: packet n of a run goes out at `start + n * packet_ms` on a monotonic clock, so lateness
never accumulates; after a stall at most `max_burst` due packets go out back to back and older
slots are given up (`skipped_slots`), on the same grid. A run that starts after the queue ran dry
starts a new grid at once.

Bound: the frame being sent plus at most one waiting. A newer push replaces the waiting frame
(counted in `dropped`/`dropped_frames`): the newest audio is what the model believes it is saying
now, and latency stays about two frames. `clear()` drops everything queued at once (barge-in).

Silence: with `fill_silence=False` (websocket far ends buffer what they get) nothing is sent while
nothing is queued; with `fill_silence=True` (RTP-like transports) every empty slot from `start()`
to `close()` gets a packet of digital silence (`silence_sent`, never `sent`).

Not thread-safe: push, clear and close from the event loop that runs the pacer.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable

from telephony import g711

logger = logging.getLogger(__name__)

PACKET_MS = 20
MAX_BURST = 3

SendFn = Callable[[bytes], Awaitable[None]]
ClockFn = Callable[[], float]
SleepFn = Callable[[float], Awaitable[None]]


@dataclasses.dataclass
class PacerStats:
    """A pacer's counters (packets unless named otherwise); `Pacer.stats` hands out copies.

    `sent` audio packets, `silence_sent`, `dropped` and `dropped_frames` by the one-waiting-frame
    bound, `cleared` packets dropped by `clear()` or a non-draining `close()`, `underruns` (times the
    queue ran dry right after sending audio: a late frame, or the end of the agent's audio) and
    `skipped_slots` after stalls.
    """

    sent: int = 0
    silence_sent: int = 0
    dropped: int = 0
    dropped_frames: int = 0
    cleared: int = 0
    underruns: int = 0
    skipped_slots: int = 0


class Pacer:
    """Sends pushed audio as `packet_bytes` packets, one every `packet_ms`, through `send`.

    `silence` is one packet of digital silence in the transport's encoding (used for
    `fill_silence` and to pad the last partial packet on a draining close); `sample_bytes` is the
    size of one sample (2 for pcm16) so that pushes are checked to be whole samples. `clock` and
    `sleep` can be replaced (tests use a fake clock); `clock` must be monotonic, in seconds.
    """

    def __init__(
        self,
        send: SendFn,
        *,
        packet_bytes: int,
        silence: bytes,
        sample_bytes: int = 1,
        packet_ms: int = PACKET_MS,
        fill_silence: bool = False,
        max_burst: int = MAX_BURST,
        clock: ClockFn = time.monotonic,
        sleep: SleepFn = asyncio.sleep,
    ) -> None:
        if sample_bytes not in (1, 2):
            raise ValueError(f"Pacer: sample_bytes={sample_bytes!r} must be 1 or 2")
        if not isinstance(packet_bytes, int) or packet_bytes <= 0 or packet_bytes % sample_bytes:
            raise ValueError(
                f"Pacer: packet_bytes={packet_bytes!r} must be a positive multiple of "
                f"sample_bytes={sample_bytes}"
            )
        if len(silence) != packet_bytes:
            raise ValueError(
                f"Pacer: silence is {len(silence)} bytes but packet_bytes={packet_bytes}; "
                "it must be exactly one packet"
            )
        if packet_ms <= 0:
            raise ValueError(f"Pacer: packet_ms={packet_ms!r} must be positive")
        if max_burst < 1:
            raise ValueError(f"Pacer: max_burst={max_burst!r} must be at least 1")
        self._send = send
        self._packet_bytes = packet_bytes
        self._sample_bytes = sample_bytes
        self._silence = bytes(silence)
        self._packet_ms = packet_ms
        self._period = packet_ms / 1000.0
        self._fill_silence = fill_silence
        self._max_burst = max_burst
        self._clock = clock
        self._sleep = sleep

        self._current: collections.deque[bytes] = collections.deque()  # the frame being sent
        self._waiting: list[bytes] | None = None  # at most one frame waiting behind it
        self._carry = b""  # bytes that do not make a whole packet yet
        self._active = False  # the last slot sent audio (for counting underruns)
        self._stats = PacerStats()

        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sleeping = False
        self._closing = False  # stop at once
        self._draining = False  # stop once the queue is empty
        self._closed = False  # close() was called
        self._error: BaseException | None = None

    @classmethod
    def for_encoding(
        cls, send: SendFn, encoding: str, rate: int, *, packet_ms: int = PACKET_MS, **kwargs
    ) -> Pacer:
        """A pacer for `encoding` ("pcm16" | "mulaw" | "alaw") at `rate` Hz, e.g. mulaw 8000 ->
        160-byte packets of 0xFF silence."""
        if not isinstance(rate, int) or rate <= 0 or (rate * packet_ms) % 1000:
            raise ValueError(f"Pacer: {packet_ms} ms at {rate!r} Hz is not a whole number of samples")
        samples = rate * packet_ms // 1000
        silence = g711.silence(encoding, samples)  # also refuses an unknown encoding
        sample_bytes = g711.BYTES_PER_SAMPLE[encoding]
        return cls(
            send,
            packet_bytes=samples * sample_bytes,
            silence=silence,
            sample_bytes=sample_bytes,
            packet_ms=packet_ms,
            **kwargs,
        )

    # --- state -------------------------------------------------------------------------------------
    @property
    def packet_bytes(self) -> int:
        return self._packet_bytes

    @property
    def packet_ms(self) -> int:
        return self._packet_ms

    @property
    def stats(self) -> PacerStats:
        """A snapshot (a copy) of the counters."""
        return dataclasses.replace(self._stats)

    @property
    def queued_packets(self) -> int:
        """Whole packets queued and not sent yet (the carried partial packet not included)."""
        return len(self._current) + (len(self._waiting) if self._waiting else 0)

    @property
    def carry_bytes(self) -> int:
        return len(self._carry)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def error(self) -> BaseException | None:
        """The exception `send` raised, which stopped the pacer; None otherwise."""
        return self._error

    # --- owner API ---------------------------------------------------------------------------------
    def push(self, frame: bytes | bytearray | memoryview) -> int:
        """Queue one frame of encoded audio; return how many packets the overflow policy dropped."""
        if self._error is not None:
            raise RuntimeError("Pacer stopped: send failed") from self._error
        if self._closed:
            raise RuntimeError("Pacer: push after close()")
        if not isinstance(frame, (bytes, bytearray, memoryview)):
            raise ValueError(f"Pacer.push: expected bytes, got {type(frame).__name__}")
        data = bytes(frame)
        if len(data) % self._sample_bytes:
            raise ValueError(
                f"Pacer.push: {len(data)} bytes is not a whole number of {self._sample_bytes}-byte samples"
            )
        data = self._carry + data
        pb = self._packet_bytes
        whole = len(data) // pb
        self._carry = data[whole * pb :]
        if not whole:
            return 0
        packets = [data[i * pb : (i + 1) * pb] for i in range(whole)]
        dropped = 0
        if not self._current:
            self._current.extend(packets)
        elif self._waiting is None:
            self._waiting = packets
        else:
            dropped = len(self._waiting)
            self._stats.dropped += dropped
            self._stats.dropped_frames += 1
            logger.debug("pacer overflow: dropped the waiting frame", extra={"packets": dropped})
            self._waiting = packets
        self._wake.set()
        return dropped

    def clear(self) -> int:
        """Drop everything queued (a carried partial packet counts as one); return the count."""
        n = self.queued_packets + (1 if self._carry else 0)
        self._current.clear()
        self._waiting = None
        self._carry = b""
        self._active = False
        self._stats.cleared += n
        return n

    def start(self) -> None:
        """Start sending (needs a running event loop). Frames pushed before start wait for it."""
        if self._task is not None:
            raise RuntimeError("Pacer: start() called twice")
        if self._closed:
            raise RuntimeError("Pacer: start() after close()")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="pacer")

    async def close(self, *, drain: bool = False) -> None:
        """Stop. With `drain`, first send what is queued (the partial packet padded with silence);
        without, drop it (counted in `cleared`). A pacer never started sends nothing. Idempotent."""
        first = not self._closed
        self._closed = True
        task = self._task
        if first and drain and task is not None and not task.done():
            if self._carry:
                self._append(self._carry + self._silence[len(self._carry) :])
                self._carry = b""
            self._draining = True
            self._wake.set()
        else:
            self._stop_now()
        if task is not None:
            try:
                await asyncio.wait({task})
            except asyncio.CancelledError:
                self._stop_now()
                raise
        leftover = self.clear()
        if first:
            logger.debug(
                "pacer closed",
                extra={"pacer_stats": dataclasses.asdict(self._stats), "left_queued": leftover},
            )

    async def __aenter__(self) -> Pacer:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- the sending loop --------------------------------------------------------------------------
    def _stop_now(self) -> None:
        self._closing = True
        self._wake.set()
        if self._sleeping and self._task is not None:
            self._task.cancel()  # only ever interrupts the sleep, never a send

    def _append(self, packet: bytes) -> None:
        if self._waiting is not None:
            self._waiting.append(packet)
        else:
            self._current.append(packet)

    def _take(self) -> bytes | None:
        if not self._current and self._waiting is not None:
            self._current.extend(self._waiting)
            self._waiting = None
        return self._current.popleft() if self._current else None

    async def _run(self) -> None:
        try:
            await self._loop()
        except asyncio.CancelledError:
            if not self._closing:
                raise
        except Exception as exc:  # a failing send ends the pacer; the owner sees it on push()
            self._error = exc
            logger.warning("pacer stopped: send failed (%s)", type(exc).__name__, exc_info=True)

    async def _loop(self) -> None:
        period = self._period
        anchor: float | None = None  # time of slot 0 of the current run of packets
        slot = 0
        while not self._closing:
            if anchor is None:
                self._wake.clear()
                if not self._current and self._waiting is None and not self._fill_silence:
                    if self._draining:
                        return
                    await self._wake.wait()
                    continue
                anchor, slot = self._clock(), 0
            due_at = anchor + slot * period
            now = self._clock()
            if now < due_at:
                self._sleeping = True
                try:
                    await self._sleep(due_at - now)
                finally:
                    self._sleeping = False
                continue
            due = int((now - due_at) // period) + 1  # slots whose time has come, this one included
            if due > self._max_burst:
                skipped = due - self._max_burst
                slot += skipped
                self._stats.skipped_slots += skipped
            packet = self._take()
            if packet is None:
                if self._active:
                    self._active = False
                    self._stats.underruns += 1
                if self._draining:
                    return
                if not self._fill_silence:
                    anchor = None  # idle until the next push, then a new grid
                    continue
                await self._send(self._silence)
                self._stats.silence_sent += 1
            else:
                self._active = True
                await self._send(packet)
                self._stats.sent += 1
            slot += 1
