"""Data reduction: per-observation makers (DL3 -> DL4) and stacking."""
