"""TFX's Transform with batches that do not depend on timing.

The stock executor reads tf.Examples through tfx_bsl's ``BeamSource`` with
no batch size, which hands batching to Beam's ``BatchElements``: it sizes
each batch from how long the previous ones took. A row's place in a batch
changes the last bit of a float the graph computes for it (vectorised
kernels round a batch's body and its remainder differently), so two runs
on one file wrote different transformed examples (22 of the taxi sample's
10,490 train rows at ~1e-7, measured) and early stopping, fed those, ended
at different epochs.

tfx_bsl's ``tfxio_use_byte_size_batching`` flag makes every source batch by
encoded size instead (20 MiB, at most 8,192 records), a rule of the data
alone. The flag is read when the Beam pipeline is built, in the executor's
process, so setting it around ``Do`` is enough for in-process and
multi-process Beam alike.
"""

import contextlib
from typing import Any, Dict, Iterator, List

from absl import flags
from tfx import types
from tfx.components.transform import component as transform_component
from tfx.components.transform import executor as transform_executor
from tfx.dsl.components.base import executor_spec
from tfx_bsl.coders import batch_util

_FLAG = 'tfxio_use_byte_size_batching'


@contextlib.contextmanager
def byte_size_batching() -> Iterator[None]:
  """tfx_bsl's sources batch by size while inside; the flag as it was
  after. tfx_bsl reads the flag only once absl has parsed flags (it falls
  back to the default otherwise), so unparsed flags are marked parsed, at
  their defaults, and left so: unparsing them again would reset absl's
  logger to WARNING and silence the run's progress lines (measured)."""
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()
  before = getattr(flags.FLAGS, _FLAG)
  setattr(flags.FLAGS, _FLAG, True)
  try:
    yield
  finally:
    setattr(flags.FLAGS, _FLAG, before)


def uses_byte_size_batching() -> bool:
  """What tfx_bsl decides for a source without a batch size, now."""
  return 'element_size_fn' in batch_util.GetBatchElementsKwargs(None)


class Executor(transform_executor.Executor):
  """The stock Transform executor under ``byte_size_batching``."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    with byte_size_batching():
      super().Do(input_dict, output_dict, exec_properties)


class Transform(transform_component.Transform):
  """``tfx.components.Transform`` run by this module's executor."""

  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
