"""KitScene, the base of every scene, and FastScene: the same frames as Manim's Scene with less work.

KitScene (subclass it, or FastScene, instead of Scene) adds what talks and long renders need, and draws
exactly what Scene draws:
- Subtitles: what a scene says on screen through toy_model.viz.subtitles.say becomes an .srt beside the
  video; the last one is closed when the scene ends (tear_down).
- Progress: after every play the scene reports what it has played to KitScene.progress (a
  toy_model.viz.progress.Progress, set by a scene file when Manim renders it; None otherwise).
- Time that counts frames. Manim advances its clock by an animation's run time when it skips the animation
  (`-n START,END`, or a cached one), but by the frames it writes when it renders it (ceil(run time x fps)
  for a play, floor for a wait), so after skipped plays every subtitle would drift by fractions of a frame
  per play. KitRenderer advances the clock for a skipped play by the frames it would have written, so the
  parts of a split render carry the same times as the whole (toy_model.split).
- Curtains that fade to transparent. A Curtain (a rectangle of the background colour, the whole frame unless
  sized) covers or uncovers the picture; in a transparent render (-t) KitCamera draws it as an eraser, so the
  picture fades or wipes to transparent instead of to an opaque box of the background colour.

FastScene, for scenes of many short plays:

    class MyScene(FastScene):           # instead of Scene
        def construct(self):
            self.set_drawing_order(backdrop, captions, details, marker)   # what changes often, last
            self.play(...)

Manim's Cairo renderer draws each play() in two layers (manim/scene/scene.py, manim/renderer/
cairo_renderer.py): once, the static mobjects into a background image; then every frame, that image plus
every mobject from the first moving one to the end of the drawing order (the scene's mobject list). A scene
of many short plays over a rich diagram that hardly changes (block_flow: 172 plays of a few frames each,
about 500 static pieces, most of them glyphs) pays for more than it shows:

1. What counts as moving. Manim starts the per-frame redraw at the first top-level group that holds
   anything animated: animating one bar of a chart redraws the chart's title, glyph by glyph, every frame.
   FastScene starts it at the first piece that itself changes (animated, with an updater, or in the
   foreground). The drawing order is unchanged, so every frame is the same.
2. The static image. Manim draws it from nothing at every play(), though from one play to the next only a
   few pieces change (a highlight moves on, a bar has grown). StaticImageRenderer remembers how each static
   piece looked (points, colours, widths: `_look`) and keeps images of the frame part-way through drawing
   them; it draws only from the first piece that changed, onto the image kept before it. Cairo draws the
   same pieces onto the same pixels, so the image is the same.
3. Video segments. Manim encodes each play()'s segment on a thread but by default waits for it to finish
   before the next play() starts (max_inflight_encoders = 1): with plays a few frames long, drawing and
   encoding take turns instead of running side by side. StaticImageRenderer lets ENCODERS_IN_FLIGHT
   segments encode while drawing goes on.
4. An AnimationGroup (Succession too) plays on a Group of its parts, which Manim adds to the scene and never
   removes; as Manim draws a mobject where it comes last in the list, the parts jump above everything for
   good. FastScene adds no such Group, so the drawing order stays the one the scene set.

The scene does its part by its drawing order: what changes often last, and what a play animates after
everything it does not overlap (scenes/block_flow.py, draw_in_order). bench/bench_scenes.py measures scenes
against a floor. Built on Manim 0.22's renderer (pinned in pyproject.toml); with the OpenGL renderer, or a
renderer passed in, points 2 and 3 do not apply.
"""

from __future__ import annotations

import dataclasses

import cairo
import numpy as np
from manim import AnimationGroup, Camera, Mobject, Rectangle, Scene, VMobject, config
from manim.constants import RendererType
from manim.renderer.cairo_renderer import CairoRenderer
from manim.utils.family import extract_mobject_family_members

# Segments encoding while the next plays draw. Each holds an encoder and up to 8 frames (about 25 MB at
# 480p15, five times that at 1080p60); 2 overlaps drawing with encoding (one spare core on the 2-core
# machine this was measured on) for about 45 MB more at 480p, 4 (Manim's suggestion) for 155 MB more.
ENCODERS_IN_FLIGHT = 2
IMAGE_EVERY = 32  # static pieces drawn, at least, between two kept images (each holds a whole frame)


def _look(m: Mobject):
    """Everything the Cairo camera reads to draw m (manim/camera/camera.py, display_vectorized): equal looks
    draw equal pixels. Other kinds (images, point clouds) get a token equal to nothing, so they are always
    drawn afresh."""
    if not isinstance(m, VMobject):
        return object()
    fill, stroke, back = m.get_fill_rgbas(), m.get_stroke_rgbas(), m.get_stroke_rgbas(background=True)
    look = (type(m), m.points.tobytes(), fill.tobytes(), stroke.tobytes(), back.tobytes(), m.stroke_width,
            m.background_stroke_width, m.joint_type, m.cap_style, m.get_background_image(),
            m.n_points_per_cubic_curve, m.tolerance_for_point_equality)
    if max(len(fill), len(stroke), len(back)) > 1:  # a gradient, across the family's bounding box
        look += (m.get_all_points().tobytes(), np.asarray(m.sheen_direction).tobytes(), m.shade_in_3d)
    return look


class Curtain(Rectangle):
    """A rectangle of the background colour (over the whole frame unless sized): fade it in to clear the picture,
    out to reveal it, or slide it off what it hides. Opaque renders draw it as it is; transparent ones
    (KitCamera) erase with it."""

    def __init__(self, color, width: float | None = None, height: float | None = None, **kwargs):
        super().__init__(width=config.frame_width + 1 if width is None else width,
                         height=config.frame_height + 1 if height is None else height, stroke_width=0,
                         fill_color=color, fill_opacity=1, **kwargs)


class KitCamera(Camera):
    """Manim's Cairo camera; in a transparent render (background opacity below 1) a Curtain takes away the alpha
    of what lies under it as much as it would cover it in an opaque render (Cairo's DEST_OUT operator)."""

    def display_vectorized(self, vmobject: VMobject, ctx: cairo.Context):
        if isinstance(vmobject, Curtain) and self.background_opacity < 1:
            ctx.save()
            ctx.set_operator(cairo.OPERATOR_DEST_OUT)
            super().display_vectorized(vmobject, ctx)
            ctx.restore()
            return self
        return super().display_vectorized(vmobject, ctx)


def frames_of(duration: float, frame_rate: float, frozen: bool) -> int:
    """How many frames Manim 0.22 writes for a play of `duration` seconds: one per frame time in [0, duration)
    (Scene.get_time_progression), or for a frozen wait floor(duration x fps) (freeze_current_frame)."""
    if frozen:
        return int(duration / (1 / frame_rate))
    return len(np.arange(0, duration, 1 / frame_rate))


class KitRenderer(CairoRenderer):
    """The Cairo renderer, with a skipped play's time counted in the frames it would have written, nothing drawn
    for it (Manim draws a skipped play's still image and last frame, then writes neither), and every play
    reported to the scene's progress (see the module docstring)."""

    _in_play = False

    def play(self, scene, *args, **kwargs) -> None:
        before = self.time
        self._in_play = True
        try:
            super().play(scene, *args, **kwargs)
        finally:
            self._in_play = False
        if self.skip_animations and not self.file_writer.output_spec.is_still:  # skipped: counted as written
            dt = 1 / self.camera.frame_rate
            self.time = before + frames_of(scene.duration, self.camera.frame_rate,
                                           scene.is_current_animation_frozen_frame()) * dt
        progress = getattr(scene, "progress", None)
        if progress is not None:
            progress.played(scene)

    def _skipping(self) -> bool:
        """Inside a play that writes no frame (a still image's last frame is drawn after the plays)."""
        return self._in_play and self.skip_animations

    def save_static_frame_data(self, scene, static_mobjects):
        if self._skipping():
            self.static_image = None
            return None
        return self.draw_static_image(scene, static_mobjects)

    def draw_static_image(self, scene, static_mobjects):
        """The still image of a play: what does not move, drawn once (Manim's save_static_frame_data)."""
        return super().save_static_frame_data(scene, static_mobjects)

    def update_frame(self, scene, *args, **kwargs) -> None:
        if not self._skipping():
            super().update_frame(scene, *args, **kwargs)


class StaticImageRenderer(KitRenderer):
    """The Cairo renderer, with the static image of a play drawn only from the first piece that changed since
    the play before (point 2 of the module docstring) and segments encoded while drawing goes on (point 3)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._looks: list = []  # the static pieces last drawn, as _look, in drawing order
        self._images: dict[int, np.ndarray] = {}  # n -> the frame with the first n of them drawn
        self._background = None  # the camera background the images were drawn on

    def init_scene(self, scene, session_spec, file_writer_settings) -> None:
        if file_writer_settings.max_inflight_encoders < ENCODERS_IN_FLIGHT:
            file_writer_settings = dataclasses.replace(file_writer_settings,
                                                       max_inflight_encoders=ENCODERS_IN_FLIGHT)
        super().init_scene(scene, session_spec, file_writer_settings)

    def draw_static_image(self, scene, static_mobjects):
        if type(self.camera) not in (Camera, KitCamera):  # a camera that moves or turns would make every kept
            # image stale
            return super().draw_static_image(scene, static_mobjects)
        self.static_image = None
        static = list(static_mobjects)  # flattened, in drawing order, only pieces with points
        if not static:
            return None
        looks = [_look(m) for m in static]
        if self.camera.background is not self._background:  # a new background colour: start afresh
            self._images, self._background = {}, self.camera.background
        same = next((i for i, (a, b) in enumerate(zip(looks, self._looks, strict=False)) if a != b),
                    min(len(looks), len(self._looks)))  # the pieces drawn as before (the lists may differ in length)
        images = {n: image for n, image in self._images.items() if n <= same}
        start = max(images, default=0)
        if start:
            self.camera.set_frame_to_background(images[start])
        else:
            self.camera.reset()
        # Draw the rest in runs, keeping the frame at the end of a top-level mobject once IMAGE_EVERY pieces
        # have been drawn since the last image: where the next play's first change most likely falls.
        owner = {}
        for k, top in enumerate([*scene.mobjects, *scene.foreground_mobjects]):
            for m in top.get_family():
                owner[id(m)] = k
        run = start
        for i in range(start, len(static)):
            last = i + 1 == len(static)
            if last or (i + 1 - run >= IMAGE_EVERY and owner.get(id(static[i])) != owner.get(id(static[i + 1]))):
                # the pieces are already flattened and in order: drawn as given, no family expanded again
                self.camera.capture_mobjects(static[run: i + 1], include_submobjects=False)
                images[i + 1] = self.camera.pixel_array.copy()
                run = i + 1
        self._looks, self._images = looks, images
        self.static_image = images[len(static)]  # only ever copied from, like Manim's own static image
        return self.static_image


class KitScene(Scene):
    """A Scene with subtitles, progress, frame-counted time and curtains (see the module docstring): the base of
    every scene of the kit. With the OpenGL renderer, or a renderer given, only the subtitles apply."""

    renderer_class = KitRenderer
    progress = None  # a toy_model.viz.progress.Progress: set by a scene file that Manim renders

    def __init__(self, renderer=None, camera_class=KitCamera, **kwargs):
        if renderer is None and config.renderer == RendererType.CAIRO:
            renderer = self.renderer_class(camera_class=camera_class,
                                           skip_animations=kwargs.get("skip_animations", False))
        super().__init__(renderer=renderer, camera_class=camera_class, **kwargs)

    def tear_down(self) -> None:
        from toy_model.viz.subtitles import say

        say(self, None)  # the last subtitle ends with the scene
        if self.progress is not None:
            self.progress.ended(self)
        super().tear_down()


class FastScene(KitScene):
    """A KitScene that redraws less and draws the same frames (see the module docstring). Subclass it instead of
    Scene; with the OpenGL renderer, or a renderer given, it is a plain KitScene."""

    renderer_class = StaticImageRenderer

    def set_drawing_order(self, *mobjects: Mobject) -> None:
        """Make `mobjects` the scene's mobjects, drawn in this order (foreground mobjects stay on top). They
        must be whole pieces, none a part of another: then this is what clearing the scene and adding them
        does, without Scene.add searching every family for parts to split out of their groups (2 ms a call
        for block_flow's 19 pieces, which it reorders before every play: 3 % of its drawing thread)."""
        self.mobjects = [*(m for m in dict.fromkeys(mobjects) if m not in self.foreground_mobjects),
                         *self.foreground_mobjects]

    def add_mobjects_from_animations(self, animations) -> None:
        """Add what the animations move and the scene lacks, as Manim does, but never the Group an
        AnimationGroup (or Succession) plays on: Manim adds that Group, and as it draws a mobject where it
        comes last in the list, the group's parts would jump above everything drawn after them, and stay
        there (the Group is never removed). The parts themselves are added if missing."""
        present = set(self.get_mobject_family_members())
        todo = list(animations)
        while todo:
            a = todo.pop(0)
            if isinstance(a, AnimationGroup):
                todo[:0] = a.animations
            elif not a.is_introducer() and a.mobject is not None and a.mobject not in present:
                self.add(a.mobject)
                present.update(a.mobject.get_family())

    def get_moving_mobjects(self, *animations):
        """The scene's family members from the first one that itself changes during these animations (point 1
        of the module docstring). Manim's version starts at the first top-level group that holds one."""
        animated = set()

        def collect(anims):
            for a in anims:
                animated.update(a.mobject.get_family())
                if isinstance(a, AnimationGroup):  # Succession too: its parts' mobjects
                    collect(a.animations)

        collect(animations)
        foreground = set(extract_mobject_family_members(self.foreground_mobjects))

        def changes(m) -> bool:
            return m in animated or bool(m.updaters) or m in foreground

        members = self.get_mobject_family_members()
        for i, m in enumerate(members):
            # a piece with points of its own is drawn before its submobjects: it moves if any of them does,
            # so that the static image never holds a piece that also moves
            if changes(m) or (m.submobjects and m.has_points() and any(map(changes, m.get_family()[1:]))):
                return members[i:]
        return []
