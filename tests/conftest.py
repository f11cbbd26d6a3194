"""Shared fixtures: small data and spaces so the suite stays fast on 2 CPU cores."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from supernas.data import Dataset, load_data

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

torch.set_num_threads(1)  # tests run in parallel workers; one thread each avoids oversubscription


@pytest.fixture(scope="session")
def digits() -> Dataset:
    return load_data("digits")
