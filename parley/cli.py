"""The `parley` command line: the composition root's entry point, one subcommand per process or tool.

    parley model-server | gateway | sip | worker | admin | serve    # services; `serve` runs them all
    parley call | demo | seed                 # a call through a gateway, a synthetic call, the sample shop
    parley train | export | eval              # the model's training, its serving checkpoint, evaluation
    parley model info                         # sizes of a preset or checkpoint
    parley bench step | gateway | resample | e2e | tools | sip | hearing | background | voice

Commands of their own modules are registered from there (parley/cli_calls.py, parley/cli_sip.py,
admin/cli.py, training/cli.py, evaluation/cli.py); `parley <command> --help` lists the flags.
Every command that reports numbers prints one JSON object on stdout; logs go to stderr. Heavy
imports (torch) happen inside the commands so `parley --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def _add_model_source(p: argparse.ArgumentParser, default_preset: str | None = None) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--preset", default=default_preset, help="tiny | small | small2 | small3 | large | xl (random)"
    )
    g.add_argument("--checkpoint", type=Path, help="checkpoint directory (config.json + model.safetensors)")


def _device(name: str) -> str:
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("parley: --device cuda requested but no CUDA device is available")
    return name


def cmd_model_info(args: argparse.Namespace) -> int:
    import torch

    from model.checkpoint import load_config
    from model.config import ModelConfig
    from model.interaction import InteractionModel
    from model.protocol import MICRO_TURN_MS

    if args.checkpoint:
        cfg, source = load_config(args.checkpoint), str(args.checkpoint)
    else:
        cfg, source = ModelConfig.from_name(args.preset or "small"), "preset"
    with torch.device("meta"):  # count parameters without allocating them
        total, active = InteractionModel(cfg).parameter_counts()
    info = {
        "preset": args.preset if not args.checkpoint else None,
        "source": source,
        "layers": cfg.n_layers,
        "d_model": cfg.d_model,
        "heads": cfg.n_heads,
        "kv_heads": cfg.n_kv_heads,
        "experts": cfg.n_experts,
        "top_k": cfg.top_k,
        "d_expert": cfg.d_expert,
        "shared_expert": cfg.shared_expert,
        "params_total": total,
        "params_active": active,
        "micro_turn_ms": MICRO_TURN_MS,
        "frames_per_turn": cfg.frames_per_turn,
        "window_micro_turns": cfg.window,
        "max_prefix_tokens": cfg.max_prefix,
        "kv_bytes_per_slot": cfg.kv_bytes_per_slot(),
        "vocab_size": cfg.vocab_size,
    }
    print(json.dumps(info))
    return 0


def cmd_bench_step(args: argparse.Namespace) -> int:
    import torch

    from bench.step import run
    from model.checkpoint import load_model, source_name

    if args.threads:
        torch.set_num_threads(args.threads)
    device = _device(args.device)
    model = load_model(args.preset, args.checkpoint, device=device)
    name = source_name(args.preset, args.checkpoint)
    print(json.dumps(run(model, name, args.slots, args.ticks, device, agent=args.agent)))
    return 0


def cmd_bench_gateway(args: argparse.Namespace) -> int:
    from bench.gateway import run

    print(json.dumps(run(args.calls, args.seconds)))
    return 0


def cmd_bench_resample(args: argparse.Namespace) -> int:
    from bench.resample import run

    print(json.dumps(run(args.seconds)))
    return 0


def cmd_bench_e2e(args: argparse.Namespace) -> int:
    from bench.e2e import run

    print(json.dumps(run(args.calls, args.seconds, args.preset, args.checkpoint, args.protocol)))
    return 0


def cmd_model_server(args: argparse.Namespace) -> int:
    import asyncio

    import torch

    from model.checkpoint import load_model, source_name
    from model.runner import Runner
    from model.server import ModelServer, ModelServerSettings, serve_forever

    # The tick runs beside socket handlers (and, under `parley serve`, the gateway): on a small CPU
    # one torch thread per two cores steps faster than oversubscribed threads (measured: small, 8
    # calls, tick p50 67 ms with 1 thread vs 109 ms with 2 on 2 cores).
    torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 2) // 2))
    overrides = {
        k: v
        for k, v in (("host", args.host), ("port", args.port), ("max_slots", args.max_slots))
        if v is not None
    }
    settings = ModelServerSettings(**overrides)
    device = _device(args.device)
    model = load_model(args.preset, args.checkpoint, device=device)
    name = source_name(args.preset, args.checkpoint)
    server = ModelServer(Runner(model, settings.max_slots, device), settings, model_name=name)
    try:
        asyncio.run(serve_forever(server))
    except KeyboardInterrupt:
        pass
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from parley.serve import serve

    return serve(args)


def cmd_worker(args: argparse.Namespace) -> int:
    # The worker runs as `python -m workers` in place of this process, so nothing this command
    # line imported (it registers model/'s `train` command) is in the worker's modules.
    from workers.__main__ import to_argv

    argv = [sys.executable, "-m", "workers", *to_argv(args)]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)
    return 1  # not reached


def cmd_seed(args: argparse.Namespace) -> int:
    import redis

    from workers.settings import WorkerSettings
    from workers.shop import Shop
    from workers.store import ShopStore

    url = args.redis_url or WorkerSettings().redis_url
    shop = Shop.default() if args.shop_seed is None else Shop.generate(args.shop_seed)
    try:
        orders = ShopStore(redis.Redis.from_url(url, socket_timeout=5)).seed(shop)
    except redis.RedisError as exc:
        raise ValueError(f"cannot seed Redis: {type(exc).__name__}: {exc}") from None
    print(
        json.dumps({"shop": shop.name, "seed": shop.seed, "orders": orders, "customers": len(shop.customers)})
    )
    return 0


def cmd_bench_tools(args: argparse.Namespace) -> int:
    from bench.tools import run

    print(json.dumps(run(args.calls, args.seconds, args.concurrency, args.throughput_tasks)))
    return 0


def cmd_bench_background(args: argparse.Namespace) -> int:
    from bench.background import run

    print(json.dumps(run(args.calls, args.tail, args.seed)))
    return 0


def cmd_bench_hearing(args: argparse.Namespace) -> int:
    from bench.hearing import run

    print(json.dumps(run(tuple(args.calls), args.repeats, args.per_call)))
    return 0


def cmd_bench_voice(args: argparse.Namespace) -> int:
    from bench.voice import run

    print(json.dumps(run(args.voice, args.vocoder)))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from model.checkpoint import load_model
    from parley.demo import run_demo

    model = load_model(args.preset, args.checkpoint)
    print(json.dumps(run_demo(model, args.seconds, args.out, agent=args.agent)))
    return 0


def _eval_gateway(model_url: str, registry):
    """`parley eval --bridged`'s gateway (evaluation sits below this composition root)."""
    from parley.gateway_app import local_gateway

    return local_gateway(model_url, registry)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="parley", description="Parley: full-duplex telephony voice agents")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    model = sub.add_parser("model", help="inspect the interaction model").add_subparsers(
        dest="what", required=True
    )
    info = model.add_parser("info", help="sizes of a preset or checkpoint, as JSON")
    _add_model_source(info)
    info.set_defaults(func=cmd_model_info)

    bench = sub.add_parser("bench", help="benchmarks that print JSON").add_subparsers(
        dest="what", required=True
    )
    step = bench.add_parser("step", help="tick latency of the batched model step")
    _add_model_source(step, default_preset=None)
    step.add_argument("--slots", type=int, default=8)
    step.add_argument("--ticks", type=int, default=100)
    step.add_argument("--agent", default="support", help="agent whose configuration prefixes every call")
    step.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    step.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    step.set_defaults(func=cmd_bench_step)
    gw = bench.add_parser("gateway", help="gateway CPU per call (Twilio calls against an echo model)")
    gw.add_argument("--calls", type=int, default=50)
    gw.add_argument("--seconds", type=float, default=10.0)
    gw.set_defaults(func=cmd_bench_gateway)
    rsb = bench.add_parser("resample", help="the gateway's resampler vs soxr's stream: frame waits, gaps")
    rsb.add_argument("--seconds", type=float, default=20.0)
    rsb.set_defaults(func=cmd_bench_resample)
    e2e = bench.add_parser("e2e", help="tick lateness and caller-frame -> agent-frame latency, end to end")
    _add_model_source(e2e, default_preset=None)
    e2e.add_argument("--calls", type=int, default=8)
    e2e.add_argument("--seconds", type=float, default=10.0)
    e2e.add_argument("--protocol", choices=("native",), default="native")
    e2e.set_defaults(func=cmd_bench_e2e)

    tools = bench.add_parser("tools", help="tool round trip through Celery workers: added latency, tasks/s")
    tools.add_argument("--calls", type=int, default=8)
    tools.add_argument("--seconds", type=float, default=10.0)
    tools.add_argument("--concurrency", type=int, default=1, help="processes of the one worker")
    tools.add_argument("--throughput-tasks", type=int, default=500, help="tasks for the tasks/s figure")
    tools.set_defaults(func=cmd_bench_tools)

    bg = bench.add_parser(
        "background", help="the background model beside N calls: hearing and reasoning latency"
    )
    bg.add_argument("--calls", type=int, default=8)
    bg.add_argument("--tail", type=float, default=6.0, help="seconds each line stays open after the caller")
    bg.add_argument("--seed", type=int, default=0)
    bg.set_defaults(func=cmd_bench_background)

    hb = bench.add_parser("hearing", help="the hearing's VAD cost per frame and transcription time per clip")
    hb.add_argument("--calls", type=int, nargs="+", default=[1, 8], help="concurrent transcribing processes")
    hb.add_argument("--repeats", type=int, default=5)
    hb.add_argument("--per-call", type=int, default=4)
    hb.set_defaults(func=cmd_bench_hearing)
    bv = bench.add_parser("voice", help="agent WER of a voice through dMel and a vocoder")
    bv.add_argument("--voice", choices=("espeak", "piper"), default="espeak", help="the agent voice")
    bv.add_argument(
        "--vocoder",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "model" / "checkpoints" / "small2",
        help="a checkpoint directory or a vocoder run's directory (default: the shipped checkpoint)",
    )
    bv.set_defaults(func=cmd_bench_voice)

    ms = sub.add_parser("model-server", help="serve the model to call sessions over websockets")
    _add_model_source(ms)
    ms.add_argument("--host", help="listen address (default 127.0.0.1; env PARLEY_MODEL_HOST)")
    ms.add_argument("--port", type=int, help="port (default 8765; env PARLEY_MODEL_PORT)")
    ms.add_argument("--max-slots", type=int, help="concurrent calls (default 16; env PARLEY_MODEL_MAX_SLOTS)")
    ms.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ms.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: half the cores)")
    ms.set_defaults(func=cmd_model_server)

    sv = sub.add_parser(
        "serve",
        help="run model server, gateway, a tool worker and the admin API (+ Redis) as child processes",
    )
    _add_model_source(sv)
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--model-port", type=int, default=8765)
    sv.add_argument("--gateway-port", type=int, default=8080)
    sv.add_argument("--admin-port", type=int, default=8090)
    sv.add_argument("--max-slots", type=int, default=16)
    sv.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    sv.add_argument("--ready-timeout", type=float, default=120.0, help="seconds to wait for the children")
    sv.add_argument("--demo-call", type=Path, help="place one call with this caller WAV, then stop")
    sv.add_argument("--agent", default="support", help="agent for the demo call")
    sv.add_argument("--out", type=Path, default=Path("out/demo/call.wav"), help="demo call recording")
    sv.set_defaults(func=cmd_serve)

    from workers.__main__ import add_arguments as add_worker_arguments

    wk = sub.add_parser("worker", help="run a Celery worker for the tools (REDIS_URL, PARLEY_WORKER_*)")
    add_worker_arguments(wk)
    wk.set_defaults(func=cmd_worker)
    sd = sub.add_parser("seed", help="write the sample shop's orders to Redis (REDIS_URL)")
    sd.add_argument("--redis-url", help="default: REDIS_URL")
    sd.add_argument("--shop-seed", type=int, help="another sample shop than the shipped one (seed 0)")
    sd.set_defaults(func=cmd_seed)

    from admin.cli import add_command as add_admin
    from evaluation.cli import add_command as add_eval
    from parley.cli_calls import add_commands
    from parley.cli_sip import add_commands as add_sip
    from training.cli import add_command as add_train

    add_commands(sub)
    add_admin(sub)
    add_sip(sub, bench)
    add_train(sub)
    add_eval(sub, gateway=_eval_gateway)

    demo = sub.add_parser("demo", help="run the model on a synthetic call and write a WAV")
    _add_model_source(demo)
    demo.add_argument("--agent", default="support", help="agent whose configuration prefixes the call")
    demo.add_argument("--seconds", type=float, default=6.0)
    demo.add_argument("--out", type=Path, default=Path("out/demo"))
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    process = os.environ.get("PARLEY_PROCESS", args.command)  # `parley serve` names its children
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s [{process}] %(name)s: %(message)s",
    )
    logging.getLogger("websockets.server").setLevel(logging.WARNING)  # health probes are not news
    try:
        return args.func(args)
    except ValueError as exc:  # bad presets, configs, checkpoints: a clear message, no traceback
        print(f"parley: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
