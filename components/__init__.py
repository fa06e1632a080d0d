"""Custom TFX components and the user code (Transform, Trainer) they run."""
