"""`parley eval`: scenarios through the real model server, scored, with an HTML report.

    parley eval [--checkpoint DIR | --preset NAME] [--scenarios DIR] --out DIR [--limit N]
                [--no-baseline] [--no-asr] [--max-slots 8] [--tick-ms 200] [--save-audio] [--[no-]background]
    parley eval --write-scenarios DIR [--n 20] [--seed0 900000] [--agent-voice espeak|piper] [--perturb]
                [--caller-family espeak|kokoro]
    parley eval --bridged [--checkpoint DIR | --preset NAME] [--scenarios DIR] --out DIR [--limit N]
                [--no-asr] [--max-slots 8] [--ducking-db DB]
    parley eval --write-scenarios DIR --bridged [--n 20] [--seed0 950000]

Without --scenarios, `--n` held-out scenarios are generated into OUT/scenarios first (kept and
reused when that directory already holds some). `--write-scenarios` only writes scenarios.
`--agent-voice piper` voices the generated scenarios' English agent lines with piper joe instead
of espeak-ng (corpus.render; the shipped checkpoint was trained on espeak-ng); `--perturb` gives
their callers perturbed voices and lines (corpus.perturb); `--caller-family kokoro` gives them callers
of another speech engine, Kokoro (corpus.kokoro_voice, never used in training).
The model is the shipped checkpoint unless --checkpoint or --preset say otherwise (a preset has
random weights). Calls run in real time (200 ms ticks), up to --max-slots at once; --tick-ms
below 200 runs them faster than real time when the machine keeps up (late frames are reported).
`--background` (the default for a model that reads the background model's replies, such as
`small2`; `--no-background` turns it off) runs the background model beside every call, in this process
(agent.background_local: Whisper and the reasoner from PARLEY_HEARING_* / PARLEY_REASONER_*, with
PARLEY_BACKGROUND_* settings, enabled): its tool calls are the ones scored, and the report adds
the agent's WER against the words it meant, the lookups whose answer the caller hears and the
background model's delays (evaluation.background_run).
`--bridged` runs two-party scenarios (README "Scenario format", the `bridge` key) as bridged
calls: both parties over real websockets into one room of a real gateway (`gateway`, passed in by
the composition root) in front of the model server, in real time, two slots a call (at most
max-slots / 2 calls at once); it scores each direction (chrF of what the listener hears, ear-voice
span, talking over the listener: evaluation.bridged) and writes the bridged report. Without
--scenarios, `--n` bridged scenarios are generated into OUT/scenarios-bridged
(evaluation.bridged_scenarios). A plain eval skips bridged scenarios, and --bridged the others.
Prints one JSON line: where the report is and how many goals were met (per direction with --bridged).
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

from telephony.wav import write_pcm16

log = logging.getLogger(__name__)


def add_command(sub, gateway=None) -> None:
    """`parley eval`; `gateway`: the factory of a local gateway for --bridged
    (evaluation.bridged.GatewayFactory), which only the composition root can build."""
    p = sub.add_parser("eval", help="evaluate the model on scenarios through the real model server")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", type=Path, help="checkpoint directory (default: the shipped one)")
    src.add_argument("--preset", help="a preset with random weights instead (e.g. tiny)")
    p.add_argument("--scenarios", type=Path, help="scenario directory (default: generate into OUT/scenarios)")
    p.add_argument("--out", type=Path, help="report directory")
    p.add_argument("--limit", type=int, help="only the first N scenarios (by name)")
    p.add_argument("--no-baseline", action="store_true", help="skip the VAD cascade baseline")
    p.add_argument("--no-asr", action="store_true", help="skip the recogniser (intelligibility)")
    p.add_argument("--max-slots", type=int, default=8, help="calls run at once")
    p.add_argument("--tick-ms", type=int, default=200, help="tick period; 200 is real time")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: half the cores)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed of the first call (+1 per call)")
    p.add_argument("--temperature", type=float, help="sampling temperature (default: the server's)")
    p.add_argument(
        "--save-audio", action="store_true", help="OUT/audio/<name>.wav: heard (left), agent (right)"
    )
    p.add_argument("--write-scenarios", type=Path, metavar="DIR", help="only write held-out scenarios to DIR")
    p.add_argument("--n", type=int, default=20, help="held-out scenarios to generate")
    p.add_argument(
        "--seed0", type=int, help="first held-out seed (default evaluation.held_out.HELD_OUT_SEED0)"
    )
    p.add_argument(
        "--agent-voice",
        choices=("espeak", "piper"),
        default="espeak",
        help="agent voice of generated scenarios: espeak-ng (as trained) or piper joe (its English lines)",
    )
    p.add_argument(
        "--perturb",
        action="store_true",
        help="generated scenarios' callers with perturbed voices and lines (corpus.perturb)",
    )
    p.add_argument(
        "--background",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run the background model (Whisper + the reasoner, in-process) beside every call; "
        "its tool calls are scored, with the agent-meant WER, lookups heard and its delays "
        "(default: on for a model that reads its replies, such as small2)",
    )
    p.add_argument(
        "--background-threads",
        type=int,
        default=2,
        help="with --background: hearing and reasoning tasks run at once",
    )
    p.add_argument(
        "--caller-family",
        choices=("espeak", "kokoro"),
        default="espeak",
        help="caller voices of generated scenarios: held-out espeak-ng voices, or Kokoro voices (another "
        "engine, ~1 s of compute per second of caller speech; the data extra)",
    )
    p.add_argument(
        "--background-only",
        action="store_true",
        help="score the background model only: hearing on the scenarios' caller audio (WER per voice, "
        "latency) and the reasoner on held-out support calls and the clinic agent (PARLEY_REASONER_*)",
    )
    p.add_argument(
        "--reasoner-only",
        action="store_true",
        help="with --background-only: the reasoner only (no scenarios, no hearing)",
    )
    p.add_argument(
        "--reasoner-calls",
        type=int,
        default=16,
        help="held-out support calls for the reasoner (--background-only)",
    )
    p.add_argument(
        "--bridged",
        action="store_true",
        help="bridged translation calls: two parties in one room through a real gateway, scored per "
        "direction (with --write-scenarios: write bridged scenarios)",
    )
    p.add_argument(
        "--ducking-db",
        type=float,
        help="with --bridged: each listener hears the speaker this many dB under the interpreter "
        "(default: not at all, so the recogniser hears the interpreter alone)",
    )
    p.set_defaults(func=cmd_eval, gateway=gateway)


def _write_scenarios(
    directory: Path,
    n: int,
    seed0: int | None,
    agent_voice: str = "espeak",
    perturb: bool = False,
    caller_family: str = "espeak",
) -> list[Path]:
    from evaluation.held_out import HELD_OUT_SEED0, write_held_out

    t = time.perf_counter()
    seed0 = HELD_OUT_SEED0 if seed0 is None else seed0
    paths = write_held_out(
        directory, n, seed0=seed0, agent_voice=agent_voice, perturb=perturb, caller_family=caller_family
    )
    log.info("wrote %d held-out scenarios to %s in %.1f s", len(paths), directory, time.perf_counter() - t)
    return paths


def save_audio(record, path: Path) -> None:
    """Two channels at 16 kHz: what the model heard (left) and what it said (right)."""
    agent = record.agent_audio
    heard = np.zeros(len(agent), np.int16)
    heard[: len(record.heard)] = record.heard
    write_pcm16(path, np.stack([heard, agent], axis=1), 16000)


def cmd_eval_background(args) -> int:
    """The background model on its own: hearing, then reasoning; OUT/background.json and a summary."""
    from evaluation.hearing import evaluate_hearing, format_hearing_report
    from evaluation.metrics import matmul_gflops
    from evaluation.reasoning import evaluate_reasoner, format_reasoning
    from evaluation.scenarios import load_scenarios
    from workers.reasoner_settings import ReasonerSettings, reasoner_from_settings

    hearing = None
    if not args.reasoner_only:
        scenario_dir = args.scenarios or args.out / "scenarios"
        if args.scenarios is None and not any(scenario_dir.glob("*.json")):
            _write_scenarios(
                scenario_dir, args.n, args.seed0, args.agent_voice, args.perturb, args.caller_family
            )
        hearing = evaluate_hearing(load_scenarios(scenario_dir, args.limit))
        print(format_hearing_report(hearing))
    reasoning = evaluate_reasoner(
        reasoner_from_settings(ReasonerSettings()), n_support=args.reasoner_calls, concurrency=args.max_slots
    )
    print(format_reasoning(reasoning))
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"hearing": hearing, "reasoning": reasoning, "matmul_gflops": matmul_gflops()}
    (args.out / "background.json").write_text(json.dumps(report, indent=1, default=str))
    print(json.dumps({"report": str(args.out / "background.json"), "matmul_gflops": report["matmul_gflops"]}))
    return 0


def cmd_eval(args) -> int:
    if args.write_scenarios is not None and args.bridged:
        paths = _write_bridged(args.write_scenarios, args.n, args.seed0)
        print(json.dumps({"scenarios": str(args.write_scenarios), "written": len(paths), "bridged": True}))
        return 0
    if args.write_scenarios is not None:
        paths = _write_scenarios(
            args.write_scenarios, args.n, args.seed0, args.agent_voice, args.perturb, args.caller_family
        )
        print(json.dumps({"scenarios": str(args.write_scenarios), "written": len(paths)}))
        return 0
    if args.out is None:
        raise ValueError("--out DIR is required (or --write-scenarios DIR)")
    if args.background_only or args.reasoner_only:
        return cmd_eval_background(args)
    if args.bridged:
        return _run_bridged(args)
    if args.background is None:
        args.background = _reads_replies(args)
    if args.background:
        return _with_background(args)
    return _run_eval(args)


def _checkpoint_dir(args) -> Path | None:
    """The checkpoint evaluated: --checkpoint, else the shipped one; None for a preset's random weights."""
    from model.checkpoint import DEFAULT_CHECKPOINT, WEIGHTS_FILE

    if args.checkpoint:
        return Path(args.checkpoint)
    if args.preset is None and (DEFAULT_CHECKPOINT / WEIGHTS_FILE).is_file():
        return DEFAULT_CHECKPOINT
    return None


def _reads_replies(args) -> bool:
    """Whether the model evaluated voices the background model's replies (its support calls have
    nothing to say without one)."""
    from model.checkpoint import load_config
    from model.config import ModelConfig

    directory = _checkpoint_dir(args)
    cfg = load_config(directory) if directory else ModelConfig.from_name(args.preset or "small")
    return "reply" in cfg.event_kinds


def _write_bridged(directory: Path, n: int, seed0: int | None) -> list[Path]:
    from evaluation.bridged_scenarios import BRIDGED_SEED0, write_bridged

    t = time.perf_counter()
    paths = write_bridged(directory, n, BRIDGED_SEED0 if seed0 is None else seed0)
    log.info("wrote %d bridged scenarios to %s in %.1f s", len(paths), directory, time.perf_counter() - t)
    return paths


def _model(args):
    """(the model, its name for the report)."""
    from model.checkpoint import load_model

    model = load_model(args.preset, args.checkpoint, device=args.device)
    directory = _checkpoint_dir(args)
    return model, str(directory) if directory else f"preset {args.preset or 'small'} (RANDOM weights)"


def _meta(args, name, scenario_dir, scenarios, audio_s, health, t0: float, run_s: float, **extra) -> dict:
    """What an evaluation's results.json records of its run: the model, the scenarios (`audio_s`
    seconds of calls), the times (calls from `t0` for `run_s`, then scoring until now), the
    server's health, `extra`."""
    return {
        "model": name,
        "scenarios": str(scenario_dir),
        "calls": len(scenarios),
        "call_seconds": round(audio_s, 1),
        "calls_wall_seconds": round(run_s, 1),
        "scoring_seconds": round(time.perf_counter() - t0 - run_s, 1),
        **extra,
        "device": args.device,
        "server": health,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["parley"] + sys.argv[1:]),
    }


def _setup_torch(args) -> None:
    import torch

    torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 2) // 2))
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda requested but no CUDA device is available")


def _run_bridged(args) -> int:
    """`parley eval --bridged`: bridged scenarios as bridged calls, scored per direction."""
    import asyncio

    from evaluation.bridged import evaluate_bridged, run_bridged_scenarios
    from evaluation.report import write_bridged_report
    from evaluation.scenarios import load_scenarios

    if args.gateway is None:
        raise ValueError("--bridged needs a gateway: run it as `parley eval`")
    if args.tick_ms != 200:
        raise ValueError("--bridged runs in real time only: --tick-ms must be 200")
    _setup_torch(args)
    scenario_dir = args.scenarios
    if scenario_dir is None:
        scenario_dir = args.out / "scenarios-bridged"
        if not any(scenario_dir.glob("*.json")):
            _write_bridged(scenario_dir, args.n, args.seed0)
    scenarios = [s for s in load_scenarios(scenario_dir) if s.bridge is not None][: args.limit]
    if not scenarios:
        raise ValueError(f"{scenario_dir}: no bridged scenarios (with a `bridge` key)")
    model, name = _model(args)
    calls = max(1, args.max_slots // 2)
    audio_s = sum(s.duration_s for s in scenarios)
    log.info("bridged evaluation of %s: %d calls (%.0f s), %d at once", name, len(scenarios), audio_s, calls)
    t0 = time.perf_counter()
    records, health = asyncio.run(
        run_bridged_scenarios(
            model,
            scenarios,
            args.gateway,
            max_calls=calls,
            device=args.device,
            model_name=name,
            ducking_db=args.ducking_db,
        )
    )
    run_s = time.perf_counter() - t0
    results = evaluate_bridged(records, asr=not args.no_asr)
    results["meta"] = _meta(
        args,
        name,
        scenario_dir,
        scenarios,
        audio_s,
        health,
        t0,
        run_s,
        max_calls=min(calls, len(scenarios)),
        ducking_db=args.ducking_db,
        load_average=os.getloadavg(),
    )
    if args.save_audio:
        (args.out / "audio").mkdir(parents=True, exist_ok=True)
        for rec in records:
            write_pcm16(
                args.out / "audio" / f"{rec.scenario.name}.wav",
                np.stack([rec.heard["a"], rec.heard["b"]], 1),
                16000,
            )
    report = write_bridged_report(results, args.out)
    figures = {
        d: {
            k: s[k]
            for k in (
                "chrf",
                "reference_chrf",
                "text_chrf",
                "ear_voice_span_p50",
                "ear_voice_span_p90",
                "overlap_share",
            )
        }
        for d, s in results["summary"].items()
    }
    print(
        json.dumps(
            {
                "report": str(report),
                "results": str(args.out / "results.json"),
                "calls": len(records),
                "goals_met": {d: sum(g["met"] is True for g in rows) for d, rows in results["goals"].items()},
                "goals": {d: len(rows) for d, rows in results["goals"].items()},
                "directions": figures,
                "server_dropped_frames": health.get("dropped_frames"),
                "calls_cut_short": sum(bool(r.session.get("cut_short")) for r in records),
                "wall_seconds": round(time.perf_counter() - t0, 1),
            }
        )
    )
    return 0


def _with_background(args) -> int:
    """The evaluation with `LocalBackgroundTasks` beside every call, its models loaded first."""
    from agent.background_local import LocalBackgroundTasks

    t = time.perf_counter()
    tasks = LocalBackgroundTasks(threads=args.background_threads)
    tasks.warm()
    log.info("background model loaded in %.1f s", time.perf_counter() - t)
    try:
        return _run_eval(args, tasks)
    finally:
        tasks.close()


def _run_eval(args, background=None) -> int:
    import asyncio

    from evaluation.report import goals, write_report
    from evaluation.run import evaluate, run_scenarios
    from evaluation.scenarios import load_scenarios

    _setup_torch(args)
    scenario_dir = args.scenarios
    if scenario_dir is None:
        scenario_dir = args.out / "scenarios"
        if not any(scenario_dir.glob("*.json")):
            _write_scenarios(
                scenario_dir, args.n, args.seed0, args.agent_voice, args.perturb, args.caller_family
            )
    scenarios = load_scenarios(scenario_dir, args.limit)
    bridged = [s.name for s in scenarios if s.bridge is not None]
    if bridged:
        log.warning("skipping %d bridged scenarios (run them with --bridged)", len(bridged))
        scenarios = [s for s in scenarios if s.bridge is None]
        if not scenarios:
            raise ValueError(f"{scenario_dir}: only bridged scenarios there: run them with --bridged")
    model, name = _model(args)
    audio_s = sum(s.duration_s for s in scenarios)
    log.info(
        "evaluating %s on %d scenarios (%.0f s of calls, %d at once)",
        name,
        len(scenarios),
        audio_s,
        min(args.max_slots, len(scenarios)),
    )
    t0 = time.perf_counter()
    records, health = asyncio.run(
        run_scenarios(
            model,
            scenarios,
            max_slots=args.max_slots,
            tick_ms=args.tick_ms,
            device=args.device,
            model_name=name,
            seed=args.seed,
            temperature=args.temperature,
            background=background,
        )
    )
    run_s = time.perf_counter() - t0
    results = evaluate(records, baseline=not args.no_baseline, asr=not args.no_asr)
    results["meta"] = _meta(
        args,
        name,
        scenario_dir,
        scenarios,
        audio_s,
        health,
        t0,
        run_s,
        tick_ms=args.tick_ms,
        max_slots=min(args.max_slots, len(scenarios)),
    )
    if background is not None:
        from evaluation.metrics import matmul_gflops

        results["meta"]["background"] = {
            "hearing_model": os.environ.get("PARLEY_HEARING_MODEL", "base"),
            "reasoner": type(background.reasoner).__name__,
            "threads": args.background_threads,
        }
        results["meta"]["matmul_gflops"] = matmul_gflops()
    if args.save_audio:
        (args.out / "audio").mkdir(parents=True, exist_ok=True)
        for record in records:
            save_audio(record, args.out / "audio" / f"{record.scenario.name}.wav")
    report = write_report(results, args.out)
    rows = goals(results["summary"])
    print(
        json.dumps(
            {
                "report": str(report),
                "results": str(args.out / "results.json"),
                "calls": len(records),
                "goals_met": sum(r["model_met"] is True for r in rows),
                "goals": len(rows),
                "turn_taking_by_agent": {
                    a: s["model"]["turn_taking_rate"] for a, s in results["summary"]["by_agent"].items()
                },
                "wall_seconds": round(time.perf_counter() - t0, 1),
                **({"background": _background_figures(results["summary"]["model"])} if background else {}),
            }
        )
    )
    return 0


def _background_figures(summary: dict) -> dict:
    keys = ["tool_call_accuracy", "wer", "agent_meant_wer", "lookup_heard", "n_lookup_calls"]
    keys += [k for k in summary if k.startswith("delay_") and not k.startswith("n_")]
    return {k: summary.get(k) for k in keys}
