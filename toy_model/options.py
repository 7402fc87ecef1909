"""Command-line values, checked where they enter: option types for argparse, the one-line parser, prompt files.

Every subcommand (train, generate, trace) takes its numbers through these types, so a bad value is refused
before any work, in one line, the same way everywhere. The library functions check the same ranges
(`check_sampling` in toy_model.generation, `TrainConfig.check` in toy_model.training) for callers that
bypass the command line.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

MAX_SEED = 2**32 - 1  # seeds are 0..2^32-1 everywhere (training mixes them with the step number)
MAX_PROMPT_FILE_BYTES = 1 << 20  # far beyond any context the model takes; the token count decides the rest


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (`error: ...`, exit status 2) instead of usage plus a line."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see --help)\n")


def _number(text: str, kind, what: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def count(text: str) -> int:
    """0 or more (tokens to generate)."""
    n = _number(text, int, "a whole number")
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {n}")
    return n


def positive_int(text: str) -> int:
    n = _number(text, int, "a whole number")
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {n}")
    return n


def positive_float(text: str) -> float:
    x = _number(text, float, "a number")
    if x <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return x


def temperature(text: str) -> float:
    x = _number(text, float, "a number")
    if x < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (greedy) or more, got {text}")
    return x


def seed(text: str) -> int:
    n = _number(text, int, "a whole number")
    if not 0 <= n <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be in 0..{MAX_SEED}, got {n}")
    return n


def add_prompt_arguments(parser: argparse.ArgumentParser, default: str) -> None:
    """--prompt TEXT or --prompt-file PATH ('-' reads standard input); read them with `prompt_of(args)`."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--prompt", help=f"prompt text (default: {default!r})")
    group.add_argument("--prompt-file", metavar="PATH",
                       help="read the prompt from a UTF-8 text file, or from standard input with '-'")
    parser.set_defaults(default_prompt=default)


def prompt_of(args) -> str:
    """The prompt an argparse namespace asks for (see add_prompt_arguments); PromptError for a bad file."""
    from toy_model.generation import PromptError

    if args.prompt is not None:
        return args.prompt
    if args.prompt_file is None:
        return args.default_prompt
    name = "standard input" if args.prompt_file == "-" else args.prompt_file
    try:
        if args.prompt_file == "-":
            data = sys.stdin.buffer.read(MAX_PROMPT_FILE_BYTES + 1)
        else:
            path = Path(args.prompt_file)
            if path.is_dir():
                raise PromptError(f"--prompt-file {path} is a folder, not a text file")
            with open(path, "rb") as f:
                data = f.read(MAX_PROMPT_FILE_BYTES + 1)
    except OSError as e:
        raise PromptError(f"cannot read the prompt from {name}: {e.strerror or e}") from None
    if len(data) > MAX_PROMPT_FILE_BYTES:
        raise PromptError(f"the prompt in {name} is over {MAX_PROMPT_FILE_BYTES >> 20} MiB; the model's context "
                          f"is a few hundred tokens")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise PromptError(f"the prompt in {name} is not UTF-8 text (byte {e.start} is 0x{data[e.start]:02x})") \
            from None
    return text.removeprefix("\ufeff").rstrip("\r\n")  # a BOM and the file's final newline are not the prompt
