"""The README's gallery: one still per scene, at a telling moment, rendered the way a user renders it.

    python -m toy_model.gallery [DIR]        # ./render.sh stills; DIR defaults to docs/images

Each scene is rendered with Manim's command line (720p30, its default trace and parameters, into a temporary
media folder), and one frame of the video, chosen as a fraction of its length, is saved as DIR/<scene>.png
(written atomically); of the frames near it, the one with the most drawn, so no still catches a fade.
Regenerate the stills whenever a scene changes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# scene file, class, where in the video (a fraction of its length) the still is taken: the frame with the most drawn
# within WINDOW of it, so that no still catches text fading in or out
SHOTS = (
    ("block_flow", "BlockFlow", 0.42),
    ("emoji_chat", "EmojiChat", 0.55),
    ("mamba2_ssd", "Mamba2SSD", 0.47),
    ("generation", "Generation", 0.55),
    ("latent_moe", "LatentMoE", 0.48),
    ("attention", "Attention", 0.30),
    ("hybrid_map", "HybridMap", 0.97),
)
WINDOW = 0.03


def still(scene: str, cls: str, at: float, out: Path, theme: str = "dark") -> Path:
    """Render scenes/<scene>.py at 720p30 and save as `out` the frame with the most drawn near fraction `at`."""
    import os

    import av

    from toy_model.files import atomic_output

    with tempfile.TemporaryDirectory(prefix="toy-gallery-") as media:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOY_")} | {"TOY_THEME": theme}
        subprocess.run([sys.executable, "-m", "manim", "render", "-qm", "--disable_caching", "-v", "WARNING",
                        "--progress_bar", "none", "--media_dir", media, str(REPO / "scenes" / f"{scene}.py"), cls],
                       check=True, env=env, cwd=REPO, stdout=subprocess.DEVNULL)
        video = Path(media) / "videos" / scene / "720p30" / f"{cls}.mp4"
        with av.open(str(video)) as container:
            frames = container.streams.video[0].frames
            lo, hi = (int(f * max(frames - 1, 0)) for f in (at - WINDOW, at + WINDOW))
            best, best_ink = None, -1
            for i, frame in enumerate(container.decode(video=0)):
                if i > hi:
                    break
                if i >= lo:
                    image = frame.to_ndarray(format="rgb24")
                    ink = int(ink_of(image))
                    if ink > best_ink:  # the first frame with the most drawn: nothing caught mid-fade
                        best, best_ink = frame.to_image(), ink
        with atomic_output(out, "still") as tmp:
            best.save(tmp, format="PNG")
    return out


def ink_of(image) -> int:
    """How many pixels differ clearly from the frame's background (its top-left pixel)."""
    import numpy as np

    return int((np.abs(image.astype(np.int16) - image[0, 0].astype(np.int16)).max(axis=2) > 40).sum())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m toy_model.gallery", description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default=str(REPO / "docs" / "images"), help="folder for the PNGs")
    parser.add_argument("--scenes", nargs="*", help="only these scenes")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if not out.is_dir():
        print(f"error: {out} is not a folder", file=sys.stderr)
        return 2
    for scene, cls, at in SHOTS:
        if args.scenes and scene not in args.scenes:
            continue
        print(still(scene, cls, at, out / f"{scene}.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
