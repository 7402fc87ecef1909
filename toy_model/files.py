"""Writing output files without ever leaving a half-written or destroyed one behind.

Every file the project writes (weights, checkpoints, traces, configs) goes through `atomic_output`:

    with atomic_output(path, "trace") as tmp:   # checks the path first, then yields a temp file beside it
        write(tmp)                              # any exception (Ctrl-C, SIGTERM, a full disk) removes tmp
    # here tmp has been renamed over path in one step: readers see the old file or the new one

The rules (the README's "Bad input" section states them for users):
- Only regular files are ever written. A path naming a folder, a device, a FIFO or a socket is refused
  with one line, and the node is left as it was.
- A symbolic link is followed: the file it points to is replaced and the link is kept. A link to
  something that is not a regular file is refused like that thing itself.
- The folder must exist and be writable; it is checked before any work starts (`check_output`).
- Temp files have unique names, so two runs writing the same path at once never mix their bytes: each
  rename is whole, and the last one wins.

Standard library only: the numpy-only trace loader imports it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path


class OutputError(ValueError):
    """An output path that cannot be written, said in one line (the CLI prints it as `error: ...`)."""


_NODE_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
               (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
               (stat.S_ISSOCK, "a socket"))


def node_kind(path: Path) -> str | None:
    """What `path` is when it exists and is not a regular file ('a folder', 'a FIFO (named pipe)', ...)."""
    try:
        mode = os.stat(path).st_mode  # follows symlinks
    except FileNotFoundError:
        return None
    except OSError as e:
        return f"unreadable ({e.strerror or e})"
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _NODE_KINDS if test(mode)), "not a regular file")


def check_output(path: str | os.PathLike, what: str = "output") -> Path:
    """The regular file that writing `path` will replace or create (symlinks followed), or OutputError.

    Call it before any long work, so a bad path costs nothing.
    """
    if not str(path).strip():
        raise OutputError(f"the {what} path is empty")
    given = Path(path).expanduser()
    target = given.resolve()  # follows links, dangling ones included
    shown = f"{given}" + (f" (a link to {target})" if given.is_symlink() else "")
    kind = node_kind(target)
    if kind is not None:
        raise OutputError(f"cannot write the {what} to {shown}: it is {kind}, not a regular file")
    folder = target.parent
    if not folder.is_dir():
        raise OutputError(f"cannot write the {what} to {shown}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write the {what} to {shown}: folder {folder} is not writable")
    if target.exists() and not os.access(target, os.W_OK):
        raise OutputError(f"cannot write the {what} to {shown}: the file is read-only")
    return target


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, what: str = "output") -> Iterator[Path]:
    """Yield a fresh temp file beside `path`; on a clean exit rename it over `path` (see the module doc).

    OSErrors while writing or renaming become OutputError; any other exception passes through, and in
    every failure the temp file is removed and `path` is untouched.
    """
    target = check_output(path, what)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as e:
        raise OutputError(f"cannot write the {what} to {path}: {e.strerror or e}") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            yield tmp
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; outputs are ordinary files
            kind = node_kind(target)  # the path may have changed while we worked
            if kind is not None:
                raise OutputError(f"cannot write the {what} to {path}: it became {kind} while writing; "
                                  f"it was left as it is")
            os.replace(tmp, target)
        except OSError as e:
            raise OutputError(f"cannot write the {what} to {path}: {e.strerror or e}") from None
    finally:
        tmp.unlink(missing_ok=True)  # gone already after a successful rename


def exit_on_sigterm() -> None:
    """Make SIGTERM unwind like Ctrl-C (SystemExit 143), so `finally` blocks remove temp files.

    Only entry points (the CLI) call this; importing this module changes nothing.
    """
    def handler(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
