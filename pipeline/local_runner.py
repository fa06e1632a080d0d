"""Runs the pipeline locally: LocalDagRunner, Beam DirectRunner, SQLite MLMD.

This thin runner resolves paths and Beam arguments, checks the input file,
calls the pure factory, runs it and reads the outcome back from the metadata
store. It is the only place that touches the local filesystem layout.
"""

import dataclasses
import json
import os
import sys
import time
from typing import Dict, List, Optional, Sequence

from tfx import v1 as tfx

from components import beam_fallback
from components.gate import decision
from components.gate import keys as gate_keys
from components.trainer import run as trainer_run
from core import config as config_lib
from core import tasks as tasks_lib
from pipeline import code_version, console, factory, metadata, preflight

# Runs recorded before the pipeline served several tasks were binary.
LEGACY_TASK = 'binary'


@dataclasses.dataclass
class RunResult:
  """What a run did, read back from the metadata store."""
  run_id: str
  nodes: Dict[str, str]  # node id -> COMPLETE / CACHED / FAILED
  seconds: Dict[str, float]
  blessed: bool
  gate: Optional[dict]  # gate.json: every check with its numbers
  training: Optional[dict]  # training.json: curves, regularization, weights
  pushed_to: Optional[str]
  pipeline_root: str
  metadata_path: str
  wall_seconds: float

  @property
  def task(self) -> tasks_lib.Task:
    """The task the run served, as its gate.json or training.json records."""
    return task_of(self.gate, self.training)


def task_of(gate: Optional[dict], training: Optional[dict],
            default: Optional[str] = None) -> tasks_lib.Task:
  """The task recorded in gate.json or training.json, else ``default`` (the
  configuration's), else the pre-task runs' binary."""
  for record in (gate, training):
    if record and record.get('task'):
      return tasks_lib.get(record['task'])
  return tasks_lib.get(default or LEGACY_TASK)


def ensemble_best_epochs(ensemble: dict) -> str:
  """'7, 9, 4': each member's best (else last) epoch, of training.json's
  ``ensemble``."""
  return ', '.join(str(m.get('best_epoch', m['epochs_run']))
                   for m in ensemble['members'])


def ensemble_words(ensemble: dict) -> str:
  """One line on training.json's ``ensemble`` (model.ensemble_size)."""
  return (f"an ensemble of {ensemble['size']} networks from different seeds "
          f"(train split <= model.ensemble_max_rows {ensemble['max_rows']:,} "
          f"rows), averaged; their best epochs "
          f"{ensemble_best_epochs(ensemble)}; the epochs shown are the "
          "first's")


def trivial_predictor(task: tasks_lib.Task,
                      held_out: Dict[str, float]) -> str:
  """'majority class 0.9700, prior log loss 0.1347': the trivial predictor's
  scores on the held-out split, as the gate measured them."""
  return ', '.join(
      f'{name} {held_out[key]:{spec}}'
      for name, key, _, spec in task.trivial_scores
      if held_out.get(key) is not None)


def format_gap(metric: tasks_lib.Metric, value: Optional[float]) -> str:
  """A gap as a signed number, or a signed percentage when it is relative."""
  if value is None:
    return ''
  return f'{value:+.1%}' if metric.relative_gap else f'{value:+.4f}'


def beam_args(beam: config_lib.BeamConfig, rows: Optional[int]) -> List[str]:
  """Beam flags for this input size.

  Small inputs run in memory, where worker start-up would cost more than the
  work. Then no flag is passed at all: TFX repackages itself as an sdist for
  every Beam component whenever any Beam argument is set (for remote
  workers), which costs seconds per component and buys nothing locally.

  ``force_beam_executors`` becomes a flag of its own, read by the in-process
  executors (components/beam_fallback.py) wherever the flags go.
  """
  mode = beam.direct_running_mode
  if mode == 'auto':
    mode = ('multi_processing' if rows and
            rows > beam.multi_processing_above_rows else 'in_memory')
  args = list(beam.extra_args)
  if beam.force_beam_executors and beam_fallback.FORCE_FLAG not in args:
    args.append(beam_fallback.FORCE_FLAG)
  if beam.runner != 'DirectRunner':
    return [f'--runner={beam.runner}'] + args
  if mode != 'in_memory':
    args += [f'--direct_running_mode={mode}',
             f'--direct_num_workers={beam.direct_num_workers}']
  return args


def paths(config: config_lib.PipelineConfig) -> Dict[str, str]:
  out = config.output
  return {name: os.path.abspath(out.resolve(getattr(out, name)))
          for name in ('pipeline_root', 'metadata_path', 'serving_dir')}


def report_dir(config: config_lib.PipelineConfig, run_id: str) -> str:
  """``<output.root>/reports/<run id>/``: the run's report and log."""
  # Run ids are timestamps; colons are not portable in file names.
  return os.path.abspath(os.path.join(config.output.root, 'reports',
                                      run_id.replace(':', '-')))


def run_local(config: config_lib.PipelineConfig, *,
              enable_cache: bool = True,
              progress_stream=sys.stderr,
              summary: Optional[preflight.DataSummary] = None) -> RunResult:
  """Runs the whole pipeline; raises InputDataError before anything runs.

  ``summary`` is the pre-run check's, when the caller ran it already; its
  configuration (features inferred, if asked) is the one run.
  """
  summary = summary or preflight.check_csv(config)
  config = summary.config
  where = paths(config)
  # What the check listed: a file's folder and name, a folder and its
  # format's pattern, or a glob split before its first wildcard.
  data = summary.location
  pipeline = factory.create_pipeline(
      config,
      pipeline_root=where['pipeline_root'],
      data_root=data.root,
      data_file_pattern=data.pattern,
      serving_dir=where['serving_dir'],
      beam_pipeline_args=beam_args(config.beam, summary.rows_total),
      metadata_connection_config=tfx.orchestration.metadata
      .sqlite_metadata_connection_config(where['metadata_path']),
      enable_cache=enable_cache,
      code_version=code_version.code_version())
  os.makedirs(os.path.dirname(where['metadata_path']), exist_ok=True)
  start = time.monotonic()
  with console.progress(progress_stream):
    tfx.orchestration.LocalDagRunner().run(pipeline)
  return read_result(where['metadata_path'], where['pipeline_root'],
                     time.monotonic() - start)


def _read_json(uri: str, name: str) -> Optional[dict]:
  path = os.path.join(uri, name)
  if not os.path.exists(path):
    return None
  with open(path, encoding='utf-8') as f:
    return json.load(f)


def read_result(metadata_path: str, pipeline_root: str,
                wall_seconds: float = 0.0,
                run_id: Optional[str] = None) -> RunResult:
  store = metadata.connect_sqlite(metadata_path)
  runs = metadata.node_runs(store, run_id)
  run_id = run_id or metadata.run_ids(store)[-1]
  gate = training = pushed_to = None
  blessed = False

  def output(node, key):
    # A failed or killed execution (FAILED, RUNNING) published no outputs.
    found = runs[node].outputs.get(key) if node in runs else None
    return found[0] if found else None
  blessing = output(factory.NodeIds.GATE, 'blessing')
  if blessing is not None:
    blessed = metadata.custom(blessing, 'blessed') == 1
    gate = _read_json(blessing.uri, gate_keys.GATE_JSON)
  model_run = output(factory.NodeIds.TRAINER, 'model_run')
  if model_run is not None:
    training = _read_json(model_run.uri, trainer_run.TRAINING_JSON)
  pushed = output(factory.NodeIds.PUSHER, 'pushed_model')
  if pushed is not None and metadata.custom(pushed, 'pushed') == 1:
    pushed_to = metadata.custom(pushed, 'pushed_destination')
  return RunResult(
      run_id=run_id, nodes={k: v.state for k, v in runs.items()},
      seconds={k: v.seconds for k, v in runs.items()}, blessed=blessed,
      gate=gate, training=training, pushed_to=pushed_to,
      pipeline_root=pipeline_root, metadata_path=metadata_path,
      wall_seconds=wall_seconds)


def format_summary(result: RunResult, nodes: bool = True) -> str:
  """The short summary printed at the end of a run; ``nodes`` adds a table
  of every node's state and time (a quiet run has printed those already,
  except the states of nodes that did not run)."""
  held_out_rows = ((result.gate or {}).get('sizes') or {}).get('held_out')

  def interval_note(check: dict) -> str:
    # The check's interval and, unless it simply passed or failed, its
    # verdict and the held-out rows that would decide it ('' for a
    # gate.json without intervals).
    note = ''
    if check.get('low') is not None:
      note = f"  [{check['low']:.4f}, {check['high']:.4f}]"
    verdict = check.get('verdict', 'pass')
    if verdict in ('inconclusive', 'refused'):
      note += f' {verdict}' + (' (point estimate decides)' if check['passed']
                               else '')
      decide = decision.undecided_note(check, held_out_rows)
      note += f', {decide}' if decide else ''
      measurable = decision.measurable_note(check)
      note += f'; {measurable}' if measurable else ''
    return note

  lines = [f'Run {result.run_id}: {result.wall_seconds:.0f} s wall']
  if nodes:
    lines.append('  node                  state      seconds')
    for node, state in result.nodes.items():
      lines.append(f'  {node:<21} {state:<10} {result.seconds[node]:7.1f}')
  else:
    unusual = {n: s for n, s in result.nodes.items() if s != 'COMPLETE'}
    if unusual:
      lines.append('  ' + ', '.join(f'{n} {s}' for n, s in unusual.items()))
  if result.training:
    t = result.training
    es = t.get('early_stopping')
    lines.append(
        f"Training ({result.task.name}): {t['epochs_run']} epochs, "
        "regularization "
        f"{', '.join(t['regularization']['active']) or 'none'}"
        + (f", best epoch {es['best_epoch']} restored ({es['monitor']})"
           if es else ''))
    if t.get('ensemble'):
      lines.append(f"  {ensemble_words(t['ensemble'])}")
    if es and not es['stopped_early'] and es['best_epoch'] == t['epochs_run']:
      lines.append(f"  note: the best epoch was the last, {t['epochs_run']}: "
                   'the eval metric was still improving when model.epochs '
                   'ended training; a larger model.epochs may help')
  if result.gate:
    task = result.task
    metrics = result.gate['metrics']
    held_out, train = metrics['held_out'][''], metrics['train']['']
    eval_split = {}
    if result.training and result.training.get('epochs'):
      best = (result.training.get('early_stopping') or {}).get(
          'best_epoch', result.training['epochs_run'])
      eval_split = result.training['epochs'][best - 1]['eval']
      # The model served is the ensemble: its eval metrics, not member 1's.
      eval_split = (result.training.get('ensemble') or {}).get(
          'eval', eval_split)
    # Train and test are scored by the exported, calibrated model; the
    # epochs' eval log loss is before calibration.
    calibrated = (result.training or {}).get('calibration') or {}
    temperature = calibrated.get('temperature', 1.0)
    if temperature != 1.0 and 'log_loss' in eval_split:
      eval_split = dict(eval_split,
                        log_loss=calibrated['eval_loss_calibrated'])
    gaps = {c['metric']: c['value'] for c in result.gate['checks']
            if c['kind'] == 'gap' and not c['slice']}
    nan = float('nan')
    relative = any(m.relative_gap for m in task.metrics.values())
    lines.append('  metric      train    eval     test     gap(train-test'
                 + ('; %: test/train - 1)' if relative else ')'))
    for m, metric in task.metrics.items():
      lines.append((
          f"  {m:<10} {train.get(m, nan):7.4f}  {eval_split.get(m, nan):7.4f}"
          f"  {held_out.get(m, nan):7.4f}  {format_gap(metric, gaps.get(m))}"
      ).rstrip())
    lines.append(f"  (train: {int(train['example_count'])} sampled rows; test: "
                 f"{int(held_out['example_count'])} rows"
                 + (f'; probabilities calibrated with temperature '
                    f'{temperature:.3g}, fitted on eval, whose log loss was '
                    f"{calibrated['eval_loss']:.4f} before)"
                    if temperature != 1.0 else ')'))
    trivial = trivial_predictor(task, held_out)
    if trivial:
      lines.append(f'  trivial predictor on test: {trivial}')
    for check in result.gate['checks']:
      if not check['slice'] or not check['passed']:
        where = f" [{check['slice']}]" if check['slice'] else ''
        lines.append(
            f"  {'ok  ' if check['passed'] else 'FAIL'} {check['kind']:<8} "
            f"{check['metric']}{where}: {check['value']:.4f} "
            f"{check['comparison']} {check['threshold']:.4f}"
            + interval_note(check))
    if result.gate.get('baseline_note'):
      # No baseline check above: say why the last blessed model was not used.
      lines.append(f"  note: {result.gate['baseline_note']}")
  lines.append(f"Blessed: {'yes' if result.blessed else 'NO'}"
               + ('' if result.blessed or not result.gate
                  else f" ({result.gate['reason']})"))
  if result.pushed_to and result.nodes.get(
      factory.NodeIds.PUSHER) == 'CACHED':
    # An earlier run's push, reused: nothing was copied this time.
    lines.append(f'Pushed: nothing new; already served at {result.pushed_to}')
  else:
    lines.append(f"Pushed: {result.pushed_to or 'nothing'}")
  return '\n'.join(lines)
