"""The bottom layer: typed configuration and the task definitions.

Both `components/` and `pipeline/` import from here; nothing here imports
either of them.
"""
