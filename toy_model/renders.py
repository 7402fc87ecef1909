"""What the commands that run Manim share (toy_model.talk, toy_model.split): the scenes by name, the qualities,
Manim's quiet options, the scenes' environment, and renders run in child processes from worker threads, all
stopped at once when one fails or the command is interrupted (Ctrl-C, SIGTERM)."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

SCENES = {"block_flow": "BlockFlow", "emoji_chat": "EmojiChat", "mamba2_ssd": "Mamba2SSD",
          "latent_moe": "LatentMoE", "attention": "Attention", "generation": "Generation",
          "hybrid_map": "HybridMap"}
QUALITIES = {"preview": ("-ql", "480p15", 15), "1080p60": ("-qh", "1080p60", 60), "4k": ("-qk", "2160p60", 60)}
QUIET = ["--disable_caching", "-v", "WARNING", "--progress_bar", "none"]


def last_line(text: str) -> str:
    """A child's last line of output: what a one-line error quotes."""
    lines = [s for s in (text or "").strip().splitlines() if s.strip()]
    return lines[-1].strip() if lines else "(no message)"


def scene_env(env: Mapping[str, str] | None = None, drop: tuple[str, ...] = ()) -> dict[str, str]:
    """The environment for a render run from another folder: TOY_TRACE made absolute (a scene reads it relative
    to where it runs), the variables in `drop` left out."""
    out = {k: v for k, v in (os.environ if env is None else env).items() if k not in drop}
    trace = out.get("TOY_TRACE", "").strip()
    if trace and not Path(trace).expanduser().is_absolute():
        out["TOY_TRACE"] = str(Path.cwd() / Path(trace).expanduser())
    return out


class Stopped(Exception):
    """The renders were stopped: a task that had not started its child yet."""


class Children:
    """Child processes started from worker threads; stop() ends those running and refuses new ones, under one
    lock, so none slips through while the others are being stopped."""

    def __init__(self):
        self.lock = threading.Lock()
        self.running: set[subprocess.Popen] = set()
        self.stopping = False

    def run(self, cmd: list[str], **kwargs) -> tuple[int, str]:
        """Run cmd to its end: (exit status, standard error)."""
        with self.lock:
            if self.stopping:
                raise Stopped()
            p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **kwargs)
            self.running.add(p)
        try:
            _, err = p.communicate()
        finally:
            with self.lock:
                self.running.discard(p)
        return p.returncode, err

    def stop(self) -> None:
        with self.lock:
            self.stopping = True
            for p in self.running:
                p.terminate()


def in_parallel(tasks: Mapping[str, Callable[[], object]], jobs: int, done: Callable[[str, object], None],
                children: Children, poll: float | None = None, look: Callable[[], None] | None = None) -> None:
    """Run the tasks, up to `jobs` at once, calling done(name, result) as each ends (and look() every `poll`
    seconds, if given). If one fails, or Ctrl-C or SIGTERM arrives, every child is stopped, the tasks not begun
    never start, and the exception goes on."""
    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(tasks)))) as pool:
        futures = {pool.submit(fn): name for name, fn in tasks.items()}
        pending = set(futures)
        try:
            while pending:
                finished, pending = wait(pending, timeout=poll, return_when=FIRST_COMPLETED)
                if look is not None:
                    look()
                for f in finished:
                    done(futures[f], f.result())
        except BaseException:
            children.stop()
            for f in futures:
                f.cancel()
            raise
