"""Video files after Manim: a GIF from a lossless render, parts of a split render joined into one video with
one subtitle file, frames read back.

    python -m toy_model.video gif SRC.mov OUT.gif            # SRC: a lossless render (render.sh --format gif)
    python -m toy_model.video join OUT.mp4 PART.mp4 ...      # parts in order; their .srt files merged too

A GIF has 256 colours: the palette is computed from the whole video first (FFmpeg's palettegen, through PyAV),
then every frame is mapped to it without dithering. The scenes are flat colours and anti-aliased edges, so this
keeps them crisp, and frames that barely change stay small (the GIF encoder stores only what changed). That only
works from a lossless source: H.264's noise changes every pixel a little in every frame, and a GIF of an MP4 is
thirty times larger (12 s of hybrid_map at 480p: 7.1 MB from the MP4, 0.23 MB from a lossless render). GIF
frame times are whole hundredths of a second, so the GIF runs at 10 or 20 frames per second (20 from sources
of at least 20 fps), at most GIF_WIDTH pixels wide.

Joining: parts rendered with Manim's `-n START,END` (toy_model.split) are segments of one encoding with the
same settings, so their packets are copied into one file, not encoded again: the joined video has exactly the
frames of a render of the whole. Each part's .srt holds the subtitles said up to its end, timed on the whole
video's clock (toy_model.viz.scene.KitRenderer), so the joined .srt is their union.
"""

from __future__ import annotations

import sys
import tempfile
from fractions import Fraction
from pathlib import Path

from toy_model.files import OutputError, atomic_output, check_output

GIF_WIDTH = 960  # pixels, at most


class VideoError(Exception):
    """A video that cannot be read or joined, said in one line."""


def _open(path: Path, **kwargs):
    import av

    try:
        return av.open(str(path), **kwargs)
    except (av.error.FFmpegError, OSError) as e:
        raise VideoError(f"{path}: not a video that can be read ({e})") from None


def gif_rate(fps: float) -> int:
    """The GIF's frame rate for a source of `fps`: one whose frame time is a whole number of hundredths."""
    return 20 if fps >= 20 else 10


def to_gif(src: Path, out: Path, max_width: int = GIF_WIDTH) -> Path:
    """Write `src` as a looping GIF at `out` (a temp file renamed into place): one palette for the whole video,
    no dithering, at gif_rate(src's rate), at most max_width wide."""
    import av
    import av.filter

    src, out = Path(src), Path(out)
    check_output(out, "GIF")  # before the work
    with _open(src) as c:
        stream = c.streams.video[0]
        rate = gif_rate(float(stream.base_rate or stream.average_rate or 15))

    def graph(stream):
        """buffer -> fps -> scale: (graph, its buffer, the scale filter to link on from)."""
        g = av.filter.Graph()
        buf = g.add_buffer(template=stream)
        step = g.add("fps", f"fps={rate}")
        scale = g.add("scale", f"w='min({max_width},iw)':h=-2:flags=lanczos")
        buf.link_to(step)
        step.link_to(scale)
        return g, buf, scale

    # 1. the palette: statistics over every frame
    with _open(src) as c:
        s = c.streams.video[0]
        g, buf, scale = graph(s)
        gen = g.add("palettegen", "stats_mode=full")
        sink = g.add("buffersink")
        scale.link_to(gen)
        gen.link_to(sink)
        g.configure()
        for frame in c.decode(s):
            buf.push(frame)
        buf.push(None)
        palette = g.pull()

    # 2. every frame mapped to it, streamed into the encoder
    with atomic_output(out, "GIF") as tmp, _open(src) as c, av.open(str(tmp), "w", format="gif") as dst:
        s = c.streams.video[0]
        g, buf, scale = graph(s)
        pal = g.add_buffer(width=palette.width, height=palette.height, format=palette.format.name,
                           time_base=Fraction(1, 1))
        use = g.add("paletteuse", "dither=none:diff_mode=rectangle")
        sink = g.add("buffersink")
        scale.link_to(use, 0, 0)
        pal.link_to(use, 0, 1)
        use.link_to(sink)
        g.configure()
        pal.push(palette)
        pal.push(None)
        enc, n = None, 0

        def drain():
            nonlocal enc, n
            while True:
                try:
                    f = g.pull()
                except (av.error.BlockingIOError, av.error.EOFError):
                    return
                if enc is None:
                    enc = dst.add_stream("gif", rate=rate)
                    enc.width, enc.height, enc.pix_fmt = f.width, f.height, "pal8"
                f.pts, f.time_base = n, Fraction(1, rate)
                n += 1
                for packet in enc.encode(f):
                    dst.mux(packet)

        for frame in c.decode(s):
            buf.push(frame)
            drain()
        buf.push(None)
        drain()
        if enc is None:
            raise VideoError(f"{src}: no frames")
        for packet in enc.encode():
            dst.mux(packet)
    return out


def _stream_key(path: Path) -> tuple:
    with _open(path) as c:
        if not c.streams.video:
            raise VideoError(f"{path}: has no video stream")
        s = c.streams.video[0]
        return (s.codec_context.name, s.codec_context.width, s.codec_context.height, s.base_rate,
                s.codec_context.pix_fmt)


def join(parts: list[Path], out: Path) -> Path:
    """Join video parts (same codec, size, rate and pixel format) into `out` by copying their packets, and their
    .srt files (where there are any) into out's .srt; both through temp files renamed into place."""
    import av

    parts = [Path(p) for p in parts]
    if not parts:
        raise VideoError("no parts to join")
    keys = [_stream_key(p) for p in parts]
    for p, k in zip(parts, keys, strict=True):
        if k != keys[0]:
            raise VideoError(f"{p}: its video ({k[0]}, {k[1]}x{k[2]}, {k[3]} fps, {k[4]}) differs from "
                             f"{parts[0]}'s ({keys[0][0]}, {keys[0][1]}x{keys[0][2]}, {keys[0][3]} fps, {keys[0][4]})")
    container = {".mp4": "mp4", ".mov": "mov", ".webm": "webm"}.get(Path(out).suffix.lower())
    if container is None:
        raise VideoError(f"{out}: the joined video must end in .mp4, .mov or .webm")
    with tempfile.TemporaryDirectory() as tmpdir:
        manifest = Path(tmpdir) / "parts.txt"
        quoted = lambda p: "'" + str(p.resolve()).replace("'", "'\\''") + "'"  # the concat demuxer's quoting
        manifest.write_text("".join(f"file {quoted(p)}\n" for p in parts), encoding="utf-8")
        with _open(parts[0]) as first:
            alpha = first.streams.video[0].metadata.get("alpha_mode") == "1"  # a transparent WebM (VP9)
        with atomic_output(out, "joined video") as tmp:
            try:
                with _open(manifest, format="concat", options={"safe": "0"}) as src, \
                        av.open(str(tmp), "w", format=container) as dst:
                    s = src.streams.video[0]
                    o = dst.add_stream_from_template(template=s)
                    if alpha:
                        o.pix_fmt = "yuva420p"  # so the muxer marks the alpha again (ALPHA_MODE), as Manim does
                    for packet in src.demux(s):
                        if packet.dts is None:  # the demuxer's flush packets
                            continue
                        packet.dts = None  # the parts' timestamps restart: let the muxer count on
                        packet.stream = o
                        dst.mux(packet)
            except (ValueError, av.error.FFmpegError) as e:
                raise VideoError(f"{out}: the parts' {keys[0][0]} video cannot go into a {container} file ({e})") \
                    from None
    subtitles = [p.with_suffix(".srt") for p in parts if p.with_suffix(".srt").is_file()]
    if subtitles:
        write_subtitles(merge_subtitles(subtitles), Path(out).with_suffix(".srt"))
    return Path(out)


def merge_subtitles(files: list[Path]) -> list:
    """The subtitles of several parts of one video, each once: a subtitle still showing when one part ends is
    in the next part too, with its real end; the latest end is kept."""
    import srt

    best: dict[tuple, srt.Subtitle] = {}
    for f in files:
        try:
            items = list(srt.parse(f.read_text(encoding="utf-8")))
        except (srt.SRTParseError, UnicodeDecodeError, ValueError) as e:
            raise VideoError(f"{f}: not a subtitle file that can be read ({e})") from None
        for sub in items:
            key = (sub.start, sub.content)
            if key not in best or sub.end > best[key].end:
                best[key] = sub
    return sorted(best.values(), key=lambda s: (s.start, s.end))


def write_subtitles(subtitles: list, out: Path) -> None:
    import srt

    with atomic_output(out, "subtitles") as tmp:
        tmp.write_text(srt.compose(subtitles, reindex=True), encoding="utf-8")


def read_frames(path: Path, fmt: str = "rgb24") -> list:
    """Every frame of a video as a numpy array (rgb24, or rgba to see the alpha of a transparent render: VP9's
    alpha needs libvpx's decoder, which FFmpeg's own vp9 decoder lacks)."""
    import av

    with _open(path) as c:
        s = c.streams.video[0]
        if s.codec_context.name == "vp9" and fmt == "rgba":
            dec = av.CodecContext.create("libvpx-vp9", "r")  # the demuxer's last, empty packet flushes it
            return [f.to_ndarray(format=fmt) for p in c.demux(s) for f in dec.decode(p)]
        return [f.to_ndarray(format=fmt) for f in c.decode(s)]


def main(argv=None) -> int:
    from toy_model.options import OneLineParser

    ap = OneLineParser(prog="python -m toy_model.video", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    g = sub.add_parser("gif", help="a GIF from a lossless render")
    g.add_argument("src")
    g.add_argument("out")
    g.add_argument("--width", type=int, default=GIF_WIDTH, help="at most this many pixels wide")
    j = sub.add_parser("join", help="video parts joined, their subtitles merged")
    j.add_argument("out")
    j.add_argument("parts", nargs="+")
    args = ap.parse_args(argv)
    try:
        if args.command == "gif":
            if args.width < 16:
                raise VideoError(f"--width must be at least 16 pixels, not {args.width}")
            print(to_gif(Path(args.src), Path(args.out), args.width))
        else:
            print(join([Path(p) for p in args.parts], Path(args.out)))
    except (VideoError, OutputError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
