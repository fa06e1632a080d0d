"""components/transform.py: the stock Transform under size-based batching."""

import logging

from absl import flags
from tfx import v1 as tfx
from tfx.components.transform import executor as stock_executor
from tfx.utils import name_utils

from components import transform


def test_batching_by_size_inside_and_as_before_after():
  absl_logger = logging.getLogger('absl')
  level = absl_logger.level
  assert not transform.uses_byte_size_batching()  # tfx_bsl's default
  with transform.byte_size_batching():
    assert transform.uses_byte_size_batching()
  assert not transform.uses_byte_size_batching()
  # The run's progress lines are INFO records on absl's logger.
  assert flags.FLAGS.is_parsed() and absl_logger.level == level


def test_flags_restored_when_the_executor_fails():
  try:
    with transform.byte_size_batching():
      raise RuntimeError('Transform failed')
  except RuntimeError:
    pass
  assert not transform.uses_byte_size_batching()


def test_component_swaps_only_the_executor():
  stock = tfx.components.Transform
  assert transform.Transform.SPEC_CLASS is stock.SPEC_CLASS
  assert type(transform.Transform.EXECUTOR_SPEC) is type(stock.EXECUTOR_SPEC)
  executor_class = transform.Transform.EXECUTOR_SPEC.executor_class
  assert issubclass(executor_class, stock_executor.Executor)
  # The path the Kubeflow spec names; it must import from the package.
  assert (name_utils.get_full_name(executor_class)
          == 'components.transform.Executor')
