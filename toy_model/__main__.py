"""Command line: python -m toy_model {train,generate,trace,info} ...

Errors a user can cause (a bad config, weights file, prompt or trace) print one line, `error: ...`,
and exit with status 2; no traceback.
"""

from __future__ import annotations

import sys

from toy_model.generation import DEFAULT_PROMPT


def cmd_train(args) -> int:
    import json
    from pathlib import Path

    from toy_model.config import ConfigError, HybridConfig
    from toy_model.training import TrainConfig, train

    fields = {}
    if args.config:
        try:
            fields = json.loads(Path(args.config).read_bytes().decode("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
            why = "nested too deeply" if isinstance(e, RecursionError) else getattr(e, "strerror", None) or e
            raise ConfigError(f"cannot read the config file {args.config}: {why}") from None
        if not isinstance(fields, dict):
            raise ConfigError(f"the config file {args.config} must hold a JSON object of HybridConfig fields")
    if args.pattern is not None:
        fields["pattern"] = args.pattern
    cfg = HybridConfig.from_dict(fields)  # checked here, before any data is built
    tc = TrainConfig()
    for name in ("steps", "batch_size", "seq_len", "lr", "seed", "run_dir", "out"):
        if getattr(args, name) is not None:
            setattr(tc, name, getattr(args, name))
    train(tc, cfg, resume=args.resume, progress=not args.quiet)
    return 0


def cmd_generate(args) -> int:
    from toy_model.generation import generate_text
    from toy_model.model import load_pretrained
    from toy_model.options import prompt_of
    from toy_model.tokenizer import load_tokenizer

    prompt = prompt_of(args)
    model = load_pretrained(args.weights, kernels=args.kernels)
    tok = load_tokenizer()
    _, new = generate_text(model, tok, prompt, args.max_new_tokens, args.temperature, args.seed,
                           chat=not args.raw)
    # A character cut by the token limit (or bytes that never formed one) shows as U+FFFD, and a terminal
    # that cannot show a character gets '?': printing never fails.
    sys.stdout.reconfigure(errors="replace")
    print(tok.decode_bytes(new).decode("utf-8", "replace"))
    return 0


def cmd_info(args) -> int:
    from toy_model.model import DEFAULT_WEIGHTS, read_weights

    cfg, state, meta = read_weights(args.weights or DEFAULT_WEIGHTS)
    n = sum(v.numel() for k, v in state.items() if "e_score_correction_bias" not in k)
    print(f"pattern {cfg.pattern} ({cfg.n_layers} layers), d_model {cfg.d_model}, {n:,} parameters")
    if "training" in meta:
        print(f"training: {meta['training']}")
    return 0


def main(argv=None) -> int:
    from toy_model import options

    parser = options.OneLineParser(prog="python -m toy_model", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train the model on CPU (default run: under 15 minutes on 2 cores)")
    p.add_argument("--pattern", help="layer pattern, e.g. 'MEM*E' * 3 written out (M, E, *, -)")
    p.add_argument("--config", help="a JSON file of HybridConfig fields to change from the defaults")
    p.add_argument("--steps", type=options.positive_int)
    p.add_argument("--batch-size", type=options.positive_int)
    p.add_argument("--seq-len", type=options.positive_int, help="tokens per sequence, at most the config's max_seq_len")
    p.add_argument("--lr", type=options.positive_float)
    p.add_argument("--seed", type=options.seed, help="0..2^32-1")
    p.add_argument("--run-dir", help="where checkpoints and, by default, the final weights go (default runs/train)")
    p.add_argument("--out", help="final weights (default: <run-dir>/model.safetensors); replacing the bundled "
                   "weights needs --out toy_model/data/model.safetensors")
    p.add_argument("--resume", action="store_true", help="continue from the run directory's checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("generate", help="continue a prompt with the bundled model")
    options.add_prompt_arguments(p, DEFAULT_PROMPT)
    p.add_argument("--max-new-tokens", type=options.count, default=400)
    p.add_argument("--temperature", type=options.temperature, default=0.0, help="0 = greedy (default)")
    p.add_argument("--seed", type=options.seed, default=0, help="0..2^32-1")
    p.add_argument("--weights", help="a toy_model safetensors file (default: the bundled weights)")
    p.add_argument("--kernels", choices=["auto", "torch", "triton"])
    p.add_argument("--raw", action="store_true", help="no chat template: continue the text as it is")
    p.set_defaults(func=cmd_generate)

    from toy_model.trace import add_trace_arguments, run_trace

    p = sub.add_parser("trace", help="record the model's activations for a prompt into a .npz trace")
    add_trace_arguments(p)
    p.set_defaults(func=run_trace)

    p = sub.add_parser("info", help="describe a weights file")
    p.add_argument("--weights")
    p.set_defaults(func=cmd_info)

    args = parser.parse_args(argv)
    from toy_model.config import ConfigError
    from toy_model.files import OutputError, exit_on_sigterm
    from toy_model.generation import PromptError
    from toy_model.kernels import KernelUnavailable
    from toy_model.model import WeightsError
    from toy_model.trace_file import TraceError
    from toy_model.training import TrainError

    exit_on_sigterm()  # temp files are removed on SIGTERM as on Ctrl-C
    user_errors = (ConfigError, WeightsError, PromptError, KernelUnavailable, OutputError, TraceError, TrainError)
    try:
        return args.func(args)
    except user_errors as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)  # one line, whatever the message holds
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
