"""A model-server stand-in for gateway benchmarks: speaks the model-server protocol and answers
every caller frame at once with a turn and the same audio (an echo). No model, no tick: so that
`parley bench gateway` measures the gateway's own cost. Never used in the call path.

    python -m bench.echo_model --port 18765
"""

from __future__ import annotations

import argparse
import asyncio

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from model.protocol import (
    FRAME_BYTES,
    MICRO_TURN_MS,
    SAMPLE_RATE,
    Bye,
    CloseCode,
    Hello,
    ProtocolError,
    Ready,
    Turn,
    parse_client_message,
)


async def handler(ws) -> None:
    try:
        try:
            Hello.from_json(await ws.recv())
        except ProtocolError as exc:
            await ws.close(CloseCode.POLICY_VIOLATION, str(exc))
            return
        await ws.send(Ready("echo", 0, SAMPLE_RATE, FRAME_BYTES, MICRO_TURN_MS, "echo").to_json())
        seq = 0
        async for message in ws:
            if isinstance(message, bytes):
                await ws.send(Turn(seq, seq * MICRO_TURN_MS, "speak", "").to_json())
                await ws.send(message)
                seq += 1
            elif isinstance(parse_client_message(message), Bye):
                await ws.close(CloseCode.NORMAL, "bye")
                return
    except ConnectionClosed:
        pass


def health(connection, request):
    if request.path.startswith("/healthz"):
        return connection.respond(200, '{"status": "ok"}\n')
    return None


async def main(port: int) -> None:
    async with serve(handler, "127.0.0.1", port, process_request=health, max_size=65536):
        await asyncio.Future()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(main(parser.parse_args().port))
