"""``StatisticsGen``: the stock component with the in-memory executor.

Same spec, inputs, outputs and parameters as ``tfx.components.StatisticsGen``;
only the executor differs (``components.statistics.executor.Executor``, a
Beam executor spec like the stock one, so Beam arguments still reach its
fallback and the Kubeflow compiler names an importable class).
"""

from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec

from components.statistics import executor


class StatisticsGen(tfx.components.StatisticsGen):
  """Drop-in StatisticsGen; see ``executor`` for when it still uses Beam."""

  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)
