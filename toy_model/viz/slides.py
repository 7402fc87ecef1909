"""Talk mode: any kit scene as a manim-slides deck that pauses at the beats the scene marks.

    from toy_model.viz.slides import slides_of
    BlockFlowSlides = slides_of(BlockFlow, __name__)   # the same scene: each beat(self, notes) starts a slide

A scene marks its natural pauses with `beat(self, notes)`: nothing in a plain render; in the slide version, a
new slide whose speaker notes are `notes`. So the slides are the scene itself, not a copy, and
a fix in a scene reaches its slides. manim-slides is imported only when a slide class is made.

manim-slides 5.7 on Manim 0.22 needs three adjustments (TalkSlide): Slide.__init__ reads a config key Manim
0.22 no longer has (write_to_movie), Slide.render another (flush_cache), and Manim 0.22 reads max_files_cached
when the scene is created, so Slide's own setting of it comes too late and a scene of more than 100 plays would
lose video pieces its slides need.
"""

from __future__ import annotations

_TALK_SLIDE = None


def beat(scene, notes: str) -> None:
    """A natural pause for a talk, before what follows: nothing in a plain render (but a beat event for the
    scene's progress, if any); in the slide version of the scene (slides_of) a new slide starts here, with
    `notes` as its speaker notes (what it shows, with the numbers on screen). Call it before a beat's first
    play, the scene's first beat included."""
    next_slide = getattr(scene, "next_slide", None)
    if next_slide is not None:
        next_slide(notes=notes)
    progress = getattr(scene, "progress", None)  # a KitScene's (toy_model.viz.progress)
    if progress is not None:
        progress.beat(scene, notes)


def talk_slide_base():
    """manim-slides' Slide, adjusted for Manim 0.22 (made once, on first use)."""
    global _TALK_SLIDE
    if _TALK_SLIDE is None:
        from manim import config
        from manim_slides import Slide

        class TalkSlide(Slide):
            skip_reversing = True  # the reversed videos serve only manim-slides' own Qt presenter

            def __init__(self, *args, **kwargs):
                config.max_files_cached = -1  # every piece kept: the slides are cut from them
                super(Slide, self).__init__(*args, **kwargs)  # not Slide.__init__ (config.write_to_movie)

            def next_slide(self, *args, **kwargs):
                # a play before the first beat would make a first slide without notes
                assert getattr(self, "_beats_begun", False) or self._current_animation == 0, \
                    f"{type(self).__name__} plays {self._current_animation} animations before its first beat()"
                self._beats_begun = True
                super().next_slide(*args, **kwargs)

            def render(self, *args, **kwargs):
                super(Slide, self).render(*args, **kwargs)  # not Slide.render (config.flush_cache)
                self._save_slides(use_cache=not (config.disable_caching or self.disable_caching),
                                  flush_cache=self.flush_cache, skip_reversing=self.skip_reversing)

        _TALK_SLIDE = TalkSlide
    return _TALK_SLIDE


def slides_of(scene_cls: type, module: str, name: str | None = None) -> type:
    """The slide version of a kit scene class, defined in `module` (Manim renders the classes a file defines:
    pass the file's __name__), named `<Scene>Slides` unless `name` is given."""
    return type(name or f"{scene_cls.__name__}Slides", (talk_slide_base(), scene_cls),
                {"__module__": module, "__doc__": f"{scene_cls.__name__} as slides."})
