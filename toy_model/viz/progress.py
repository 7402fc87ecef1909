"""Render progress: what a scene has played so far, for a person or for another process.

    Progress.to("progress.jsonl")   # one JSON object per line, appended and flushed as it happens
    Progress.to("-")                # a short line on standard error at each beat and at the end

Events (times are seconds of video, counted as KitRenderer counts them):
    {"event": "play", "plays": 12, "time": 8.4}                       after every play
    {"event": "beat", "beat": 2, "play": 12, "time": 8.4, "notes": ...}  a natural pause begins
                                                                       (toy_model.viz.slides.beat)
    {"event": "end", "plays": 172, "time": 106.1}                     the scene has ended
A scene file sets KitScene.progress when Manim renders it and TOY_PROGRESS names where to
(toy_model.viz.params.start_render). toy_model.talk reads the lines to show each scene's progress in a talk
build; toy_model.split reads the beats of a render that skips every animation to cut a scene into parts.
"""

from __future__ import annotations

import json
import sys
import time


class Progress:
    def __init__(self, stream, human: bool):
        self.stream, self.human = stream, human
        self.beats = 0
        self.started = time.monotonic()

    @classmethod
    def to(cls, where: str) -> Progress:
        """Progress written to the file `where` (appended), or to standard error for a person when it is '-'.
        OSError if the file cannot be opened."""
        if where == "-":
            return cls(sys.stderr, human=True)
        return cls(open(where, "a", encoding="utf-8", buffering=1), human=False)  # noqa: SIM115 (the render's)

    def _write(self, event: str, scene, **fields) -> None:
        record = {"event": event, "plays": int(scene.renderer.num_plays), "time": round(float(scene.time), 4),
                  **fields}
        if self.human:
            if event == "play":
                return
            m, s = divmod(record["time"], 60)
            what = f"beat {record['beat'] + 1}" if event == "beat" else "done"
            print(f"[{type(scene).__name__}] {what}: {record['plays']} animations, {int(m)}:{s:04.1f} of video, "
                  f"{time.monotonic() - self.started:.0f} s", file=self.stream, flush=True)
            return
        self.stream.write(json.dumps(record, ensure_ascii=False) + "\n")

    def played(self, scene) -> None:
        self._write("play", scene)

    def beat(self, scene, notes: str) -> None:
        self._write("beat", scene, beat=self.beats, play=int(scene.renderer.num_plays), notes=notes)
        self.beats += 1

    def ended(self, scene) -> None:
        self._write("end", scene)


def read_events(path) -> list[dict]:
    """The events written so far to `path` (a line still being written is left out)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
    except FileNotFoundError:
        return []
    out = []
    for line in lines[:-1]:  # the text after the last line end may be incomplete
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out
