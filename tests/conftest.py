import os
import random

import numpy as np
import pytest
import torch

# Triton picks interpreter or compiler when a kernel is decorated (at import): set it before any test module.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(autouse=True)
def _seed():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture(autouse=True, scope="session")
def _manim_files_out_of_the_repository(tmp_path_factory):
    """What Manim writes during in-process renders (its text cache, under config.media_dir) goes to a temporary
    folder, not into the repository's media/: the tests never write into the repository."""
    from manim import config

    config.media_dir = str(tmp_path_factory.mktemp("manim-media"))
    yield
