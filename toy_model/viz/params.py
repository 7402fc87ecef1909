"""Scene parameters: environment variables over a section of scenes/manim.cfg over built-in defaults.

    settings = Settings("block_flow", env=os.environ, cfg_path=CONFIG_FILE)
    theme = settings.theme()                           # TOY_THEME or [block_flow] theme
    trace, path = settings.trace(DEFAULT_TRACE)        # TOY_TRACE ...
    tokens = settings.tokens(trace)                    # TOY_TOKENS: auto | all | prompt | generated | 3 | 0-7 | ...
    pace = settings.pace(frame_rate, shortest=1 / 4)   # TOY_PACE, at least one frame for the shortest step

Every bad value is a ParamError naming where it came from and what is allowed, in one line. Nothing here
runs on import: only a scene file, when Manim renders it (`is_render_entry`), reads the environment and
turns a ParamError into one line on stderr and exit status 2 (`or_exit`). A notebook builds a scene with
explicit parameters and none of this runs.

manim.cfg is read with values taken literally (a '%' is a '%'), as UTF-8, and every malformed line, duplicate
key or section, unknown key or value Manim cannot use is named with its line.
"""

from __future__ import annotations

import ast
import configparser
import math
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from toy_model.trace_file import Trace, TraceError, load_trace
from toy_model.viz.theme import THEMES, Theme

ENV = {"trace": "TOY_TRACE", "tokens": "TOY_TOKENS", "pace": "TOY_PACE", "theme": "TOY_THEME"}


class ParamError(ValueError):
    """A parameter or trace a scene cannot use, said in one line."""


def _shown(path: Path) -> str:
    """path as the user knows it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def _first_line(e: BaseException) -> str:
    text = str(e.args[0] if isinstance(e, KeyError) and e.args else e).strip()  # KeyError's str() adds quotes
    return text.splitlines()[0] if text else type(e).__name__


# ------------------------------------------------------------------------------------------------
# manim.cfg


def read_config(cfg_path: Path) -> configparser.ConfigParser:
    """cfg_path parsed (empty when there is no such file), or a ParamError naming what is wrong in one line."""
    parser = configparser.ConfigParser(interpolation=None)
    where = _shown(cfg_path)
    try:
        data = cfg_path.read_bytes()
    except FileNotFoundError:
        return parser  # no file: every default applies
    except OSError as e:
        raise ParamError(f"{where} cannot be read ({e.strerror or e})") from None
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark, as some editors write, is fine
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ParamError(f"{where} line {line} is not UTF-8 text (byte 0x{data[e.start]:02x}): save the file as "
                         f"UTF-8") from None
    try:
        parser.read_string(text, source=str(cfg_path))
    except configparser.DuplicateSectionError as e:
        raise ParamError(f"{where} line {e.lineno}: section [{e.section}] appears twice; merge the two") from None
    except configparser.DuplicateOptionError as e:
        raise ParamError(f"{where} line {e.lineno}: key {e.option!r} appears twice in section [{e.section}]; "
                         f"keep one") from None
    except configparser.MissingSectionHeaderError as e:
        raise ParamError(f"{where} line {e.lineno}: {e.line.strip()!r} comes before any [section] header") \
            from None
    except configparser.ParsingError as e:
        lineno, line = e.errors[0]
        try:
            line = ast.literal_eval(line)  # configparser keeps repr(line)
        except (ValueError, SyntaxError):
            pass
        raise ParamError(f"{where} line {lineno}: {str(line).strip()!r} is not a 'key = value' line") from None
    except configparser.Error as e:
        raise ParamError(f"{where} is not a valid config file ({_first_line(e)})") from None
    return parser


def _on_command_line(key: str, argv: Sequence[str]) -> bool:
    """Whether argv sets Manim's option `key`: --key, --key=..., or another of its flags (-q, --fps)."""
    from manim.cli.render.commands import render

    flags = {f"--{key}"}.union(*(p.opts for p in render.params if p.name == key))
    for arg in argv:
        if arg.split("=")[0] in flags:
            return True
        if arg[:1] == "-" and arg[:2] != "--" and any(f[1] in arg[1:] for f in flags if len(f) == 2):
            return True  # a short flag, maybe with its value or others: -ql, -pqh (too eager is harmless)
    return False


_KIND_WORDS = {bool: "True or False", int: "a whole number", float: "a number"}


def apply_cli_defaults(cfg_path: Path, argv: Sequence[str] | None = None) -> dict[str, object]:
    """Apply cfg_path's [CLI] section to Manim's config as if Manim had read it, which it does only from the
    working directory (or --config_file): so `manim render scenes/x.py` run from the repo root still gets, e.g.,
    disable_caching. Keys set on the command line are left alone. Returns what was set; a file or a value
    Manim cannot use is a ParamError, in one line. Called by scene files when Manim renders them, never on
    import of the kit."""
    from manim import config

    argv = sys.argv[1:] if argv is None else argv
    if Path.cwd().resolve() == cfg_path.resolve().parent or _on_command_line("config_file", argv) \
            or any(a.endswith(".cfg") for a in argv):  # Manim has read a config file of the user's
        return {}
    parser = read_config(cfg_path)
    if not parser.has_section("CLI"):
        return {}
    cli, applied = parser["CLI"], {}
    for key in cli:
        if not hasattr(config, key) or _on_command_line(key, argv):  # Manim ignores unknown keys too
            continue
        raw, kind = cli[key], type(config[key])
        get = {bool: cli.getboolean, int: cli.getint, float: cli.getfloat}.get(kind, cli.get)
        try:
            value = get(key)
        except ValueError:
            raise ParamError(f"{_shown(cfg_path)} [CLI] {key}={raw!r}: Manim needs {_KIND_WORDS[kind]} here") \
                from None
        try:
            config[key] = value
        except Exception as e:  # Manim's own checks: a quality it does not know, a negative size, ...
            raise ParamError(f"{_shown(cfg_path)} [CLI] {key}={raw!r}: Manim refuses it ({_first_line(e)})") \
                from None
        applied[key] = value
    return applied


# ------------------------------------------------------------------------------------------------
# values


def parse_tokens(spec: str, trace: Trace, source: str = "TOY_TOKENS", auto: int = 10) -> tuple[int, ...]:
    """Token positions from 'auto', 'all', 'prompt', 'generated', 'N', 'N-M' or a comma list of those.

    'auto' is the last prompt token (whose prediction is the first answer token) and the next auto - 1."""
    T, P = trace.n_tokens, trace.n_prompt_tokens
    named = {
        "all": range(T),
        "prompt": range(P),
        "generated": range(P, T),
        "auto": range(P - 1, min(T, P - 1 + auto)) if T > P else range(max(0, T - auto), T),
    }
    out: list[int] = []
    for item in (s.strip() for s in spec.split(",")):
        if item.lower() in named:
            out += list(named[item.lower()])
            continue
        try:
            a, _, b = item.partition("-")
            lo, hi = int(a), int(b) if b else int(a)
        except ValueError:
            raise ParamError(f"{source}={spec!r}: {item!r} is not a token number, a range like 0-7, or one of "
                             f"auto, all, prompt, generated") from None
        if lo > hi:
            raise ParamError(f"{source}={spec!r}: range {item!r} runs backwards")
        if lo < 0 or hi >= T:
            raise ParamError(f"{source}={spec!r}: token {hi if hi >= T else lo} is outside the trace, which "
                             f"has {T} tokens (0-{T - 1})")
        out += list(range(lo, hi + 1))
    if not out:
        raise ParamError(f"{source}={spec!r} selects no tokens (the trace has {T}, {P} of them prompt)")
    return tuple(dict.fromkeys(out))  # keep order, drop repeats


def min_pace(frame_rate: float, shortest: float) -> float:
    """The shortest pace at which a step lasting `shortest` of the pace still lasts one frame."""
    return 1 / (shortest * frame_rate)


class Settings:
    """One scene's parameters: `env` (TOY_* variables) over `cfg_path`'s [section] over the defaults given to
    each reader. Unknown keys in the section are refused, so a typo is not silently ignored."""

    def __init__(self, section: str, env: Mapping[str, str] | None = None, cfg_path: Path | None = None,
                 keys: Mapping[str, str] = ENV):
        self.section, self.keys = section, dict(keys)
        self.env = os.environ if env is None else env
        self.cfg_path = cfg_path
        self.defaults: dict[str, str] = {}
        if cfg_path is not None:
            parser = read_config(cfg_path)
            if parser.has_section(section):
                values = parser[section]
                unknown = [k for k in values if k not in self.keys and k not in parser.defaults()]
                if unknown:
                    raise ParamError(f"{_shown(cfg_path)} [{section}] has a key {unknown[0]!r} the scene does not "
                                     f"know: the keys are {', '.join(self.keys)}")
                self.defaults = dict(values)

    def get(self, key: str, fallback: str) -> tuple[str, str]:
        """(value, where it came from) for `key`: its environment variable, the cfg section, or `fallback`."""
        name = self.keys[key]
        if self.env.get(name, "").strip():
            return self.env[name].strip(), name
        where = f"{_shown(self.cfg_path)} [{self.section}] {key}" if self.cfg_path else f"default {key}"
        value = self.defaults.get(key, fallback).strip()
        if key != "trace" and re.search(r"\s[#;]", value):  # a path may hold '#'; nothing else does
            raise ParamError(f"{where}={value!r}: a comment must go on a line of its own in a config file")
        return value, where

    def theme(self, fallback: str = "dark") -> Theme:
        name, src = self.get("theme", fallback)
        if name.lower() not in THEMES:
            raise ParamError(f"{src}={name!r}: the theme must be 'dark' or 'light'")
        return THEMES[name.lower()]

    def number(self, key: str, fallback: str, what: str) -> tuple[float, str, str]:
        """(value, its text, where it came from), or a ParamError saying `what` is expected."""
        text, src = self.get(key, fallback)
        try:
            return float(text), text, src
        except ValueError:
            raise ParamError(f"{src}={text!r}: {what}") from None

    def pace(self, frame_rate: float, shortest: float, fallback: str = "0.3", maximum: float = 5.0,
             unit: str = "step") -> float:
        """Seconds per `unit` of the scene (a block hop, a token), such that its shortest animation (`shortest`
        of the pace) still lasts one frame at `frame_rate`, and at most `maximum`."""
        fps = float(frame_rate)
        if not fps > 0:
            raise ParamError(f"the frame rate is {fps:g}: it must be a positive number of frames per second")
        pace, text, src = self.number("pace", fallback, f"the pace must be a number of seconds per {unit}, e.g. 0.3")
        lowest = math.ceil(min_pace(fps, shortest) * 100 - 1e-6) / 100  # rounded up, so that it is itself accepted
        if not pace <= maximum:  # also rejects nan
            raise ParamError(f"{src}={text!r}: at {fps:g} fps the pace must be between {lowest:.2f} and "
                             f"{maximum:g} seconds per {unit}")
        if pace * shortest * fps < 1 - 1e-9:
            raise ParamError(f"{src}={text!r}: at {fps:g} fps the pace must be at least {lowest:.2f} s per {unit} "
                             f"(its shortest step, {_fraction(shortest)} of the pace, must last one frame)")
        return pace

    def trace(self, fallback: Path, pattern_check=None) -> tuple[Trace, Path]:
        """(trace, path): TOY_TRACE as given, a cfg path relative to the cfg file, or `fallback`.
        pattern_check(pattern) -> str | None may refuse a trace whose layers the scene cannot draw."""
        text, src = self.get("trace", str(fallback))
        path = Path(text).expanduser()
        if not path.is_absolute() and src != self.keys["trace"] and self.cfg_path is not None:
            path = (self.cfg_path.parent / path).resolve()  # manim.cfg paths are relative to the file itself
        try:
            trace = load_trace(path)
        except TraceError as e:
            raise ParamError(f"{src}: {e}") from None
        problem = pattern_check(trace.pattern) if pattern_check else None
        if problem:
            raise ParamError(f"{src}: {problem}")
        return trace, path

    def tokens(self, trace: Trace, fallback: str = "auto", auto: int = 10) -> tuple[int, ...]:
        spec, src = self.get("tokens", fallback)
        return parse_tokens(spec, trace, src, auto=auto)


def _fraction(x: float) -> str:
    return {0.25: "a quarter", 1 / 3: "a third", 0.5: "half", 1.0: "all"}.get(x, f"{x:g}")


# ------------------------------------------------------------------------------------------------
# entry points


def is_render_entry(scene_file: str | Path) -> bool:
    """Whether Manim's command line is rendering `scene_file` now (it sets config.input_file first). A notebook
    or a test that imports the scene file gets False: nothing is read from the environment then."""
    from manim import config

    try:
        return bool(config.input_file) and Path(config.input_file).resolve() == Path(scene_file).resolve()
    except (OSError, ValueError):
        return False


def start_render(cfg_path: Path, env: Mapping[str, str] | None = None) -> None:
    """What a scene file does first when Manim renders it: cfg_path's [CLI] defaults (apply_cli_defaults), and
    the scenes' progress reports to where TOY_PROGRESS says (a file, or - for standard error;
    toy_model.viz.progress). A ParamError names a bad value."""
    from toy_model.viz.progress import Progress
    from toy_model.viz.scene import KitScene

    apply_cli_defaults(cfg_path)
    where = (os.environ if env is None else env).get("TOY_PROGRESS", "").strip()
    if where:
        try:
            KitScene.progress = Progress.to(where)
        except OSError as e:
            raise ParamError(f"TOY_PROGRESS={where!r}: cannot write there ({e.strerror or e})") from None


def or_exit(fn, *args, **kwargs):
    """fn(...) for an entry point: a ParamError prints one line (`error: ...`) and exits with status 2."""
    try:
        return fn(*args, **kwargs)
    except ParamError as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        raise SystemExit(2) from None
