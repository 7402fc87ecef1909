# manim render scenes/talk.py BlockFlowSlides      (any scene's slides; ./render.sh talk renders the whole talk)
"""The scenes as slides: each scene class of scenes/ with its slide version, `<Scene>Slides`, pausing at the beats
the scene marks (toy_model.viz.slides); the talk's order is toy_model.talk.TALK. Parameters are each scene's own
(TOY_* variables over its section of scenes/manim.cfg); only the scenes asked for are read.
"""

from __future__ import annotations

from toy_model.scenes import attention, block_flow, emoji_chat, generation, hybrid_map, latent_moe, mamba2_ssd

from toy_model.renders import SCENES
from toy_model.viz.params import is_render_entry, or_exit, start_render
from toy_model.viz.slides import slides_of

HybridMapSlides = slides_of(hybrid_map.HybridMap, __name__)
BlockFlowSlides = slides_of(block_flow.BlockFlow, __name__)
Mamba2SSDSlides = slides_of(mamba2_ssd.Mamba2SSD, __name__)
LatentMoESlides = slides_of(latent_moe.LatentMoE, __name__)
AttentionSlides = slides_of(attention.Attention, __name__)
GenerationSlides = slides_of(generation.Generation, __name__)
EmojiChatSlides = slides_of(emoji_chat.EmojiChat, __name__)

# Only when Manim renders this file: the [CLI] defaults, then the parameters of the scenes asked for.
if is_render_entry(__file__):
    from manim import config

    or_exit(start_render, block_flow.CONFIG_FILE)
    wanted = set(config.scene_names or [])
    for scene, name in SCENES.items():  # the modules imported above, by their names
        if f"{name}Slides" in wanted:
            module = globals()[scene]
            getattr(module, name).params = or_exit(module.resolve_params)
