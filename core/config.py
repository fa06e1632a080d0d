"""Typed, validated pipeline configuration.

Everything a user sets lives here: one YAML file (``configs/default.yaml`` is the
reference) plus dotted ``--set section.key=value`` overrides, parsed once by
:func:`load_config` into frozen dataclasses.  Nothing downstream converts
strings; every component receives these typed values (or their dict form, for
the components that can only take JSON-serialisable execution properties).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Mapping, Optional, Sequence, Tuple

import yaml

from core import tasks as tasks_lib


class ConfigError(ValueError):
  """A configuration value is missing, unknown or out of range."""


STRATEGIES = ('auto', 'one_device', 'mirrored', 'multi_worker', 'tpu')
REGULARIZATION_TECHNIQUES = ('l1', 'l2', 'dropout', 'weight_decay', 'max_norm',
                             'label_smoothing', 'early_stopping', 'batch_norm',
                             'input_noise', 'mixup', 'weight_averaging',
                             'lr_schedule')
# regularization.weight_averaging: an exponential moving average of the
# weights (every step) or stochastic weight averaging (every epoch's end).
WEIGHT_AVERAGING = ('ema', 'swa')
LR_SCHEDULES = ('constant', 'cosine', 'one_cycle')


def taxi_sample_path() -> str:
  """The Chicago taxi sample that ships inside the tfx wheel (15,002 rows)."""
  # Found, not imported: importing tfx takes seconds, and the pre-run check
  # that reads this file must answer before anything heavy loads.
  spec = importlib.util.find_spec('tfx')
  if spec is None or not spec.submodule_search_locations:
    raise ConfigError('data.path is not set and the tfx package (whose taxi '
                      'sample is the default data) is not installed')
  return os.path.join(list(spec.submodule_search_locations)[0],
                      'examples/chicago_taxi_pipeline/data/simple/data.csv')


@dataclass(frozen=True)
class LabelConfig:
  """The label and how it is read from the raw columns, per task.

  ``name`` is the column that holds the label (or, for a binary label
  derived from another column, the derived label's name). Binary: without
  ``column``, ``name`` holds 0/1, or a string compared with
  ``positive_value``; with ``column`` the label is ``column > threshold`` or,
  with ``relative_to``, ``column > threshold * relative_to`` (a missing
  source value gives 0). Multiclass: ``name`` holds the classes (strings or
  integers). Regression: ``name`` holds the numeric target;
  ``target_transform: log`` fits ``log1p`` of it (serving still answers in
  the original units). A bare string is shorthand for ``{name: ...}``.
  ``drop_missing``: rows without a value in a source column (the label's,
  or ``column`` and ``relative_to``) are dropped at ingestion, instead of
  refused (or, for a derived binary label, read as 0).
  """
  name: str = 'label'
  column: Optional[str] = None
  threshold: Optional[float] = None
  relative_to: Optional[str] = None
  positive_value: Optional[str] = None
  target_transform: Optional[str] = None
  drop_missing: bool = False

  @property
  def required_columns(self) -> Tuple[str, ...]:
    """The columns a row needs a value in to be ingested."""
    return self.source_columns if self.drop_missing else ()

  @property
  def source_columns(self) -> Tuple[str, ...]:
    if self.column is None:
      return (self.name,)
    return tuple(c for c in (self.column, self.relative_to) if c)


@dataclass(frozen=True)
class FeaturesConfig:
  """Which raw columns feed the model, and how Transform encodes them.

  ``auto``: the lists are to be inferred from the data (``features: auto``,
  a ``features`` section without ``numeric`` and ``categorical``, or none
  at all); ``pipeline.infer`` fills them in before anything runs, and every
  later stage sees explicit lists with ``auto`` false.
  """
  auto: bool = False
  numeric: Tuple[str, ...] = ()
  categorical: Tuple[str, ...] = ()
  # Numeric columns compressed with sign(x)*log1p(|x|) before z-scoring.
  log_scale: Tuple[str, ...] = ()
  vocab_size: int = 1000
  # Rarer tokens share the OOV buckets: a category seen a handful of times is
  # memorised, not learnt.
  min_frequency: int = 10
  oov_buckets: int = 10
  # How numeric columns are scaled (components/preprocessing.py): ``zscore``
  # (mean and standard deviation), ``robust`` (median and interquartile range,
  # then the smooth clip x / sqrt(1 + (x/3)^2)) or ``auto``: for the columns
  # whose statistics show heavy tails or outliers, robust plus the z-score as
  # a second input (the clip alone flattened nycflights13's dep_delay, whose
  # tail arr_delay follows), z-score otherwise. auto by default, measured on
  # seven datasets (docs/configuration.md, Numeric encodings).
  numeric_encoding: str = 'auto'
  # A categorical column with at least this many tokens (vocabulary plus OOV
  # buckets) is a learned embedding instead of a one-hot block; 0: never.
  embedding_min_vocab: int = 64
  # Embedding width min(embedding_max_dim, round(1.6 * tokens^0.56)) (fast.ai).
  embedding_max_dim: int = 16
  # The embedding's own regularization: an L2 penalty on its table and
  # dropout on its output.
  embedding_l2: float = 1e-4
  embedding_dropout: float = 0.1

  @property
  def all(self) -> Tuple[str, ...]:
    return self.numeric + self.categorical


@dataclass(frozen=True)
class SplitsConfig:
  """Hash-based splits: train fits, eval drives early stopping and tuning,
  test is held out for the gate."""
  train: int = 14
  eval: int = 3
  test: int = 3

  def as_buckets(self) -> Mapping[str, int]:
    return {'train': self.train, 'eval': self.eval, 'test': self.test}


NUMERIC_ENCODINGS = ('auto', 'zscore', 'robust')
CALIBRATIONS = ('temperature', 'none')

# data.format: ``auto`` (also written null) takes the format the file names
# claim (components.ingest.formats, which holds one object per format).
DATA_FORMATS = ('auto', 'csv', 'parquet', 'tfrecord')
# data.delimiter: the CSV's field separator, one character; ``auto`` (also
# written null) is a tab for .tsv and .tab files, else a comma.
AUTO_DELIMITER = 'auto'


# data.missing_values: CSV cells that are missing values, in every column
# (pandas.read_csv's default list, as of pandas 2: pandas 1.x lacks 'None').
# Stock CsvExampleGen treats only the empty cell as missing: ('',) is that.
PANDAS_MISSING_VALUES = (
    '', '#N/A', '#N/A N/A', '#NA', '-1.#IND', '-1.#QNAN', '-NaN', '-nan',
    '1.#IND', '1.#QNAN', '<NA>', 'N/A', 'NA', 'NULL', 'NaN', 'None', 'n/a',
    'nan', 'null')


def parse_missing_values(value: Any, where: str = 'data.missing_values'
                         ) -> Tuple[str, ...]:
  """``data.missing_values`` as a tuple of distinct strings, the empty cell
  first (always missing, listed or not: stock cannot write an empty value
  either); ConfigError for anything but a list of strings."""
  if isinstance(value, str):
    value = [value]  # One token; '' is the stock behaviour.
  if not isinstance(value, (list, tuple)):
    raise ConfigError(f'{where}: expected a list of strings (e.g. [\'\', NA]),'
                      f' got {value!r}')
  for i, token in enumerate(value):
    if not isinstance(token, str):
      # YAML reads null, NULL, ~, true, no, 1 and .nan unquoted as non-text.
      raise ConfigError(
          f'{where}[{i}]: expected a string, got {token!r} '
          f'({type(token).__name__}); quote it in YAML (e.g. \'NULL\', '
          '\'-999\')')
    if '\n' in token or '\r' in token:
      raise ConfigError(f'{where}[{i}]: {token!r} spans lines; a token is '
                        'matched against one whole cell')
  return tuple(dict.fromkeys(('',) + tuple(value)))


@dataclass(frozen=True)
class DataConfig:
  # A file, a folder or a glob of CSV (.csv, .csv.gz), Parquet or TFRecord
  # files; None: the taxi sample inside the tfx wheel.
  path: Optional[str] = None
  format: str = 'auto'
  # CSV only: cells (whole, as read: quotes removed, spaces kept) that are
  # missing values in every column; ('',) is stock CsvExampleGen's rule.
  missing_values: Tuple[str, ...] = PANDAS_MISSING_VALUES
  delimiter: str = AUTO_DELIMITER  # CSV only: ',', ';', '\t', '|', ...
  label: LabelConfig = field(default_factory=LabelConfig)
  # Left out of a user's data section: inferred from the data.
  features: FeaturesConfig = field(
      default_factory=lambda: FeaturesConfig(auto=True))
  splits: SplitsConfig = field(default_factory=SplitsConfig)
  schema_path: Optional[str] = None  # A curated schema (ImportSchemaGen).

  @property
  def resolved_path(self) -> str:
    return self.path or taxi_sample_path()


@dataclass(frozen=True)
class EarlyStoppingConfig:
  # Monitored on the eval split as ``val_<metric>``; None: the task's default
  # (filled in by ``validate``).
  metric: Optional[str] = None
  patience: int = 4
  min_delta: float = 1e-4

  @property
  def monitor(self) -> str:
    return f'val_{self.metric}'


@dataclass(frozen=True)
class PeriodicEmbeddingConfig:
  """Periodic embeddings of numeric features (Gorishniy et al., 2022, "PLR"):
  each numeric feature x becomes ReLU(W [cos 2πcx, sin 2πcx] + b), with its
  own learned frequencies c (``frequencies`` of them, initialized from
  N(0, sigma^2)) and its own ``dim``-wide linear layer (under the kernels'
  L1/L2 penalty), in place of the raw value, which the first layer can only
  use as a line."""
  frequencies: int = 16
  sigma: float = 0.1
  dim: int = 16


@dataclass(frozen=True)
class RegularizationConfig:
  """Every technique is off at its zero value; ``none`` is all of them off."""
  l1: float = 0.0
  l2: float = 0.0
  dropout: float = 0.0
  weight_decay: float = 0.0  # Decoupled (AdamW); biases and norms excluded.
  max_norm: Optional[float] = None
  label_smoothing: float = 0.0
  early_stopping: Optional[EarlyStoppingConfig] = None
  # Batch normalization after each hidden Dense layer (before its ReLU).
  batch_norm: bool = False
  # Stddev of Gaussian noise added to the encoded features, in training only.
  input_noise: float = 0.0
  # Mixup's Beta(alpha, alpha) concentration: examples and their labels are
  # mixed in pairs within each training batch (0: off).
  mixup: float = 0.0
  # ema | swa (None: off); the model ends with (and is evaluated with) the
  # averaged weights.
  weight_averaging: Optional[str] = None
  ema_decay: float = 0.99  # Per step, for ``ema``.
  swa_start: int = 5  # For ``swa``: the first epoch (1-based) averaged.
  # constant | cosine | one_cycle, over ``epochs * steps_per_epoch`` steps.
  lr_schedule: str = 'constant'
  # Fraction of the planned steps spent warming up linearly (cosine; 0:
  # none; one_cycle: 0.3 when 0).
  lr_warmup: float = 0.0

  @property
  def active(self) -> Tuple[str, ...]:
    """Names of the techniques in force, for reports."""
    names = []
    if self.l1 and self.l2:
      names.append('elastic_net')
    elif self.l1:
      names.append('l1')
    elif self.l2:
      names.append('l2')
    for name in ('dropout', 'weight_decay', 'max_norm', 'label_smoothing',
                 'early_stopping', 'batch_norm', 'input_noise', 'mixup'):
      if getattr(self, name):
        names.append(name)
    if self.weight_averaging:
      names.append(self.weight_averaging)  # 'ema' or 'swa'.
    if self.lr_schedule != 'constant':
      names.append(f'{self.lr_schedule}_lr')
    return tuple(names)


# Small train splits get smaller batches, down to this, so that an epoch has
# at least MIN_STEPS steps (ModelConfig.batch_size_for).
MIN_BATCH_SIZE = 16
MIN_STEPS = 8


@dataclass(frozen=True)
class ModelConfig:
  hidden_units: Tuple[int, ...] = (64, 32)
  learning_rate: float = 3e-3
  # Per replica, at most (see batch_size_for); the global batch scales with
  # replicas.
  batch_size: int = 256
  epochs: int = 30
  train_eval_sample: int = 4096  # Train rows re-evaluated each epoch.
  seed: int = 42
  # Splits whose (compressed) files total at most this are parsed once into
  # memory; larger ones are streamed from disk every epoch.
  in_memory_max_mb: int = 256
  # Classification: the probabilities' temperature, fitted on the eval split
  # after training (components/trainer/calibration.py), or ``none``.
  calibration: str = 'temperature'
  # A deep ensemble on small data (Lakshminarayanan et al., 2017): while the
  # train split has at most ensemble_max_rows rows, ensemble_size networks
  # from different seeds, each trained and early-stopped on its own, are
  # averaged into the exported model; above it, one network. On a few
  # hundred rows one network's held-out loss varies with its seed as much as
  # with its settings; the average's is lower and steadier, at the cost of
  # training ensemble_size networks where each takes seconds.
  ensemble_size: int = 5
  ensemble_max_rows: int = 5000
  # Numeric features through periodic embeddings (``true`` for the defaults
  # of PeriodicEmbeddingConfig); null: the encoded value as it is.
  numeric_embedding: Optional[PeriodicEmbeddingConfig] = None

  @property
  def in_memory_max_bytes(self) -> int:
    return self.in_memory_max_mb << 20

  def batch_size_for(self, train_rows: int) -> int:
    """The per-replica batch for a train split of ``train_rows``:
    ``batch_size``, lowered on small data (to a power of two, not below
    ``MIN_BATCH_SIZE``) so that an epoch has at least ``MIN_STEPS`` steps;
    256 rows a batch on a 240-row train split would be one step an epoch."""
    fitting = 2 ** max(0, int(math.log2(max(train_rows, 1) / MIN_STEPS)))
    return min(self.batch_size, max(MIN_BATCH_SIZE, fitting))

  def ensemble_members(self, train_rows: int) -> int:
    """How many networks the Trainer averages for ``train_rows`` rows."""
    return self.ensemble_size if train_rows <= self.ensemble_max_rows else 1


@dataclass(frozen=True)
class TuningConfig:
  """Optional budgeted KerasTuner Bayesian search over the regularization
  cocktail, the width and depth and the learning rate (the space:
  ``components.trainer.tuning.search_space``)."""
  enabled: bool = False
  max_trials: int = 20  # An upper bound; the budget usually ends it first.
  epochs: int = 8  # Per trial, at most (early stopping ends trials sooner).
  budget_minutes: float = 10.0  # Wall time of the whole search.
  # Widths searched: min_width..max_width in steps of min_width; depths 1..
  min_width: int = 32
  max_width: int = 256
  max_depth: int = 3
  # A trial whose train-minus-eval gap passes this fraction of the gate's
  # max_gap (any gap metric) ranks lower, by how far it passes: room for the
  # gate's interval on test. A large value ranks by the eval metric alone.
  gap_fraction: float = 0.5
  # A trial other than the first (the configuration as given) reaches the
  # Trainer only when its eval objective beats the first's by more than eval
  # noise: the chance that a search hands on a change no better than the
  # configuration is at most this (a one-sided test per trial on the paired
  # bootstrap standard error, Bonferroni over the trials; see
  # tuning.improvement_threshold). Larger hands on smaller improvements.
  change_error_rate: float = 0.05


@dataclass(frozen=True)
class ReportConfig:
  """What the run report measures beyond what the pipeline itself needs."""
  # Train the same network (hidden units, learning rate, inputs, epochs)
  # once more without any regularization, inside the Trainer, for the
  # report's "what regularization bought" line; off by default because it
  # is a second training.
  compare_unregularized: bool = False


@dataclass(frozen=True)
class DistributionConfig:
  strategy: str = 'auto'
  devices: Tuple[str, ...] = ()  # For ``mirrored``; empty means all local.
  tpu_address: Optional[str] = None  # For ``tpu``/``auto``: grpc://host:port or name.


# gate.inconclusive_<kind>: an inconclusive check blocks the blessing, or
# its point estimate decides (never more lenient than the point estimate).
INCONCLUSIVE = ('block', 'point')
# Percentiles of fewer replicates are noise; more cost memory in every
# slice's accumulator.
MIN_BOOTSTRAP_REPLICATES = 100
MAX_BOOTSTRAP_REPLICATES = 2000


@dataclass(frozen=True)
class GateConfig:
  """The generalization gate (docs/gate.md).

  ``max_gap`` bounds the train-minus-held-out gap per metric of the task
  (relative, held-out / train - 1, for RMSE and MAE); entries given here
  replace the task's defaults one by one.  Absolute quality is skill over the
  trivial predictor (the train split's prior or mean); each task uses the
  bounds that apply to it.  No regression: against the latest blessed model,
  ``baseline_metric`` (default: the task's) may not be worse by more than
  ``baseline_tolerance`` (relative for RMSE and MAE).

  Every check is decided on a ``confidence`` interval (a bootstrap of
  ``bootstrap_replicates`` replicates; 0 decides on point estimates): wholly
  on the right side of its threshold it passes, wholly on the wrong side it
  fails, across it the check is inconclusive and ``inconclusive_<kind>``
  says what that means: ``block`` (not blessed) or ``point`` (the point
  estimate decides). The train sample holds as many rows as the held-out
  split, at least ``train_sample_size`` and at most
  ``train_sample_max_size``.
  """
  max_gap: Mapping[str, float] = field(default_factory=dict)
  # Classification: (accuracy - majority) / (1 - majority), and 1 - log loss
  # over the prior's log loss.
  min_accuracy_skill: float = 0.0
  min_log_loss_skill: float = 0.02
  # Binary: AUC, and (PR-AUC - positive rate) / (1 - positive rate).
  min_auc: float = 0.6
  min_pr_auc_skill: float = 0.05
  # Regression: 1 - MSE / MSE of the train mean, and RMSE at most
  # (1 - rmse_margin) times the train mean's.
  min_r2_skill: float = 0.05
  rmse_margin: float = 0.02
  baseline_metric: Optional[str] = None
  baseline_tolerance: float = 0.005
  train_sample_size: int = 2000
  train_sample_max_size: int = 20000
  slice_features: Tuple[str, ...] = ()
  slice_max_gap: float = 0.08
  slice_min_examples: int = 200
  bootstrap_replicates: int = 200
  confidence: float = 0.95
  inconclusive_quality: str = 'point'
  inconclusive_baseline: str = 'block'
  inconclusive_gap: str = 'block'
  # Allows thresholds that switch a check off (GATE_BOUNDS); never by default.
  permissive: bool = False

  def inconclusive(self, kind: str) -> str:
    """What an inconclusive check of ``kind`` means: 'block' or 'point'."""
    return getattr(self, f'inconclusive_{kind}')


@dataclass(frozen=True)
class BeamConfig:
  runner: str = 'DirectRunner'
  # auto: in_memory below ``multi_processing_above_rows`` input rows.
  direct_running_mode: str = 'auto'
  direct_num_workers: int = 0  # 0: one per core.
  multi_processing_above_rows: int = 200_000
  extra_args: Tuple[str, ...] = ()
  # ExampleGen and StatisticsGen run their stock Beam path whatever the input
  # size (components/beam_fallback.py): to exercise a distributed runner.
  force_beam_executors: bool = False


@dataclass(frozen=True)
class OutputConfig:
  root: str = 'outputs'
  # Below root unless absolute.
  pipeline_root: str = 'pipeline_root'
  metadata_path: str = 'metadata.sqlite'
  serving_dir: str = 'serving_model'

  def resolve(self, path: str) -> str:
    return path if os.path.isabs(path) or '://' in path else os.path.join(
        self.root, path)


def pipeline_name_for(data_path: Optional[str], label: str) -> str:
  """``<file stem>-<label>`` in the characters Kubeflow accepts in a name
  (lower-case letters, digits, dashes; at most 63). For a glob, the fixed
  part of its file pattern (``part-*.parquet``: ``part``), else the folder
  the pattern is in (``sales/*.csv``: ``sales``)."""
  parts = str(data_path or 'taxi').rstrip('/').split('/')
  stem = ''
  while parts and not stem:
    stem = re.sub(r'\*|\?|\[[^]]*\]', '', parts.pop())
    for suffix in ('.gz', '.csv', '.txt', '.parquet', '.tfrecord'):
      stem = stem[:-len(suffix)] if stem.lower().endswith(suffix) else stem
    stem = stem.strip('-_. ')
  name = re.sub(r'[^a-z0-9]+', '-', f'{stem}-{label}'.lower()).strip('-')
  return name[:63].rstrip('-') or 'pipeline'


@dataclass(frozen=True)
class PipelineConfig:
  # None: derived from the data and the label (``pipeline_name_for``); the
  # default configuration names the taxi pipeline.
  pipeline_name: Optional[str] = 'taxi-generalize'
  task: str = 'binary'  # binary | multiclass | regression (core/tasks/)
  data: DataConfig = field(default_factory=DataConfig)
  model: ModelConfig = field(default_factory=ModelConfig)
  regularization: RegularizationConfig = field(
      default_factory=RegularizationConfig)
  tuning: TuningConfig = field(default_factory=TuningConfig)
  report: ReportConfig = field(default_factory=ReportConfig)
  distribution: DistributionConfig = field(default_factory=DistributionConfig)
  gate: GateConfig = field(default_factory=GateConfig)
  beam: BeamConfig = field(default_factory=BeamConfig)
  output: OutputConfig = field(default_factory=OutputConfig)

  def to_dict(self) -> dict:
    return to_plain(self)


# --------------------------------------------------------------------------
# Parsing.


def to_plain(value: Any) -> Any:
  """Any config value (a whole config or one section) as plain JSON types."""
  if dataclasses.is_dataclass(value):
    return {f.name: to_plain(getattr(value, f.name))
            for f in dataclasses.fields(value)}
  if isinstance(value, (tuple, list)):
    return [to_plain(v) for v in value]
  if isinstance(value, Mapping):
    return {k: to_plain(v) for k, v in value.items()}
  return value


def _coerce(value: Any, annotation: str, where: str) -> Any:
  """Coerces a YAML value to the field's annotated type, or raises."""
  optional = annotation.startswith('Optional[')
  if optional:
    if value is None or (value is False and annotation[
        len('Optional['):-1] in _SWITCHED):
      return None  # ``early_stopping: false`` turns it off, as null does.
    annotation = annotation[len('Optional['):-1]
  if annotation in _DATACLASSES:
    return _build(_DATACLASSES[annotation], value, where)
  if annotation == 'bool':
    if not isinstance(value, bool):
      raise ConfigError(f'{where}: expected true or false, got {value!r}')
    return value
  if annotation == 'int':
    if isinstance(value, bool) or not isinstance(value, int):
      raise ConfigError(f'{where}: expected an integer, got {value!r}')
    return value
  if annotation == 'float':
    if isinstance(value, str):
      try:
        value = float(value)
      except ValueError:
        raise ConfigError(f'{where}: expected a number, got {value!r}') from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
      raise ConfigError(f'{where}: expected a number, got {value!r}')
    if not math.isfinite(value):
      # A NaN bound compares false with everything: it would switch a check
      # off (or fail it) silently.
      raise ConfigError(f'{where}: expected a finite number, got {value!r}')
    return float(value)
  if annotation == 'str':
    if not isinstance(value, str):
      raise ConfigError(f'{where}: expected a string, got {value!r}')
    return value
  if annotation.startswith('Tuple['):
    if isinstance(value, str):
      value = [v.strip() for v in value.split(',') if v.strip()]
    if not isinstance(value, (list, tuple)):
      raise ConfigError(f'{where}: expected a list, got {value!r}')
    item = annotation[len('Tuple['):-len(', ...]')]
    return tuple(_coerce(v, item, f'{where}[{i}]') for i, v in enumerate(value))
  if annotation.startswith('Mapping[str, float]'):
    if not isinstance(value, Mapping):
      raise ConfigError(f'{where}: expected a mapping, got {value!r}')
    return {str(k): _coerce(v, 'float', f'{where}.{k}') for k, v in value.items()}
  raise TypeError(f'unhandled annotation {annotation} at {where}')


def _build(cls, raw: Any, where: str):
  if dataclasses.is_dataclass(raw):
    return raw
  if cls is RegularizationConfig and raw == 'none':
    return RegularizationConfig()
  if cls.__name__ in _SWITCHED and raw is True:
    return cls()
  if cls is LabelConfig and isinstance(raw, str):
    raw = {'name': raw}
  if cls is FeaturesConfig:
    raw = _features_raw(raw)
  if cls is DataConfig and isinstance(raw, Mapping) and (
      'format' in raw and raw['format'] is None):
    raw = {**raw, 'format': 'auto'}  # ``format: null`` means infer it too.
  if cls is DataConfig and isinstance(raw, Mapping) and (
      'delimiter' in raw and raw['delimiter'] is None):
    raw = {**raw, 'delimiter': AUTO_DELIMITER}
  if cls is DataConfig and isinstance(raw, Mapping) and (
      'missing_values' in raw):
    raw = {**raw, 'missing_values': parse_missing_values(
        raw['missing_values'])}
  if raw is None:
    raw = {}
  if not isinstance(raw, Mapping):
    raise ConfigError(
        f'{where or "top level"}: expected a mapping, got {raw!r}')
  fields = {f.name: f for f in dataclasses.fields(cls)}
  unknown = sorted(set(raw) - set(fields))
  if unknown:
    kind = 'technique' if cls is RegularizationConfig else 'key'
    raise ConfigError(
        f'{where or "top level"}: unknown {kind} '
        f'{", ".join(map(repr, unknown))}; '
        f'expected one of: {", ".join(fields)}')
  kwargs = {name: _coerce(raw[name], fields[name].type, f'{where}.{name}'
                          if where else name)
            for name in raw}
  return cls(**kwargs)


def _features_raw(raw: Any) -> Any:
  """``features: auto``, ``null`` or a section naming neither list (only,
  say, ``min_frequency``) all mean: infer the lists from the data."""
  if raw == 'auto' or raw is None:
    return {'auto': True}
  if (isinstance(raw, Mapping) and 'auto' not in raw
      and 'numeric' not in raw and 'categorical' not in raw):
    return {**raw, 'auto': True}
  return raw


# Optional sections that ``true`` turns on with their defaults and
# ``false`` turns off.
_SWITCHED = ('EarlyStoppingConfig', 'PeriodicEmbeddingConfig')

_DATACLASSES = {cls.__name__: cls for cls in (
    LabelConfig, FeaturesConfig, SplitsConfig, DataConfig, EarlyStoppingConfig,
    PeriodicEmbeddingConfig, RegularizationConfig, ModelConfig, TuningConfig,
    ReportConfig, DistributionConfig,
    GateConfig, BeamConfig, OutputConfig, PipelineConfig)}


def _validate_tuning(t: TuningConfig) -> None:
  if not (isinstance(t.budget_minutes, (int, float)) and
          math.isfinite(t.budget_minutes) and t.budget_minutes > 0):
    raise ConfigError(f'tuning.budget_minutes: must be a number > 0, got '
                      f'{t.budget_minutes!r}')
  for name in ('max_trials', 'epochs', 'min_width', 'max_width', 'max_depth'):
    if getattr(t, name) < 1:
      raise ConfigError(f'tuning.{name}: must be >= 1, got {getattr(t, name)}')
  if t.max_width < t.min_width:
    raise ConfigError(f'tuning.max_width: must be >= min_width '
                      f'({t.min_width}), got {t.max_width}')
  if not (isinstance(t.gap_fraction, (int, float)) and
          math.isfinite(t.gap_fraction) and t.gap_fraction > 0):
    raise ConfigError(f'tuning.gap_fraction: must be a number > 0, got '
                      f'{t.gap_fraction!r}')
  if not (isinstance(t.change_error_rate, (int, float)) and
          0 < t.change_error_rate < 1):
    raise ConfigError(f'tuning.change_error_rate: must be a number in (0, 1), '
                      f'got {t.change_error_rate!r}')


def validate(config: PipelineConfig) -> PipelineConfig:
  """Raises ConfigError on the first value out of range; returns the config
  with the task's defaults filled in (early stopping metric, gate gaps and
  baseline metric)."""
  if config.task not in tasks_lib.TASKS:
    raise ConfigError(f'task: unknown task {config.task!r}; expected one of '
                      f'{", ".join(tasks_lib.TASKS)}')
  task = tasks_lib.get(config.task)
  _validate_tuning(config.tuning)
  try:
    task.validate_label(config.data.label)
  except tasks_lib.LabelError as e:
    raise ConfigError(f'data.label: {e}') from None
  if config.pipeline_name is None:
    config = dataclasses.replace(config, pipeline_name=pipeline_name_for(
        config.data.path, config.data.label.name))
  elif not re.fullmatch(r'[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?',
                        config.pipeline_name):
    raise ConfigError(f'pipeline_name: {config.pipeline_name!r}: use lower-case '
                      'letters, digits and dashes (at most 63), as Kubeflow '
                      'requires')
  r = config.regularization
  if r.label_smoothing and not task.supports_label_smoothing:
    raise ConfigError(f'regularization.label_smoothing: smooths class labels; '
                      f'task {task.name} has none')
  for name in ('l1', 'l2', 'weight_decay', 'label_smoothing'):
    if getattr(r, name) < 0:
      raise ConfigError(
          f'regularization.{name}: strength must be >= 0, got {getattr(r, name)}')
  if not 0.0 <= r.dropout < 1.0:
    raise ConfigError(
        f'regularization.dropout: rate must be in [0, 1), got {r.dropout}')
  if r.label_smoothing >= 1.0:
    raise ConfigError('regularization.label_smoothing: must be in [0, 1), '
                      f'got {r.label_smoothing}')
  if r.max_norm is not None and r.max_norm <= 0:
    raise ConfigError(f'regularization.max_norm: must be > 0, got {r.max_norm}')
  for name in ('input_noise', 'mixup'):
    if getattr(r, name) < 0:
      raise ConfigError(
          f'regularization.{name}: must be >= 0 (0: off), got {getattr(r, name)}')
  if r.weight_averaging in ('none', 'off'):
    r = dataclasses.replace(r, weight_averaging=None)
    config = dataclasses.replace(config, regularization=r)
  if (r.weight_averaging is not None
      and r.weight_averaging not in WEIGHT_AVERAGING):
    raise ConfigError(
        f'regularization.weight_averaging: expected {" or ".join(WEIGHT_AVERAGING)}'
        f' (or null: off), got {r.weight_averaging!r}')
  if not 0.0 < r.ema_decay < 1.0:
    raise ConfigError(
        f'regularization.ema_decay: must be in (0, 1), got {r.ema_decay}')
  if r.swa_start < 1:
    raise ConfigError(
        f'regularization.swa_start: an epoch, >= 1; got {r.swa_start}')
  if r.lr_schedule not in LR_SCHEDULES:
    raise ConfigError(
        f'regularization.lr_schedule: expected one of {", ".join(LR_SCHEDULES)}'
        f', got {r.lr_schedule!r}')
  if not 0.0 <= r.lr_warmup < 1.0:
    raise ConfigError(
        f'regularization.lr_warmup: a fraction of the planned steps in [0, 1),'
        f' got {r.lr_warmup}')
  if r.early_stopping is not None:
    es = r.early_stopping
    if es.metric is None:
      es = dataclasses.replace(es, metric=task.default_monitor)
      r = dataclasses.replace(r, early_stopping=es)
      config = dataclasses.replace(config, regularization=r)
    if es.metric not in task.metrics:
      raise ConfigError(
          f'regularization.early_stopping.metric: unknown metric {es.metric!r}; '
          f'a {task.name} model reports {", ".join(task.metrics)} on the eval '
          'split')
    if es.patience < 0 or es.min_delta < 0:
      raise ConfigError('regularization.early_stopping: patience and min_delta '
                        'must be >= 0')
  m = config.model
  if not m.hidden_units or any(u <= 0 for u in m.hidden_units):
    raise ConfigError(
        f'model.hidden_units: expected positive layer sizes, got {m.hidden_units}')
  for name in ('batch_size', 'epochs', 'train_eval_sample', 'ensemble_size'):
    if getattr(m, name) <= 0:
      raise ConfigError(f'model.{name}: must be > 0, got {getattr(m, name)}')
  if m.learning_rate <= 0:
    raise ConfigError(f'model.learning_rate: must be > 0, got {m.learning_rate}')
  if m.ensemble_max_rows < 0:
    raise ConfigError(
        f'model.ensemble_max_rows: must be >= 0 (0: one network), got '
        f'{m.ensemble_max_rows}')
  if m.in_memory_max_mb < 0:
    raise ConfigError(
        f'model.in_memory_max_mb: must be >= 0 (0 streams every split), got '
        f'{m.in_memory_max_mb}')
  if m.calibration not in CALIBRATIONS:
    raise ConfigError(f'model.calibration: unknown {m.calibration!r}; expected '
                      f'one of {", ".join(CALIBRATIONS)}')
  pe = m.numeric_embedding
  if pe is not None and (pe.frequencies <= 0 or pe.dim <= 0 or pe.sigma <= 0):
    raise ConfigError(
        'model.numeric_embedding: frequencies, dim and sigma must be > 0, got '
        f'{pe.frequencies}, {pe.dim} and {pe.sigma}')
  d = config.data
  if d.format not in DATA_FORMATS:
    raise ConfigError(f'data.format: unknown format {d.format!r}; expected '
                      f'one of {", ".join(DATA_FORMATS)}')
  if d.delimiter != AUTO_DELIMITER and (
      not isinstance(d.delimiter, str) or len(d.delimiter) != 1
      or d.delimiter in '"\r\n'):
    raise ConfigError(
        f'data.delimiter: expected {AUTO_DELIMITER} or one character other '
        f'than a quote or a line end (e.g. \';\', "\\t" for a tab), got '
        f'{d.delimiter!r}')
  missing_values = parse_missing_values(d.missing_values)
  if missing_values != d.missing_values:
    d = dataclasses.replace(d, missing_values=missing_values)
    config = dataclasses.replace(config, data=d)
  if d.path is not None and not d.path.strip():
    raise ConfigError('data.path: empty; name a file, a folder or a glob (or '
                      'leave it out for the taxi sample)')
  if d.features.auto:
    given = [k for k in ('numeric', 'categorical', 'log_scale')
             if getattr(d.features, k)]
    if given:
      raise ConfigError(
          f'data.features: auto infers {", ".join(given)} from the data; '
          'leave them out, or list numeric and categorical yourself')
  elif not d.features.all:
    raise ConfigError('data.features: list at least one numeric or '
                      'categorical feature (or leave data.features out to '
                      'infer them from the data)')
  # The column a label is thresholded from gives the answer away; the
  # column it is compared relative to (the taxi's fare) does not.
  overlap = set(d.features.all) & ({d.label.name, d.label.column} - {None})
  if overlap:
    raise ConfigError(
        f'data.features: {sorted(overlap)} would leak the label '
        f'{d.label.name!r} into the inputs')
  for name in ('vocab_size', 'min_frequency', 'oov_buckets'):
    if getattr(d.features, name) < 1:
      raise ConfigError(f'data.features.{name}: must be >= 1, got '
                        f'{getattr(d.features, name)}')
  if d.features.numeric_encoding not in NUMERIC_ENCODINGS:
    raise ConfigError(
        f'data.features.numeric_encoding: unknown {d.features.numeric_encoding!r}; '
        f'expected one of {", ".join(NUMERIC_ENCODINGS)}')
  for name in ('embedding_min_vocab', 'embedding_l2', 'embedding_dropout'):
    if getattr(d.features, name) < 0:
      raise ConfigError(f'data.features.{name}: must be >= 0, got '
                        f'{getattr(d.features, name)}')
  if d.features.embedding_max_dim < 1 or d.features.embedding_dropout >= 1:
    raise ConfigError('data.features: embedding_max_dim must be >= 1 and '
                      'embedding_dropout below 1')
  unknown_log = set(d.features.log_scale) - set(d.features.numeric)
  if unknown_log:
    raise ConfigError(f'data.features.log_scale: {sorted(unknown_log)} are not '
                      'numeric features')
  for split, buckets in d.splits.as_buckets().items():
    if buckets <= 0:
      raise ConfigError(f'data.splits.{split}: must be > 0, got {buckets}')
  if config.distribution.strategy not in STRATEGIES:
    raise ConfigError(
        f'distribution.strategy: unknown strategy '
        f'{config.distribution.strategy!r}; expected one of {", ".join(STRATEGIES)}')
  config = dataclasses.replace(config, gate=_validate_gate(config.gate, task))
  if config.beam.direct_running_mode not in ('auto', 'in_memory',
                                             'multi_threading',
                                             'multi_processing'):
    raise ConfigError(
        'beam.direct_running_mode: expected auto, in_memory, multi_threading '
        f'or multi_processing, got {config.beam.direct_running_mode!r}')
  for arg in config.beam.extra_args:
    # Beam drops what it cannot parse with only a warning in the run log.
    if not arg.startswith('--'):
      raise ConfigError(f'beam.extra_args: {arg!r} is not a --flag')
    if arg.startswith('--runner='):
      raise ConfigError(f'beam.extra_args: {arg!r}: set beam.runner instead')
  return config


# A gap or tolerance (absolute, or relative for RMSE and MAE) beyond this
# passes any model.
MAX_LOOSE_BOUND = 0.5
# Bounds a production gate keeps unless ``gate.permissive`` is set: past
# them a check no longer means what its name says (an AUC floor at or below
# chance, a skill floor at or below the trivial predictor, a gap or a
# baseline tolerance so wide that nothing fails).
GATE_BOUNDS = {
    'min_accuracy_skill': (0.0, 1.0, 'at least 0: no worse than the majority '
                           'class'),
    'min_log_loss_skill': (1e-9, 1.0, 'above 0: better than the prior'),
    'min_auc': (0.5 + 1e-9, 1.0, 'above 0.5: better than chance'),
    'min_pr_auc_skill': (1e-9, 1.0, 'above 0: better than the positive rate'),
    'min_r2_skill': (1e-9, 1.0, 'above 0: better than the train mean'),
    'rmse_margin': (0.0, 1.0, 'at least 0: no worse than the train mean'),
    'baseline_tolerance': (0.0, MAX_LOOSE_BOUND, 'between 0 and '
                           f'{MAX_LOOSE_BOUND}'),
}


def _refuse_switched_off(g: GateConfig) -> None:
  """Raises ConfigError on a threshold that would switch its check off."""
  for name, (low, high, meaning) in GATE_BOUNDS.items():
    value = getattr(g, name)
    if not low <= value <= high:
      raise ConfigError(
          f'gate.{name}: {value} switches the check off; expected {meaning}. '
          'Set gate.permissive: true to allow it (small experiments only)')
  for metric, gap in {**g.max_gap, '': g.slice_max_gap}.items():
    if gap > MAX_LOOSE_BOUND:
      where = f'max_gap.{metric}' if metric else 'slice_max_gap'
      raise ConfigError(
          f'gate.{where}: {gap} lets any gap pass; expected at most '
          f'{MAX_LOOSE_BOUND}. Set gate.permissive: true to allow it (small '
          'experiments only)')


def _validate_gate(g: GateConfig, task: tasks_lib.Task) -> GateConfig:
  """Checks ``g`` against ``task``; returns it with the task's defaults."""
  known = ", ".join(task.metrics)
  for metric, gap in g.max_gap.items():
    if metric not in task.metrics:
      raise ConfigError(f'gate.max_gap: unknown metric {metric!r}; a '
                        f'{task.name} model reports {known}')
    if gap < 0:
      raise ConfigError(f'gate.max_gap.{metric}: must be >= 0, got {gap}')
  baseline = g.baseline_metric or task.default_baseline_metric
  if baseline not in task.metrics:
    raise ConfigError(f'gate.baseline_metric: unknown metric {baseline!r}; a '
                      f'{task.name} model reports {known}')
  if g.train_sample_size <= 0:
    raise ConfigError('gate.train_sample_size: must be > 0')
  if g.train_sample_max_size < g.train_sample_size:
    raise ConfigError(
        f'gate.train_sample_max_size: must be >= train_sample_size '
        f'({g.train_sample_size}), got {g.train_sample_max_size}')
  if g.bootstrap_replicates != 0 and not (
      MIN_BOOTSTRAP_REPLICATES <= g.bootstrap_replicates
      <= MAX_BOOTSTRAP_REPLICATES):
    raise ConfigError(
        f'gate.bootstrap_replicates: 0 (no intervals) or '
        f'{MIN_BOOTSTRAP_REPLICATES} to {MAX_BOOTSTRAP_REPLICATES}, got '
        f'{g.bootstrap_replicates}')
  if not 0.5 <= g.confidence < 1.0:
    raise ConfigError(f'gate.confidence: must be in [0.5, 1), got '
                      f'{g.confidence}')
  for kind in ('quality', 'baseline', 'gap'):
    if g.inconclusive(kind) not in INCONCLUSIVE:
      raise ConfigError(
          f'gate.inconclusive_{kind}: expected one of '
          f'{", ".join(INCONCLUSIVE)}, got {g.inconclusive(kind)!r}')
  if g.rmse_margin >= 1:
    raise ConfigError(f'gate.rmse_margin: must be < 1, got {g.rmse_margin}')
  if g.slice_max_gap < 0 or g.slice_min_examples < 1:
    raise ConfigError('gate.slice_max_gap must be >= 0 and '
                      'gate.slice_min_examples >= 1')
  if not g.permissive:
    _refuse_switched_off(g)
  return dataclasses.replace(
      g, max_gap={**task.default_max_gap, **g.max_gap},
      baseline_metric=baseline)


def label_from_dict(raw: Mapping[str, Any]) -> LabelConfig:
  """The label section alone, as a component receives it."""
  return _build(LabelConfig, dict(raw), 'data.label')


def features_from_dict(raw: Mapping[str, Any]) -> FeaturesConfig:
  """The ``data.features`` section from its ``to_dict`` form (a component's
  JSON parameter)."""
  return _build(FeaturesConfig, dict(raw), 'data.features')


def parse_gate(raw: Mapping[str, Any], task: str) -> GateConfig:
  """The gate section alone, as the gate's executor receives it."""
  return _validate_gate(_build(GateConfig, dict(raw), 'gate'),
                        tasks_lib.get(task))


def _parse_scalar(item: str, text: str) -> Any:
  """Parses the right-hand side of ``--set key=value`` (``item``) as YAML."""
  try:
    return yaml.safe_load(text) if text else None
  except yaml.YAMLError as e:
    problem = getattr(e, 'problem', None) or str(e).splitlines()[0]
    raise ConfigError(f'--set {item!r}: the value is not valid YAML '
                      f'({problem})') from None


def apply_overrides(raw: dict, overrides: Sequence[str]) -> dict:
  """Applies ``section.key=value`` overrides to the raw mapping, in order."""
  for item in overrides:
    if '=' not in item:
      raise ConfigError(f'--set {item!r}: expected section.key=value')
    dotted, value = item.split('=', 1)
    keys = dotted.strip().split('.')
    node = raw
    for key in keys[:-1]:
      child = node.get(key)
      if not isinstance(child, dict):
        child = {} if child is None or child == 'none' else child
        if not isinstance(child, dict):
          raise ConfigError(f'--set {item!r}: {key} is not a section')
        node[key] = child
      node = child
    node[keys[-1]] = _parse_scalar(item, value)
  return raw


def default_config_text() -> str:
  return resources.files('core').joinpath('configs/default.yaml').read_text()


def load_config(path: Optional[str] = None,
                overrides: Sequence[str] = ()) -> PipelineConfig:
  """Reads the default config, then ``path`` over it, then ``overrides``.

  A user's file replaces whole top-level values it names inside a section
  (a user's ``data.features`` list replaces the taxi's), so nothing of the
  default dataset silently leaks into a user's configuration.
  """
  raw = yaml.safe_load(default_config_text()) or {}
  default_name = raw.get('pipeline_name')
  if path is not None:
    if not os.path.exists(path):
      raise ConfigError(f'config file {path} does not exist')
    with open(path, encoding='utf-8') as f:
      try:
        user = yaml.safe_load(f) or {}
      except yaml.YAMLError as e:
        raise ConfigError(f'{path}: not valid YAML: {e}') from None
    if not isinstance(user, dict):
      raise ConfigError(f'{path}: expected a mapping at the top level')
    raw = _merge(raw, user)
  raw = apply_overrides(raw, overrides)
  if (raw.get('pipeline_name') == default_name
      and (raw.get('data') or {}).get('path') is not None):
    # Another dataset gets a pipeline of its own, so that the baseline
    # resolver (which searches the pipeline's runs) never hands it the taxi
    # model, nor one dataset's model to another in a shared output.root.
    raw['pipeline_name'] = None
  return validate(_build(PipelineConfig, raw, ''))


def from_dict(raw: Mapping[str, Any]) -> PipelineConfig:
  """Rebuilds the typed config from :meth:`PipelineConfig.to_dict` output."""
  return validate(_build(PipelineConfig, dict(raw), ''))


def _merge(base: dict, user: dict) -> dict:
  merged = dict(base)
  for key, value in user.items():
    if key == 'data' and isinstance(value, dict):
      # A user's dataset shares nothing with the taxi default but what it
      # leaves out entirely: splits and format.
      data = {k: v for k, v in base.get('data', {}).items()
              if k in ('splits', 'format')}
      data.update(value)
      merged[key] = data
    elif key == 'regularization':
      merged[key] = value  # Partial regularization means "only these".
    elif isinstance(value, dict) and isinstance(base.get(key), dict):
      merged[key] = _merge(base[key], value)
    else:
      merged[key] = value
  return merged
