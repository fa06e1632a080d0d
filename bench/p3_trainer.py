"""P3: Trainer throughput, our input pipeline + fit against bare Keras fit.

Both sides train the same model (``components.trainer.model.build_model``,
compiled by ``components.trainer.fit.compile_model``, same seed) with the
same batch size on the same rows: the train split Transform wrote in a
finished run of the pipeline (by default the taxi sample).

* Ours: ``components.trainer.inputs`` over the transformed TFRecords
  (``read_split``: parsed into memory in a few large calls, or streamed
  through tfxio above ``model.in_memory_max_mb``; ``make_dataset``: index shuffle, gather,
  prefetch), then ``fit``.  Each timed run reads the split afresh, so it pays
  for reading and parsing, as the Trainer does.
* Bare: the same rows as in-memory NumPy arrays (materialized once, not
  timed), then ``fit(x, y, batch_size, shuffle=True)``.

Timed: ``fit`` over ``--epochs`` epochs, training only (no validation and no
per-epoch train-sample evaluation, which the bare side does not have).  A
fresh compiled model per run, built outside the timer; each side pays its
own ``fit`` tracing.  One untimed warm-up run per side, then ``--repeats``
alternating runs; examples/s is rows x epochs / median seconds.  The input
pipeline alone (one pass, no model) is reported to locate a shortfall.

Target (issue 7): ours >= 0.8x bare examples/s.
"""

from __future__ import annotations

import os
import time
from typing import Dict, Optional

from bench import common, ours

TITLE = 'P3: Trainer throughput'
TARGET = 0.8


def run(workdir: str, repeats: int = 5, epochs: int = 3,
        source: Optional[str] = None) -> Dict[str, object]:
  import tensorflow as tf
  import tensorflow_transform as tft
  import tf_keras as keras
  from tfx.components.trainer.fn_args_utils import DataAccessor
  from tfx.components.util import tfxio_utils
  from tfx.types import artifact_utils
  from tfx.utils import io_utils

  from components.trainer import fit, inputs, model as model_lib

  machine = common.machine_description()
  load_before, busy = common.load_average(), common.busy_processes()
  source = source or ours.finished_taxi_run(os.path.dirname(workdir))
  src = ours.load_source(source)
  cfg = src['config']
  examples = [src['transformed_examples']]
  accessor = DataAccessor(
      tf_dataset_factory=tfxio_utils.get_tf_dataset_factory_from_artifact(
          examples, ['bench']),
      record_batch_factory=tfxio_utils.get_record_batch_factory_from_artifact(
          examples, ['bench']),
      data_view_decode_fn=tfxio_utils.get_data_view_decode_fn_from_artifact(
          examples, ['bench']))
  tft_output = tft.TFTransformOutput(src['transform_graph'].uri)
  train_files = [io_utils.all_files_pattern(uri) for uri in
                 artifact_utils.get_split_uris(examples, 'train')]
  label, batch = cfg.data.label.name, cfg.model.batch_size
  specs = model_lib.input_specs(tft_output, cfg.data.features)
  reg = cfg.regularization

  def our_dataset():
    split = inputs.read_split(
        train_files, accessor, tft_output, label,
        max_in_memory_bytes=cfg.model.in_memory_max_bytes,
        features=[spec.name for spec in specs])
    return inputs.make_dataset(split, batch, shuffle=True, seed=cfg.model.seed)

  # The bare side's in-memory copy: every train row once, in file order.
  split = inputs.read_split(train_files, accessor, tft_output, label,
                            max_in_memory_bytes=1 << 62)
  features = {spec.name: split.columns[0][spec.name].numpy() for spec in specs}
  labels = split.columns[1].numpy()
  rows = len(labels)

  def fresh_model():
    keras.utils.set_random_seed(cfg.model.seed)
    model = model_lib.build_model(
        specs, cfg.model.hidden_units, l1=reg.l1, l2=reg.l2,
        dropout=reg.dropout, max_norm=reg.max_norm, seed=cfg.model.seed)
    fit.compile_model(model, cfg.model, reg)
    return model

  def timed_fit(which: str) -> float:
    model = fresh_model()  # Outside the timer: not part of either loop.
    start = time.perf_counter()
    if which == 'ours':
      model.fit(our_dataset(), epochs=epochs, verbose=0)
    else:
      model.fit(features, labels, batch_size=batch, epochs=epochs,
                shuffle=True, verbose=0)
    return time.perf_counter() - start

  def input_only() -> float:
    start = time.perf_counter()
    for _ in our_dataset():
      pass
    return time.perf_counter() - start

  samples = {'ours': [], 'bare': []}
  for which in samples:  # Warm-up: TF runtime and tfxio start-up, untimed.
    timed_fit(which)
  for i in range(repeats):
    for which in (('ours', 'bare') if i % 2 == 0 else ('bare', 'ours')):
      samples[which].append(timed_fit(which))
      print(f'[p3] {which} run {i + 1}: {samples[which][-1]:.2f} s',
            flush=True)
  input_timing = common.time_repeated(input_only, repeats, warmup=1)
  out = {
      'machine': machine, 'load_before': load_before,
      'load_after': common.load_average(), 'busy': busy,
      'source': source, 'rows': rows, 'epochs': epochs, 'batch_size': batch,
      'hidden_units': cfg.model.hidden_units, 'inputs': len(specs),
      # Early stopping needs validation, which neither timed loop has.
      'regularization': [r for r in reg.active if r != 'early_stopping'],
      'ours': common.Timing(samples['ours']),
      'bare': common.Timing(samples['bare']),
      'input_only': input_timing,
      'tf_threads': (tf.config.threading.get_inter_op_parallelism_threads(),
                     tf.config.threading.get_intra_op_parallelism_threads()),
  }
  common.save_json(os.path.join(workdir, 'p3.json'), out)
  return out


def markdown(result: Dict, command: str) -> str:
  n = result['rows'] * result['epochs']
  ours_t, bare_t = result['ours'], result['bare']
  ours_rate, bare_rate = n / ours_t.median, n / bare_t.median
  ratio = ours_rate / bare_rate
  input_rate = result['rows'] / result['input_only'].median
  rows = [
      ('Ours: read_split + make_dataset + fit', common.fmt_seconds(ours_t.median),
       f'{ours_rate:,.0f}', ours_t.spread),
      ('Bare Keras: fit on in-memory arrays',
       common.fmt_seconds(bare_t.median), f'{bare_rate:,.0f}', bare_t.spread),
      ('Ours, input pipeline alone (one pass, no model)',
       common.fmt_seconds(result['input_only'].median), f'{input_rate:,.0f}',
       result['input_only'].spread),
  ]
  return '\n'.join([
      common.section_preamble(result['machine'], command,
                              result['load_before'], result['load_after'],
                              result['busy']),
      f"- Data: the train split Transform wrote ({result['rows']:,} rows) in "
      f"`{result['source']}`; {result['epochs']} epochs, batch "
      f"{result['batch_size']}, model {list(result['hidden_units'])} over "
      f"{result['inputs']} inputs, regularization "
      f"{', '.join(result['regularization']) or 'none'} (no early stopping: "
      'neither loop validates).',
      '- Timed: training `fit` only, fresh model per run; medians of '
      'alternating runs after one warm-up each.',
      '',
      common.table(('', 'Median time', 'Examples/s', 'Spread (s)'), rows),
      '',
      f'- Ours / bare: {ratio:.2f}x (target >= {TARGET}x): '
      f"**{'met' if ratio >= TARGET else 'missed'}**.",
  ])
