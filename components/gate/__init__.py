"""The generalization gate: quality, baseline and train-vs-held-out gap checks."""
