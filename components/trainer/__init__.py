"""Trainer user code, split by role: inputs, model, fit loop, export."""
