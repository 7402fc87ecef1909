"""The scene kit: the pieces every scene, notebook figure and slide deck draws with.

    theme.py     Theme (dark, light): background, text, an accent per layer kind, the marker's green
    text.py      label (cached Pango text), shorten, show_spaces, text_units (an emoji counts as one)
    emoji.py     EmojiText / token_label: token text with emoji drawn as OpenMoji; EMOJI_CREDIT
    stack.py     Block, Marker, RepeatBrace, RepeatPips, LayerChart: the stacked diagram
    details.py   StateGauge (Mamba-2), ExpertGrid (MoE), AttentionStrip (attention): one interface,
                 enter(view, layer, t) and show(view, layer, t, run_time) -> Animation
    captions.py  TokenCaption, PredictionList
    views.py     TraceView: a trace's values scaled for drawing (numpy only)
    params.py    Settings: TOY_* variables over a manim.cfg section; the token-spec parser; one-line errors

Importing the kit or any of its modules has no side effect: Manim's config is left as it is, nothing reads
the environment and nothing exits. Only the scene files in scenes/, when Manim renders them, read the
environment and manim.cfg (toy_model.viz.params.is_render_entry). The package itself imports nothing, so
`toy_model.viz.views` works without Manim.
"""
