"""The seed's v_C, defined once: v_C = concat(v_R[1:], v_F), [t-1, 2D]. Row k pairs frame k+1
with the motion (flow k -> k+1) that led to it; the first RGB frame has no flow into it."""

from __future__ import annotations

import numpy as np

from afgen.errors import StoreError


def v_c(v_r: np.ndarray, v_f: np.ndarray) -> np.ndarray:
    """The seed's v_C: drop the first RGB row so row k pairs frame k+1 with flow k -> k+1."""
    if len(v_f) != len(v_r) - 1:
        raise StoreError(f"v_F has {len(v_f)} rows for {len(v_r)} RGB rows; expected t-1")
    return np.concatenate([v_r[1:], v_f], axis=1).astype(np.float32, copy=False)
