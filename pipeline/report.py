"""The run report: one HTML page, with PNG figures beside it.

Built from what a run left behind (its metadata store and pipeline root), so
``python -m pipeline report`` can regenerate it at any time:

* learning curves: train (re-evaluated on a fixed sample) against eval, per
  metric of the run's task and epoch, with the restored epoch and the gate's
  held-out score;
* the train-minus-eval gap per epoch against the gate's ``max_gap`` (relative,
  eval / train - 1, for metrics in the label's units: RMSE, MAE);
* the gate's decision, every check with its value and threshold, and the
  trivial predictor's scores the quality checks are measured against;
* the task's diagnostic figures (``Task.diagnostics``): the precision-recall
  curve (binary), the confusion matrix and per-class recall (multiclass),
  predicted against actual and the residuals (regression);
* the regularization settings, kernel norms and sparsity;
* the regularization path: for a tuned run each trial's eval objective and
  train-minus-eval gap with the chosen trial marked (the Tuner's
  ``trials.json``), and for every run what regularization bought against
  the same network trained without it (``report.compare_unregularized``);
* a data summary: rows per split, the label's distribution, anomalies.

It is written below ``<output.root>/reports/<run id>/``. Every section says so
when its inputs are missing (a run stopped by anomalies has no model), so a
failed run still gets a report that shows why it stopped.
"""

import dataclasses
import html
import json
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import matplotlib
matplotlib.use('Agg')  # Files only; never a display.
from matplotlib import ticker  # pylint: disable=g-import-not-at-top
from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
import numpy as np
import tensorflow as tf
from tensorflow_metadata.proto.v0 import statistics_pb2
from tfx.types import artifact_utils

from components import validation
from components.gate import decision as gate_decision
from components.ingest import component as ingest_component
from components.trainer import run as trainer_run
from core import config as config_lib
from core import records as records_lib
from core import tasks as tasks_lib
from core.tasks import multiclass
from pipeline import local_runner, metadata
from pipeline.factory import NodeIds, TRAIN, EVAL, TEST

REPORT_HTML = 'report.html'
SPLITS = (TRAIN, EVAL, TEST)
# Raw examples read per split for the label's distribution; the counts
# themselves come from StatisticsGen and are exact.
LABEL_SAMPLE = 50_000
LABEL_BATCH = 65_536  # Records per Transform call when reading all of a split.
# Classes shown one by one in the data summary; the rarer ones are summed.
MAX_CLASSES_SHOWN = 8
# Per-class numbers are written into the confusion matrix's cells up to this
# many classes.
MAX_ANNOTATED_CLASSES = 12
TRAIN_COLOR, EVAL_COLOR, TEST_COLOR = '#1f77b4', '#ff7f0e', '#2ca02c'
PASS_COLOR, FAIL_COLOR = '#2ca02c', '#d62728'


def report_dir(result: local_runner.RunResult,
               config: config_lib.PipelineConfig) -> str:
  return local_runner.report_dir(config, result.run_id)


# --------------------------------------------------------------------------
# Reading the run's artifacts.


def _artifact(runs: Dict[str, metadata.NodeRun], node: str, key: str):
  run = runs.get(node)
  if run is None or not run.outputs.get(key):
    return None
  return run.outputs[key][0]


def _split_names(artifact) -> List[str]:
  return artifact_utils.decode_split_names(
      artifact.properties['split_names'].string_value)


def _rows_per_split(statistics) -> Dict[str, int]:
  rows = {}
  for split in _split_names(statistics):
    path = os.path.join(statistics.uri, f'Split-{split}', 'FeatureStats.pb')
    if not os.path.exists(path):
      continue
    stats = statistics_pb2.DatasetFeatureStatisticsList()
    with open(path, 'rb') as f:
      stats.ParseFromString(f.read())
    rows[split] = int(stats.datasets[0].num_examples)
  return rows


class LabelReader:
  """Reads the label of raw examples as Transform's own graph derives it:
  exactly what training and the gate see, whatever the task (0/1, a class
  index with -1 for a class train never showed, or the numeric target).
  Loading the graph is most of the cost: one reader serves every split."""

  def __init__(self, transform_graph_uri: str, label_name: str):
    import tensorflow_transform as tft  # pylint: disable=g-import-not-at-top
    output = tft.TFTransformOutput(transform_graph_uri)
    self._spec = output.raw_feature_spec()
    self._layer = output.transform_features_layer()
    self._label = label_name

  def read(self, files, limit: Optional[int] = None) -> np.ndarray:
    """The labels of ``files`` (gzipped TFRecords, in file order; the first
    ``limit`` only when given)."""
    records = records_lib.dataset(list(files), limit=limit)
    parts = []
    # Few, large batches: record by record in eager mode took seconds.
    for batch in records.batch(limit or LABEL_BATCH):
      label = self._layer(tf.io.parse_example(batch, self._spec))[self._label]
      if isinstance(label, tf.sparse.SparseTensor):
        label = tf.sparse.to_dense(label)
      parts.append(np.asarray(label).reshape(-1))
    return np.concatenate(parts) if parts else np.zeros(0)

  def read_splits(self, files: Mapping[str, Sequence[str]], limit: int
                  ) -> Dict[str, np.ndarray]:
    """:meth:`read` of each split's ``files`` (the first ``limit`` records of
    each), in one call of Transform's graph: each call prunes the graph
    again (about 0.3 s, whatever the batch)."""
    batches = {}
    for split, split_files in files.items():
      # At most ``limit`` records: one batch, or none for an empty split.
      batch = next(iter(records_lib.dataset(list(split_files), limit=limit)
                        .batch(limit)), None)
      if batch is not None:
        batches[split] = batch
    if not batches:
      return {split: np.zeros(0) for split in files}
    label = self._layer(tf.io.parse_example(
        tf.concat(list(batches.values()), axis=0), self._spec))[self._label]
    sizes = [int(b.shape[0]) for b in batches.values()]
    if isinstance(label, tf.sparse.SparseTensor) or label.shape[0] != sum(
        sizes):
      # A ragged label densifies per batch: read the splits one by one.
      return {split: self.read(f, limit) for split, f in files.items()}
    label = np.asarray(label)
    parts = np.split(label, np.cumsum(sizes)[:-1])
    found = {split: part.reshape(-1) for split, part in zip(batches, parts)}
    return {split: found.get(split, np.zeros(0)) for split in files}


def transformed_labels(transform_graph_uri: str, files, label_name: str,
                       limit: Optional[int] = None) -> np.ndarray:
  """:meth:`LabelReader.read` of one set of files."""
  return LabelReader(transform_graph_uri, label_name).read(files, limit)


def _label_values(examples, transform_graph,
                  label_name: str) -> Dict[str, np.ndarray]:
  """split -> the label of up to ``LABEL_SAMPLE`` raw examples, as
  :func:`transformed_labels` derives it (all splits in one call)."""
  files = {}
  for split in _split_names(examples):
    split_files = records_lib.split_files(examples.uri, split)
    if split_files:
      files[split] = split_files
  if not files:
    return {}
  labels = LabelReader(transform_graph.uri, label_name).read_splits(
      files, limit=LABEL_SAMPLE)
  return {split: v for split, v in labels.items() if len(v)}


def _class_names(training: Optional[dict], transform_graph=None
                 ) -> Optional[List[str]]:
  """The names of integer labels' classes: the Trainer's record of them,
  else Transform's label vocabulary; None when the label is its own name
  (binary 0/1)."""
  info = (training or {}).get('label_info') or {}
  if info.get('classes'):
    return [str(c) for c in info['classes']]
  if transform_graph is not None:
    import tensorflow_transform as tft  # pylint: disable=g-import-not-at-top
    output = tft.TFTransformOutput(transform_graph.uri)
    if output.vocabulary_file_by_name(multiclass.LABEL_VOCABULARY):
      return [v.decode('utf-8', 'replace') for v in
              output.vocabulary_by_name(multiclass.LABEL_VOCABULARY)]
  return None


def _anomalies(anomalies) -> Tuple[List[str], List[str]]:
  by_split = validation.read_anomalies(anomalies.uri, _split_names(anomalies))
  return validation.describe(by_split)


def read_trials(runs: Dict[str, metadata.NodeRun]) -> Optional[List[dict]]:
  """The search's trials, in the order they ran: ``trials.json`` in the
  Tuner's ``tuner_results`` artifact (``tuning.Executor`` copies it there);
  None when no Tuner ran or it left none."""
  results = _artifact(runs, NodeIds.TUNER, 'tuner_results')
  if results is None:
    return None
  # Imports keras_tuner (about 1 s): only when a Tuner ran.
  from components.trainer import tuning  # pylint: disable=g-import-not-at-top
  path = os.path.join(results.uri, tuning.TRIALS_JSON)
  if not os.path.exists(path):
    return None
  with open(path, encoding='utf-8') as f:
    return json.load(f)


def _kernels(model_run) -> Dict[str, np.ndarray]:
  """Dense kernels of the trained model, by layer name, as the Trainer saved
  them beside training.json (loading the SavedModel took seconds)."""
  return trainer_run.read_kernels(
      os.path.join(model_run.uri, trainer_run.KERNELS_NPZ))


# --------------------------------------------------------------------------
# Figures.


def _save(fig: Figure, directory: str, name: str) -> str:
  # The constrained layout already fits the figure: a tight bounding box
  # would draw every figure a second time.
  fig.savefig(os.path.join(directory, name), dpi=110)
  return name


def _best_epoch(training: dict) -> int:
  es = training.get('early_stopping') or {}
  return es.get('best_epoch', training['epochs_run'])


def _metric_title(metric: tasks_lib.Metric) -> str:
  return metric.name + ('' if metric.higher_is_better else
                        ' (lower is better)')


def curves_figure(training: dict, gate: Optional[dict], task: tasks_lib.Task,
                  directory: str) -> str:
  epochs = training['epochs']
  x = [e['epoch'] for e in epochs]
  best = _best_epoch(training)
  held_out = gate['metrics']['held_out'][''] if gate else {}
  metrics = list(task.metrics.values())
  fig = Figure(figsize=(max(12, 3.2 * len(metrics)), 3.8), layout='constrained')
  for i, metric in enumerate(metrics):
    name = metric.name
    ax = fig.add_subplot(1, len(metrics), i + 1)
    ax.plot(x, [e['train'].get(name, np.nan) for e in epochs], 'o-',
            color=TRAIN_COLOR, label='train (fixed sample)')
    ax.plot(x, [e['eval'].get(name, np.nan) for e in epochs], 's-',
            color=EVAL_COLOR, label='eval')
    ax.axvline(best, color='grey', linestyle=':', label=f'restored epoch {best}')
    if name in held_out:
      ax.plot([best], [held_out[name]], '*', markersize=13, color=TEST_COLOR,
              label='test (gate)')
    ax.set_title(_metric_title(metric))
    ax.set_xlabel('epoch')
    ax.grid(alpha=0.3)
    if len(x) <= 12:
      ax.set_xticks(x)
    if i == 0:
      ax.legend(fontsize=8)
  fig.suptitle(f'Learning curves ({task.name}): train vs eval per epoch')
  return _save(fig, directory, 'curves.png')


def _max_gaps(gate: Optional[dict], config) -> Dict[str, float]:
  if gate:
    return {c['metric']: c['threshold'] for c in gate['checks']
            if c['kind'] == 'gap' and not c['slice']}
  return dict(config.gate.max_gap)


def _final_gaps(gate: Optional[dict]) -> Dict[str, float]:
  if not gate:
    return {}
  return {c['metric']: c['value'] for c in gate['checks']
          if c['kind'] == 'gap' and not c['slice']}


def _final_gap_intervals(gate: Optional[dict]) -> Dict[str, Tuple[float,
                                                                  float]]:
  """The gate's interval of each overall gap (none in an older gate.json)."""
  if not gate:
    return {}
  return {c['metric']: (c['low'], c['high']) for c in gate['checks']
          if c['kind'] == 'gap' and not c['slice']
          and c.get('low') is not None}


def _gap_axis(metric: tasks_lib.Metric) -> str:
  """What a metric's gap is, for the axis: it says when the gap is relative."""
  if metric.relative_gap:
    return 'relative gap: eval / train - 1'
  return 'gap: train - eval' if metric.higher_is_better else (
      'gap: eval - train (sign flipped: lower is better)')


def gap_figure(training: dict, gate: Optional[dict], config,
               task: tasks_lib.Task, directory: str) -> str:
  epochs = training['epochs']
  x = [e['epoch'] for e in epochs]
  limits, final = _max_gaps(gate, config), _final_gaps(gate)
  intervals = _final_gap_intervals(gate)
  metrics = list(task.metrics.values())
  fig = Figure(figsize=(max(12, 3.2 * len(metrics)), 3.8), layout='constrained')
  for i, metric in enumerate(metrics):
    name = metric.name
    ax = fig.add_subplot(1, len(metrics), i + 1)
    gaps = [e['gap'].get(name, np.nan) for e in epochs]
    ax.plot(x, gaps, 'o-', color='#9467bd',
            label='gap, eval / train - 1' if metric.relative_gap
            else 'gap, train vs eval')
    ax.axhline(0, color='black', linewidth=0.6)
    if name in final:
      ax.plot([_best_epoch(training)], [final[name]], '*', markersize=13,
              color=TEST_COLOR, label='gate: train sample vs test')
      if name in intervals:
        low, high = intervals[name]
        ax.errorbar([_best_epoch(training)], [final[name]],
                    yerr=[[final[name] - low], [high - final[name]]],
                    color=TEST_COLOR, capsize=5,
                    label=f"gate's {gate.get('confidence', 0.95):.0%} "
                    'interval')
    if name in limits:
      limit = limits[name]
      seen = [abs(g) for g in gaps + [final.get(name, 0.0)]
              + list(intervals.get(name, ())) if np.isfinite(g)] + [1e-3]
      shown = f'{limit:.0%}' if metric.relative_gap else f'{limit:g}'
      if limit <= 4 * max(seen):
        ax.axhline(limit, color=FAIL_COLOR, linestyle='--',
                   label=f'max_gap {shown}')
        ax.axhspan(limit, max([limit * 1.5] + seen), color=FAIL_COLOR,
                   alpha=0.08)
      else:
        # A limit far above the gaps would flatten them to a line: keep the
        # gaps readable and say where the limit is.
        ax.set_ylim(-1.5 * max(seen), 1.5 * max(seen))
        ax.annotate(f'max_gap {shown} (far above)', (0.98, 0.96),
                    xycoords='axes fraction', ha='right', va='top',
                    color=FAIL_COLOR, fontsize=9)
    if metric.relative_gap:
      ax.yaxis.set_major_formatter(ticker.PercentFormatter(xmax=1.0))
    ax.set_title(f'{name} gap' + (' (relative)' if metric.relative_gap else
                                  '' if metric.higher_is_better
                                  else ' (sign flipped: loss)'))
    ax.set_ylabel(_gap_axis(metric), fontsize=8)
    ax.set_xlabel('epoch')
    ax.grid(alpha=0.3)
    if len(x) <= 12:
      ax.set_xticks(x)
    ax.legend(fontsize=8)
  fig.suptitle('Generalization gap per epoch (positive: better on train)')
  return _save(fig, directory, 'gap.png')


def _relative_headroom(check: dict, task: tasks_lib.Task) -> bool:
  """A quality or baseline bound on a metric in the label's units (RMSE):
  its headroom is shown relative to the threshold, comparable with the
  others' unitless ones."""
  metric = task.metrics.get(check['metric'])
  return bool(metric and metric.relative_gap and check['kind'] != 'gap'
              and check['threshold'])


def _headroom(check: dict, task: Optional[tasks_lib.Task] = None) -> float:
  """Distance to the threshold, positive when the check passes."""
  if check['comparison'] == '>=':
    room = check['value'] - check['threshold']
  else:
    room = check['threshold'] - check['value']
  if task is not None and _relative_headroom(check, task):
    room /= abs(check['threshold'])
  return room


def _headroom_interval(check: dict, task: tasks_lib.Task
                       ) -> Optional[Tuple[float, float]]:
  """The check's interval as headroom (low, high), or None without one."""
  if check.get('low') is None:
    return None
  ends = [_headroom(dict(check, value=end), task)
          for end in (check['low'], check['high'])]
  return min(ends), max(ends)


def gate_figure(gate: dict, task: tasks_lib.Task, directory: str) -> str:
  checks = gate['checks']
  # Inconclusive: the interval straddles the threshold; refused: the split
  # is too small (or a side's metric missing) to measure the check at all.
  colors = {'pass': PASS_COLOR, 'fail': FAIL_COLOR,
            'inconclusive': EVAL_COLOR, 'refused': '#7f7f7f'}

  def verdict(c):
    return c.get('verdict', 'pass' if c['passed'] else 'fail')

  labels = [f"{c['kind']} {c['metric']}" + (f" [{c['slice']}]" if c['slice']
                                             else '')
            + (' (relative)' if _relative_headroom(c, task) else '')
            + ('' if verdict(c) == 'pass' else ' FAILED' if verdict(c) ==
               'fail' else f' {verdict(c).upper()}') for c in checks]
  values = [_headroom(c, task) for c in checks]
  fig = Figure(figsize=(8, 0.45 * len(checks) + 1.4), layout='constrained')
  ax = fig.add_subplot(1, 1, 1)
  y = np.arange(len(checks))
  finite = [v if np.isfinite(v) else 0.0 for v in values]
  ax.barh(y, finite, color=[colors.get(verdict(c), FAIL_COLOR)
                            for c in checks])
  ends = []
  for yi, (v, c) in enumerate(zip(finite, checks)):
    interval = _headroom_interval(c, task)
    if interval is not None and all(np.isfinite(interval)):
      ax.errorbar([v], [yi], xerr=[[v - interval[0]], [interval[1] - v]],
                  color='black', capsize=3, linewidth=1)
      ends.extend(interval)
  ax.set_yticks(y)
  ax.set_yticklabels(labels)
  ax.invert_yaxis()
  ax.axvline(0, color='black', linewidth=0.8)
  for yi, (v, c) in enumerate(zip(finite, checks)):
    text = f"{c['value']:.4g} {c['comparison']} {c['threshold']:.4g}"
    if c.get('low') is not None:
      text += f" [{c['low']:.3g}, {c['high']:.3g}]"
    if c.get('rows_needed'):
      text += f"; ~{c['rows_needed']:,} rows"
    ax.annotate(text, (v, yi), xytext=(4 if v >= 0 else -4, 0),
                textcoords='offset points', va='center',
                ha='left' if v >= 0 else 'right', fontsize=8)
  span = max([abs(v) for v in finite + ends] + [1e-3])
  ax.set_xlim(-span * 1.9, span * 1.9)
  ax.set_xlabel('headroom to threshold (right of 0: passed; relative: '
                'share of the threshold)'
                + (f"; bars: {gate['confidence']:.0%} intervals"
                   if gate.get('confidence') else ''))
  ax.set_title(f'Gate ({task.name}): ' + (
      'BLESSED' if gate['blessed'] else f"NOT blessed ({gate['reason']})"))
  return _save(fig, directory, 'gate.png')


def weights_figure(kernels: Dict[str, np.ndarray], zero_tolerance: float,
                   directory: str) -> str:
  fig = Figure(figsize=(12, 3.8), layout='constrained')
  ax = fig.add_subplot(1, 2, 1)
  flat = np.concatenate([k.ravel() for k in kernels.values()])
  magnitude = np.abs(flat)
  floor = min(zero_tolerance / 100, max(magnitude.min(), 1e-12))
  bins = np.logspace(np.log10(floor), np.log10(max(magnitude.max(), floor * 10)),
                     60)
  ax.hist([np.clip(np.abs(k.ravel()), floor, None) for k in kernels.values()],
          # One polygon per layer; bars would be a patch per bin and layer.
          bins=bins, stacked=True, histtype='stepfilled',
          label=list(kernels))
  ax.set_xscale('log')
  ax.axvline(zero_tolerance, color=FAIL_COLOR, linestyle='--',
             label=f'near zero < {zero_tolerance:g}: '
             f'{(magnitude < zero_tolerance).mean():.1%}')
  ax.set_xlabel('|kernel weight|')
  ax.set_ylabel('weights')
  ax.set_title('Kernel weight magnitudes (sparsity)')
  ax.legend(fontsize=8)
  ax = fig.add_subplot(1, 2, 2)
  names = list(kernels)
  norms = [float(np.sqrt((k ** 2).sum())) for k in kernels.values()]
  ax.bar(names, norms, color=TRAIN_COLOR)
  for i, n in enumerate(norms):
    ax.annotate(f'{n:.2f}', (i, n), ha='center', va='bottom', fontsize=8)
  ax.set_ylabel('L2 norm')
  ax.set_title('Kernel L2 norm per layer')
  return _save(fig, directory, 'weights.png')


@dataclasses.dataclass
class Trial:
  """One trial of the search, with its settings as the Trainer would apply
  them (``run.config_with``: the configured regularization, the trial's
  values over it)."""
  number: int  # 1-based, in the order the trials ran.
  trial_id: str
  techniques: Tuple[str, ...]  # RegularizationConfig.active
  strengths: Dict[str, float]  # The numeric techniques in force.
  hidden_units: Tuple[int, ...]
  learning_rate: float
  score: Optional[float]  # Best eval objective over its epochs.
  train: Optional[float]  # The same metric on the train sample.
  gap: Optional[float]
  epochs: Optional[int]
  status: str
  # What the search ranked it by: the score, worsened where a gap passed
  # tuning.gap_fraction of its limit (tuning.ranked_score).
  ranked: Optional[float] = None
  # Its eval objective less the configured trial's (positive is better) and
  # the standard error of that paired difference (tuning.improvement).
  improvement: Optional[float] = None
  improvement_se: Optional[float] = None
  # The trial whose values the Tuner handed to the Trainer
  # (tuning.chosen_index).
  chosen: bool = False


def trials_of(records: List[dict],
              config: config_lib.PipelineConfig) -> List[Trial]:
  trials = []
  for i, record in enumerate(records):
    tuned = trainer_run.config_with(config, record.get('hyperparameters') or {})
    reg = tuned.regularization
    values = {name: getattr(reg, name) for name in trainer_run.TUNABLE}
    # Floats are strengths; bools and names (batch_norm, the schedule,
    # the averaging) are in ``techniques`` already.
    strengths = {k: v for k, v in values.items() if isinstance(v, float) and v}
    techniques = reg.active
    if tuned.model.numeric_embedding is not None:
      techniques += ('periodic_embedding',)
      strengths['periodic_sigma'] = tuned.model.numeric_embedding.sigma
    trials.append(Trial(
        number=i + 1, trial_id=str(record.get('trial_id', i)),
        techniques=techniques, strengths=strengths,
        hidden_units=tuned.model.hidden_units,
        learning_rate=tuned.model.learning_rate,
        score=record.get('score'), train=record.get('train'),
        gap=record.get('gap'), epochs=record.get('epochs'),
        status=str(record.get('status', 'COMPLETED')),
        ranked=record.get('ranked', record.get('score')),
        improvement=record.get('improvement'),
        improvement_se=record.get('improvement_se')))
  from components.trainer import tuning  # pylint: disable=g-import-not-at-top
  chosen = tuning.chosen_index(
      records, objective_metric(records, tasks_lib.get(config.task))
      .higher_is_better, config.tuning)
  if chosen is not None:
    trials[chosen] = dataclasses.replace(trials[chosen], chosen=True)
  return trials


def objective_metric(records: List[dict], task: tasks_lib.Task
                     ) -> tasks_lib.Metric:
  """The task metric the search optimized (``val_<metric>``)."""
  name = (records[0].get('objective') or '') if records else ''
  return task.metrics.get(name[len('val_'):] if name.startswith('val_')
                          else name) or task.metrics[task.default_monitor]


def _layers(hidden_units: Tuple[int, ...]) -> str:
  """'64 x 2' for the search's equal layers, '64-32' for a configured
  taper."""
  if not hidden_units:
    return '-'
  if len(set(hidden_units)) == 1:
    return f'{hidden_units[0]} x {len(hidden_units)}'
  return '-'.join(str(u) for u in hidden_units)


def chosen_trial(trials: List[Trial]) -> Optional[int]:
  """Index of the trial the Tuner handed to the Trainer, if any."""
  return next((i for i, t in enumerate(trials) if t.chosen), None)


def _varying(trials: List[Trial]) -> Tuple[set, List[str]]:
  """The techniques every trial had, and each trial's others as a label
  (the legend names the common ones once)."""
  common = set.intersection(*(set(t.techniques) for t in trials))
  labels = ['+'.join(n for n in t.techniques if n not in common) or
            'no others' for t in trials]
  return common, labels


# Distinct combinations of techniques given a colour of their own; the rest
# share grey (the table names each trial's).
MAX_COMBINATION_COLORS = 9


def trials_figure(trials: List[Trial], metric: tasks_lib.Metric,
                  max_gap: Optional[float], directory: str) -> str:
  """The regularization path of the search: per trial, its eval objective
  (left) and its train-minus-eval gap (right), coloured by the techniques
  in force, the chosen trial ringed.

  x is the order the trials ran, not one strength: the search moves up to
  a dozen settings at once, so no single strength orders the trials; the
  order reads against the table (same numbers) and shows whether the
  search was still improving when the budget ended it.
  """
  chosen = chosen_trial(trials)
  common, labels = _varying(trials)
  first = list(dict.fromkeys(labels))[:MAX_COMBINATION_COLORS]
  other = 'other combinations (see the table)'
  labels = [label if label in first else other for label in labels]
  # tab10 without its grey, which marks the other combinations.
  palette = [matplotlib.colormaps['tab10'](i) for i in (0, 1, 2, 3, 4, 5, 6,
                                                        8, 9)]
  color_of = {**{c: palette[i] for i, c in enumerate(first)},
              other: '#9a9a9a'}
  x = np.array([t.number for t in trials])
  fig = Figure(figsize=(12, 4.6), layout='constrained')
  axes = [fig.add_subplot(1, 2, i + 1) for i in range(2)]
  for ax, values in zip(axes, ([t.score for t in trials],
                               [t.gap for t in trials])):
    y = np.array([np.nan if v is None else v for v in values], float)
    ax.plot(x, y, '-', color='#cccccc', linewidth=0.8, zorder=1)
    for combo in dict.fromkeys(labels):
      at = [i for i, label in enumerate(labels) if label == combo]
      ax.scatter(x[at], y[at], s=42, color=color_of[combo], zorder=3,
                 edgecolors='white', linewidths=0.6, label=combo)
    if chosen is not None and np.isfinite(y[chosen]):
      ax.scatter([x[chosen]], [y[chosen]], s=300, facecolors='none',
                 edgecolors='black', linewidths=1.8, zorder=4,
                 label=f'chosen: trial {x[chosen]}')
    ax.set_xlabel('trial (in the order run)')
    ax.grid(alpha=0.3)
    if len(x) <= 20:
      ax.set_xticks(x)
  score, gap = axes
  scores = np.array([np.nan if t.score is None else t.score for t in trials])
  if np.isfinite(scores).any():
    # The best objective so far: where the search stopped improving.
    best = (np.fmax if metric.higher_is_better else np.fmin).accumulate(
        np.where(np.isfinite(scores), scores,
                 -np.inf if metric.higher_is_better else np.inf))
    score.step(x, np.where(np.isfinite(best), best, np.nan), where='post',
               color='black', linestyle=':', linewidth=1, label='best so far')
  score.set_title(f'eval {_metric_title(metric)}: best epoch of each trial')
  score.set_ylabel(f'val_{metric.name}')
  gap.axhline(0, color='black', linewidth=0.6)
  if max_gap is not None:
    shown = f'{max_gap:.0%}' if metric.relative_gap else f'{max_gap:g}'
    seen = [abs(t.gap) for t in trials
            if t.gap is not None and np.isfinite(t.gap)] + [1e-3]
    if max_gap <= 4 * max(seen):
      gap.axhline(max_gap, color=FAIL_COLOR, linestyle='--',
                  label=f"gate's max_gap {shown} (on test)")
    else:  # As in gap_figure: a far limit would flatten the gaps.
      gap.annotate(f"gate's max_gap {shown} (far above)", (0.98, 0.96),
                   xycoords='axes fraction', ha='right', va='top',
                   color=FAIL_COLOR, fontsize=9)
  if metric.relative_gap:
    gap.yaxis.set_major_formatter(ticker.PercentFormatter(xmax=1.0))
  gap.set_title(f'{metric.name} gap: train sample vs eval')
  gap.set_ylabel(_gap_axis(metric), fontsize=8)
  handles, names = score.get_legend_handles_labels()
  extra = [(h, n) for h, n in zip(*gap.get_legend_handles_labels())
           if n not in names]
  fig.legend(handles + [h for h, _ in extra], names + [n for _, n in extra],
             loc='outside lower center', ncol=min(4, len(names) + len(extra)),
             fontsize=8, title='techniques in force besides those every trial '
             f"had ({', '.join(sorted(common)) or 'none'})",
             title_fontsize=8)
  fig.suptitle(f'Regularization path: {len(trials)} trial(s) of the search')
  return _save(fig, directory, 'trials.png')


def _ordered_splits(names) -> List[str]:
  return [s for s in SPLITS if s in names] + sorted(set(names) - set(SPLITS))


@dataclasses.dataclass
class LabelSummary:
  """The label's distribution per split, from the raw examples read.

  Integer labels (binary, multiclass) are ``counts``: split -> class name ->
  rows, the shown classes in ``classes`` (the rest summed as 'other', a class
  train never showed as 'unknown'); a numeric target (regression) is
  ``values``: split -> the labels read.
  """
  read: Dict[str, int]
  classes: List[str] = dataclasses.field(default_factory=list)
  counts: Dict[str, Dict[str, int]] = dataclasses.field(default_factory=dict)
  values: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

  @property
  def discrete(self) -> bool:
    return not self.values


# Not class names: the rarer classes together, and classes train never showed.
OTHER, UNKNOWN = '(other classes)', '(unknown to train)'


def summarize_labels(values: Dict[str, np.ndarray],
                     class_names: Optional[List[str]]) -> LabelSummary:
  """Counts integer labels by class; keeps a numeric target as it is."""
  read = {split: len(v) for split, v in values.items()}
  if not values or not all(np.issubdtype(v.dtype, np.integer)
                           for v in values.values()):
    return LabelSummary(read=read, values={
        split: v.astype(float) for split, v in values.items()})
  seen = [int(v.max()) + 1 for v in values.values() if len(v)]
  k = max([len(class_names or ())] + seen)
  names = [class_names[i] if class_names and i < len(class_names) else str(i)
           for i in range(k)]
  shown = names if k <= MAX_CLASSES_SHOWN else names[:MAX_CLASSES_SHOWN - 1]
  unknown = any((v < 0).any() for v in values.values())
  counts = {}
  for split, v in values.items():
    per_class = np.bincount(v[v >= 0], minlength=k)
    row = {name: int(per_class[i]) for i, name in enumerate(shown)}
    if len(shown) < k:
      row[OTHER] = int(per_class[len(shown):].sum())
    if unknown:
      row[UNKNOWN] = int((v < 0).sum())
    counts[split] = row
  extra = ([OTHER] if len(shown) < k else []) + ([UNKNOWN] if unknown else [])
  return LabelSummary(read=read, classes=shown + extra, counts=counts)


def data_figure(rows: Dict[str, int], labels: Optional[LabelSummary],
                directory: str) -> str:
  splits = _ordered_splits(rows)
  totals = [rows[s] for s in splits]
  continuous = labels is not None and not labels.discrete
  fig = Figure(figsize=(11 if continuous else 6, 3.4), layout='constrained')
  ax = fig.add_subplot(1, 2 if continuous else 1, 1)
  if labels is not None and labels.discrete:
    # Each split's rows divided by its sampled class shares.
    bottom = np.zeros(len(splits))
    colors = matplotlib.colormaps['tab10']
    for j, name in enumerate(labels.classes):
      shares = np.array([
          labels.counts.get(s, {}).get(name, 0) / labels.read[s]
          if labels.read.get(s) else 0.0 for s in splits])
      heights = shares * np.array(totals)
      color = '#c7c7c7' if name in (OTHER, UNKNOWN) else colors(j % 10)
      ax.bar(splits, heights, bottom=bottom, color=color, label=f'label {name}')
      bottom += heights
  else:
    ax.bar(splits, totals, color=TRAIN_COLOR)
  for i, t in enumerate(totals):
    ax.annotate(f'{t} rows', (i, t), ha='center', va='bottom', fontsize=8)
  ax.set_ylim(0, max(totals) * 1.3)
  ax.set_ylabel('rows')
  if labels is not None and labels.discrete:
    ax.set_title('Rows per split and label balance')
    ax.legend(fontsize=8, loc='upper right',
              ncol=2 if len(labels.classes) > 4 else 1)
  else:
    ax.set_title('Rows per split')
  if continuous:
    ax = fig.add_subplot(1, 2, 2)
    every = np.concatenate([v for v in labels.values.values() if len(v)])
    finite = every[np.isfinite(every)]
    bins = np.histogram_bin_edges(finite, bins=40) if len(finite) else 10
    for split, color in zip(_ordered_splits(labels.values),
                            (TRAIN_COLOR, EVAL_COLOR, TEST_COLOR, 'grey')):
      v = labels.values[split]
      v = v[np.isfinite(v)]
      if len(v):
        ax.hist(v, bins=bins, density=True, histtype='step', linewidth=1.5,
                color=color, label=f'{split}: mean {v.mean():.4g}, '
                f'std {v.std():.4g}')
    ax.set_xlabel('label')
    ax.set_ylabel('density')
    ax.set_title('Label distribution per split')
    ax.legend(fontsize=8)
  return _save(fig, directory, 'data.png')


# --------------------------------------------------------------------------
# The task's diagnostic figures (``Task.diagnostics``), from the arrays the
# gate kept. Each renderer returns HTML (figure and tables) for the section.


def _gate_arrays(gate: dict, split: str = 'held_out') -> dict:
  return (gate.get('arrays') or {}).get(split) or {}


def _held_out(gate: dict) -> dict:
  return gate['metrics']['held_out']['']


_SPLIT_STYLES = (('train', TRAIN_COLOR, 'train sample'),
                 ('held_out', TEST_COLOR, 'test (held out)'))


def _missing(what: str) -> str:
  return f'<p class="muted">No {_esc(what)} in gate.json.</p>'


def precision_recall_figure(gate: dict, training: Optional[dict],
                            directory: str) -> str:
  """Binary: precision against recall, with the positive rate as chance."""
  del training
  if 'pr_curve_precision' not in _gate_arrays(gate):
    return _missing('precision-recall curve')
  fig = Figure(figsize=(6, 4.4), layout='constrained')
  ax = fig.add_subplot(1, 1, 1)
  for split, color, label in _SPLIT_STYLES:
    arrays = _gate_arrays(gate, split)
    if 'pr_curve_precision' in arrays:
      pr_auc = gate['metrics'].get(split, {}).get('', {}).get('pr_auc')
      ax.plot(arrays['pr_curve_recall'], arrays['pr_curve_precision'], '-',
              color=color, label=label + (f', PR-AUC {pr_auc:.3f}'
                                          if pr_auc is not None else ''))
  rate = _held_out(gate).get('mean_label')
  if rate is not None:
    ax.axhline(rate, color='grey', linestyle=':',
               label=f'positive rate {rate:.3f} (chance)')
  ax.set_xlim(0, 1)
  ax.set_ylim(0, 1.02)
  ax.set_xlabel('recall')
  ax.set_ylabel('precision')
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  ax.set_title('Precision-recall curve')
  held_out = _held_out(gate)
  return (_img(_save(fig, directory, 'precision_recall.png'),
               'precision-recall curve')
          + (f"<p>Precision-recall curve: PR-AUC on test "
             f"{held_out['pr_auc']:.4f} against a positive rate of "
             f'{rate:.4f}.</p>' if 'pr_auc' in held_out and rate is not None
             else ''))


def _classes(training: Optional[dict], k: int) -> List[str]:
  names = _class_names(training) or []
  return [names[i] if i < len(names) else str(i) for i in range(k)]


def confusion_matrix_figure(gate: dict, training: Optional[dict],
                            directory: str) -> str:
  """Multiclass: the test confusion matrix (rows: true class, normalized)
  and each class's share and recall."""
  arrays = _gate_arrays(gate)
  if 'confusion_matrix' not in arrays:
    return _missing('confusion matrix')
  cm = np.asarray(arrays['confusion_matrix'], float)
  k = cm.shape[0]
  classes = _classes(training, k)
  support = cm.sum(axis=1, keepdims=True)
  share = np.divide(cm, support, out=np.zeros_like(cm), where=support > 0)
  size = min(14, max(5.5, 0.55 * k + 3))
  fig = Figure(figsize=(size + 1, size), layout='constrained')
  ax = fig.add_subplot(1, 1, 1)
  image = ax.imshow(share, cmap='Blues', vmin=0, vmax=1)
  ax.set_xticks(range(k))
  ax.set_yticks(range(k))
  ax.set_xticklabels(classes, rotation=45 if k > 4 else 0, ha='right'
                     if k > 4 else 'center', fontsize=8)
  ax.set_yticklabels(classes, fontsize=8)
  if k <= MAX_ANNOTATED_CLASSES:
    for i in range(k):
      for j in range(k):
        ax.annotate(f'{int(cm[i, j])}', (j, i), ha='center', va='center',
                    fontsize=8,
                    color='white' if share[i, j] > 0.5 else 'black')
  ax.set_xlabel('predicted class')
  ax.set_ylabel('true class')
  fig.colorbar(image, ax=ax, label='share of the true class\'s rows')
  ax.set_title('Confusion matrix on test (counts; colour: row share)')
  train = _gate_arrays(gate, 'train')
  rows, flags = [], []
  for i, name in enumerate(classes):
    recall = _item(arrays.get('class_recall'), i)
    rows.append([name, int(support[i, 0]),
                 _pct(_item(arrays.get('class_frequency'), i)),
                 _fmt(recall), _fmt(_item(train.get('class_recall'), i))])
    flags.append('fail' if support[i, 0] and recall == 0 else '')
  return (_img(_save(fig, directory, 'confusion_matrix.png'),
               'confusion matrix')
          + '<p>Per-class recall (the share of each true class predicted as '
            'itself):</p>'
          + _table(['class', 'test rows', 'test share', 'recall (test)',
                    'recall (train sample)'], rows, flags))


def _item(values, i):
  return float(values[i]) if values is not None and i < len(values) else None


def _pct(value) -> str:
  return '-' if value is None else f'{value:.2%}'


def _pairs(gate: dict, split: str):
  arrays = _gate_arrays(gate, split)
  if 'sample_label' not in arrays:
    return None
  return (np.asarray(arrays['sample_label'], float),
          np.asarray(arrays['sample_prediction'], float))


def predicted_vs_actual_figure(gate: dict, training: Optional[dict],
                               directory: str) -> str:
  """Regression: a sample of (actual, predicted) pairs and the diagonal."""
  del training
  if _pairs(gate, 'held_out') is None:
    return _missing('sample of predictions')
  fig = Figure(figsize=(6, 5), layout='constrained')
  ax = fig.add_subplot(1, 1, 1)
  seen = []
  for split, color, label in _SPLIT_STYLES:
    pairs = _pairs(gate, split)
    if pairs is not None and len(pairs[0]):
      ax.scatter(pairs[0], pairs[1], s=9, alpha=0.5, color=color,
                 label=f'{label} ({len(pairs[0])} sampled)')
      seen += [pairs[0], pairs[1]]
  if seen:
    every = np.concatenate(seen)
    every = every[np.isfinite(every)]
    if len(every):
      lo, hi = float(every.min()), float(every.max())
      ax.plot([lo, hi], [lo, hi], '--', color='black', linewidth=0.9,
              label='predicted = actual')
  held_out = _held_out(gate)
  ax.set_xlabel('actual label')
  ax.set_ylabel('predicted')
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  ax.set_title('Predicted vs actual' + (
      f" (test R\u00b2 {held_out['r2']:.3f}, RMSE {held_out['rmse']:.4g})"
      if 'r2' in held_out and 'rmse' in held_out else ''))
  return _img(_save(fig, directory, 'predicted_vs_actual.png'),
              'predicted vs actual')


def residuals_figure(gate: dict, training: Optional[dict],
                     directory: str) -> str:
  """Regression: the distribution of prediction - actual."""
  del training
  if _pairs(gate, 'held_out') is None:
    return _missing('sample of predictions')
  fig = Figure(figsize=(6, 4), layout='constrained')
  ax = fig.add_subplot(1, 1, 1)
  residuals = {}
  for split, _, _ in _SPLIT_STYLES:
    pairs = _pairs(gate, split)
    if pairs is not None and len(pairs[0]):
      r = pairs[1] - pairs[0]
      residuals[split] = r[np.isfinite(r)]
  every = np.concatenate(list(residuals.values()) or [np.zeros(1)])
  bins = np.histogram_bin_edges(every, bins=40) if len(every) else 10
  rows = []
  for split, color, label in _SPLIT_STYLES:
    r = residuals.get(split)
    if r is not None and len(r):
      ax.hist(r, bins=bins, density=True, histtype='step', linewidth=1.5,
              color=color, label=f'{label}: mean {r.mean():+.4g}')
      rows.append([label, len(r), f'{r.mean():+.4g}', f'{r.std():.4g}',
                   f'{np.median(np.abs(r)):.4g}'])
  ax.axvline(0, color='black', linewidth=0.8)
  ax.set_xlabel('residual: predicted - actual')
  ax.set_ylabel('density')
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  ax.set_title('Residuals')
  return (_img(_save(fig, directory, 'residuals.png'), 'residuals')
          + _table(['residuals of', 'sampled rows', 'mean (bias)', 'std',
                    'median |residual|'], rows))


# Renderer of each name a task lists in ``diagnostics``.
DIAGNOSTICS = {
    'precision_recall': precision_recall_figure,
    'confusion_matrix': confusion_matrix_figure,
    'predicted_vs_actual': predicted_vs_actual_figure,
    'residuals': residuals_figure,
}


# --------------------------------------------------------------------------
# HTML.

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto;
       padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; }
.verdict { padding: 0.8em 1em; border-radius: 6px; font-size: 1.2em; }
.ok { background: #e3f4e3; border: 1px solid #2ca02c; }
.bad { background: #fbe5e5; border: 1px solid #d62728; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; }
td, th { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.fail td { background: #fbe5e5; }
tr.best td { background: #e3f4e3; font-weight: 600; }
img { max-width: 100%; }
.muted { color: #777; }
pre { background: #f5f5f5; padding: 0.6em; white-space: pre-wrap; }
"""


def _esc(value) -> str:
  return html.escape(str(value))


def _table(header: List[str], rows: List[List], classes=None) -> str:
  out = ['<table><tr>' + ''.join(f'<th>{_esc(h)}</th>' for h in header)
         + '</tr>']
  for i, row in enumerate(rows):
    cls = f' class="{classes[i]}"' if classes and classes[i] else ''
    cells = ''.join(
        f'<td class="num">{_esc(c)}</td>' if isinstance(c, (int, float))
        and not isinstance(c, bool) else f'<td>{_esc(c)}</td>' for c in row)
    out.append(f'<tr{cls}>{cells}</tr>')
  return '\n'.join(out) + '</table>'


def _fmt(value, digits=4) -> str:
  if value is None:
    return '-'
  if isinstance(value, float):
    return f'{value:.{digits}f}'
  return str(value)


def _img(name: Optional[str], alt: str) -> str:
  return f'<p><img src="{_esc(name)}" alt="{_esc(alt)}"></p>' if name else ''


def _verdict(result: local_runner.RunResult) -> Tuple[str, str]:
  failed = [n for n, s in result.nodes.items() if s not in ('COMPLETE',
                                                            'CACHED')]
  if failed:
    return 'bad', (f'Run stopped at {", ".join(failed)} '
                   f'({", ".join(result.nodes[n] for n in failed)}): '
                   'no model was pushed.')
  if result.blessed:
    return 'ok', f'Blessed and pushed to {result.pushed_to}.'
  if result.gate:
    return 'bad', f"NOT blessed ({result.gate['reason']}): nothing was pushed."
  return 'bad', 'No gate decision in this run: nothing was pushed.'


def _trivial_row(task: tasks_lib.Task, held_out: dict) -> Optional[List]:
  """The trivial predictor's scores, in the columns of the metrics they are."""
  scored_as = {metric: key for _, key, metric, _ in
               task.trivial_scores}
  if not any(held_out.get(key) is not None for key in scored_as.values()):
    return None
  return (['trivial predictor (train prior / mean), test']
          + [_fmt(held_out.get(scored_as[m])) if m in scored_as else '-'
             for m in task.metrics] + [_fmt(held_out.get('example_count'), 0)])


def _gate_section(gate: Optional[dict], task: tasks_lib.Task,
                  directory: str) -> str:
  if not gate:
    return '<p class="muted">The gate did not run in this run.</p>'
  checks = gate['checks']

  def interval(c):
    return ('' if c.get('low') is None
            else f"[{_fmt(c['low'])}, {_fmt(c['high'])}]")

  def outcome(c):
    verdict = c.get('verdict', 'pass' if c['passed'] else 'fail')
    if c['passed']:
      words = 'passed' + (' (inconclusive: the point estimate decides)'
                          if verdict == 'inconclusive' else '')
    else:
      words = 'FAILED' + ('' if verdict == 'fail' else f' ({verdict})')
    decide = gate_decision.undecided_note(c, gate.get('sizes', {}).get(
        'held_out'))
    return words + (f'; {decide}' if decide else '')

  rows = [[c['kind'], c['metric'], c['slice'] or 'all', _fmt(c['value']),
           c['comparison'], _fmt(c['threshold']), outcome(c), interval(c),
           c['detail']] for c in checks]
  metrics = gate['metrics']
  held_out = metrics['held_out']['']
  metric_rows = []
  for split, values in (('train sample', metrics['train']['']),
                        ('test (held out)', held_out),
                        ('latest blessed model, test', metrics['baseline'])):
    if values:
      metric_rows.append([split] + [_fmt(values.get(m)) for m in task.metrics]
                         + [_fmt(values.get('example_count'), 0)])
  trivial_row = _trivial_row(task, held_out)
  if trivial_row:
    metric_rows.insert(2, trivial_row)
  # Everything else the gate measured: label statistics, the trivial
  # predictor's scores, skills.
  train = metrics['train']['']
  others = [[name, _fmt(value), _fmt(train.get(name))]
            for name, value in held_out.items()
            if name not in task.metrics and name != 'example_count']
  trivial = local_runner.trivial_predictor(task, held_out)
  note = gate.get('baseline_note')
  return (
      f"<p>Task <b>{_esc(task.name)}</b>. Decision: "
      f"<b>{'BLESSED' if gate['blessed'] else 'NOT blessed'}</b>"
      f" &mdash; {_esc(gate['reason'])}."
      + (f' Trivial predictor on test: {_esc(trivial)}.' if trivial else '')
      + '</p>'
      + (f'<p>Baseline: {_esc(note)}</p>' if note else '')
      + _img(gate_figure(gate, task, directory), 'gate checks')
      + _table(['check', 'metric', 'slice', 'value', '', 'threshold',
                'result', f"{gate.get('confidence') or 0.95:.0%} interval",
                'detail'], rows,
               ['' if c['passed'] else 'fail' for c in checks])
      + _table(['scored on'] + list(task.metrics) + ['rows'], metric_rows)
      + (_table(['also measured', 'test', 'train sample'], others)
         if others else ''))


def _diagnostics_section(gate: Optional[dict], training: Optional[dict],
                         task: tasks_lib.Task, directory: str) -> str:
  if not gate:
    return ('<p class="muted">The gate did not run in this run: no held-out '
            'predictions to diagnose.</p>')
  parts = []
  for name in task.diagnostics:
    renderer = DIAGNOSTICS.get(name)
    if renderer is None:
      parts.append(f'<p class="muted">No renderer for the {_esc(task.name)} '
                   f'diagnostic {_esc(name)}.</p>')
      continue
    parts.append(renderer(gate, training, directory))
  return '\n'.join(parts) or '<p class="muted">None for this task.</p>'


def _improvement_cell(trial: Trial) -> str:
  if trial.improvement is None:
    return '-'
  if trial.number == 1:
    return 'reference'
  if trial.improvement_se is None:
    return _fmt(trial.improvement)
  return f'{trial.improvement:+.4f} ± {_fmt(trial.improvement_se)}'


def _gap_cell(metric: tasks_lib.Metric, value) -> str:
  if value is None:
    return '-'
  return local_runner.format_gap(metric, value) if metric.relative_gap else (
      _fmt(value))


def _training_section(result, config, task, directory) -> str:
  training = result.training
  if not training:
    state = result.nodes.get(NodeIds.TRAINER)
    return ('<p class="muted">No training record: '
            + (f'the Trainer\'s state in this run is {_esc(state)}.</p>'
               if state else 'the Trainer did not run in this run.</p>'))
  es = training.get('early_stopping')
  parts = [f"<p>{training['epochs_run']} epoch(s) run"
           + (f"; early stopping on {_esc(es['monitor'])} restored epoch "
              f"{es['best_epoch']} ({es['best_value']:.4f})"
              + (', stopped early' if es['stopped_early'] else '')
              if es else '; no early stopping') + '.</p>',
           (f"<p>Model: {_esc(local_runner.ensemble_words(training['ensemble']))}"
            '; the gate and serving see their average.</p>'
            if training.get('ensemble') else ''),
           calibration_paragraph(training.get('calibration')),
           _img(curves_figure(training, result.gate, task, directory),
                'learning curves'),
           _img(gap_figure(training, result.gate, config, task, directory),
                'gap per epoch')]
  names = list(task.metrics)
  rows = [[e['epoch']] + [_fmt(e[s].get(m)) for m in names
                          for s in ('train', 'eval')]
          + [_gap_cell(task.metrics[m], e['gap'].get(m)) for m in names]
          + [_fmt(e.get('fit_loss'))] for e in training['epochs']]
  header = (['epoch'] + [f'{m} {s}' for m in names for s in ('train', 'eval')]
            + [f'gap {m}' + (' (eval / train - 1)'
                             if task.metrics[m].relative_gap else '')
               for m in names] + ['fit loss (w/ penalty)'])
  parts.append(_table(header, rows))
  return '\n'.join(parts)


def calibration_paragraph(calibration: Optional[dict]) -> str:
  """The temperature the Trainer fitted (model.calibration), if any."""
  if not calibration:
    return ''
  t = calibration['temperature']
  before, after = calibration['eval_loss'], calibration['eval_loss_calibrated']
  if t == 1.0:
    return ('<p>Calibration: temperature <b>1</b> kept; no temperature '
            f'lowered the eval log loss ({before:.4f}).</p>')
  return (f'<p>Calibration: temperature <b>{t:.3g}</b> fitted on the eval '
          f'split (its log loss {before:.4f} &rarr; {after:.4f}; '
          f"{'softer' if t > 1 else 'sharper'} probabilities, the same "
          'ranking and predicted classes). The gate and serving see the '
          "calibrated probabilities; the learning curves are the network's "
          'own, before it.</p>')


# Settings that only mean something with another one: the averaging's with
# its method, the warm-up with a schedule.
_OWNED_SETTINGS = {
    'ema_decay': lambda reg: reg.get('weight_averaging') == 'ema',
    'swa_start': lambda reg: reg.get('weight_averaging') == 'swa',
    'lr_warmup': lambda reg: reg.get('lr_schedule', 'constant') != 'constant',
}


def _setting_applies(name: str, reg: Mapping[str, Any]) -> bool:
  owner_on = _OWNED_SETTINGS.get(name)
  return owner_on is None or owner_on(reg)


def _regularization_section(result, directory, kernels) -> str:
  training = result.training
  if not training:
    return '<p class="muted">No model was trained in this run.</p>'
  reg = training['regularization']
  active = ', '.join(reg.get('active', [])) or 'none'
  settings = [[k, _fmt(v, 6) if not isinstance(v, dict) else
               ', '.join(f'{a}={b}' for a, b in v.items())]
              for k, v in reg.items()
              if k != 'active' and _setting_applies(k, reg)]
  w = training['weights']
  weight_rows = [['kernel weights', w['kernel_count']],
                 ['kernel L2 norm', _fmt(w['kernel_l2_norm'])],
                 ['kernel L1 norm', _fmt(w['kernel_l1_norm'])],
                 [f"near zero (|w| < {w['zero_tolerance']:g})",
                  f"{w['near_zero_fraction']:.2%}"]]
  figure = ''
  if kernels:
    figure = _img(weights_figure(kernels, w['zero_tolerance'], directory),
                  'weights')
    weight_rows += [[f'{name} L2 norm', _fmt(float(np.sqrt((k ** 2).sum())))]
                    for name, k in kernels.items()]
  return (f'<p>Techniques in force: <b>{_esc(active)}</b>.</p>'
          + _table(['setting', 'value'], settings) + figure
          + _table(['weights', 'value'], weight_rows))


def bought_paragraph(training: Optional[dict], task: tasks_lib.Task) -> str:
  """One line: the chosen model's gap and eval metric against the same
  network trained without regularization (training.json's
  ``unregularized``), or why it was not measured."""
  if not training:
    return ('<p class="muted">What regularization bought: no model was '
            'trained in this run.</p>')
  plain = training.get('unregularized')
  if not plain:
    return ('<p>What regularization bought: <b>not measured</b> in this run. '
            '<code>report.compare_unregularized: true</code> trains the same '
            'network without any regularization within the Trainer (a second '
            'training) and compares the two here.</p>')
  metric = task.metrics[plain['metric']]
  best = _best_epoch(training)
  record = next((e for e in training['epochs'] if e['epoch'] == best),
                training['epochs'][-1])
  chosen = {k: record[k].get(metric.name) for k in ('eval', 'train', 'gap')}
  gaps = [local_runner.format_gap(metric, g)
          for g in (chosen['gap'], plain['gap'])]
  active = ', '.join(training['regularization'].get('active', [])) or 'none'
  units = '-'.join(str(u) for u in training['model']['hidden_units'])
  change = chosen['eval'] - plain['eval']
  better = change >= 0 if metric.higher_is_better else change <= 0
  return (
      f'<p>What regularization bought, on <b>{_esc(metric.name)}</b>: the '
      f'chosen model ({_esc(active)}; epoch {best} of '
      f"{training['epochs_run']}) eval {chosen['eval']:.4f}, train "
      f"{chosen['train']:.4f}, gap <b>{gaps[0]}</b>; "
      f'the same {_esc(units)} network without any regularization (all '
      f"{plain['epochs']} epochs, the last one) eval {plain['eval']:.4f}, "
      f"train {plain['train']:.4f}, gap <b>{gaps[1]}"
      f'</b>. Eval {metric.name} {change:+.4f} '
      f"({'better' if better else 'worse'}) with regularization. Both on "
      'the eval split (train: the fixed train sample of the curves); the '
      "eval split also chose the regularized model's epoch (early stopping)"
      ' and, in a tuned run, its settings, so its eval figure is somewhat '
      "optimistic: the gate's test numbers above are the unbiased ones.</p>")


def _strengths(trial: Trial) -> str:
  return ', '.join(f'{k} {v:.3g}' for k, v in trial.strengths.items()) or '-'


def regularization_path_section(records: Optional[List[dict]],
                                tuner_state: Optional[str],
                                training: Optional[dict],
                                gate: Optional[dict], config,
                                task: tasks_lib.Task, directory: str) -> str:
  """What regularization bought (every run) and, for a tuned run, the
  search's trials (``records``: trials.json) as a figure and a table;
  ``tuner_state``: the Tuner's state in the run (None: it did not run)."""
  parts = [bought_paragraph(training, task)]
  if tuner_state is None and not config.tuning.enabled:
    parts.append('<p class="muted">Not a tuned run (<code>tuning.enabled: '
                 'false</code>): one configuration was trained, so there is '
                 'no path of trials to show.</p>')
    return '\n'.join(parts)
  if not records:
    parts.append('<p class="muted">No trials to show: '
                 + ('the Tuner did not run in this run.' if tuner_state is None
                    else f'the Tuner is {_esc(tuner_state)} and its '
                    '<code>tuner_results</code> artifact holds no trials.json '
                    '(components.trainer.tuning.Executor writes it).')
                 + '</p>')
    return '\n'.join(parts)
  metric = objective_metric(records, task)
  trials = trials_of(records, config)
  chosen = chosen_trial(trials)
  compared = any(t.improvement is not None for t in trials)
  from components.trainer import tuning  # pylint: disable=g-import-not-at-top
  threshold = tuning.change_threshold(records, config.tuning)
  parts.append(
      f'<p>The search ran {len(trials)} trial(s) in '
      f"{sum(r.get('seconds', 0.0) for r in records):.0f} s (budget "
      f'{config.tuning.budget_minutes:g} min), objective '
      f'<code>val_{_esc(metric.name)}</code> on the eval split, each '
      'trial scored at its best epoch; the test split never reached it. '
      'Trial 1 is the configuration as given, so other settings reach the '
      'Trainer only when they rank better on eval'
      + (f', and beat trial 1 there by more than {threshold:.2f} standard '
         'errors of the paired difference (column <em>vs trial 1</em>, a '
         'bootstrap over the eval rows): the one-sided bound at which a '
         'search of trials no better than trial 1 hands one on with a '
         f'chance of at most {config.tuning.change_error_rate:g} '
         '(<code>tuning.change_error_rate</code>, Bonferroni over the other '
         'trials).' if compared else '.')
      + (f' The chosen trial, {trials[chosen].number}, scored '
         f'{trials[chosen].score:.4f} with a gap of '
         f'{local_runner.format_gap(metric, trials[chosen].gap) or "-"}; the '
         'Trainer retrained its settings.' if chosen is not None else '')
      + '</p>')
  parts.append(_img(trials_figure(trials, metric,
                                  _max_gaps(gate, config).get(metric.name),
                                  directory), 'regularization path'))
  penalized = any(t.ranked != t.score for t in trials)
  if penalized:
    within_by_noise = _within_by_noise(records, config.tuning.gap_fraction)
    parts.append(
        '<p>Trials whose train-minus-eval gap on a gate metric passed '
        f'{config.tuning.gap_fraction:g} of its <code>gate.max_gap</code> '
        '(<code>tuning.gap_fraction</code>) were ranked by a worse score '
        '(column <em>ranked</em>): the gate measures the gap again on test, '
        'with an interval.'
        + (f' {within_by_noise} passed it, or a limit, by the point '
           'estimate only, not beyond eval noise (by less than z standard '
           'errors of the eval side, <code>tuning.change_error_rate</code>), '
           'and so competed as if within.' if within_by_noise else '')
        + '</p>')
  rows = [[t.number, ', '.join(t.techniques) or 'none', _strengths(t),
           _layers(t.hidden_units), f'{t.learning_rate:.2g}', _fmt(t.score), _fmt(t.train),
           _gap_cell(metric, t.gap)] + ([_fmt(t.ranked)] if penalized else [])
          + ([_improvement_cell(t)] if compared else []) + [_fmt(t.epochs)]
          + ([] if t.status == 'COMPLETED' else [t.status])
          for t in trials]
  header = ['trial', 'techniques on', 'strengths', 'width x depth',
            'learning rate', f'eval {metric.name}', f'train {metric.name}',
            'gap'] + (['ranked'] if penalized else [])
  header += (['vs trial 1'] if compared else []) + ['epochs']
  if any(t.status != 'COMPLETED' for t in trials):
    header.append('status')
    rows = [row + [''] * (len(header) - len(row)) for row in rows]
  parts.append(_table(header, rows, ['best' if i == chosen else ''
                                     for i in range(len(trials))]))
  return '\n'.join(parts)


def _within_by_noise(records: List[dict], gap_fraction: float) -> str:
  """The trials that eval noise kept in a better tier than their gaps'
  point estimates (tuning.gap_tier of ``excess`` against that of
  ``excess_beyond_noise``): 'Trial 1', 'Trials 1 and 3', or '' for none."""
  from components.trainer import tuning  # pylint: disable=g-import-not-at-top
  numbers = [str(i + 1) for i, r in enumerate(records)
             if 'excess_beyond_noise' in r and tuning.gap_tier(
                 r.get('excess'), gap_fraction) > tuning.gap_tier(
                     r['excess_beyond_noise'], gap_fraction)]
  if not numbers:
    return ''
  if len(numbers) == 1:
    return f'Trial {numbers[0]}'
  return f"Trials {', '.join(numbers[:-1])} and {numbers[-1]}"


def label_table(rows: Dict[str, int], labels: LabelSummary):
  splits = [s for s in SPLITS if s in rows]

  def note(split):
    read = labels.read.get(split, 0)
    return '' if read == rows[split] else f'first {read} rows'
  if labels.discrete:
    table = []
    for split in splits:
      counts, read = labels.counts.get(split, {}), labels.read.get(split, 0)
      table.append([split, rows[split]] + [
          f'{counts.get(c, 0)} ({counts.get(c, 0) / read:.2%})' if read
          else '-' for c in labels.classes] + [note(split)])
    table.append(['total', sum(rows.values())] + [''] * len(labels.classes)
                 + [''])
    return _table(['split', 'rows'] + [f'label {c}' for c in labels.classes]
                  + ['note'], table)
  table = []
  for split in splits:
    v = labels.values.get(split, np.zeros(0))
    v = v[np.isfinite(v)]
    stats = ([f'{v.mean():.4g}', f'{v.std():.4g}', f'{v.min():.4g}',
              f'{v.max():.4g}'] if len(v) else ['-'] * 4)
    table.append([split, rows[split]] + stats + [note(split)])
  table.append(['total', sum(rows.values()), '', '', '', '', ''])
  return _table(['split', 'rows', 'label mean', 'label std', 'label min',
                 'label max', 'note'], table)


def _features_paragraph(features: config_lib.FeaturesConfig,
                        directory: str) -> str:
  """The feature lists the run used; where they were inferred, the run's
  ``config.yaml`` beside the page says so and holds them to copy."""
  def names(values):
    return ', '.join(f'<code>{_esc(v)}</code>' for v in values) or 'none'
  resolved = os.path.join(directory, 'config.yaml')
  source = ''
  if os.path.exists(resolved):
    with open(resolved, encoding='utf-8') as f:
      inferred = 'inferred from the data' in f.readline()
    source = (' Inferred from the data;' if inferred else '') + (
        ' the run\'s whole configuration: <a href="config.yaml">config.yaml'
        '</a>.')
  return (f'<p>Features: numeric {names(features.numeric)} (log-scaled: '
          f'{names(features.log_scale)}); categorical '
          f'{names(features.categorical)}.{source}</p>')


def encoding_section(training: Optional[Mapping[str, Any]]) -> str:
  """How each feature reached the network (training.json's ``encoding``):
  the numeric scaling Transform chose per column, the categorical one-hot
  block or embedding."""
  encoding = (training or {}).get('encoding')
  if not encoding:
    return '<p class="muted">No encodings recorded (the Trainer did not run).</p>'
  rows = []
  periodic = encoding.get('numeric_embedding')
  embedded = (f"then a periodic embedding: {periodic['frequencies']} "
              f"frequencies (initial sd {periodic['sigma']:g}), a "
              f"{periodic['dim']}-wide ReLU layer" if periodic else '')
  for name, chosen in encoding.get('numeric', {}).items():
    rows.append([name, 'numeric', chosen, embedded])
  for name, spec in encoding.get('categorical', {}).items():
    if spec.get('encoding') == 'embedding':
      detail = (f"{spec['tokens']} tokens, width {spec['dim']}, L2 "
                f"{spec['l2']:g}, dropout {spec['dropout']:g}")
    else:
      detail = f"{spec.get('tokens', '?')} tokens"
    rows.append([name, 'categorical', spec.get('encoding', '?'), detail])
  mode = encoding.get('numeric_encoding', 'zscore')
  note = {
      'auto': 'numeric_encoding auto: where the standard deviation or an '
              'extreme value shows heavy tails or outliers, robust (median '
              'and IQR, then the smooth clip x/sqrt(1+(x/3)&sup2;)) plus the '
              'z-score as a second input (<code>&lt;name&gt;_linear_xf</code>), '
              'z-score elsewhere',
      'robust': 'numeric_encoding robust: median and IQR, then the smooth '
                'clip, for every numeric column',
      'zscore': 'numeric_encoding zscore: mean and standard deviation',
  }.get(mode, _esc(mode))
  return (_table(['feature', 'kind', 'encoding', 'detail'], rows)
          + f'<p class="muted">{note}; read back from Transform\'s graph. '
          'Categorical columns with at least <code>embedding_min_vocab</code> '
          'tokens are learned embeddings.</p>')


def _dropped_paragraph(examples, label: config_lib.LabelConfig) -> str:
  """How many rows ExampleGen left out for lacking the label's value."""
  columns = ', '.join(f'<code>{_esc(c)}</code>'
                      for c in label.required_columns)
  dropped = (metadata.custom(examples, ingest_component.ROWS_DROPPED_PROPERTY)
             if examples else None)
  if dropped is None:
    return (f'<p>Rows without a value in {columns} were not ingested '
            '(<code>data.label.drop_missing</code>); this run did not count '
            'them (the Beam path, or no ExampleGen output).</p>')
  return (f'<p>Rows without a value in {columns}, not ingested '
          f'(<code>data.label.drop_missing</code>): {int(dropped):,}.</p>')


def _data_section(result, config, task, runs, directory) -> str:
  examples = _artifact(runs, NodeIds.EXAMPLE_GEN, 'examples')
  statistics = _artifact(runs, NodeIds.STATISTICS_GEN, 'statistics')
  anomalies = _artifact(runs, NodeIds.EXAMPLE_VALIDATOR, 'anomalies')
  transform_graph = _artifact(runs, NodeIds.TRANSFORM, 'transform_graph')
  parts = [f'<p>Input: <code>{_esc(config.data.resolved_path)}</code>; '
           f'task {_esc(task.name)}, label '
           f'<code>{_esc(config.data.label.name)}</code>'
           + (f' derived from <code>{_esc(config.data.label.column)}</code>'
              if config.data.label.column else '') + '.</p>',
           _features_paragraph(config.data.features, directory)]
  if config.data.label.drop_missing:
    parts.append(_dropped_paragraph(examples, config.data.label))
  rows = _rows_per_split(statistics) if statistics else {}
  labels, why = None, ''
  if rows and examples and transform_graph:
    try:
      labels = summarize_labels(
          _label_values(examples, transform_graph, config.data.label.name),
          _class_names(result.training, transform_graph))
    except Exception as e:  # pylint: disable=broad-except
      why = f"the label could not be derived with Transform's graph: {e}"
  elif rows:
    why = 'Transform did not run, so the label was not derived'
  if rows:
    parts.append(_img(data_figure(rows, labels, directory), 'data summary'))
    if labels is not None:
      parts.append(label_table(rows, labels))
    else:
      parts.append(_table(['split', 'rows'], [
          [s, rows[s]] for s in _ordered_splits(rows)]
                          + [['total', sum(rows.values())]]))
      parts.append(f'<p class="muted">No label distribution: {_esc(why)}.</p>')
  else:
    parts.append('<p class="muted">No statistics in this run.</p>')
  if anomalies:
    blocking, warnings = _anomalies(anomalies)
    if not blocking and not warnings:
      parts.append('<p>Anomalies: none (ExampleValidator against the '
                   + ('curated schema' if config.data.schema_path else
                      'inferred schema') + ').</p>')
    else:
      items = ([('BLOCKING', line) for line in blocking] +
               [('warning', line) for line in warnings])
      parts.append('<p>Anomalies found by ExampleValidator:</p>' + _table(
          ['severity', 'anomaly'], [list(i) for i in items],
          ['fail' if s == 'BLOCKING' else '' for s, _ in items]))
  else:
    parts.append('<p class="muted">ExampleValidator did not run.</p>')
  return '\n'.join(parts)


def _nodes_section(result) -> str:
  rows = [[node, state, round(result.seconds.get(node, 0.0), 1)]
          for node, state in result.nodes.items()]
  return _table(['component', 'state', 'seconds'], rows,
                ['' if s in ('COMPLETE', 'CACHED') else 'fail'
                 for s in result.nodes.values()])


def render(result: local_runner.RunResult,
           config: config_lib.PipelineConfig, directory: str,
           runs: Optional[Dict[str, metadata.NodeRun]] = None,
           kernels: Optional[Dict[str, np.ndarray]] = None) -> str:
  """The report's HTML; its figures are written into ``directory``.

  ``runs`` (the run's executions, from the metadata store) feeds the data
  section; without it, the page is built from ``result`` alone (gate.json and
  training.json).
  """
  runs = runs or {}
  task = local_runner.task_of(result.gate, result.training, config.task)
  css, message = _verdict(result)
  body = [
      f'<h1>{_esc(config.pipeline_name)}: run report</h1>',
      f'<p class="muted">Run {_esc(result.run_id)} &middot; task '
      f'{_esc(task.name)} &middot; pipeline root '
      f'<code>{_esc(result.pipeline_root)}</code>'
      + (f' &middot; {result.wall_seconds:.0f} s wall'
         if result.wall_seconds else '') + '</p>',
      f'<p class="verdict {css}">{_esc(message)}</p>',
      '<h2>Gate decision</h2>', _gate_section(result.gate, task, directory),
      f'<h2>Diagnostics ({_esc(task.name)})</h2>',
      _diagnostics_section(result.gate, result.training, task, directory),
      '<h2>Training: learning curves and gap</h2>',
      _training_section(result, config, task, directory),
      '<h2>Regularization and weights</h2>',
      _regularization_section(result, directory, kernels or {}),
      '<h2>Regularization path: what it bought</h2>',
      regularization_path_section(
          read_trials(runs), result.nodes.get(NodeIds.TUNER), result.training,
          result.gate, config, task, directory),
      '<h2>Data</h2>', _data_section(result, config, task, runs, directory),
      '<h2>Feature encodings</h2>', encoding_section(result.training),
      '<h2>Components</h2>', _nodes_section(result),
  ]
  return ('<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
          f'<title>{_esc(config.pipeline_name)} run {_esc(result.run_id)}'
          f'</title><style>{_STYLE}</style></head><body>\n'
          + '\n'.join(body) + '\n</body></html>\n')


def write_page(page: str, directory: str) -> str:
  path = os.path.join(directory, REPORT_HTML)
  with open(path, 'w', encoding='utf-8') as f:
    f.write(page)
  return path


def write_report(result: local_runner.RunResult,
                 config: config_lib.PipelineConfig) -> str:
  """Writes the report and its figures; returns the HTML file's path."""
  directory = report_dir(result, config)
  os.makedirs(directory, exist_ok=True)
  store = metadata.connect_sqlite(result.metadata_path)
  runs = metadata.node_runs(store, result.run_id)
  model_run = _artifact(runs, NodeIds.TRAINER, 'model_run')
  kernels = _kernels(model_run) if model_run and result.training else {}
  return write_page(render(result, config, directory, runs, kernels),
                    directory)
