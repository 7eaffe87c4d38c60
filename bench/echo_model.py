"""A model-server stand-in for gateway benchmarks: speaks the model-server protocol and answers
every caller frame at once with a turn and the same audio (an echo). No model, no tick: so that
`parley bench gateway` measures the gateway's own cost. Never used in the call path.

    python -m bench.echo_model --port 18765
"""

from __future__ import annotations

import argparse
import asyncio
import json

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed


async def handler(ws) -> None:
    try:
        hello = json.loads(await ws.recv())
        assert hello.get("type") == "hello"
        await ws.send(json.dumps({"type": "ready", "session_id": "echo", "slot": 0, "sample_rate": 16000,
                                  "frame_bytes": 6400, "micro_turn_ms": 200, "model": "echo"}))
        seq = 0
        async for message in ws:
            if isinstance(message, bytes):
                await ws.send(json.dumps({"type": "turn", "seq": seq, "t_ms": seq * 200, "floor": "speak",
                                          "text": ""}))
                await ws.send(message)
                seq += 1
            elif json.loads(message).get("type") == "bye":
                await ws.close(1000, "bye")
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
