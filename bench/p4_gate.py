"""P4: what the gate's train-side check costs.

Our gate replaces the stock Evaluator.  It scores the candidate with TFMA on
the held-out split and, for the overfitting gap, on a bounded deterministic
sample of the train split, in one TFMA pass over both (rows tagged with
their split, metrics sliced by it).  This benchmark times the
gate executor's evaluation (``components.gate.executor.Executor.evaluate``)
with the train branch (``train_split='train'``, as the pipeline runs it)
against without it (``train_split=None``), on the artifacts of a finished
run (by default the taxi sample): same model, examples, schema, gate config
and the Beam arguments the local runner would pick.  There is no baseline
model in either variant (a first run has none).

Each call is a whole Beam pipeline including model loading; one untimed
warm-up per variant, then ``--repeats`` alternating calls, medians.  The
blessing decision and file writes around ``evaluate`` are not timed: they
take milliseconds and do not depend on the variant.

Target (issue 7): with / without <= 1.3x.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from typing import Dict, Optional

from bench import common, ours

TITLE = "P4: the gate's train-side check"
TARGET = 1.3


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
  rows = preflight.check_csv(cfg).rows_total
  beam_args = local_runner.beam_args(cfg.beam, rows)
  executor = gate_executor.Executor(
      gate_executor.Executor.Context(beam_pipeline_args=beam_args,
                                     tmp_dir=os.path.join(workdir, 'tmp'),
                                     unique_id='bench'))
  train_split = props[gate_executor.TRAIN_SPLIT_KEY]
  calls = {'count': 0}

  def evaluate(with_train: bool) -> float:
    calls['count'] += 1
    out = os.path.join(workdir, f"evaluation_{calls['count']}")
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    executor.evaluate(
        examples=[src['examples']], schema_artifacts=[src['schema']],
        model_uri=src['model'].uri, baseline_uri=None,
        label_key=props[gate_executor.LABEL_KEY],
        held_out_split=props[gate_executor.HELD_OUT_SPLIT_KEY],
        train_split=train_split if with_train else None,
        gate=gate, output_uri=out)
    seconds = time.perf_counter() - start
    shutil.rmtree(out, ignore_errors=True)
    return seconds

  samples = {True: [], False: []}
  for variant in samples:
    evaluate(variant)  # Warm-up: TFMA and model loading paths, untimed.
  for i in range(repeats):
    for variant in ((True, False) if i % 2 == 0 else (False, True)):
      samples[variant].append(evaluate(variant))
      print(f"[p4] {'with' if variant else 'without'} train check, run "
            f'{i + 1}: {samples[variant][-1]:.2f} s', flush=True)
  selection = _sample_selection_cost(src, train_split,
                                     gate.train_sample_size, repeats)
  out = {
      'selection': selection,
      'machine': machine, 'load_before': load_before,
      'load_after': common.load_average(), 'busy': busy,
      'source': source, 'beam_args': beam_args,
      'train_sample_size': gate.train_sample_size,
      'slice_features': list(gate.slice_features),
      'held_out_split': props[gate_executor.HELD_OUT_SPLIT_KEY],
      'with_train': common.Timing(samples[True]),
      'without_train': common.Timing(samples[False]),
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
  with_t, without_t = result['with_train'], result['without_train']
  ratio = with_t.median / without_t.median
  sel = result['selection']
  rows = [
      ('Held-out split + train sample (as in the pipeline)',
       common.fmt_seconds(with_t.median), with_t.spread),
      ('Held-out split only', common.fmt_seconds(without_t.median),
       without_t.spread),
  ]
  return '\n'.join([
      common.section_preamble(result['machine'], command,
                              result['load_before'], result['load_after'],
                              result['busy']),
      f"- Artifacts of `{result['source']}`; held-out split "
      f"`{result['held_out_split']}`, train sample of "
      f"{result['train_sample_size']:,} rows, slices "
      f"{result['slice_features'] or 'overall only'}; Beam args "
      + (f"`{' '.join(result['beam_args'])}`." if result['beam_args'] else
         'none (DirectRunner, in memory), as the local runner picks for '
         'this input size.'),
      '- Timed: `GeneralizationGate` executor `evaluate` (one Beam pipeline, '
      'model loading included); medians of alternating runs after one '
      'warm-up each.',
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
      f'- With / without the train-side check: {ratio:.2f}x (target <= '
      f"{TARGET}x): **{'met' if ratio <= TARGET else 'missed'}**.",
  ])
