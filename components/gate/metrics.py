"""The gate's one TFMA metric: the task's own statistics, computed natively.

``TaskMetrics`` wraps the task's :meth:`core.tasks.base.Task.accumulator`
(plain numpy, mergeable) in a Beam ``CombineFn`` the way TFMA's own native
metrics are written (``cross_entropy_metrics`` is the pattern): no
TensorFlow graph in the combiners, and every number the gate decides on is
defined once, in ``core/tasks``, where the unit tests check it by hand. It
emits one metric key per name in ``task.gate_metric_names`` (floats) and per
name in ``task.gate_arrays`` (numpy arrays, which TFMA writes as
``array_value``).

The metric's configuration is the task's name and the model's label
``info`` (from its ``task.json``), as JSON in the ``MetricConfig``:
:func:`metric_config` builds it.
"""

import json
from typing import Any, Dict, Iterable, Mapping, Optional

import apache_beam as beam
import numpy as np
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.metrics import metric_types
from tensorflow_model_analysis.metrics import metric_util

from core import tasks as tasks_lib

NAME = 'task_metrics'


class _TaskCombiner(beam.CombineFn):
  """The task's accumulator as a TFMA combiner, for one model and output."""

  def __init__(self, task: str, info: Mapping[str, Any],
               keys: Mapping[str, metric_types.MetricKey], eval_config,
               model_name: str, output_name: str, example_weighted: bool):
    self._task_name = task
    self._info = dict(info)
    self._keys = dict(keys)
    self._eval_config = eval_config
    self._model_name = model_name
    self._output_name = output_name
    self._example_weighted = example_weighted
    self._task = None

  @property
  def task(self) -> tasks_lib.Task:
    if self._task is None:
      self._task = tasks_lib.get(self._task_name)
    return self._task

  def __getstate__(self):
    state = dict(self.__dict__)
    state['_task'] = None  # Looked up again by name after unpickling.
    return state

  def create_accumulator(self):
    return self.task.accumulator(self._info)

  def add_input(self, accumulator, element: metric_types.StandardMetricInputs):
    # flatten=False: a multiclass label stays the class index and its
    # prediction the K probabilities (no one-hot, no per-class pairs).
    for label, prediction, _ in metric_util.to_label_prediction_example_weight(
        element, eval_config=self._eval_config, model_name=self._model_name,
        output_name=self._output_name, example_weighted=self._example_weighted,
        flatten=False):
      accumulator.add(label, prediction)
    return accumulator

  def merge_accumulators(self, accumulators: Iterable[Any]):
    accumulators = iter(accumulators)
    result = next(accumulators)
    for accumulator in accumulators:
      result.merge(accumulator)
    return result

  def extract_output(self, accumulator) -> metric_types.MetricsDict:
    values = accumulator.result()
    output = {}
    for name in self.task.gate_metric_names:
      output[self._keys[name]] = float(values[name])
    for name in self.task.gate_arrays:
      output[self._keys[name]] = np.asarray(values[name])
    return output


def key_names(task: tasks_lib.Task):
  """Every metric key name ``TaskMetrics`` emits for ``task``."""
  return tuple(task.gate_metric_names) + tuple(task.gate_arrays)


def _computations(task: str, info: Dict[str, Any], name: Optional[str] = None,
                  eval_config=None, model_name: str = '',
                  output_name: str = '', example_weighted: bool = False
                  ) -> metric_types.MetricComputations:
  del name  # The keys are the task's metric names.
  keys = {n: metric_types.MetricKey(name=n, model_name=model_name,
                                    output_name=output_name,
                                    example_weighted=example_weighted)
          for n in key_names(tasks_lib.get(task))}
  return [metric_types.MetricComputation(
      keys=list(keys.values()), preprocessors=None,
      combiner=_TaskCombiner(task, info, keys, eval_config, model_name,
                             output_name, example_weighted))]


class TaskMetrics(metric_types.Metric):
  """The task's gate statistics (``task.gate_metric_names`` and
  ``task.gate_arrays``) from labels and predictions."""

  def __init__(self, task: str, info: Dict[str, Any], name: str = NAME):
    tasks_lib.get(task)  # An unknown task fails here, naming the known ones.
    super().__init__(metric_util.merge_per_key_computations(_computations),
                     task=task, info=info, name=name)


metric_types.register_metric(TaskMetrics)


def metric_config(task: tasks_lib.Task, info: Mapping[str, Any]
                  ) -> tfma.MetricConfig:
  """The ``MetricConfig`` of ``TaskMetrics`` for ``task`` and a model's
  label ``info``."""
  return tfma.MetricConfig(
      class_name=TaskMetrics.__name__, module=__name__,
      config=json.dumps({'task': task.name, 'info': dict(info)}))
