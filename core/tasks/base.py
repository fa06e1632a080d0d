"""What every task is: the interface the components ask, and shared helpers.

A task (binary, multiclass, regression) is one object that knows everything
that depends on the problem's shape: how the label is read, the model's head,
loss and metrics, the trivial predictor its quality is measured against, the
statistics the gate computes, the serving outputs and what a valid serving
response looks like. Components ask the task; they never branch on its name.

Everything that needs TensorFlow imports it inside the method, so that the
configuration (which validates against the task) stays cheap to import.
The gate's statistics are plain numpy (:class:`Accumulator`), shared by the
TFMA metric that runs them and by the unit tests that check them by hand.
"""

import abc
import dataclasses
import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

# Keras' backend epsilon: probabilities are clipped to [EPSILON, 1 - EPSILON]
# before a log, in training (Keras) and in the gate (numpy) alike.
EPSILON = 1e-7
# Where the Trainer writes the task's label information inside the exported
# model (TF Serving ignores assets.extra/).
TASK_JSON = 'assets.extra/task.json'


class LabelError(ValueError):
  """A label value (or the label's configuration) cannot be used."""


@dataclasses.dataclass(frozen=True)
class Metric:
  """A metric the task reports: in training curves, in the gate, in reports.

  ``relative_gap``: the metric is in the label's units (RMSE, MAE), so its
  train-vs-held-out gap is relative, ``held_out / train - 1``, and so is a
  baseline tolerance; otherwise the gap is ``train - held_out`` (flipped for
  a lower-is-better metric).
  """
  name: str
  higher_is_better: bool
  relative_gap: bool = False

  def gap(self, train: float, held_out: float) -> float:
    """Positive when the model does better on data it trained on."""
    if self.relative_gap:
      if train == 0:
        return 0.0 if held_out == 0 else math.inf
      return held_out / train - 1.0
    return train - held_out if self.higher_is_better else held_out - train


@dataclasses.dataclass(frozen=True)
class QualityCheck:
  """One absolute-quality bound, as the gate records it."""
  metric: str
  value: float
  threshold: float
  comparison: str  # '>=' or '<='
  detail: str

  @property
  def passed(self) -> bool:
    # NaN compares false either way: an unmeasurable value fails.
    if self.comparison == '>=':
      return self.value >= self.threshold
    return self.value <= self.threshold


@dataclasses.dataclass(frozen=True)
class LabelRule:
  """What a raw column the label is read from must hold, checked on every
  split's statistics inside the pipeline (so a Kubeflow run, which has no
  local pre-run check, cannot train on a label it cannot read)."""
  column: str
  numeric: bool = False  # Numbers only (no text).
  complete: bool = False  # No row without a value, no NaN.
  min_value: Optional[float] = None
  max_value: Optional[float] = None
  expected: str = ''  # In words, for the error message.


class Accumulator(abc.ABC):
  """Sufficient statistics of (label, prediction) pairs, mergeable.

  ``add`` takes one example's label and prediction as numpy arrays (the
  shapes TFMA hands over); ``result`` returns floats by metric name (the
  task's metrics, ``example_count``, label statistics and the trivial
  predictor's scores on the same rows) plus lists for the report's figures.
  """

  @abc.abstractmethod
  def add(self, label: np.ndarray, prediction: np.ndarray) -> None:
    ...

  @abc.abstractmethod
  def merge(self, other: 'Accumulator') -> None:
    ...

  @abc.abstractmethod
  def result(self) -> Dict[str, Any]:
    ...

  def add_batch(self, labels: Sequence, predictions: Sequence) -> 'Accumulator':
    for label, prediction in zip(labels, predictions):
      self.add(np.asarray(label), np.asarray(prediction))
    return self


def safe_div(a: float, b: float) -> float:
  return a / b if b else float('nan')


def prior_skill_checks(held_out: Mapping[str, float], gate) -> List[QualityCheck]:
  """Classification's skill over the train prior, on the held-out split:
  accuracy as a share of the error the train majority class leaves, and
  1 - log loss over the prior's log loss (``majority_accuracy`` and
  ``prior_log_loss`` are the prior scored on the same rows)."""
  majority = held_out['majority_accuracy']
  return [
      QualityCheck(
          'accuracy_skill',
          safe_div(held_out['accuracy'] - majority, 1.0 - majority),
          gate.min_accuracy_skill, '>=',
          f"(accuracy {held_out['accuracy']:.4f} - train's majority class "
          f'{majority:.4f}) / (1 - majority)'),
      QualityCheck(
          'log_loss_skill',
          1.0 - safe_div(held_out['log_loss'], held_out['prior_log_loss']),
          gate.min_log_loss_skill, '>=',
          f"1 - log loss {held_out['log_loss']:.4f} / the prior's "
          f"{held_out['prior_log_loss']:.4f}"),
  ]


class Task(abc.ABC):
  """The interface; see the module docstring."""

  name: str = ''
  # By name, in display order.
  metrics: Mapping[str, Metric] = {}
  default_monitor: str = ''  # Early stopping's metric when none is set.
  default_max_gap: Mapping[str, float] = {}
  default_baseline_metric: str = ''
  # The serving output TFMA scores (the others are informative).
  prediction_key: str = ''
  # Report figures this task draws beyond curves and gaps, by renderer name.
  diagnostics: Tuple[str, ...] = ()
  # The trivial predictor's scores that the gate's metrics hold, for
  # summaries: (words, gate metric, the task metric it compares with,
  # format), e.g. ('majority class', 'majority_accuracy', 'accuracy', '.4f').
  trivial_scores: Tuple[Tuple[str, str, str, str], ...] = ()
  supports_label_smoothing: bool = True

  # -- configuration --------------------------------------------------------
  def validate_label(self, label) -> None:
    """Raises LabelError when the label section does not fit the task."""
    if label.target_transform is not None:
      raise LabelError(
          f'target_transform applies to regression only (task {self.name})')

  # -- reading raw values (the local pre-run check) ---------------------------
  @abc.abstractmethod
  def parse_label(self, row: Mapping[str, str], label) -> Any:
    """The label of one raw CSV row (strings by column), as Transform derives
    it; raises LabelError naming the column and the expected value."""

  @abc.abstractmethod
  def label_rules(self, label) -> List[LabelRule]:
    """The rules the label's raw columns follow (see :class:`LabelRule`)."""

  @abc.abstractmethod
  def check_labels(self, values: List[Any], label) -> None:
    """Raises LabelError when the labels, taken together, cannot be learnt
    (a constant label, a single class)."""

  # -- Transform --------------------------------------------------------------
  @abc.abstractmethod
  def transform_label(self, inputs: Mapping[str, Any], label):
    """The label tensor ``[batch, 1]`` that training and the gate see."""

  # -- Trainer --------------------------------------------------------------
  @abc.abstractmethod
  def label_info(self, train_labels: np.ndarray, label,
                 tf_transform_output) -> Dict[str, Any]:
    """What the model and the gate need to know about the label, from the
    train split's labels (as Transform wrote them) and Transform's output:
    the prior, the class names, the target's scale. JSON-able; written into
    the exported model (``TASK_JSON``)."""

  def check_split(self, labels: np.ndarray, label, split: str) -> None:
    """Raises LabelError when a split's transformed labels cannot be used."""

  @abc.abstractmethod
  def head(self, x, info: Mapping[str, Any], **dense_kwargs):
    """The output layer(s) on top of the last hidden tensor ``x``."""

  @abc.abstractmethod
  def loss(self, info: Mapping[str, Any], label_smoothing: float):
    ...

  @abc.abstractmethod
  def keras_metrics(self, info: Mapping[str, Any]) -> list:
    """Keras metrics named as ``metrics``, for the fit loop's curves."""

  @abc.abstractmethod
  def serving_outputs(self, output, info: Mapping[str, Any]) -> Dict[str, Any]:
    """The serving signature's outputs from the Keras model's output."""

  # -- the gate ---------------------------------------------------------------
  @abc.abstractmethod
  def accumulator(self, info: Mapping[str, Any]) -> Accumulator:
    ...

  @property
  def gate_metric_names(self) -> Tuple[str, ...]:
    """Every float ``Accumulator.result`` holds (the TFMA metric keys)."""
    return tuple(self.metrics) + ('example_count',) + self._extra_gate_metrics

  _extra_gate_metrics: Tuple[str, ...] = ()
  # Lists ``Accumulator.result`` holds for the report.
  gate_arrays: Tuple[str, ...] = ()

  @abc.abstractmethod
  def quality_checks(self, held_out: Mapping[str, float],
                     gate) -> List[QualityCheck]:
    """Absolute quality against the trivial predictor, on the held-out split."""

  # -- the pusher ------------------------------------------------------------
  @abc.abstractmethod
  def check_serving(self, outputs: Mapping[str, np.ndarray], count: int,
                    info: Mapping[str, Any]) -> None:
    """Raises LabelError when a serving response breaks the task's contract."""

  # -- shared ---------------------------------------------------------------
  def metric(self, name: str) -> Metric:
    return self.metrics[name]

  def monitor_mode(self, metric: str) -> str:
    return 'max' if self.metrics[metric].higher_is_better else 'min'

  @staticmethod
  def _rows(outputs: Mapping[str, np.ndarray], key: str, count: int,
            width: Optional[int] = None) -> np.ndarray:
    if key not in outputs:
      raise LabelError(f'no serving output {key!r}; got {sorted(outputs)}')
    values = np.asarray(outputs[key])
    if values.shape[0] != count:
      raise LabelError(f'{values.shape[0]} rows of {key!r} for {count} '
                       'examples')
    if width is not None and (values.ndim != 2 or values.shape[1] != width):
      raise LabelError(f'{key!r} has shape {values.shape}, expected '
                       f'({count}, {width})')
    return values


def number(text: str) -> Optional[float]:
  """The float in ``text``, or None when it is not a number."""
  try:
    return float(text)
  except ValueError:
    return None
