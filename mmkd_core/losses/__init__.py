"""Distillation losses. Each is a small function whose docstring gives the formula and its source."""
