"""The layer kinds of the hybrid stack: one vocabulary for the config, the trace format, conversion and scenes.

    char  name        NemotronH layers_block_type     mixer (toy_model.layers)   title
    M     mamba       linear_attention (mamba)        Mamba2Mixer                Mamba-2
    E     moe         moe                             MoE                        MoE (Latent MoE with a latent)
    *     attention   full_attention (attention)      Attention                  Attention
    -     mlp         mlp                             DenseMLP                   MLP

Standard library only: the numpy-only trace loader and the scene kit import it without torch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LayerKind:
    char: str  # one character of a layer pattern, as in NemotronH's hybrid_override_pattern
    name: str  # our name, used in the trace format and by the scenes
    hf_type: str  # NemotronH's layers_block_type entry (transformers 5)
    hf_legacy: tuple[str, ...]  # older layers_block_type spellings transformers still reads
    mixer: str  # the class in toy_model.layers that computes it
    title: str  # what a diagram calls it

    def display_title(self, latent: bool = False) -> str:
        """The title a diagram shows; an MoE layer with a latent projection is a Latent MoE (Nemotron 3 Super)."""
        return "Latent MoE" if self.name == "moe" and latent else self.title


KINDS: tuple[LayerKind, ...] = (
    LayerKind("M", "mamba", "linear_attention", ("mamba",), "Mamba2Mixer", "Mamba-2"),
    LayerKind("E", "moe", "moe", (), "MoE", "MoE"),
    LayerKind("*", "attention", "full_attention", ("attention",), "Attention", "Attention"),
    LayerKind("-", "mlp", "mlp", (), "DenseMLP", "MLP"),
)
BY_CHAR: dict[str, LayerKind] = {k.char: k for k in KINDS}
BY_NAME: dict[str, LayerKind] = {k.name: k for k in KINDS}
BY_HF_TYPE: dict[str, LayerKind] = {t: k for k in KINDS for t in (k.hf_type, *k.hf_legacy)}
CHARS = "".join(BY_CHAR)  # "ME*-"


def describe_chars() -> str:
    """'M (Mamba-2), E (MoE), * (Attention), - (MLP)': for messages about a bad pattern."""
    return ", ".join(f"{k.char} ({k.title})" for k in KINDS)
