"""Stock Beam executors that do the work in process and run Beam only as a
fallback (``components.ingest``, ``components.statistics``).

``BaseBeamExecutor.__init__`` repackages TFX as an sdist (about 1-3 s)
whenever Beam arguments are set, so that remote workers can import it.  The
in-process path never starts Beam, so the mixin below hands the stock
constructor no Beam arguments and keeps the real context for ``init_beam``,
which the fallback calls just before the stock ``Do``.

``--force_beam_executors`` among the Beam arguments (``beam.
force_beam_executors: true`` in the configuration) skips the in-process path
altogether: every executor built on the mixin runs the stock Beam ``Do``
whatever its input. It travels with the Beam arguments because they are the
one setting that reaches every Beam executor under every orchestrator (the
local runner, and each Kubeflow task's command line). It exists to prove and
exercise the Beam paths on a distributed runner
(``tests/test_portable_runner.py``); for data that fits, the in-process path
gives the same artifacts faster.
"""

import copy
import functools
from typing import Any, Optional, Sequence

from absl import logging
from apache_beam.options import pipeline_options
from tfx.dsl.components.base import base_beam_executor

FORCE_FLAG = '--force_beam_executors'


class ExecutorOptions(pipeline_options.PipelineOptions):
  """The flag as a Beam option: Beam parses it instead of warning that it
  discards an unknown argument, wherever this module is imported."""

  @classmethod
  def _add_argparse_args(cls, parser):
    parser.add_argument(
        FORCE_FLAG, action='store_true', default=False,
        help='Run the stock Beam path of the in-process TFX executors '
        '(ExampleGen, StatisticsGen) whatever the size of their input.')


def forced(beam_pipeline_args: Optional[Sequence[str]]) -> bool:
  """Whether ``beam_pipeline_args`` force the Beam path."""
  if not beam_pipeline_args:
    return False
  options = pipeline_options.PipelineOptions(list(beam_pipeline_args))
  return options.view_as(ExecutorOptions).force_beam_executors


def _forceable(do):
  """``do``, unless the Beam arguments force the stock Beam ``Do``."""

  @functools.wraps(do)
  def wrapper(self, input_dict, output_dict, exec_properties):
    if not self._force_beam:  # pylint: disable=protected-access
      return do(self, input_dict, output_dict, exec_properties)
    logging.info('%s: the stock Beam executor, forced (%s).',
                 type(self).__name__, FORCE_FLAG)
    self.init_beam()
    # The stock executor's Do: the class after the mixin in the MRO.
    return super(BeamOnFallback, self).Do(input_dict, output_dict,
                                          exec_properties)
  return wrapper


class BeamOnFallback:
  """Mixin, listed before the stock executor class it extends."""

  def __init_subclass__(cls, **kwargs):
    super().__init_subclass__(**kwargs)
    # The in-process Do is the subclass's own: wrapped here, so that the
    # switch needs no code in each executor.
    if 'Do' in cls.__dict__:
      cls.Do = _forceable(cls.__dict__['Do'])

  def __init__(self, context: Optional[Any] = None):
    self._beam_context = context
    self._force_beam = forced(getattr(context, 'beam_pipeline_args', None))
    if (isinstance(context, base_beam_executor.BaseBeamExecutor.Context) and
        context.beam_pipeline_args):
      context = copy.copy(context)
      context.beam_pipeline_args = []
    super().__init__(context)

  def init_beam(self) -> None:
    """Initializes the stock executor with the real Beam arguments."""
    super().__init__(self._beam_context)
