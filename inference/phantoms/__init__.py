"""Synthetic lumbar-spine and sacroiliac-joint MRI studies with ground truth (seeded, deterministic)."""
