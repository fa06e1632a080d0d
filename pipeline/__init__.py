"""Pipeline definition, configuration and runners.

``from tfx import v1`` imports ``tfx.v1.extensions``, whose Vertex AI and
BigQuery components import ``google.cloud.aiplatform``: about a third of
the seconds TFX takes to import, for components this pipeline never uses.
``tfx.components`` and ``tfx.v1.components`` import every standard component
(Tuner and keras_tuner, InfraValidator and the Kubernetes client,
BulkInferrer, ...) and ``tfx.v1.orchestration.experimental`` the Kubeflow V2
runner, whichever one a pipeline uses; importing any ``tfx.components.*``
module runs that package first, and LocalDagRunner's own imports do.

Those four packages only re-export names from their submodules, so their
names resolve on first use instead (a module ``__getattr__``, PEP 562):
``tfx.v1.components.Trainer`` imports the Trainer alone, and
``tfx.v1.extensions.google_cloud_ai_platform`` works as usual the moment
any code touches it. Not the standard library's ``LazyLoader``: Beam's
pickler reads ``__dict__`` of every module in ``sys.modules`` (to load the
lazy ones, apache_beam/internal/dill_pickler.py), so a lazily loaded module
was loaded anyway, inside the first Beam component.
"""

import ast
import importlib
import importlib.abc
import importlib.util
import sys

# Packages whose __init__ only re-exports names (``from m import Name``,
# optionally in ``try: ... except ImportError: pass``).
_REEXPORTS = frozenset({'tfx.components', 'tfx.v1.components',
                        'tfx.v1.extensions',
                        'tfx.v1.orchestration.experimental'})


def _reexports(source: str):
  """``{name: (module, attribute, optional)}`` for the package's imports and
  the rest of its body (docstring, ``__all__``) to run as it is; ``None``
  when the package does anything else (then it runs unchanged)."""
  names, body = {}, []

  def add(node, optional):
    if not (isinstance(node, ast.ImportFrom) and node.level == 0 and
            all(a.name != '*' for a in node.names)):
      return False
    for alias in node.names:
      names[alias.asname or alias.name] = (node.module, alias.name, optional)
    return True

  for node in ast.parse(source).body:
    if add(node, False):
      continue
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
      body.append(node)
    elif (isinstance(node, ast.Assign) and
          [getattr(t, 'id', None) for t in node.targets] == ['__all__']):
      body.append(node)
    elif (isinstance(node, ast.Try) and len(node.handlers) == 1 and
          not node.orelse and not node.finalbody and
          getattr(node.handlers[0].type, 'id', None) == 'ImportError' and
          all(isinstance(n, ast.Pass) for n in node.handlers[0].body) and
          all(add(n, True) for n in node.body)):
      continue
    else:
      return None
  return names, ast.Module(body=body, type_ignores=[])


class _ReexportLoader(importlib.abc.Loader):
  """Runs a re-exporting package's docstring and ``__all__``; its names are
  imported from their modules on first access."""

  def __init__(self, loader):
    self._loader = loader

  def create_module(self, spec):
    return self._loader.create_module(spec)

  def exec_module(self, module):
    source = self._loader.get_source(module.__name__)
    parsed = _reexports(source) if source else None
    if parsed is None:
      self._loader.exec_module(module)
      return
    names, body = parsed
    exec(compile(body, module.__file__, 'exec'), module.__dict__)  # pylint: disable=exec-used

    def __getattr__(name):  # pylint: disable=invalid-name
      if name not in names:
        raise AttributeError(
            f'module {module.__name__!r} has no attribute {name!r}')
      source_module, attribute, optional = names[name]
      try:
        if source_module == module.__name__:  # from package import submodule
          value = importlib.import_module(f'{source_module}.{attribute}')
        else:
          value = getattr(importlib.import_module(source_module), attribute)
      except ImportError:
        if not optional:
          raise
        # As the package itself: ``except ImportError: pass`` left it unset.
        raise AttributeError(
            f'module {module.__name__!r} has no attribute {name!r}') from None
      module.__dict__[name] = value
      return value

    module.__getattr__ = __getattr__
    module.__dir__ = lambda: sorted(set(module.__dict__) | set(names))


class _LazyFinder(importlib.abc.MetaPathFinder):
  """Finds the packages in ``_REEXPORTS`` as usual, then defers their
  imports to the first access of each name."""

  def find_spec(self, fullname, path, target=None):
    del path, target
    if fullname not in _REEXPORTS:
      return None
    sys.meta_path.remove(self)  # The real finders locate the module.
    try:
      spec = importlib.util.find_spec(fullname)
    finally:
      sys.meta_path.insert(0, self)
    if spec is not None and spec.loader is not None:
      spec.loader = _ReexportLoader(spec.loader)
    return spec


if not any(isinstance(f, _LazyFinder) for f in sys.meta_path):
  sys.meta_path.insert(0, _LazyFinder())
