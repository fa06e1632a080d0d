"""P4: what the gate's train-side check and its intervals cost.

Our gate replaces the stock Evaluator.  It scores the candidate with TFMA on
the held-out split and, for the overfitting gap, on a deterministic sample
of the train split as large as the held-out split, in one TFMA pass over
both (rows tagged with their split, metrics sliced by it), and decides on
bootstrap intervals (every statistic kept for ``gate.bootstrap_replicates``
Poisson replicates inside the task's accumulators).  This benchmark times
the gate executor's evaluation (``components.gate.executor.Executor.evaluate``)
in three variants on the artifacts of a finished run (by default the taxi
sample): same model, examples, schema and the Beam arguments the local
runner would pick.

* as the pipeline runs it: train branch and intervals;
* without intervals (``bootstrap_replicates: 0``): the cost of the
  intervals, target (issue 14) at most 1.5x;
* without the train branch (``train_split=None``), with intervals: the cost
  of the train-side check (issue 7's target was 1.3x).

There is no baseline model in any variant (a first run has none).  Each
call is a whole Beam pipeline including model loading; one untimed warm-up
per variant, then ``--repeats`` rounds of all variants in rotating order,
medians.  The blessing decision and file writes around ``evaluate`` are not
timed: they take milliseconds and do not depend on the variant.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from typing import Dict, Optional

from bench import common, ours

TITLE = "P4: the gate's train-side check and intervals"
TARGET = 1.5  # With / without intervals (issue 14).
TRAIN_TARGET = 1.3  # With / without the train branch (issue 7).
# Variant -> (train branch, intervals).
VARIANTS = {'full': (True, True), 'points': (True, False),
            'held_out_only': (False, True)}


def run(workdir: str, repeats: int = 5,
        source: Optional[str] = None) -> Dict[str, object]:
  from components.gate import executor as gate_executor
  from core import config as config_lib
  from pipeline import local_runner, preflight

  machine = common.machine_description()
  load_before, busy = common.load_average(), common.busy_processes()
  source = source or ours.finished_taxi_run(os.path.dirname(workdir))
  src = ours.load_source(source)
  cfg = src['config']
  props = src['gate_properties']
  gate = config_lib.parse_gate(json.loads(props[gate_executor.GATE_CONFIG_KEY]),
                              props.get(gate_executor.TASK_KEY, cfg.task))
  if not gate.bootstrap_replicates:
    gate = dataclasses.replace(
        gate, bootstrap_replicates=config_lib.GateConfig.bootstrap_replicates)
  points = dataclasses.replace(gate, bootstrap_replicates=0)
  rows = preflight.check_csv(cfg).rows_total
  beam_args = local_runner.beam_args(cfg.beam, rows)
  executor = gate_executor.Executor(
      gate_executor.Executor.Context(beam_pipeline_args=beam_args,
                                     tmp_dir=os.path.join(workdir, 'tmp'),
                                     unique_id='bench'))
  train_split = props[gate_executor.TRAIN_SPLIT_KEY]
  calls = {'count': 0}
  sizes = {}

  def evaluate(variant: str) -> float:
    with_train, intervals = VARIANTS[variant]
    calls['count'] += 1
    out = os.path.join(workdir, f"evaluation_{calls['count']}")
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    metrics = executor.evaluate(
        examples=[src['examples']], schema_artifacts=[src['schema']],
        model_uri=src['model'].uri, baseline_uri=None,
        label_key=props[gate_executor.LABEL_KEY],
        held_out_split=props[gate_executor.HELD_OUT_SPLIT_KEY],
        train_split=train_split if with_train else None,
        gate=gate if intervals else points, output_uri=out)
    seconds = time.perf_counter() - start
    shutil.rmtree(out, ignore_errors=True)
    for side, per_model in metrics.items():
      sizes[side] = int(per_model['candidate']['']['example_count'])
    return seconds

  samples = {variant: [] for variant in VARIANTS}
  order = list(VARIANTS)
  for variant in order:
    evaluate(variant)  # Warm-up: TFMA and model loading paths, untimed.
  for i in range(repeats):
    for variant in order[i % len(order):] + order[:i % len(order)]:
      samples[variant].append(evaluate(variant))
      print(f'[p4] {variant}, run {i + 1}: {samples[variant][-1]:.2f} s',
            flush=True)
  selection = _sample_selection_cost(src, train_split, sizes['train'],
                                     repeats)
  out = {
      'selection': selection,
      'machine': machine, 'load_before': load_before,
      'load_after': common.load_average(), 'busy': busy,
      'source': source, 'beam_args': beam_args,
      'held_out_rows': sizes['held_out'], 'train_rows': sizes['train'],
      'replicates': gate.bootstrap_replicates,
      'slice_features': list(gate.slice_features),
      'held_out_split': props[gate_executor.HELD_OUT_SPLIT_KEY],
      **{variant: common.Timing(samples[variant]) for variant in VARIANTS},
  }
  common.save_json(os.path.join(workdir, 'p4.json'), out)
  return out


def _sample_selection_cost(src: Dict, split: str, size: int,
                           repeats: int) -> Dict[str, common.Timing]:
  """Reading the train split with and without picking the gate's sample,
  in a Beam pipeline of its own: whether the selection is the cost."""
  import apache_beam as beam
  from tfx.components.util import tfxio_utils
  from tfx.types import artifact_utils
  from tfx.utils import io_utils

  from components.gate import executor as gate_executor

  examples = [src['examples']]
  factory = tfxio_utils.get_tfxio_factory_from_artifact(
      examples=examples, telemetry_descriptors=['bench'], schema=None)
  tfxio = factory([io_utils.all_files_pattern(u) for u in
                   artifact_utils.get_split_uris(examples, split)])

  def read(sample: bool) -> None:
    with beam.Pipeline() as p:
      records = p | 'Read' >> tfxio.RawRecordBeamSource()
      if sample:
        # The gate's own transform (private, but it is what is measured).
        records = records | 'Sample' >> gate_executor._DeterministicSample(  # pylint: disable=protected-access
            size)
      _ = records | 'Count' >> beam.combiners.Count.Globally()

  return {'read': common.time_repeated(lambda: read(False), repeats),
          'read_and_sample': common.time_repeated(lambda: read(True), repeats)}


def markdown(result: Dict, command: str) -> str:
  full, points, held_out = (result['full'], result['points'],
                            result['held_out_only'])
  ratio = full.median / points.median
  train_ratio = full.median / held_out.median
  sel = result['selection']
  rows = [
      ('Held-out split + train sample, with intervals (as in the pipeline)',
       common.fmt_seconds(full.median), full.spread),
      ('Held-out split + train sample, point estimates only',
       common.fmt_seconds(points.median), points.spread),
      ('Held-out split only, with intervals',
       common.fmt_seconds(held_out.median), held_out.spread),
  ]
  return '\n'.join([
      common.section_preamble(result['machine'], command,
                              result['load_before'], result['load_after'],
                              result['busy']),
      f"- Artifacts of `{result['source']}`; held-out split "
      f"`{result['held_out_split']}` ({result['held_out_rows']:,} rows), "
      f"train sample of {result['train_rows']:,} rows (as many as the "
      f"held-out split), {result['replicates']} bootstrap replicates, slices "
      f"{result['slice_features'] or 'overall only'}; Beam args "
      + (f"`{' '.join(result['beam_args'])}`." if result['beam_args'] else
         'none (DirectRunner, in memory), as the local runner picks for '
         'this input size.'),
      '- Timed: `GeneralizationGate` executor `evaluate` (one Beam pipeline, '
      'model loading included); medians of rounds of all three variants in '
      'rotating order after one warm-up each.',
      '',
      common.table(('Gate evaluation', 'Median time', 'Spread (s)'), rows),
      '',
      'Picking the train sample alone (a separate Beam pipeline over the '
      'train split, same repeats):',
      '',
      common.table(('', 'Median time', 'Spread (s)'), [
          ('Read the train split', common.fmt_seconds(sel['read'].median),
           sel['read'].spread),
          ('Read it and pick the deterministic sample',
           common.fmt_seconds(sel['read_and_sample'].median),
           sel['read_and_sample'].spread)]),
      '',
      f'- With / without intervals: {ratio:.2f}x (target <= {TARGET}x): '
      f"**{'met' if ratio <= TARGET else 'missed'}**.",
      f'- With / without the train-side check (both with intervals): '
      f'{train_ratio:.2f}x (issue 7 target <= {TRAIN_TARGET}x): '
      f"{'met' if train_ratio <= TRAIN_TARGET else 'missed'}.",
  ])
