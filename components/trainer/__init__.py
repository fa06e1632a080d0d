"""Trainer user code, split by role: inputs, model, fit loop, export."""

from components.trainer import autograph as _autograph

_autograph.skip_tf_keras()
