"""render.sh: bad options and prompt files are one line and exit 2; video names; two renders at once; the set-up
lock; Ctrl-C and SIGTERM clean up.

Every run here writes under tmp_path (--media-dir), never into the repository. Runs that get past the options
pass render.sh's set-up step, which only checks when everything is installed.
"""

import fcntl
import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from toy_model.video import read_frames

ROOT = Path(__file__).resolve().parents[1]
RENDER = ROOT / "render.sh"
PREVIEW = "videos/block_flow/480p15"


def clean_env(**extra) -> dict:
    """The environment without the scene's TOY_* parameters, which would change the video's name."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOY_")}
    return env | extra


def render(*args, cwd=None, env=None, stdin: bytes | None = None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(RENDER), *args], cwd=cwd or ROOT, env=env or clean_env(), input=stdin,
                          capture_output=True, timeout=timeout)


def one_error_line(r: subprocess.CompletedProcess, message: str):
    err = r.stderr.decode()
    assert r.returncode == 2, (r.returncode, err)
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and not r.stdout


def leftovers(media: Path) -> list[str]:
    """Temporary files or folders a run left in the media folder."""
    return sorted(str(p.relative_to(media)) for p in media.rglob(".*")) if media.exists() else []


# ------------------------------------------------------------------------------------------------
# options: checked before anything is set up or written


@pytest.mark.parametrize("args,message", [
    (["--colour", "red"], "unknown option '--colour' (see ./render.sh --help)"),
    (["-x"], "unknown option '-x'"),
    (["video.mp4"], "unexpected argument 'video.mp4'"),
    (["--theme", "light", "test"], "'test' must come first: ./render.sh test [pytest args]"),
    (["--quality"], "--quality needs a value: preview, 1080p60 or 4k"),
    (["--tokens"], "--tokens needs a value: a spec such as 5, 0-7, 3,5,9-12 or all"),
    (["--prompt"], "--prompt needs a value: a text"),
    (["--prompt-file"], "--prompt-file needs a value: a file name, or - for standard input"),
    (["--media-dir"], "--media-dir needs a value: a folder"),
    (["--quality", "8k"], "--quality must be preview, 1080p60 or 4k, not '8k'"),
    (["--quality=high"], "--quality must be preview, 1080p60 or 4k, not 'high'"),
    (["--quality="], "--quality is empty: give preview, 1080p60 or 4k"),
    (["--format", "avi"], "--format must be mp4, gif, mov or webm, not 'avi'"),
    (["--format"], "--format needs a value: mp4, gif, mov or webm"),
    (["--transparent", "--format", "mp4"], "--transparent: MP4 (H.264) has no alpha channel"),
    (["--format=gif", "--transparent"], "--transparent: a GIF's transparency is all or nothing"),
    (["--transparent=yes"], "--transparent takes no value"),
    (["--jobs", "0"], "--jobs must be a whole number from 1 to 9999, not '0'"),
    (["--jobs", "two"], "--jobs must be a whole number from 1 to 9999, not 'two'"),
    (["--jobs", "-3"], "--jobs must be a whole number from 1 to 9999, not '-3'"),
    (["--jobs", "99999999999999999999"], "--jobs must be a whole number from 1 to 9999"),
    (["--theme", "purple"], "--theme must be dark or light, not 'purple'"),
    (["--theme", ""], "--theme is empty: give dark or light"),
    (["--tokens", " "], "--tokens is blank: give a spec such as 5, 0-7, 3,5,9-12 or all"),
    (["--prompt", ""], "--prompt is empty: give a text"),
    (["--prompt", " \n "], "--prompt is blank: give some text"),
    (["--prompt", "hi", "--prompt-file", "p.txt"], "give --prompt or --prompt-file, not both"),
    (["--print-path=yes"], "--print-path takes no value"),
    (["--help=me"], "--help takes no value"),
    (["--what\never"], "unknown option '--what\\never'"),  # still one line
    (["--scene", "slides"], "--scene must be block_flow, emoji_chat, mamba2_ssd, generation, latent_moe, attention"
                            " or hybrid_map, not 'slides'"),
    (["--scene"], "--scene needs a value: block_flow, emoji_chat, mamba2_ssd, generation, latent_moe, attention"
                  " or hybrid_map"),
    (["--scene", "emoji_chat", "--tokens", "5"], "--tokens is for --scene block_flow (emoji_chat shows every token)"),
])
def test_bad_options_are_one_line(tmp_path, args, message):
    media = tmp_path / "media"
    r = render("--media-dir", str(media), *args)
    one_error_line(r, message)
    assert not media.exists()


def test_help():
    r = render("--help")
    assert r.returncode == 0 and b"--prompt-file" in r.stdout and not r.stderr


def test_media_dir_must_be_a_folder(tmp_path):
    (tmp_path / "file").write_text("x")
    one_error_line(render("--media-dir", str(tmp_path / "file")), f"--media-dir '{tmp_path / 'file'}' is not a folder")


def test_a_folder_where_the_video_goes_is_left_alone(tmp_path):
    media = tmp_path / "media"
    (media / PREVIEW / "BlockFlow_tokens-5.mp4").mkdir(parents=True)
    r = render("--media-dir", str(media), "--tokens", "5")
    one_error_line(r, f"{media / PREVIEW / 'BlockFlow_tokens-5.mp4'} exists and is not a regular file: move it away")
    assert (media / PREVIEW / "BlockFlow_tokens-5.mp4").is_dir() and not leftovers(media)


# ------------------------------------------------------------------------------------------------
# --prompt-file


def prompt_case(tmp_path: Path, case: str) -> tuple[list[str], bytes | None, str]:
    """(arguments, standard input, message) of one bad --prompt-file. render.sh checks the path; the text is
    read and checked by `python -m toy_model trace --prompt-file` (toy_model/options.py), as for the CLI."""
    f = tmp_path / "prompt.txt"
    contents = {
        "empty": (b"", "the prompt is empty: give some text with --prompt or --prompt-file"),
        "blank": (b"  \n\t\n", "the prompt is empty"),
        "latin-1": ("Explain caf\u00e9s\nwith emoji".encode("latin-1"),
                    "the prompt in standard input is not UTF-8 text (byte 11 is 0xe9)"),
        "too long": (b"x" * (2**20 + 1), "the prompt in standard input is over 1 MiB"),
        "beyond the context": (b"word " * 600, "exceeds the supported context of 512 tokens"),
    }
    if case in contents:
        data, message = contents[case]
        f.write_bytes(data)
        return ["--prompt-file", "prompt.txt"], None, message
    if case == "missing":
        return ["--prompt-file", "nowhere.txt"], None, "--prompt-file 'nowhere.txt': no such file"
    if case == "folder":
        return ["--prompt-file", "."], None, "--prompt-file '.': it is a folder, not a file"
    if case == "empty standard input":
        return ["--prompt-file", "-"], b"", "the prompt is empty"
    if case == "standard input not UTF-8":
        return ["--prompt-file", "-"], b"\xff\xfe", "the prompt in standard input is not UTF-8 text (byte 0 is 0xff)"
    raise AssertionError(case)


PROMPT_CASES = ["empty", "blank", "latin-1", "too long", "beyond the context", "missing", "folder",
                "empty standard input", "standard input not UTF-8"]


@pytest.mark.parametrize("case", PROMPT_CASES)
def test_bad_prompt_files_are_one_line(tmp_path, case):
    """Relative paths are the caller's (render.sh runs from the repo); nothing is left in the media folder."""
    args, stdin, message = prompt_case(tmp_path, case)
    media = tmp_path / "media"
    r = render("--media-dir", str(media), *args, cwd=tmp_path, stdin=stdin)
    one_error_line(r, message)
    assert not leftovers(media) and not list(media.rglob("*.mp4"))


# ------------------------------------------------------------------------------------------------
# the video's name: the quality folder, and every option that changes the picture


def prompt_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]


PROMPT = "Explain Mamba with emoji"


@pytest.mark.parametrize("args,env,name", [
    ([], {}, "480p15/BlockFlow.mp4"),  # the default: the path the README gives
    (["--quality", "1080p60"], {}, "1080p60/BlockFlow.mp4"),
    (["--quality", "4k"], {}, "2160p60/BlockFlow.mp4"),
    (["--format", "gif"], {}, "480p15/BlockFlow.gif"),
    (["--format", "webm"], {}, "480p15/BlockFlow.webm"),
    (["--transparent"], {}, "480p15/BlockFlow_transparent.mov"),
    (["--transparent", "--format=webm", "--theme", "light"], {}, "480p15/BlockFlow_theme-light_transparent.webm"),
    (["--jobs", "4"], {}, "480p15/BlockFlow.mp4"),  # the same frames, the same name
    (["--theme", "Light"], {}, "480p15/BlockFlow_theme-light.mp4"),
    (["--tokens", "3, 5,9-12", "--theme=dark"], {}, "480p15/BlockFlow_theme-dark_tokens-3_5_9-12.mp4"),
    ([], {"TOY_TOKENS": "all", "TOY_PACE": "0.5"}, "480p15/BlockFlow_tokens-all_pace-0.5.mp4"),
    ([], {"TOY_BEATS": "token"}, "480p15/BlockFlow.mp4"),  # the chat's alone
    (["--prompt", PROMPT], {}, f"480p15/BlockFlow_prompt-{prompt_hash(PROMPT)}.mp4"),
    (["--prompt-file", "p.txt"], {}, f"480p15/BlockFlow_prompt-{prompt_hash(PROMPT)}.mp4"),
    (["--prompt-file", "-"], {}, f"480p15/BlockFlow_prompt-{prompt_hash(PROMPT)}.mp4"),
    (["--scene", "block_flow"], {}, "480p15/BlockFlow.mp4"),
])
def test_video_names(tmp_path, args, env, name):
    (tmp_path / "p.txt").write_text(PROMPT + "\n")  # the final newline is not part of the prompt
    media = tmp_path / "media"
    r = render("--media-dir", "media", *args, "--print-path", cwd=tmp_path, env=clean_env(**env),
               stdin=PROMPT.encode() + b"\n")
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode() == f"{media}/videos/block_flow/{name}\n"
    assert not media.exists()  # --print-path writes nothing


@pytest.mark.parametrize("args,env,name", [
    ([], {}, "480p15/EmojiChat.mp4"),  # the path the README gives
    (["--quality", "1080p60", "--theme", "light"], {}, "1080p60/EmojiChat_theme-light.mp4"),
    ([], {"TOY_TOKENS": "5", "TOY_PACE": "0.3"}, "480p15/EmojiChat_pace-0.3.mp4"),  # TOY_TOKENS is block_flow's
    ([], {"TOY_BEATS": "token"}, "480p15/EmojiChat_beats-token.mp4"),
    (["--prompt", PROMPT], {}, f"480p15/EmojiChat_prompt-{prompt_hash(PROMPT)}.mp4"),
])
def test_emoji_chat_video_names(tmp_path, args, env, name):
    media = tmp_path / "media"
    r = render("--scene", "emoji_chat", "--media-dir", "media", *args, "--print-path", cwd=tmp_path,
               env=clean_env(**env))
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode() == f"{media}/videos/emoji_chat/{name}\n"
    assert not media.exists()


def test_the_default_media_folder_is_the_repos():
    r = render("--print-path", cwd="/")
    assert r.stdout.decode() == f"{ROOT}/media/videos/block_flow/480p15/BlockFlow.mp4\n", r.stderr.decode()


def test_traces_from_the_environment_are_named_and_taken_from_the_callers_folder(tmp_path):
    r = render("--print-path", cwd=tmp_path, env=clean_env(TOY_TRACE="my.npz"))
    digest = hashlib.sha256(str(tmp_path / "my.npz").encode()).hexdigest()[:8]
    assert r.stdout.decode().endswith(f"/BlockFlow_trace-my-{digest}.mp4\n"), r.stderr.decode()


# ------------------------------------------------------------------------------------------------
# runs that reach the scene


@pytest.mark.parametrize("args,env,message", [
    (["--tokens", "999"], {}, "TOY_TOKENS='999': token 999 is outside the trace"),
    (["--tokens", "5-x"], {}, "TOY_TOKENS='5-x': '5-x' is not a token number"),
    (["--tokens", "5"], {"TOY_PACE": "0.1"}, "TOY_PACE='0.1': at 15 fps the pace must be at least 0.23 s per block"),
])
def test_the_scene_refuses_bad_values_in_one_line(tmp_path, args, env, message):
    media = tmp_path / "media"
    r = render("--media-dir", str(media), *args, env=clean_env(**env))
    one_error_line(r, message)
    assert not leftovers(media) and not list(media.rglob("*.mp4"))


@pytest.mark.slow
def test_two_renders_at_once(tmp_path):
    """Two renders into one media folder at the same time, with different themes (the second with a prompt from
    standard input): each prints its own video, whole and in its own theme in every frame; nothing is left."""
    media = tmp_path / "media"
    (tmp_path / "prompt.txt").write_text(PROMPT)
    common = ["bash", str(RENDER), "--media-dir", str(media), "--quality", "preview", "--tokens", "5"]
    with open(tmp_path / "prompt.txt", "rb") as stdin:
        dark = subprocess.Popen([*common, "--theme", "dark"], cwd=ROOT, env=clean_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        light = subprocess.Popen([*common, "--theme", "light", "--prompt-file", "-"], cwd=ROOT, env=clean_env(),
                                 stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        most_at_once, deadline = 0, time.monotonic() + 300  # Manim processes rendering at the same moment
        while (dark.poll() is None or light.poll() is None) and time.monotonic() < deadline:
            most_at_once = max(most_at_once, sum(manim_child(p.pid) is not None for p in (dark, light)))
            time.sleep(0.2)
        outputs = [dark.communicate(timeout=300), light.communicate(timeout=300)]
    for p, (_, err) in zip((dark, light), outputs, strict=True):
        assert p.returncode == 0, err.decode()[-3000:]
    paths = [Path(out.decode().strip()) for out, _ in outputs]
    assert paths == [media / PREVIEW / "BlockFlow_theme-dark_tokens-5.mp4",
                     media / PREVIEW / f"BlockFlow_theme-light_tokens-5_prompt-{prompt_hash(PROMPT)}.mp4"]
    assert all(p.is_file() for p in paths) and not paths[0].samefile(paths[1])
    backgrounds = []
    for path in paths:
        frames = read_frames(path)
        assert frames[0].shape == (480, 854, 3)
        assert 200 <= len(frames) <= 600, len(frames)  # title, one token at 1 s per block, its prediction; 15 fps
        backgrounds.append([float(f[:8, :8].mean()) for f in frames])  # the top-left corner: background
    assert max(backgrounds[0]) < 60 and min(backgrounds[1]) > 200  # dark, light, in every frame: nothing mixed
    assert not leftovers(media)
    assert sorted(p.name for p in media.iterdir()) == ["videos"]
    assert most_at_once == 2  # the two renders did overlap


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def manim_child(pid: int) -> int | None:
    for c in children(pid):
        try:
            if b"manim" in Path(f"/proc/{c}/cmdline").read_bytes():
                return c
        except OSError:
            pass
    return None


def running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_render_and_cleans_up(tmp_path, sig):
    media = tmp_path / "media"
    p = subprocess.Popen(["bash", str(RENDER), "--media-dir", str(media), "--tokens", "5"], cwd=ROOT, env=clean_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline, manim = time.monotonic() + 120, None
        while manim is None and time.monotonic() < deadline and p.poll() is None:
            manim = manim_child(p.pid)
            time.sleep(0.1)
        assert manim is not None, "the render never started"
        time.sleep(2)  # into the render: Manim has imported the scene and is drawing
        assert leftovers(media), "no run folder while rendering"
        p.send_signal(sig)
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == -sig  # it ends by the signal, as a shell script should
    assert not running(manim)
    assert not leftovers(media) and not list(media.rglob("*.mp4"))


def test_set_up_waits_for_another_render_sh(tmp_path):
    """While one render.sh sets up (holds the lock on render.sh), another waits instead of running apt or pip
    beside it, then goes on."""
    with open(RENDER) as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        p = subprocess.Popen(["bash", str(RENDER), "test", "--version"], cwd=ROOT, env=clean_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            time.sleep(1.5)
            assert p.poll() is None, p.communicate()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0 and b"waiting for another render.sh to finish setting up" in err, err
    assert b"pytest" in out + err


# ------------------------------------------------------------------------------------------------
# what a speaker asks for: subtitles, 4K names, GIF, transparent MOV and WebM, a render in parts


def srt_entries(path: Path) -> list:
    import srt

    return list(srt.parse(path.read_text(encoding="utf-8")))


@pytest.mark.slow
def test_formats_a_speaker_asks_for(tmp_path):
    """hybrid_map (the shortest scene) as MP4 with its .srt beside it, as a GIF (small, looping, every row of the
    finished map in its last frame), as MOV and WebM with a transparent background (alpha 0 around the text,
    255 on it), and rendered in two parts at once: the same frames and subtitles as the MP4."""
    from PIL import Image

    media, shown = tmp_path / "media", tmp_path / "media" / "videos" / "hybrid_map" / "480p15"
    runs = {"mp4": [], "gif": ["--format", "gif"], "mov": ["--transparent"], "webm": ["--transparent", "--format",
            "webm"], "parts": ["--jobs", "2", "--media-dir", str(tmp_path / "parts")]}
    out = {}
    for key, args in runs.items():
        (shown / "HybridMap_transparent.srt").unlink(missing_ok=True)  # MOV and WebM share it: each writes it
        r = render("--scene", "hybrid_map", "--media-dir", str(media), *args, timeout=600)
        assert r.returncode == 0, r.stderr.decode()[-2000:]
        out[key] = Path(r.stdout.decode().strip())
        assert out[key].is_file()
        assert (shown / "HybridMap_transparent.srt").is_file() == (key in ("mov", "webm"))
    assert out["mp4"] == shown / "HybridMap.mp4" and out["gif"] == shown / "HybridMap.gif"
    assert out["mov"] == shown / "HybridMap_transparent.mov" and out["webm"] == shown / "HybridMap_transparent.webm"

    plain = read_frames(out["mp4"])
    subtitles = srt_entries(out["mp4"].with_suffix(".srt"))
    assert [s.content for s in subtitles][0] == "Layer patterns: the toy model and NVIDIA's hybrids"
    assert any(s.content.startswith("Nemotron 3 Super 120B-A12B: ") for s in subtitles)
    assert all(a.end <= b.start for a, b in zip(subtitles, subtitles[1:], strict=False))  # one at a time
    assert subtitles[-1].end.total_seconds() <= len(plain) / 15 + 1e-6

    gif = Image.open(out["gif"])
    assert gif.n_frames == pytest.approx(len(plain) * 10 / 15, abs=2) and gif.info["duration"] == 100
    assert gif.info.get("loop") == 0 and out["gif"].stat().st_size < 1_000_000
    gif.seek(gif.n_frames - 1)
    last = np.asarray(gif.convert("RGB")).astype(int)
    assert last.shape == plain[-1].shape and np.abs(last - plain[-1]).mean() < 4  # the same picture, 256 colours

    for key in ("mov", "webm"):
        frames = read_frames(out[key], "rgba")
        assert len(frames) == len(plain)
        alpha = frames[-1][..., 3]
        assert alpha[:8, :8].max() == 0 and (alpha == 0).mean() > 0.5  # no background painted
        assert (alpha == 255).mean() > 0.03  # the text and strips are opaque
        assert frames[0][..., 3].max() == 0  # the curtain that opens the scene erases, not covers

    parts = read_frames(out["parts"])
    assert len(parts) == len(plain) and all(np.array_equal(a, b) for a, b in zip(parts, plain, strict=True))
    assert srt_entries(out["parts"].with_suffix(".srt")) == subtitles
    assert not leftovers(media) and not leftovers(tmp_path / "parts")
