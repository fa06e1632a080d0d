"""Stock Beam executors that do the work in process and run Beam only as a
fallback (``components.ingest``, ``components.statistics``).

``BaseBeamExecutor.__init__`` repackages TFX as an sdist (about 3 s) whenever
Beam arguments are set, so that remote workers can import it.  The in-process
path never starts Beam, so the mixin below hands the stock constructor no
Beam arguments and keeps the real context for ``init_beam``, which the
fallback calls just before the stock ``Do``.
"""

import copy
from typing import Any, Optional

from tfx.dsl.components.base import base_beam_executor


class BeamOnFallback:
  """Mixin, listed before the stock executor class it extends."""

  def __init__(self, context: Optional[Any] = None):
    self._beam_context = context
    if (isinstance(context, base_beam_executor.BaseBeamExecutor.Context) and
        context.beam_pipeline_args):
      context = copy.copy(context)
      context.beam_pipeline_args = []
    super().__init__(context)

  def init_beam(self) -> None:
    """Initializes the stock executor with the real Beam arguments."""
    super().__init__(self._beam_context)
