"""The gate's one TFMA metric: the task's own statistics, computed natively.

``TaskMetrics`` wraps the task's :meth:`core.tasks.base.Task.accumulator`
(plain numpy, mergeable) in a Beam ``CombineFn`` the way TFMA's own native
metrics are written (``cross_entropy_metrics`` is the pattern): no
TensorFlow graph in the combiners, and every number the gate decides on is
defined once, in ``core/tasks``, where the unit tests check it by hand. It
emits one metric key per name in ``task.gate_metric_names`` (floats) and per
name in ``task.gate_arrays`` (numpy arrays, which TFMA writes as
``array_value``), and, with bootstrap replicates, one array per float metric
(:func:`core.tasks.base.replicate_name`) holding its replicates.

The replicates weight each example by the Poisson counts of its bootstrap
key, which the gate's executor writes into a column of its own
(``KEY_FEATURE``, a hash of the example's raw bytes, see
:func:`core.tasks.base.bootstrap_key`): the combiner reads it through a
``FeaturePreprocessor`` of that one column, so TFMA hands over one small
integer per example and nothing else of the features.

The metric's configuration is the task's name, the model's label ``info``
(from its ``task.json``) and the number of replicates, as JSON in the
``MetricConfig``: :func:`metric_config` builds it.
"""

import json
from typing import Any, Dict, Iterable, Mapping, Optional

import apache_beam as beam
import numpy as np
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.metrics import metric_types
from tensorflow_model_analysis.metrics import metric_util

from core import tasks as tasks_lib
from core.tasks import base

NAME = 'task_metrics'
# The column holding each example's bootstrap key (written by the executor).
KEY_FEATURE = '__gate_bootstrap_key__'


class _TaskCombiner(beam.CombineFn):
  """The task's accumulator as a TFMA combiner, for one model and output."""

  def __init__(self, task: str, info: Mapping[str, Any], replicates: int,
               keys: Mapping[str, metric_types.MetricKey], eval_config,
               model_name: str, output_name: str, example_weighted: bool):
    self._task_name = task
    self._info = dict(info)
    self._replicates = replicates
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
    return self.task.accumulator(self._info, self._replicates)

  def _key(self, element: metric_types.StandardMetricInputs) -> Optional[int]:
    if not self._replicates:
      return None
    features = element.features or {}
    if KEY_FEATURE not in features:
      raise ValueError(
          f'bootstrap replicates need the {KEY_FEATURE!r} column on every '
          "example (the gate's executor writes it); got features "
          f'{sorted(features)}')
    return int(np.ravel(features[KEY_FEATURE])[0])

  def add_input(self, accumulator, element: metric_types.StandardMetricInputs):
    key = self._key(element)
    # flatten=False: a multiclass label stays the class index and its
    # prediction the K probabilities (no one-hot, no per-class pairs).
    for label, prediction, _ in metric_util.to_label_prediction_example_weight(
        element, eval_config=self._eval_config, model_name=self._model_name,
        output_name=self._output_name, example_weighted=self._example_weighted,
        flatten=False):
      accumulator.add(label, prediction, key)
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
    for name, replicates in values.get(base.REPLICATES, {}).items():
      output[self._keys[base.replicate_name(name)]] = np.asarray(
          replicates, np.float64)
    return output


def key_names(task: tasks_lib.Task, replicates: int = 0):
  """Every metric key name ``TaskMetrics`` emits for ``task``."""
  names = tuple(task.gate_metric_names) + tuple(task.gate_arrays)
  if replicates:
    names += tuple(base.replicate_name(n) for n in task.gate_metric_names)
  return names


def _computations(task: str, info: Dict[str, Any], replicates: int = 0,
                  name: Optional[str] = None, eval_config=None,
                  model_name: str = '', output_name: str = '',
                  example_weighted: bool = False
                  ) -> metric_types.MetricComputations:
  del name  # The keys are the task's metric names.
  keys = {n: metric_types.MetricKey(name=n, model_name=model_name,
                                    output_name=output_name,
                                    example_weighted=example_weighted)
          for n in key_names(tasks_lib.get(task), replicates)}
  # Without replicates: TFMA's default inputs (labels, predictions). With
  # them: the same plus the one key column, which TFMA merges into the
  # shared inputs of every computation (one preprocessing per example).
  preprocessors = ([metric_types.FeaturePreprocessor(
      feature_keys=[KEY_FEATURE])] if replicates else None)
  return [metric_types.MetricComputation(
      keys=list(keys.values()), preprocessors=preprocessors,
      combiner=_TaskCombiner(task, info, replicates, keys, eval_config,
                             model_name, output_name, example_weighted))]


class TaskMetrics(metric_types.Metric):
  """The task's gate statistics (``task.gate_metric_names`` and
  ``task.gate_arrays``, and with ``replicates`` their bootstrap replicates)
  from labels and predictions."""

  def __init__(self, task: str, info: Dict[str, Any], replicates: int = 0,
               name: str = NAME):
    tasks_lib.get(task)  # An unknown task fails here, naming the known ones.
    super().__init__(metric_util.merge_per_key_computations(_computations),
                     task=task, info=info, replicates=replicates, name=name)


metric_types.register_metric(TaskMetrics)


def metric_config(task: tasks_lib.Task, info: Mapping[str, Any],
                  replicates: int = 0) -> tfma.MetricConfig:
  """The ``MetricConfig`` of ``TaskMetrics`` for ``task``, a model's label
  ``info`` and ``replicates`` bootstrap replicates."""
  return tfma.MetricConfig(
      class_name=TaskMetrics.__name__, module=__name__,
      config=json.dumps({'task': task.name, 'info': dict(info),
                         'replicates': int(replicates)}))
