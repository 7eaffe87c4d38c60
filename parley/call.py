"""`parley call`: place a call to a gateway from a WAV file, as a real websocket client, and record it.

    parley call --agent support --wav caller.wav [--url ws://127.0.0.1:8080] \
                [--protocol twilio|native] --out call.wav

The caller's WAV (any rate, 8/16/24/32-bit PCM, mono or stereo) is resampled to the protocol's
rate (Twilio: mu-law 8 kHz; native: PCM16 at 16 kHz by default) and streamed in real time in
20 ms chunks; the client keeps listening `linger_s` seconds after the WAV ends (or until the
gateway hangs up), then says stop. It writes a two-channel WAV at the protocol's rate (caller left,
agent right) in which the agent's audio sits where it was heard: each packet is placed at its
arrival time on the caller's clock, or right after the previous packet if that is later, as a
phone's playout buffer would; a `clear` drops audio not yet played. Next to it goes
`<out>.timeline.json`: marks, clears, transcript and other events with times, counters, and how
the call was closed.

The protocol clients (`TwilioCallClient`, `NativeCallClient`) are telephony/ws/client.py's; this
module is the softphone around them: WAV in, real-time pacing, WAV and timeline out. It talks to
the gateway over its public protocols only: it imports nothing from the gateway.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
from websockets.exceptions import ConnectionClosed

from telephony.resample import ResampleStream
from telephony.wav import read_pcm16, write_pcm16
from telephony.ws.client import CHUNK_MS, CallClient, NativeCallClient, TwilioCallClient

DEFAULT_URL = "ws://127.0.0.1:8080"
PATHS = {"twilio": "/twilio", "native": "/stream"}


def call_url(url: str | None, protocol: str) -> str:
    """`url` with the protocol's path when it has none (ws://host:port -> ws://host:port/twilio)."""
    base = url or DEFAULT_URL
    parts = urlsplit(base)
    if parts.scheme not in ("ws", "wss") or not parts.netloc:
        raise ValueError(f"--url {base!r} must be a ws:// or wss:// URL")
    return base if parts.path not in ("", "/") else base.rstrip("/") + PATHS[protocol]


def resample(pcm: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
    stream = ResampleStream(in_rate, out_rate)
    return np.concatenate([stream.push(pcm), stream.flush()])


def write_stereo_wav(path: str | Path, left: np.ndarray, right: np.ndarray, rate: int) -> None:
    n = max(left.size, right.size)
    frames = np.zeros((n, 2), dtype="<i2")
    frames[: left.size, 0] = left
    frames[: right.size, 1] = right
    write_pcm16(path, frames, rate)


async def place_call(
    agent: str,
    wav: str | Path,
    out: str | Path,
    *,
    url: str | None = None,
    protocol: str = "twilio",
    linger_s: float = 3.0,
    native_rate: int = 16000,
    native_encoding: str = "pcm16",
    token: str | None = None,
    parameters: dict | None = None,
) -> dict:
    """Stream `wav` to the gateway as a caller in real time, record the call, return a summary.

    Writes `out` (two-channel WAV, caller left, agent right) and `out` with `.timeline.json`.
    `token` (a stream token) goes on the handshake as `Authorization: Bearer`; `parameters` (e.g.
    the dialled `number`) go in the start message.
    """
    if protocol not in PATHS:
        raise ValueError(f"protocol {protocol!r} must be 'twilio' or 'native'")
    target = call_url(url, protocol)
    pcm, wav_rate = read_pcm16(wav)
    client: CallClient
    headers = {"Authorization": f"Bearer {token}"} if token else None
    if protocol == "twilio":
        client = TwilioCallClient(target, agent, parameters=parameters, headers=headers)
    else:
        client = NativeCallClient(
            target, agent, rate=native_rate, encoding=native_encoding, parameters=parameters, headers=headers
        )
    caller = resample(pcm, wav_rate, client.rate)
    # A phone line never goes quiet on the wire: after the WAV, the caller's side keeps sending
    # silence for `linger_s` while we listen to the agent.
    speech_samples = caller.size
    caller = np.concatenate([caller, np.zeros(int(linger_s * client.rate), np.int16)])
    step = client.rate * CHUNK_MS // 1000
    n_chunks = -(-caller.size // step)
    caller = np.concatenate([caller, np.zeros(n_chunks * step - caller.size, np.int16)])
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        await client.open()
    except (TimeoutError, OSError) as exc:
        raise ConnectionError(f"cannot reach the gateway at {target}: {exc}") from None
    started = time.monotonic()
    sent = 0
    try:
        for i in range(n_chunks):
            delay = client.t0 + i * CHUNK_MS / 1000 - client.clock()
            if delay > 0:
                await asyncio.sleep(delay)  # real-time pacing of the caller's audio, not synchronisation
            if client.closed is not None:
                break
            await client.send_audio(caller[i * step : (i + 1) * step])
            sent = i + 1
        if client.closed is None:
            try:
                await client.wait_for(lambda: client.closed is not None, min(linger_s, 0.5))
            except TimeoutError:
                pass
    except ConnectionClosed:
        pass
    finally:
        await client.stop()
    duration = time.monotonic() - started
    caller_heard = caller[: sent * step]
    agent_heard = client.agent_audio
    write_stereo_wav(out, caller_heard, agent_heard, client.rate)
    timeline_path = out.with_suffix(".timeline.json")
    close_code, close_reason = client.closed or (None, None)
    summary = {
        "agent": agent,
        "protocol": protocol,
        "url": target,
        "out": str(out),
        "timeline": str(timeline_path),
        "sample_rate": client.rate,
        "caller_seconds": round(min(caller_heard.size, speech_samples) / client.rate, 3),
        "line_seconds": round(caller_heard.size / client.rate, 3),
        "agent_seconds": round(agent_heard.size / client.rate, 3),
        "agent_packets": client.counters["agent_packets"],
        # When the agent's first and last packets arrived (s after the call opened): the first is
        # the answer latency, and the span between them is what the packet count should cover.
        "first_agent_s": round(client.packet_times[0], 3) if client.packet_times else None,
        "last_agent_s": round(client.packet_times[-1], 3) if client.packet_times else None,
        "marks": client.counters["mark"],
        "clears": client.counters["clear"],
        "close_code": close_code,
        "close_reason": close_reason,
        "duration_s": round(duration, 3),
    }
    record = {
        "summary": summary,
        "counters": dict(client.counters),
        "packet_sizes": {str(k): v for k, v in sorted(client.packet_sizes.items())},
        "events": client.events,
        "transcript": getattr(client, "transcript", []),
    }
    timeline_path.write_text(json.dumps(record, indent=1))
    return summary
