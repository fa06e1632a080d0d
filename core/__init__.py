"""The bottom layer: typed configuration, the task definitions and the
reader of a split's TFRecord files (``records``).

Both `components/` and `pipeline/` import from here; nothing here imports
either of them.
"""
