"""Pacer: packet grid, stall catch-up, overflow policy, clear, silence fill, drain and close.

Most tests run on a fake clock whose sleep advances fake time at once, so timing is exact and
nothing waits on the wall clock; they synchronise by waiting (with a timeout) for a condition or an
event. One test runs on the real clock with loose bounds.
"""

import asyncio
import time

import numpy as np
import pytest

from telephony.pacer import Pacer

P = 160  # one 20 ms mu-law packet at 8 kHz
FRAME = 10 * P  # one 200 ms frame
SILENCE = b"\xff" * P


def run(coro, timeout=10.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def until(predicate, timeout=2.0):
    async def poll():
        while not predicate():
            await asyncio.sleep(0)

    await asyncio.wait_for(poll(), timeout)


class FakeClock:
    def __init__(self, start=100.0, oversleep=None):
        self.now = start
        self.oversleep = oversleep  # callable -> extra seconds added to every sleep

    def __call__(self):
        return self.now

    async def sleep(self, seconds):
        assert seconds > 0
        self.now += seconds + (self.oversleep() if self.oversleep else 0.0)
        await asyncio.sleep(0)


class Recorder:
    """A send callback that records packets with the clock's time; can hold one send open."""

    def __init__(self, clock, on_send=None):
        self.clock = clock
        self.times = []
        self.packets = []
        self.on_send = on_send  # async callable(index) run inside send, before recording

    async def __call__(self, packet):
        if self.on_send is not None:
            await self.on_send(len(self.packets))
        self.times.append(self.clock())
        self.packets.append(bytes(packet))


def frame(value, n=FRAME):
    return bytes([value]) * n


def make(clock, send, **kw):
    return Pacer(send, packet_bytes=P, silence=SILENCE, clock=clock, sleep=clock.sleep, **kw)


def test_packets_go_out_on_a_20ms_grid():
    async def main():
        clock = FakeClock()
        rec = Recorder(clock)
        pacer = make(clock, rec)
        audio = bytes(range(256)) * 12 + b"\x01" * (2 * FRAME - 256 * 12)
        pacer.push(audio[:FRAME])
        pacer.push(audio[FRAME:])
        t0 = clock.now
        pacer.start()
        await until(lambda: pacer.stats.underruns == 1)
        await pacer.close()
        assert b"".join(rec.packets) == audio
        assert all(len(p) == P for p in rec.packets)
        np.testing.assert_allclose(np.array(rec.times) - t0, np.arange(20) * 0.02, atol=1e-9)
        s = pacer.stats
        assert (s.sent, s.silence_sent, s.dropped, s.underruns, s.skipped_slots) == (20, 0, 0, 1, 0)

    run(main())


def test_late_wakeups_do_not_accumulate():
    async def main():
        rng = np.random.default_rng(0)
        clock = FakeClock(oversleep=lambda: float(rng.uniform(0, 0.005)))
        rec = Recorder(clock)
        pacer = make(clock, rec)
        t0 = clock.now
        pacer.start()
        for i in range(10):  # 100 packets, pushed as the pacer drains them
            await until(lambda: pacer.queued_packets <= 10)
            pacer.push(frame(i))
        await until(lambda: len(rec.packets) == 100)
        await pacer.close()
        lateness = np.array(rec.times) - t0 - np.arange(100) * 0.02
        assert lateness.min() >= -1e-9  # never early
        assert lateness.max() <= 0.005 + 1e-9  # and late by one wake-up at most, not by the sum
        assert pacer.stats.dropped == 0 and pacer.stats.underruns <= 1  # at most the final one

    run(main())


def test_stall_catches_up_with_a_bounded_burst_on_the_same_grid():
    async def main():
        clock = FakeClock(start=0.0)

        async def slow_fourth_send(index):
            if index == 3:
                clock.now += 0.11  # a send (or the event loop) stalls for 110 ms

        rec = Recorder(clock, on_send=slow_fourth_send)
        pacer = make(clock, rec, max_burst=3)
        pacer.push(frame(1))
        pacer.push(frame(2))
        pacer.start()
        await until(lambda: len(rec.packets) == 20)
        await pacer.close()
        times = np.round(np.array(rec.times), 6)
        # Packet 3 is recorded after its stall, at 0.17; slots 4 and 5 (0.08, 0.10) are given up;
        # slots 6, 7, 8 (0.12-0.16) go out at once; slot 9 is back on time at 0.18.
        assert times[:4].tolist() == [0.0, 0.02, 0.04, 0.17]
        assert times[4:7].tolist() == [0.17, 0.17, 0.17]
        np.testing.assert_allclose(times[7:], 0.18 + np.arange(13) * 0.02, atol=1e-6)
        burst = max(np.unique(times, return_counts=True)[1])
        assert burst <= 4  # packet 3 itself plus max_burst
        assert pacer.stats.skipped_slots == 2
        assert pacer.stats.sent == 20  # audio is delayed, never dropped, by a stall

    run(main())


def test_overflow_drops_the_waiting_frame_and_keeps_the_newest():
    async def main():
        clock = FakeClock()
        rec = Recorder(clock)
        pacer = make(clock, rec)
        assert pacer.push(frame(1)) == 0  # being sent
        assert pacer.push(frame(2)) == 0  # waiting
        assert pacer.queued_packets == 20
        assert pacer.push(frame(3)) == 10  # replaces 2
        assert pacer.queued_packets == 20
        assert (pacer.stats.dropped, pacer.stats.dropped_frames) == (10, 1)
        pacer.start()
        await until(lambda: pacer.stats.underruns == 1)
        await pacer.close()
        assert [p[0] for p in rec.packets] == [1] * 10 + [3] * 10

    run(main())


def test_never_holds_more_than_one_frame_behind_the_current_one():
    async def main():
        clock = FakeClock()
        gate = asyncio.Event()

        async def hold_first_send(index):
            if index == 0:
                await gate.wait()

        rec = Recorder(clock, on_send=hold_first_send)
        pacer = make(clock, rec)
        pacer.push(frame(0))
        pacer.start()
        await until(lambda: pacer.queued_packets == 9)  # packet 0 is in flight
        for i in range(1, 6):
            pacer.push(frame(i))
            assert pacer.queued_packets <= 19
        assert pacer.stats.dropped_frames == 4 and pacer.stats.dropped == 40
        gate.set()
        await until(lambda: pacer.stats.underruns == 1)
        await pacer.close()
        assert [p[0] for p in rec.packets] == [0] * 10 + [5] * 10

    run(main())


def test_clear_drops_everything_queued_at_once():
    async def main():
        clock = FakeClock()
        gate = asyncio.Event()
        in_flight = asyncio.Event()

        async def hold_fourth_send(index):
            if index == 3:
                in_flight.set()
                await gate.wait()

        rec = Recorder(clock, on_send=hold_fourth_send)
        pacer = make(clock, rec)
        pacer.push(frame(1))
        pacer.push(frame(2))
        pacer.push(b"\x03" * 50)  # ... plus a partial packet carried
        pacer.start()
        await asyncio.wait_for(in_flight.wait(), 2)
        assert pacer.clear() == 16 + 1  # packets 4..19 and the carried partial packet
        assert pacer.queued_packets == 0 and pacer.carry_bytes == 0
        gate.set()
        await until(lambda: len(rec.packets) == 4)
        for _ in range(50):  # the pacer is idle: no more sends, and no ticking either
            await asyncio.sleep(0)
        assert len(rec.packets) == 4
        await pacer.close()
        s = pacer.stats
        assert (s.sent, s.cleared, s.underruns, s.dropped) == (4, 17, 0, 0)
        assert pacer.clear() == 0

    run(main())


def test_sends_nothing_when_idle():
    async def main():
        clock = FakeClock()
        rec = Recorder(clock)
        pacer = make(clock, rec)
        pacer.start()
        for _ in range(50):
            await asyncio.sleep(0)
        assert rec.packets == [] and clock.now == 100.0  # did not even tick
        pacer.push(frame(7))
        t_push = clock.now
        await until(lambda: pacer.stats.underruns == 1)
        idle_since = clock.now
        for _ in range(50):
            await asyncio.sleep(0)
        assert len(rec.packets) == 10 and clock.now == idle_since
        assert rec.times[0] == t_push  # the first packet of new audio is not held back
        await pacer.close()

    run(main())


def test_fill_silence_keeps_the_grid_and_interleaves_audio():
    async def main():
        clock = FakeClock()
        rec = Recorder(clock)
        pacer = make(clock, rec, fill_silence=True)
        t0 = clock.now
        pacer.start()
        await until(lambda: len(rec.packets) >= 5)
        pacer.push(frame(9))
        await until(lambda: pacer.stats.underruns == 1)
        await until(lambda: len(rec.packets) >= 30)
        await pacer.close()
        kinds = ["a" if p == frame(9, P) else "s" if p == SILENCE else "?" for p in rec.packets]
        first_audio = kinds.index("a")
        assert first_audio >= 5
        assert kinds[first_audio : first_audio + 10] == ["a"] * 10
        assert set(kinds[:first_audio]) == {"s"} and set(kinds[first_audio + 10 :]) == {"s"}
        n = len(rec.packets)
        np.testing.assert_allclose(np.array(rec.times) - t0, np.arange(n) * 0.02, atol=1e-6)
        s = pacer.stats
        assert s.sent == 10 and s.silence_sent == n - 10

    run(main())


def test_partial_packets_are_carried_and_padded_on_drain():
    async def main():
        clock = FakeClock()
        rec = Recorder(clock)
        pacer = make(clock, rec)
        stream = bytes(np.random.default_rng(3).integers(0, 256, 1660 + 1540 + 70, dtype=np.uint8))
        pacer.push(stream[:1660])  # 10 packets + 60 bytes carried
        assert (pacer.queued_packets, pacer.carry_bytes) == (10, 60)
        pacer.push(stream[1660:3200])  # 60 + 1540 = 10 packets
        assert (pacer.queued_packets, pacer.carry_bytes) == (20, 0)
        pacer.push(stream[3200:])  # 70 bytes: less than a packet
        pacer.start()
        await pacer.close(drain=True)
        assert b"".join(rec.packets) == stream + SILENCE[:90]
        assert pacer.stats.sent == 21 and not pacer.running

    run(main())


def test_close_without_drain_drops_and_refuses_more():
    async def main():
        clock = FakeClock()
        gate = asyncio.Event()

        async def hold_second_send(index):
            if index == 1:
                await gate.wait()

        rec = Recorder(clock, on_send=hold_second_send)
        pacer = make(clock, rec)
        pacer.push(frame(1))
        pacer.start()
        await until(lambda: pacer.queued_packets == 8)
        closing = asyncio.ensure_future(pacer.close())
        for _ in range(20):
            await asyncio.sleep(0)
        assert not closing.done()  # close waits for the send in flight; it never cancels a send
        gate.set()
        await asyncio.wait_for(closing, 2)
        assert len(rec.packets) == 2 and pacer.stats.cleared == 8
        await pacer.close()  # idempotent
        with pytest.raises(RuntimeError, match="push after close"):
            pacer.push(frame(1))

    run(main())


def test_close_interrupts_a_long_sleep():
    async def main():
        sent = asyncio.Event()

        async def send(packet):
            sent.set()

        # Real clock, 5 s packets: the pacer sends one silence packet, then sleeps 5 s.
        pacer = Pacer(send, packet_bytes=P, silence=SILENCE, packet_ms=5000, fill_silence=True)
        pacer.start()
        await asyncio.wait_for(sent.wait(), 2)
        start = time.monotonic()
        await asyncio.wait_for(pacer.close(), 2)
        assert time.monotonic() - start < 2 and not pacer.running

    run(main())


def test_a_failing_send_stops_the_pacer_and_surfaces_on_push():
    async def main():
        clock = FakeClock()

        async def broken(index):
            if index == 2:
                raise ConnectionError("socket gone")

        rec = Recorder(clock, on_send=broken)
        pacer = make(clock, rec)
        pacer.push(frame(1))
        pacer.start()
        await until(lambda: not pacer.running)
        assert isinstance(pacer.error, ConnectionError)
        assert pacer.stats.sent == 2
        with pytest.raises(RuntimeError, match="send failed"):
            pacer.push(frame(2))
        await pacer.close()

    run(main())


def test_real_clock_pacing():
    async def main():
        times = []
        done = asyncio.Event()

        async def send(packet):
            times.append(time.monotonic())
            if len(times) == 20:
                done.set()

        pacer = Pacer.for_encoding(send, "mulaw", 8000)
        pacer.push(frame(1))
        pacer.push(frame(2))
        pacer.start()
        await asyncio.wait_for(done.wait(), 5)
        await pacer.close()
        rel = np.array(times) - times[0]
        # Never early (the schedule is start + n * 20 ms), and within loose bounds of real time.
        assert np.all(rel >= np.arange(20) * 0.02 - 0.001)
        assert rel[-1] < 2.0

    run(main())


def test_for_encoding():
    async def send(packet):
        pass

    mu = Pacer.for_encoding(send, "mulaw", 8000)
    assert (mu.packet_bytes, mu.packet_ms) == (160, 20)
    assert Pacer.for_encoding(send, "alaw", 8000).packet_bytes == 160
    pcm = Pacer.for_encoding(send, "pcm16", 16000)
    assert pcm.packet_bytes == 640
    assert Pacer.for_encoding(send, "pcm16", 44100).packet_bytes == 882 * 2
    with pytest.raises(ValueError, match="not a whole number of 2-byte samples"):
        pcm.push(b"\x00" * 641)
    with pytest.raises(ValueError, match="not a whole number of samples"):
        Pacer.for_encoding(send, "mulaw", 11025)
    with pytest.raises(ValueError, match="unknown audio encoding 'opus'"):
        Pacer.for_encoding(send, "opus", 48000)
    with pytest.raises(ValueError, match="expected bytes, got ndarray"):
        mu.push(np.zeros(160, np.uint8))
    with pytest.raises(ValueError, match="silence is 3 bytes but packet_bytes=160"):
        Pacer(send, packet_bytes=160, silence=b"\xff" * 3)
    with pytest.raises(ValueError, match="max_burst"):
        Pacer(send, packet_bytes=160, silence=SILENCE, max_burst=0)


def test_silence_packets_per_encoding():
    async def main():
        clock = FakeClock()
        got = {}
        for enc in ("mulaw", "alaw", "pcm16"):
            rec = Recorder(clock)
            pacer = Pacer.for_encoding(rec, enc, 8000, fill_silence=True, clock=clock, sleep=clock.sleep)
            pacer.start()
            await until(lambda r=rec: len(r.packets) >= 2)
            await pacer.close()
            got[enc] = rec.packets[0]
        assert got == {"mulaw": b"\xff" * 160, "alaw": b"\xd5" * 160, "pcm16": b"\x00" * 320}

    run(main())
