"""components/beam_fallback.py: in-process executors skip Beam's set-up.

With Beam arguments set, ``BaseBeamExecutor.__init__`` builds an sdist of TFX
for remote workers (about 3 s). The ingest and statistics executors must not
pay that unless they fall back to the stock Beam path, and must then run it
with the real arguments.
"""

import pytest
from tfx.dsl.components.base import base_beam_executor
from tfx.utils import dependency_utils

from components.ingest.component import ArrowCsvExecutor
from components.statistics.executor import Executor as StatisticsExecutor

ARGS = ['--direct_running_mode=multi_processing', '--direct_num_workers=2']


@pytest.fixture
def packaging(monkeypatch):
  """Records the Beam argument lists TFX would build an sdist for."""
  calls = []

  def fake(args):
    calls.append(list(args))
    return list(args) + ['--extra_package=tfx.tar.gz']

  monkeypatch.setattr(dependency_utils, 'make_beam_dependency_flags', fake)
  return calls


@pytest.mark.parametrize('executor_class',
                         [ArrowCsvExecutor, StatisticsExecutor])
def test_beam_is_set_up_only_for_the_fallback(executor_class, packaging,
                                              tmp_path):
  context = base_beam_executor.BaseBeamExecutor.Context(
      beam_pipeline_args=list(ARGS), tmp_dir=str(tmp_path))
  executor = executor_class(context)
  assert packaging == []
  assert executor._beam_pipeline_args == []  # pylint: disable=protected-access
  assert context.beam_pipeline_args == ARGS  # The caller's context is intact.

  executor.init_beam()
  assert packaging == [ARGS]
  assert executor._beam_pipeline_args[:3] == ARGS + [  # pylint: disable=protected-access
      '--extra_package=tfx.tar.gz']
