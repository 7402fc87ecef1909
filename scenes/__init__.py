"""The scenes, one file each; `manim render scenes/<name>.py` renders one. Installed as toy_model.scenes, so a
notebook writes `from toy_model.scenes.block_flow import BlockFlow, FlowParams`. Importing a scene file has
no side effect: only a render by Manim's command line reads the environment and scenes/manim.cfg."""
