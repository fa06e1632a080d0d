"""Statistics of serialized tf.Examples in one process or a few forks, no Beam.

The stock StatisticsGen runs TFDV's generators inside a Beam pipeline.  On
the flights data (327,346 rows, 18 columns, 2 cores) that took 22 s in
memory and 32 s with multi_processing, of which the statistics proper are
about 2 s of CPU and decoding about 4 s: the rest is Beam reading records one
by one in Python (with CRC checks in Python), moving every record and every
(feature, value) pair between stages, building and pickling the pipeline,
and for multi_processing packaging TFX as an sdist and starting workers.
Here the same generators run directly as combiners (about 5 s):

* records are decoded into Arrow record batches by tfx_bsl's C++ decoder
  (the one the Beam source uses), which at about 15 us a row is now the
  largest cost and holds the GIL, so
* the batches of a chunk are shared among forked worker processes, each
  feeding its own accumulators, which the parent merges (as Beam merges
  combiner accumulators);
* the generator list is TFDV's own for these options, except that the exact
  top-k / uniques transform becomes an exact combiner (``topk``).

``unsupported_reason`` says when options need Beam (slicing, sampling,
weights, transform generators such as lift), so the caller can fall back.
"""

import gc
import multiprocessing
import sys
import traceback
from typing import Any, Callable, Iterable, Iterator, List, Optional, Sequence

import tensorflow_data_validation as tfdv
from tensorflow_data_validation.statistics import stats_impl
from tensorflow_data_validation.statistics.generators import (
    top_k_uniques_stats_generator)
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_metadata.proto.v0 import statistics_pb2
from tfx_bsl.coders import example_coder

from components.statistics.topk import ExactTopKUniquesStatsGenerator

# Raw records held at once (per chunk) before decoding: bounds memory to
# about this many serialized examples plus one decoded batch per worker.
CHUNK_ROWS = 500_000


class WorkerError(RuntimeError):
  """A forked statistics worker failed; the message has its traceback."""


def unsupported_reason(options: tfdv.StatsOptions) -> Optional[str]:
  """Why these options need the Beam path, or None if this module can run
  them with the stock path's results."""
  if (options.slicing_config or options.experimental_slice_functions or
      options.experimental_slice_sqls):
    return 'slicing'
  # random() <= 1.0 always holds, so a rate of 1 keeps every batch.
  if options.sample_rate is not None and options.sample_rate < 1.0:
    return 'sampling'
  if options.example_weight_map.all_weight_features():
    # Beam's weighted top-k sums weights per (batch, value): not reproducible.
    return 'example weights'
  if options.experimental_result_partitions != 1:
    return 'result partitions'
  if options.feature_allowlist and not all(
      isinstance(name, str) for name in options.feature_allowlist):
    return 'feature allowlist given as paths'
  try:
    combiner_generators(options)
  except ValueError as e:
    return str(e)
  return None


def combiner_generators(
    options: tfdv.StatsOptions) -> List[tfdv.CombinerStatsGenerator]:
  """The Beam path's generators for ``options``, all as combiners.

  Raises ValueError when one of them is a Beam transform that has no
  combiner equivalent here (lift statistics, custom transform generators).
  """
  result = []
  # The list GenerateStatistics builds (in_memory=False): sketch-based
  # top-k only where the options ask for it, as in the stock component.
  for generator in stats_impl.get_generators(options, in_memory=False):
    if isinstance(generator,
                  top_k_uniques_stats_generator.TopKUniquesStatsGenerator):
      result.append(ExactTopKUniquesStatsGenerator(
          schema=options.schema,
          num_top_values=options.num_top_values,
          frequency_threshold=options.frequency_threshold,
          num_rank_histogram_buckets=options.num_rank_histogram_buckets))
    elif isinstance(generator, tfdv.CombinerStatsGenerator):
      result.append(generator)
    else:
      raise ValueError(f'{generator.name} runs only as a Beam transform')
  return result


def generate_statistics(
    raw_batches: Iterable[Sequence[bytes]],
    options: tfdv.StatsOptions,
    decoder_schema: Optional[schema_pb2.Schema] = None,
    workers: int = 1,
    chunk_rows: int = CHUNK_ROWS,
) -> statistics_pb2.DatasetFeatureStatisticsList:
  """Statistics of serialized tf.Examples, as tfdv.GenerateStatistics.

  ``raw_batches`` yields batches of serialized examples (any size; each is
  decoded as one record batch).  ``decoder_schema`` is the schema the TFXIO
  would decode with (None: infer types, as the stock executor does unless
  ``experimental_filter_read_paths``).  ``workers`` > 1 forks that many
  processes less one per chunk (Linux); the parent does a share too.
  """
  reason = unsupported_reason(options)
  if reason:
    raise ValueError(f'These StatsOptions need the Beam path: {reason}')
  generators = combiner_generators(options)
  for generator in generators:
    generator.setup()
  serialized_schema = (decoder_schema.SerializeToString()
                       if decoder_schema is not None else None)
  allowlist = list(options.feature_allowlist or []) or None

  def accumulate(batches: Sequence[Sequence[bytes]]) -> List[Any]:
    decoder = example_coder.ExamplesToRecordBatchDecoder(serialized_schema)
    accumulators = [g.create_accumulator() for g in generators]
    for raw in batches:
      record_batch = decoder.DecodeBatch(raw)
      if allowlist:  # As the stock path filters each batch.
        record_batch = stats_impl._filter_features(  # pylint: disable=protected-access
            record_batch, allowlist)
      accumulators = [g.add_input(a, record_batch)
                      for g, a in zip(generators, accumulators)]
    # Compact before crossing a process boundary, as Beam does.
    return [g.compact(a) for g, a in zip(generators, accumulators)]

  accumulators = None
  for chunk in _chunks(raw_batches, chunk_rows):
    parts = [chunk[i::workers] for i in range(min(workers, len(chunk)))]
    for partial in map_forked(accumulate, parts):
      accumulators = partial if accumulators is None else [
          g.merge_accumulators([a, b])
          for g, a, b in zip(generators, accumulators, partial)]
  if accumulators is None:
    # No examples: the stock path writes one empty dataset.
    return statistics_pb2.DatasetFeatureStatisticsList(
        datasets=[statistics_pb2.DatasetFeatureStatistics()])
  return stats_impl.extract_statistics_output(accumulators, generators)


def _chunks(raw_batches: Iterable[Sequence[bytes]],
            chunk_rows: int) -> Iterator[List[Sequence[bytes]]]:
  chunk, rows = [], 0
  for batch in raw_batches:
    chunk.append(batch)
    rows += len(batch)
    if rows >= chunk_rows:
      yield chunk
      chunk, rows = [], 0
  if chunk:
    yield chunk


def map_forked(fn: Callable[[Any], Any], parts: Sequence[Any]) -> List[Any]:
  """``[fn(p) for p in parts]``, the first in this process and the others in
  forked children, which see ``parts`` without pickling them.

  Fork, not spawn: a spawned worker would import TensorFlow and TFDV again,
  about 10 s.  The children use only tfx_bsl, pyarrow and numpy (never
  TensorFlow, whose runtime threads do not survive a fork), and the parent's
  objects are frozen out of the garbage collector across the fork, so that
  a child never finalizes them (no gc.collect() first: on a heap holding
  TensorFlow and TFX it takes 0.6 s).  Results come back pickled through a
  pipe.
  """
  # A daemonic process (some orchestrators' workers) may not have children.
  if (len(parts) <= 1 or not _can_fork() or
      multiprocessing.current_process().daemon):
    return [fn(p) for p in parts]
  context = multiprocessing.get_context('fork')
  children = []
  gc.freeze()
  try:
    for part in parts[1:]:
      receiver, sender = context.Pipe(duplex=False)
      child = context.Process(target=_run_child, args=(fn, part, sender),
                              daemon=True)
      child.start()
      sender.close()
      children.append((child, receiver))
  finally:
    gc.unfreeze()
  try:
    results = [fn(parts[0])]
    for child, receiver in children:
      try:
        status, payload = receiver.recv()
      except EOFError:
        child.join()
        raise WorkerError(f'statistics worker {child.pid} died, exit code '
                          f'{child.exitcode}') from None
      if status != 'ok':
        raise WorkerError(f'statistics worker {child.pid} failed:\n{payload}')
      results.append(payload)
    return results
  finally:
    for child, receiver in children:
      receiver.close()
      if child.is_alive():
        child.join(timeout=5)
      if child.is_alive():  # Only after an error in another worker.
        child.terminate()
        child.join()


def _can_fork() -> bool:
  # Linux only: elsewhere fork is missing, or unsafe with system frameworks.
  return (sys.platform.startswith('linux') and
          'fork' in multiprocessing.get_all_start_methods())


def _run_child(fn, part, sender) -> None:
  try:
    try:
      message = ('ok', fn(part))
      sender.send(message)
    except BaseException:  # pylint: disable=broad-except
      sender.send(('error', traceback.format_exc()))
  finally:
    sender.close()
