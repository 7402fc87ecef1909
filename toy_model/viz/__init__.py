"""The scene kit: the pieces every scene, notebook figure and slide deck draws with.

Drawing pieces (Manim):
    theme.py       Theme (dark, light): background, text, an accent per layer kind, the marker's green
    text.py        label (cached Pango text), shorten, show_spaces, text_units (an emoji counts as one)
    emoji.py       EmojiText / token_label: token text with emoji drawn as OpenMoji; EMOJI_CREDIT
    paragraph.py   wrap and text_width (measured from the font, no Pango per trial), paragraph, stack
    notes.py       plain-text notes and key lists wrapped to a column, table cells on one baseline
    formula.py     Formula (parts can be framed), TextBlock, Glossary: maths as one line of text
    stack.py       Block, Highlight, Marker, RepeatBrace, RepeatPips, LayerChart: the stacked diagram
    details.py     StateGauge (Mamba-2), ExpertGrid (MoE), AttentionStrip (attention): one interface,
                   enter(view, layer, t) and show(view, layer, t, run_time) -> Animation
    captions.py    TokenCaption, PredictionList
    bars.py        BarChart, LevelTicks, VectorBar, Projection, SplitBar: numbers as lengths
    strips.py      PatternStrip, GroupedStrip, KindKey: a model's layers as cells by kind
    matrix.py      colour scales, Heatmap (one image per matrix), ColorBar, ImageCamera
    heads.py       grouped-query attention: which query heads read which KV head; attention heatmaps
    terminal.py    TerminalWindow, TerminalText: a chat answer streaming token by token on a monospace grid
    scene.py       KitScene (subtitles, progress, frame-counted time, Curtain) and FastScene, which draws the
                   same frames with less redrawing: every scene subclasses one of them
    slides.py      beat(scene, notes): a natural pause, a slide with speaker notes in slides_of(Scene)
    subtitles.py   say(scene, text): the subtitle from now on, written as an .srt beside the video
    progress.py    what a render has played, as JSON lines for the talk's progress and the split's plan
Numbers for drawing (numpy only, no Manim):
    views.py           TraceView: a trace's values scaled for drawing
    duality.py         one recorded Mamba-2 head: recurrence, decay mask, matrix M, the chunked scan's steps
    routing.py         one MoE layer's routing from a trace, loads with and without the correction bias
    attention_view.py  the attention scene's numbers: rows, top keys, residual similarity, cache sizes
Rules and plumbing:
    legibility.py  minimum font size, WCAG contrast; the checks tests run
    params.py      Settings: TOY_* variables over a manim.cfg section; the token-spec parser; one-line errors
    plots.py       matplotlib for the notebooks: a style for any Jupyter theme, the kind colours

Importing the kit or any of its modules has no side effect: Manim's config is left as it is, nothing reads
the environment and nothing exits. Only the scene files in scenes/, when Manim renders them, read the
environment and manim.cfg (toy_model.viz.params.is_render_entry). The package itself imports nothing, so
`toy_model.viz.views` works without Manim.
"""
