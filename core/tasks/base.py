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
Each accumulator can also keep bootstrap replicates of its statistics (a
Poisson bootstrap whose weights come from a hash of each example, see
:func:`poisson_table`), from which the gate takes its intervals.
"""

import abc
import dataclasses
import hashlib
import math
from typing import (Any, Callable, Dict, List, Mapping, Optional, Sequence,
                    Tuple)

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

  def gap(self, train, held_out):
    """Positive when the model does better on data it trained on. Floats or
    arrays (bootstrap replicates, elementwise)."""
    t, h = np.asarray(train, float), np.asarray(held_out, float)
    if self.relative_gap:
      with np.errstate(divide='ignore', invalid='ignore'):
        gap = np.where(t == 0, np.where(h == 0, 0.0, math.inf),
                       h / np.where(t == 0, 1.0, t) - 1.0)
    else:
      gap = t - h if self.higher_is_better else h - t
    return float(gap) if gap.ndim == 0 else gap


@dataclasses.dataclass(frozen=True)
class QualityCheck:
  """One absolute-quality bound, as the gate records it.

  ``replicates``: the checked statistic on each bootstrap replicate (None
  without replicates); ``exact``: the value is a count that is not
  estimated (rows of an unseen class), decided on its value alone.
  """
  metric: str
  value: float
  threshold: float
  comparison: str  # '>=' or '<='
  detail: str
  replicates: Optional[np.ndarray] = dataclasses.field(default=None,
                                                       compare=False)
  exact: bool = False

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
  # Every value of a held-out split is one the train split holds (classes).
  values_from_train: bool = False


# -- the bootstrap -----------------------------------------------------------
# Columns of the Poisson table. An example counts ``table[b, key % BUCKETS]``
# times in replicate b: examples whose keys share a column share their
# weights, a bootstrap of BUCKETS random clusters (exact below that many rows,
# and within 1/sqrt(BUCKETS) of it above).
BOOTSTRAP_BUCKETS = 4096
# Independent sets of rows (the gate's held-out split and train sample) get
# keys in different residues modulo STREAMS, hence disjoint table columns:
# their replicates are independent, so a gap's replicates are one side's minus
# the other's. Rows of the same stream scored by two models share weights:
# their difference is a paired bootstrap.
BOOTSTRAP_STREAMS = 2
_BOOTSTRAP_SEED = 14
_TABLES: Dict[int, np.ndarray] = {}
# Where ``Accumulator.result`` holds the replicates (name -> array), and the
# suffix of their names in a flat metrics mapping (as TFMA keys them).
REPLICATES = 'replicates'
REPLICATE_SUFFIX = '@replicates'
# Bootstrapped examples are buffered and added this many at a time.
_BATCH = 512


def poisson_table(replicates: int) -> np.ndarray:
  """``(replicates, BOOTSTRAP_BUCKETS)`` Poisson(1) counts, the same in every
  process and release (numpy's legacy generator, a fixed seed)."""
  table = _TABLES.get(replicates)
  if table is None:
    table = np.random.RandomState(_BOOTSTRAP_SEED).poisson(
        1.0, (replicates, BOOTSTRAP_BUCKETS)).astype(np.float64)
    table.setflags(write=False)
    _TABLES[replicates] = table
  return table


def bootstrap_key(record: bytes, stream: int) -> int:
  """An example's bootstrap key: a hash of its raw bytes (its feature values),
  in ``stream``'s residue class; fits an int64."""
  digest = hashlib.blake2b(record, digest_size=7,
                           person=b'gate-bootstrap').digest()
  return int.from_bytes(digest, 'big') * BOOTSTRAP_STREAMS + stream


def replicate_name(metric: str) -> str:
  """The key of ``metric``'s replicates in a flat metrics mapping."""
  return metric + REPLICATE_SUFFIX


def flatten(result: Mapping[str, Any]) -> Dict[str, Any]:
  """``Accumulator.result`` as one flat mapping (as the gate's TFMA metric
  emits it): the replicates of each metric under :func:`replicate_name`."""
  flat = {k: v for k, v in result.items() if k != REPLICATES}
  for name, values in (result.get(REPLICATES) or {}).items():
    flat[replicate_name(name)] = values
  return flat


def percentile_interval(replicates, confidence: float) -> Tuple[float, float]:
  """The bootstrap percentile interval; NaN when any replicate is not finite
  (the statistic is undefined on part of the resamples: not measurable)."""
  values = np.asarray(replicates, float)
  if values.size == 0 or not np.all(np.isfinite(values)):
    return math.nan, math.nan
  tail = (1.0 - confidence) / 2.0
  low, high = np.quantile(values, [tail, 1.0 - tail])
  return float(low), float(high)


class Accumulator(abc.ABC):
  """Sufficient statistics of (label, prediction) pairs, mergeable.

  ``add`` takes one example's label and prediction as numpy arrays (the
  shapes TFMA hands over); ``result`` returns floats by metric name (the
  task's metrics, ``example_count``, label statistics and the trivial
  predictor's scores on the same rows) plus lists for the report's figures.

  With ``replicates`` > 0, every statistic is also kept for that many
  bootstrap replicates, each example weighted by its column of
  :func:`poisson_table` (``add`` then needs the example's
  :func:`bootstrap_key`), and ``result()[REPLICATES]`` maps every float
  metric to its array of replicate values. Examples are buffered and added
  in batches (numpy, not a Python loop per replicate); ``merge`` and
  ``result`` add what is buffered first.

  A task implements ``_add(labels, predictions, weights)`` (``[n, ...]``
  arrays; weights ``[replicates, n]`` or None), ``_merge``, ``_result`` and
  ``_replicate_result``.
  """

  def __init__(self, replicates: int = 0):
    self.replicates = int(replicates)
    self._pending: List[Tuple[np.ndarray, np.ndarray, int]] = []

  def add(self, label: np.ndarray, prediction: np.ndarray,
          key: Optional[int] = None) -> None:
    if self.replicates and key is None:
      raise ValueError('an accumulator with bootstrap replicates needs each '
                       "example's bootstrap key")
    self._pending.append((np.ravel(label), np.ravel(prediction),
                          0 if key is None else int(key)))
    if len(self._pending) >= _BATCH:
      self._flush()

  def _flush(self) -> None:
    if not self._pending:
      return
    pending, self._pending = self._pending, []
    labels = np.stack([label for label, _, _ in pending])
    predictions = np.stack([prediction for _, prediction, _ in pending])
    weights = None
    if self.replicates:
      columns = np.array([key % BOOTSTRAP_BUCKETS for _, _, key in pending])
      weights = poisson_table(self.replicates)[:, columns]
    self._add(labels, predictions, weights)

  def merge(self, other: 'Accumulator') -> None:
    if other.replicates != self.replicates:
      raise ValueError(f'cannot merge {other.replicates} replicates into '
                       f'{self.replicates}')
    self._flush()
    other._flush()  # pylint: disable=protected-access
    self._merge(other)

  def result(self) -> Dict[str, Any]:
    self._flush()
    values = self._result()
    if self.replicates:
      values[REPLICATES] = {
          name: np.asarray(v, float)
          for name, v in self._replicate_result().items()}
    return values

  def add_batch(self, labels: Sequence, predictions: Sequence,
                keys: Optional[Sequence[int]] = None) -> 'Accumulator':
    keys = [None] * len(labels) if keys is None else keys
    for label, prediction, key in zip(labels, predictions, keys):
      self.add(np.asarray(label), np.asarray(prediction), key)
    return self

  @abc.abstractmethod
  def _add(self, labels: np.ndarray, predictions: np.ndarray,
           weights: Optional[np.ndarray]) -> None:
    ...

  @abc.abstractmethod
  def _merge(self, other: 'Accumulator') -> None:
    ...

  @abc.abstractmethod
  def _result(self) -> Dict[str, Any]:
    ...

  @abc.abstractmethod
  def _replicate_result(self) -> Dict[str, np.ndarray]:
    """Every float of ``_result`` (``Task.gate_metric_names``), one value
    per replicate."""


def weighted_sums(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
  """``[replicates, k]`` sums of per-example ``values`` ``[n, k]`` under
  ``weights`` ``[replicates, n]``. A NaN value (a diverged model's) makes
  every replicate's sum NaN, as it makes the point's."""
  return weights @ values


def weighted_counts(index: np.ndarray, size: int,
                    weights: np.ndarray) -> np.ndarray:
  """``[replicates, size]`` weighted counts of the integer ``index`` (one
  per example) under ``weights`` ``[replicates, n]``."""
  replicates, n = weights.shape
  flat = (np.arange(replicates)[:, None] * size + index[None, :]).ravel()
  return np.bincount(flat, weights=weights.ravel(),
                     minlength=replicates * size).reshape(replicates, size)


def safe_div(a: float, b: float) -> float:
  return a / b if b else float('nan')


def ratio(a, b):
  """``a / b`` for floats or arrays, NaN where ``b`` is 0."""
  a, b = np.asarray(a, float), np.asarray(b, float)
  with np.errstate(divide='ignore', invalid='ignore'):
    out = np.where(b != 0, a / np.where(b != 0, b, 1.0), math.nan)
  return float(out) if out.ndim == 0 else out


def quality_check(metric: str, statistic: Callable[[Mapping[str, Any]], Any],
                  held_out: Mapping[str, float],
                  replicates: Optional[Mapping[str, np.ndarray]],
                  threshold: float, comparison: str, detail: str,
                  exact: bool = False) -> QualityCheck:
  """A :class:`QualityCheck` of ``statistic`` (numpy arithmetic on a metrics
  mapping), on the point metrics and on every replicate."""
  reps = None
  if replicates is not None and not exact:
    reps = np.asarray(statistic(replicates), float)
  return QualityCheck(metric, float(statistic(held_out)), float(threshold),
                      comparison, detail, reps, exact)


def prior_skill_checks(held_out: Mapping[str, float], gate,
                       replicates: Optional[Mapping[str, np.ndarray]] = None
                       ) -> List[QualityCheck]:
  """Classification's skill over the train prior, on the held-out split:
  accuracy as a share of the error the train majority class leaves, and
  1 - log loss over the prior's log loss (``majority_accuracy`` and
  ``prior_log_loss`` are the prior scored on the same rows, so each
  replicate compares the model and the prior on the same resample)."""
  majority = held_out['majority_accuracy']
  return [
      quality_check(
          'accuracy_skill',
          lambda m: ratio(m['accuracy'] - m['majority_accuracy'],
                          1.0 - m['majority_accuracy']),
          held_out, replicates, gate.min_accuracy_skill, '>=',
          f"(accuracy {held_out['accuracy']:.4f} - train's majority class "
          f'{majority:.4f}) / (1 - majority)'),
      quality_check(
          'log_loss_skill',
          lambda m: 1.0 - ratio(m['log_loss'], m['prior_log_loss']),
          held_out, replicates, gate.min_log_loss_skill, '>=',
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
  # The head's output holds probabilities whose logits a temperature can
  # scale (``with_temperature``; components/trainer/calibration.py).
  supports_temperature: bool = False

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

  def with_temperature(self, output, temperature):
    """The head's ``output`` (a tensor) with its logits divided by
    ``temperature``; for a task that ``supports_temperature``."""
    raise NotImplementedError(f'task {self.name} has no probabilities to '
                              'scale')

  @abc.abstractmethod
  def serving_outputs(self, output, info: Mapping[str, Any]) -> Dict[str, Any]:
    """The serving signature's outputs from the Keras model's output."""

  # -- the gate ---------------------------------------------------------------
  @abc.abstractmethod
  def accumulator(self, info: Mapping[str, Any],
                  replicates: int = 0) -> Accumulator:
    """The gate's statistics, with ``replicates`` bootstrap replicates."""

  @property
  def gate_metric_names(self) -> Tuple[str, ...]:
    """Every float ``Accumulator.result`` holds (the TFMA metric keys)."""
    return tuple(self.metrics) + ('example_count',) + self._extra_gate_metrics

  _extra_gate_metrics: Tuple[str, ...] = ()
  # Lists ``Accumulator.result`` holds for the report.
  gate_arrays: Tuple[str, ...] = ()

  @abc.abstractmethod
  def quality_checks(self, held_out: Mapping[str, float], gate,
                     replicates: Optional[Mapping[str, np.ndarray]] = None
                     ) -> List[QualityCheck]:
    """Absolute quality against the trivial predictor, on the held-out split;
    with ``replicates`` (metric -> array), each check's statistic on every
    bootstrap replicate too."""

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
