"""Pipeline definition, configuration and runners.

``from tfx import v1`` imports ``tfx.v1.extensions``, whose Vertex AI and
BigQuery components import ``google.cloud.aiplatform``: about a third of
the seconds TFX takes to import, for components this pipeline never uses.
That one module is loaded lazily (the standard library's ``LazyLoader``):
``tfx.v1.extensions`` exists and works as usual the moment any code touches
it; until then it costs nothing.
"""

import importlib.abc
import importlib.util
import sys

_DEFERRED = frozenset({'tfx.v1.extensions'})


class _LazyFinder(importlib.abc.MetaPathFinder):
  """Finds the modules in ``_DEFERRED`` as usual, then defers executing them
  to their first attribute access."""

  def find_spec(self, fullname, path, target=None):
    del path, target
    if fullname not in _DEFERRED:
      return None
    sys.meta_path.remove(self)  # The real finders locate the module.
    try:
      spec = importlib.util.find_spec(fullname)
    finally:
      sys.meta_path.insert(0, self)
    if spec is not None and spec.loader is not None:
      spec.loader = importlib.util.LazyLoader(spec.loader)
    return spec


if not any(isinstance(f, _LazyFinder) for f in sys.meta_path):
  sys.meta_path.insert(0, _LazyFinder())
