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
