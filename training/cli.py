"""`parley train`: train a preset on generated calls, resumable, with progress and loss curves.

    parley train --preset small --out runs/small [--resume] [--device cpu|cuda] [--hours H] [--steps N]
                 [--agent-voice espeak|piper] [--perturb-share S] [--es-en-share S] [--background]
                 [--init-from shipped|CHECKPOINT]

Every `--checkpoint-every` steps the run directory gets a loadable checkpoint (config.json +
model.safetensors), the trainer state, losses.jsonl and losses.png. Stopped at any point, the same
command with --resume continues exactly where the last checkpoint left off. The run directory's
data.json records what the run's calls are made of (the agent's English voice: espeak-ng, as the
shipped checkpoint, or piper joe; the share of calls whose caller voice and line are perturbed;
the share of interpreting calls that are Spanish to English);
resuming with other data options is refused, since it would silently switch the run to another
corpus.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)
DATA_FILE = "data.json"  # what the run's calls are made of (see the module docstring)


def plot_losses(
    run_dir: Path,
    name: str = "losses.jsonl",
    keys: tuple[str, ...] = ("total", "floor", "tool", "text", "tool_text", "audio"),
) -> Path | None:
    path = run_dir / name
    if not path.is_file():
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not rows:
        return None
    steps = [r["step"] for r in rows]
    fig, ax = plt.subplots(figsize=(9, 5))
    for key in keys:
        ax.plot(steps, [r[key] for r in rows], label=key, linewidth=1)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out = path.with_suffix(".png")
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def add_command(sub) -> None:
    p = sub.add_parser("train", help="train the interaction model on generated calls")
    p.add_argument("--preset", default="small")
    p.add_argument("--out", type=Path, required=True, help="run directory")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--hours", type=float, help="stop after this much wall time")
    p.add_argument("--steps", type=int, help="stop after this many more steps")
    p.add_argument(
        "--total-steps",
        type=int,
        help="length of the learning-rate schedule (default: 20000 for the model, 4000 for the vocoder)",
    )
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-positions", type=int, default=256)
    p.add_argument("--corpus-calls", type=int, default=4000)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--checkpoint-every", type=int, default=200)
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument(
        "--feedback-noise",
        type=float,
        default=0.15,
        help="share of fed-back previous outputs corrupted in training (exposure bias)",
    )
    p.add_argument(
        "--self-feed",
        type=float,
        default=0.0,
        help="share of micro-turns that read back the model's own sampled outputs instead of "
        "the references (parallel scheduled sampling; one more forward pass a step)",
    )
    p.add_argument(
        "--agent-voice",
        choices=("espeak", "piper"),
        default="espeak",
        help="the agent's English voice in the generated calls: espeak-ng (the shipped "
        "checkpoint's) or piper joe (corpus.piper_voice)",
    )
    p.add_argument(
        "--perturb-share",
        type=float,
        default=0.0,
        help="share of calls whose caller voice (speed, tempo, vocal tract, level) and line "
        "(G.722, packet loss) are perturbed (corpus.perturb)",
    )
    p.add_argument(
        "--es-en-share",
        type=float,
        default=0.0,
        help="share of the interpreting calls (30%% of all) that are translate-es-en's, Spanish "
        "callers interpreted into English (the rest translate-en-es); 0, the default, is the corpus "
        "every run before the option had",
    )
    p.add_argument(
        "--init-from",
        metavar="CHECKPOINT",
        help="a new run starts from this checkpoint's weights ('shipped': model/checkpoints/small2); "
        "modules the preset adds to it (words-mode events, the reply prompter) start fresh "
        "(model.checkpoint.warm_start)",
    )
    p.add_argument(
        "--background",
        action="store_true",
        help="calls with a background model beside them: caller words and replies as events "
        "(corpus.background_calls), for checkpoints that read them (presets with event_repr words)",
    )
    p.add_argument(
        "--part",
        choices=("model", "vocoder"),
        default="model",
        help="what to train: the interaction model's heads, or the vocoder (into OUT/vocoder)",
    )
    p.set_defaults(func=cmd_train)

    r = sub.add_parser(
        "train-reasoner",
        help="fine-tune the background model's reasoner (a LoRA adapter on SmolLM2-135M) on text calls",
    )
    r.add_argument("--out", type=Path, required=True, help="run directory (adapter.gguf, state, losses)")
    r.add_argument("--resume", action="store_true", help="continue the run in --out")
    r.add_argument("--minutes", type=float, help="stop after this much wall time")
    r.add_argument("--steps", type=int, help="stop at this optimiser step")
    r.add_argument("--total-steps", type=int, default=400, help="the learning-rate schedule's length")
    r.add_argument("--rank", type=int, default=16)
    r.add_argument("--lr", type=float, default=3e-4)
    r.add_argument("--calls-per-step", type=int, default=4)
    r.add_argument("--support-share", type=float, default=0.5, help="the rest: other generated agents")
    r.add_argument("--data-seed", type=int, default=0)
    r.add_argument("--threads", type=int, default=2)
    r.set_defaults(func=cmd_train_reasoner)

    e = sub.add_parser("export", help="a training run as a serving checkpoint (model + vocoder)")
    e.add_argument("--run", type=Path, required=True, help="run directory of parley train")
    e.add_argument("--out", type=Path, required=True, help="checkpoint directory to write")
    e.add_argument("--dtype", choices=("bfloat16", "float16", "float32"), default="bfloat16")
    e.set_defaults(func=cmd_export)


def cmd_train_reasoner(args) -> int:
    from training.reasoner import ReasonerTrainConfig, train_reasoner

    cfg = ReasonerTrainConfig(
        rank=args.rank,
        alpha=2.0 * args.rank,
        lr=args.lr,
        total_steps=args.total_steps,
        calls_per_step=args.calls_per_step,
        support_share=args.support_share,
        seed=args.data_seed,
        threads=args.threads,
    )
    record = train_reasoner(
        args.out,
        cfg,
        minutes=args.minutes,
        steps=args.steps,
        resume=args.resume,
        progress=lambda r: log.info("reasoner step %d loss %.4f (%.1f s)", r["step"], r["loss"], r["step_s"]),
    )
    print(json.dumps({"out": str(args.out), **record}))
    return 0


def cmd_export(args) -> int:
    from training.export import export_run

    record = export_run(args.run, args.out, args.dtype)
    print(
        json.dumps(
            {
                "out": str(args.out),
                "model_step": record["model"].get("step"),
                "vocoder_step": (record["vocoder"] or {}).get("step"),
            }
        )
    )
    return 0


def cmd_train(args) -> int:
    import torch

    from model.config import ModelConfig
    from model.interaction import InteractionModel
    from training.data import CallStream, DataConfig
    from training.loop import TrainConfig, Trainer

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("parley: --device cuda requested but no CUDA device is available")
    if args.part == "vocoder":
        return _train_vocoder(args, ModelConfig.from_name(args.preset))
    if (args.out / "trainer.pt").is_file() and not args.resume:
        raise SystemExit(f"parley: {args.out} already holds a run; pass --resume to continue it")
    record = {"agent_voice": args.agent_voice}
    if args.perturb_share:
        record["perturb_share"] = args.perturb_share
    if args.es_en_share:
        record["es_en_share"] = args.es_en_share
    if args.background:
        record["background"] = True
    _same_data(args.out, record, existing=(args.out / "trainer.pt").is_file())
    cfg = ModelConfig.from_name(args.preset)
    torch.manual_seed(args.data_seed)
    model = InteractionModel(cfg)
    data = CallStream(
        cfg,
        DataConfig(
            args.batch_size,
            args.max_positions,
            args.corpus_calls,
            agent_voice=args.agent_voice,
            perturb_share=args.perturb_share,
            background=args.background,
            es_en_share=args.es_en_share,
        ),
    )
    train_cfg = TrainConfig(
        lr=args.lr,
        total_steps=args.total_steps or TrainConfig.total_steps,
        checkpoint_every=args.checkpoint_every,
        data_seed=args.data_seed,
        feedback_noise=args.feedback_noise,
        self_feed=args.self_feed,
    )
    if args.init_from and not (args.resume and (args.out / "trainer.pt").is_file()):
        from model.checkpoint import DEFAULT_CHECKPOINT, warm_start

        source = DEFAULT_CHECKPOINT if args.init_from == "shipped" else Path(args.init_from)
        try:
            fresh = warm_start(model, source)
        except (OSError, ValueError) as exc:
            raise SystemExit(f"parley: --init-from {args.init_from}: {exc}") from None
        log.info("starting from %s; fresh: %s", source, ", ".join(fresh) or "nothing")
    trainer = Trainer(model, data, args.out, train_cfg, device=args.device)
    if args.resume and not trainer.resume():
        log.info("nothing to resume in %s: starting a new run", args.out)
    start, t0 = trainer.step, time.monotonic()

    def progress(record: dict) -> None:
        done = record["step"] - start
        rate = done / max(1e-9, time.monotonic() - t0)
        print(
            f"\rstep {record['step']}/{train_cfg.total_steps}  loss {record['total']:.3f}  "
            f"floor {record['floor']:.3f}  text {record['text']:.3f}  audio {record['audio']:.3f}  "
            f"{rate * 3600:.0f} steps/h",
            end="",
            file=sys.stderr,
            flush=True,
        )
        if record["step"] % train_cfg.checkpoint_every == 0:
            plot_losses(args.out)

    trainer.run(steps=args.steps, hours=args.hours, progress=progress)
    print(file=sys.stderr)
    png = plot_losses(args.out)
    print(json.dumps({"out": str(args.out), "step": trainer.step, "losses_png": str(png) if png else None}))
    return 0


# What a run's data.json leaves out: runs from before a key existed were made with these.
DATA_DEFAULTS = {"agent_voice": "espeak", "perturb_share": 0.0, "background": False, "es_en_share": 0.0}


def _same_data(out: Path, record: dict, existing: bool) -> None:
    """Write `record` to OUT/data.json for a new run; for an `existing` one, refuse another record.
    Runs from before data.json existed were all voiced by espeak-ng."""
    path = out / DATA_FILE
    if existing:
        was = json.loads(path.read_text()) if path.is_file() else {}
        then, now = {**DATA_DEFAULTS, **was}, {**DATA_DEFAULTS, **record}
        changed = [
            f"--{k.replace('_', '-')} {then[k]} (asked for {now[k]})" for k in now if then[k] != now[k]
        ]
        if changed:
            raise SystemExit(
                f"parley: {out} was trained with {', '.join(changed)}; resume it with the "
                "same options, or start a new run in another directory"
            )
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record) + "\n")


def _train_vocoder(args, cfg) -> int:
    """`--part vocoder`: the vocoder alone, on the agent channel, into OUT/vocoder."""
    from training.vocoder import LOSSES, VocoderTrainConfig, VocoderTrainer

    out = args.out / "vocoder"
    if (out / "vocoder_state.pt").is_file() and not args.resume:
        raise SystemExit(f"parley: {out} already holds a vocoder run; pass --resume to continue it")
    _same_data(out, {"agent_voice": args.agent_voice}, existing=(out / "vocoder_state.pt").is_file())
    c = VocoderTrainConfig(
        total_steps=args.total_steps or VocoderTrainConfig.total_steps,
        seed=args.data_seed,
        checkpoint_every=args.checkpoint_every,
        agent_voice=args.agent_voice,
    )
    trainer = VocoderTrainer(cfg, out, c, device=args.device)
    if args.resume:
        trainer.resume()
    t0, start = time.monotonic(), trainer.step

    def progress(record: dict) -> None:
        rate = (record["step"] - start) / max(1e-9, time.monotonic() - t0)
        print(
            f"\rvocoder step {record['step']}/{c.total_steps}  loss {record['total']:.3f}  "
            f"stft {record['stft']:.3f}  mel {record['mel']:.3f}  {rate * 3600:.0f} steps/h",
            end="",
            file=sys.stderr,
            flush=True,
        )

    trainer.run(steps=args.steps, hours=args.hours, progress=progress)
    print(file=sys.stderr)
    png = plot_losses(out, LOSSES, ("total", "stft", "mel"))
    print(json.dumps({"out": str(out), "step": trainer.step, "losses_png": str(png) if png else None}))
    return 0
