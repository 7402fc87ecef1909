"""Subtitles: what a scene says on screen, written as an .srt file beside its video.

    say(self, "prefill: 12 prompt tokens at once")   # shown from now until the next say()
    say(self, None)                                    # nothing from now on (KitScene does this at the end)
    wait_saying(self, (3.0, "first words"), (2.0, "then these"))   # one hold, its subtitle changing part-way

A scene calls say() where it puts up the words that carry its story: a title, a caption, the guide line, a
prediction. Each subtitle lasts until the next say(), so it is shown exactly while its words are on screen, and
Manim's subcaptions (Scene.add_subcaption) write them into `<video>.srt` when the video is finished. Saying
the same words again keeps the subtitle going. Times are the video's own: in a split render
(toy_model.split) every part carries the times of the whole (KitRenderer counts skipped plays in frames).
"""

from __future__ import annotations


def say(scene, text: str | None) -> None:
    """From now on the scene's subtitle is `text` (its whitespace folded into single spaces); None or blank
    ends the one shown."""
    words = " ".join(text.split()) if text else ""
    now = float(scene.time)
    shown = getattr(scene, "_subtitle", None)
    if shown is not None:
        start, previous = shown
        if previous == words:
            return
        if now > start:
            scene.add_subcaption(previous, duration=now - start, offset=start - now)
    scene._subtitle = (now, words) if words else None


def wait_saying(scene, *parts: tuple[float, str]) -> None:
    """Wait the parts' seconds in all, saying each part's words for its seconds: as separate waits only where they
    make as many frames as one wait would (so the video is frame for frame the same), else as one wait saying
    them all."""
    from toy_model.viz.scene import frames_of

    fps, total = scene.camera.frame_rate, sum(seconds for seconds, _ in parts)
    if sum(frames_of(seconds, fps, True) for seconds, _ in parts) == frames_of(total, fps, True):
        for seconds, words in parts:
            say(scene, words)
            scene.wait(seconds)
    else:
        say(scene, " ".join(words for _, words in parts))
        scene.wait(total)
