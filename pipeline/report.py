"""The run report: one HTML page, with PNG figures beside it.

Built from what a run left behind (its metadata store and pipeline root), so
``python -m pipeline report`` can regenerate it at any time:

* learning curves: train (re-evaluated on a fixed sample) against eval, per
  metric and epoch, with the restored epoch and the gate's held-out score;
* the train-minus-eval gap per epoch against the gate's ``max_gap``;
* the gate's decision, every check with its value and threshold;
* the regularization settings, kernel norms and sparsity;
* a data summary: rows per split, label balance, anomalies.

It is written below ``<output.root>/reports/<run id>/``. Every section says so
when its inputs are missing (a run stopped by anomalies has no model), so a
failed run still gets a report that shows why it stopped.
"""

import html
import os
from typing import Dict, List, Optional, Tuple

import matplotlib
matplotlib.use('Agg')  # Files only; never a display.
from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
import numpy as np
import tensorflow as tf
from tensorflow_metadata.proto.v0 import statistics_pb2
from tfx.types import artifact_utils

from components import preprocessing, validation
from components.trainer import run as trainer_run
from pipeline import config as config_lib
from pipeline import local_runner, metadata
from pipeline.factory import NodeIds, TRAIN, EVAL, TEST

REPORT_HTML = 'report.html'
SPLITS = (TRAIN, EVAL, TEST)
# Raw examples read per split for the label balance; the counts themselves
# come from StatisticsGen and are exact.
LABEL_SAMPLE = 50_000
TRAIN_COLOR, EVAL_COLOR, TEST_COLOR = '#1f77b4', '#ff7f0e', '#2ca02c'
PASS_COLOR, FAIL_COLOR = '#2ca02c', '#d62728'


def report_dir(result: local_runner.RunResult,
               config: config_lib.PipelineConfig) -> str:
  # Run ids are timestamps; colons are not portable in file names.
  safe = result.run_id.replace(':', '-')
  return os.path.abspath(os.path.join(config.output.root, 'reports', safe))


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


_DTYPES = {'bytes_list': tf.string, 'int64_list': tf.int64,
           'float_list': tf.float32}


def _label_balance(examples, label: config_lib.LabelConfig
                   ) -> Dict[str, Tuple[int, int]]:
  """split -> (positives, rows read), the label derived by Transform's code."""
  balance = {}
  for split in _split_names(examples):
    files = sorted(tf.io.gfile.glob(
        os.path.join(examples.uri, f'Split-{split}', '*')))
    if not files:
      continue
    # One batch: iterating record by record in eager mode took seconds.
    batch = next(iter(tf.data.TFRecordDataset(
        files, compression_type='GZIP').batch(LABEL_SAMPLE)), None)
    if batch is None:
      continue
    records = batch.numpy().tolist()
    # A column's type is whatever ExampleGen inferred from the CSV; a value
    # missing in one example says nothing, so look until one is present.
    dtypes = {}
    for record in records:
      feature = tf.train.Example.FromString(record).features.feature
      for column in label.source_columns:
        kind = feature[column].WhichOneof('kind') if column in feature else None
        if column not in dtypes and kind and getattr(feature[column],
                                                      kind).value:
          dtypes[column] = _DTYPES[kind]
      if len(dtypes) == len(label.source_columns):
        break
    parsed = tf.io.parse_example(records, {
        c: tf.io.VarLenFeature(dtypes.get(c, tf.float32))
        for c in label.source_columns})
    labels = preprocessing.derive_label(parsed, label).numpy()
    balance[split] = (int(labels.sum()), len(records))
  return balance


def _anomalies(anomalies) -> Tuple[List[str], List[str]]:
  by_split = validation.read_anomalies(anomalies.uri, _split_names(anomalies))
  return validation.describe(by_split)


def _kernels(model_run) -> Dict[str, np.ndarray]:
  """Dense kernels of the trained model, by layer name, as the Trainer saved
  them beside training.json (loading the SavedModel took seconds)."""
  return trainer_run.read_kernels(
      os.path.join(model_run.uri, trainer_run.KERNELS_NPZ))


# --------------------------------------------------------------------------
# Figures.


def _save(fig: Figure, directory: str, name: str) -> str:
  fig.savefig(os.path.join(directory, name), dpi=110, bbox_inches='tight')
  return name


def _best_epoch(training: dict) -> int:
  es = training.get('early_stopping') or {}
  return es.get('best_epoch', training['epochs_run'])


def curves_figure(training: dict, gate: Optional[dict], directory: str) -> str:
  epochs = training['epochs']
  x = [e['epoch'] for e in epochs]
  best = _best_epoch(training)
  fig = Figure(figsize=(12, 3.8), layout='constrained')
  for i, metric in enumerate(config_lib.METRICS):
    ax = fig.add_subplot(1, len(config_lib.METRICS), i + 1)
    ax.plot(x, [e['train'][metric] for e in epochs], 'o-', color=TRAIN_COLOR,
            label='train (fixed sample)')
    ax.plot(x, [e['eval'].get(metric, np.nan) for e in epochs], 's-',
            color=EVAL_COLOR, label='eval')
    ax.axvline(best, color='grey', linestyle=':', label=f'restored epoch {best}')
    if gate:
      ax.plot([best], [gate['metrics']['held_out'][''][metric]], '*',
              markersize=13, color=TEST_COLOR, label='test (gate)')
    ax.set_title(metric + (' (lower is better)'
                           if not config_lib.METRICS[metric] else ''))
    ax.set_xlabel('epoch')
    ax.grid(alpha=0.3)
    if len(x) <= 12:
      ax.set_xticks(x)
    if i == 0:
      ax.legend(fontsize=8)
  fig.suptitle('Learning curves: train vs eval per epoch')
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


def gap_figure(training: dict, gate: Optional[dict], config,
               directory: str) -> str:
  epochs = training['epochs']
  x = [e['epoch'] for e in epochs]
  limits, final = _max_gaps(gate, config), _final_gaps(gate)
  fig = Figure(figsize=(12, 3.8), layout='constrained')
  for i, metric in enumerate(config_lib.METRICS):
    ax = fig.add_subplot(1, len(config_lib.METRICS), i + 1)
    gaps = [e['gap'].get(metric, np.nan) for e in epochs]
    ax.plot(x, gaps, 'o-', color='#9467bd', label='gap, train - eval')
    ax.axhline(0, color='black', linewidth=0.6)
    if metric in final:
      ax.plot([_best_epoch(training)], [final[metric]], '*', markersize=13,
              color=TEST_COLOR, label='gate: train sample - test')
    if metric in limits:
      limit = limits[metric]
      seen = [abs(g) for g in gaps + [final.get(metric, 0.0)]
              if np.isfinite(g)] + [1e-3]
      if limit <= 4 * max(seen):
        ax.axhline(limit, color=FAIL_COLOR, linestyle='--',
                   label=f'max_gap {limit:g}')
        ax.axhspan(limit, max([limit * 1.5] + seen), color=FAIL_COLOR,
                   alpha=0.08)
      else:
        # A limit far above the gaps would flatten them to a line: keep the
        # gaps readable and say where the limit is.
        ax.set_ylim(-1.5 * max(seen), 1.5 * max(seen))
        ax.annotate(f'max_gap {limit:g} (far above)', (0.98, 0.96),
                    xycoords='axes fraction', ha='right', va='top',
                    color=FAIL_COLOR, fontsize=9)
    ax.set_title(f'{metric} gap' + (' (sign flipped: loss)'
                                    if not config_lib.METRICS[metric] else ''))
    ax.set_xlabel('epoch')
    ax.grid(alpha=0.3)
    if len(x) <= 12:
      ax.set_xticks(x)
    ax.legend(fontsize=8)
  fig.suptitle('Generalization gap per epoch (positive: better on train)')
  return _save(fig, directory, 'gap.png')


def _headroom(check: dict) -> float:
  """Distance to the threshold, positive when the check passes."""
  if check['comparison'] == '>=':
    return check['value'] - check['threshold']
  return check['threshold'] - check['value']


def gate_figure(gate: dict, directory: str) -> str:
  checks = gate['checks']
  labels = [f"{c['kind']} {c['metric']}" + (f" [{c['slice']}]" if c['slice']
                                             else '')
            + ('' if c['passed'] else ' FAILED') for c in checks]
  values = [_headroom(c) for c in checks]
  fig = Figure(figsize=(8, 0.45 * len(checks) + 1.4))
  ax = fig.add_subplot(1, 1, 1)
  y = np.arange(len(checks))
  ax.barh(y, values, color=[PASS_COLOR if c['passed'] else FAIL_COLOR
                            for c in checks])
  ax.set_yticks(y)
  ax.set_yticklabels(labels)
  ax.invert_yaxis()
  ax.axvline(0, color='black', linewidth=0.8)
  for yi, (v, c) in enumerate(zip(values, checks)):
    ax.annotate(f"{c['value']:.4f} {c['comparison']} {c['threshold']:.4f}",
                (v, yi), xytext=(4 if v >= 0 else -4, 0),
                textcoords='offset points', va='center',
                ha='left' if v >= 0 else 'right', fontsize=8)
  span = max([abs(v) for v in values] + [1e-3])
  ax.set_xlim(-span * 1.9, span * 1.9)
  ax.set_xlabel('headroom to threshold (right of 0: passed)')
  ax.set_title('Gate: ' + ('BLESSED' if gate['blessed'] else
                           f"NOT blessed ({gate['reason']})"))
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
          bins=bins, stacked=True, label=list(kernels))
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


def data_figure(rows: Dict[str, int], balance: Dict[str, Tuple[int, int]],
                directory: str) -> str:
  fig = Figure(figsize=(6, 3.4))
  ax = fig.add_subplot(1, 1, 1)
  splits = [s for s in SPLITS if s in rows] + sorted(set(rows) - set(SPLITS))
  totals = [rows[s] for s in splits]
  rates = [balance[s][0] / balance[s][1] if balance.get(s) and balance[s][1]
           else np.nan for s in splits]
  positives = [t * r if np.isfinite(r) else 0 for t, r in zip(totals, rates)]
  negatives = [t - p for t, p in zip(totals, positives)]
  ax.bar(splits, negatives, color='#c7c7c7', label='label 0')
  ax.bar(splits, positives, bottom=negatives, color=TRAIN_COLOR,
         label='label 1')
  for i, (t, r) in enumerate(zip(totals, rates)):
    ax.annotate(f'{t} rows\n{r:.1%} positive' if np.isfinite(r) else f'{t} rows',
                (i, t), ha='center', va='bottom', fontsize=8)
  ax.set_ylim(0, max(totals) * 1.3)
  ax.set_ylabel('rows')
  ax.set_title('Rows per split and label balance')
  ax.legend(fontsize=8, loc='upper right')
  return _save(fig, directory, 'data.png')


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


def _gate_section(gate: Optional[dict], directory: str) -> str:
  if not gate:
    return '<p class="muted">The gate did not run in this run.</p>'
  checks = gate['checks']
  rows = [[c['kind'], c['metric'], c['slice'] or 'all', _fmt(c['value']),
           c['comparison'], _fmt(c['threshold']),
           'passed' if c['passed'] else 'FAILED', c['detail']] for c in checks]
  metrics = gate['metrics']
  metric_rows = []
  for split, values in (('train sample', metrics['train']['']),
                        ('test (held out)', metrics['held_out']['']),
                        ('latest blessed model, test', metrics['baseline'])):
    if values:
      metric_rows.append([split] + [_fmt(values.get(m)) for m in
                                    config_lib.METRICS] +
                         [_fmt(values.get('example_count'), 0)])
  return (
      f"<p>Decision: <b>{'BLESSED' if gate['blessed'] else 'NOT blessed'}</b>"
      f" &mdash; {_esc(gate['reason'])}. Majority class rate on test: "
      f"{gate['majority_rate']:.4f}.</p>"
      + _img(gate_figure(gate, directory), 'gate checks')
      + _table(['check', 'metric', 'slice', 'value', '', 'threshold',
                'result', 'detail'], rows,
               ['' if c['passed'] else 'fail' for c in checks])
      + _table(['scored on'] + list(config_lib.METRICS) + ['rows'],
               metric_rows))


def _training_section(result, config, directory) -> str:
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
           _img(curves_figure(training, result.gate, directory),
                'learning curves'),
           _img(gap_figure(training, result.gate, config, directory),
                'gap per epoch')]
  rows = [[e['epoch']] + [_fmt(e[s].get(m)) for m in config_lib.METRICS
                          for s in ('train', 'eval')]
          + [_fmt(e['gap'].get(m)) for m in config_lib.METRICS]
          + [_fmt(e.get('fit_loss'))] for e in training['epochs']]
  header = (['epoch'] + [f'{m} {s}' for m in config_lib.METRICS
                         for s in ('train', 'eval')]
            + [f'gap {m}' for m in config_lib.METRICS] + ['fit loss (w/ penalty)'])
  parts.append(_table(header, rows))
  return '\n'.join(parts)


def _regularization_section(result, directory, kernels) -> str:
  training = result.training
  if not training:
    return '<p class="muted">No model was trained in this run.</p>'
  reg = training['regularization']
  active = ', '.join(reg.get('active', [])) or 'none'
  settings = [[k, _fmt(v, 6) if not isinstance(v, dict) else
               ', '.join(f'{a}={b}' for a, b in v.items())]
              for k, v in reg.items() if k != 'active']
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


def _data_section(result, config, runs, directory) -> str:
  examples = _artifact(runs, NodeIds.EXAMPLE_GEN, 'examples')
  statistics = _artifact(runs, NodeIds.STATISTICS_GEN, 'statistics')
  anomalies = _artifact(runs, NodeIds.EXAMPLE_VALIDATOR, 'anomalies')
  parts = [f'<p>Input: <code>{_esc(config.data.resolved_path)}</code>; '
           f'label <code>{_esc(config.data.label.name)}</code>'
           + (f' derived from <code>{_esc(config.data.label.column)}</code>'
              if config.data.label.column else '') + '.</p>']
  rows = _rows_per_split(statistics) if statistics else {}
  balance = _label_balance(examples, config.data.label) if examples else {}
  if rows:
    parts.append(_img(data_figure(rows, balance, directory), 'data summary'))
    table = []
    for split in [s for s in SPLITS if s in rows]:
      pos, read = balance.get(split, (0, 0))
      table.append([split, rows[split], pos if read else '-',
                    f'{pos / read:.2%}' if read else '-',
                    '' if read == rows[split] else f'first {read} rows'])
    table.append(['total', sum(rows.values()), '', '', ''])
    parts.append(_table(['split', 'rows', 'label 1', 'label 1 rate', 'note'],
                        table))
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


def write_report(result: local_runner.RunResult,
                 config: config_lib.PipelineConfig) -> str:
  """Writes the report and its figures; returns the HTML file's path."""
  directory = report_dir(result, config)
  os.makedirs(directory, exist_ok=True)
  store = metadata.connect_sqlite(result.metadata_path)
  runs = metadata.node_runs(store, result.run_id)
  model_run = _artifact(runs, NodeIds.TRAINER, 'model_run')
  kernels = _kernels(model_run) if model_run and result.training else {}
  css, message = _verdict(result)
  body = [
      f'<h1>{_esc(config.pipeline_name)}: run report</h1>',
      f'<p class="muted">Run {_esc(result.run_id)} &middot; pipeline root '
      f'<code>{_esc(result.pipeline_root)}</code> &middot; '
      f'{result.wall_seconds:.0f} s wall</p>'
      if result.wall_seconds else
      f'<p class="muted">Run {_esc(result.run_id)} &middot; pipeline root '
      f'<code>{_esc(result.pipeline_root)}</code></p>',
      f'<p class="verdict {css}">{_esc(message)}</p>',
      '<h2>Gate decision</h2>', _gate_section(result.gate, directory),
      '<h2>Training: learning curves and gap</h2>',
      _training_section(result, config, directory),
      '<h2>Regularization and weights</h2>',
      _regularization_section(result, directory, kernels),
      '<h2>Data</h2>', _data_section(result, config, runs, directory),
      '<h2>Components</h2>', _nodes_section(result),
  ]
  page = ('<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
          f'<title>{_esc(config.pipeline_name)} run {_esc(result.run_id)}'
          f'</title><style>{_STYLE}</style></head><body>\n'
          + '\n'.join(body) + '\n</body></html>\n')
  path = os.path.join(directory, REPORT_HTML)
  with open(path, 'w', encoding='utf-8') as f:
    f.write(page)
  return path
