"""``ArrowCsvExampleGen``: CsvExampleGen with a vectorized, in-process executor.

The component is stock ``CsvExampleGen`` (same spec, parameters and driver,
so input fingerprints, spans and versions are resolved as before) with
another executor. ``ArrowCsvExecutor`` subclasses the stock CSV executor
and produces the same artifact: the same splits holding the same
tf.Examples (``csv_fast`` reproduces stock's type inference, serialization
and hash partitioning), as gzip TFRecord shards
``Split-<name>/data_tfrecord-<i>-of-<n>.gz``, with the same ``split_names``,
``payload_format`` and ``file_format`` properties. It reads the CSV with
Arrow, encodes examples with numpy and compresses the shards in threads:
measured on the 327,346-row flights CSV in docs/performance.md (P2).

Everything it does not handle goes to the stock Beam executor
(``super().Do``), which can also spread work over a distributed runner:
inputs larger than ``MAX_IN_MEMORY_BYTES``, payloads other than tf.Example,
file formats other than gzip TFRecords, splitting by
``partition_feature_name``, and duplicate column names (whose meaning in
stock, where the last column wins with a type merged over both, is not
worth reproducing).

No half-written output: shards are written under a staging directory inside
the output artifact and renamed into ``Split-*`` only after every shard is
complete; the staging directory is removed on failure. (The local launcher
also deletes the whole output directory of a failed execution; this covers
orchestrators that retry into the same output URI.)
"""

import math
import os
import queue
import threading
import time
import uuid
import zlib
from typing import Any, Dict, List, Optional, Sequence

from absl import logging
import numpy as np
import pyarrow as pa
from tfx import types
from tfx.components.example_gen import utils as example_gen_utils
from tfx.components.example_gen import write_split
from tfx.components.example_gen.csv_example_gen import component as csv_component
from tfx.components.example_gen.csv_example_gen import executor as csv_executor
from tfx.components.util import examples_utils
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils
from tfx.types import standard_component_specs
from tfx.utils import io_utils
from tfx.utils import proto_utils

from components import beam_fallback
from components.ingest import csv_fast

# Peak memory is about three times the input (Arrow string columns, then
# per column its distinct entries and row codes, and one batch of examples);
# above this, the Beam executor runs.
MAX_IN_MEMORY_BYTES = 2 * 1024 ** 3
BATCH_ROWS = 65_536
# gzip level 1: on the flights examples, zlib is 5x faster than at level 6
# (Beam's default), and the shards are about 10% larger than stock's.
COMPRESSION_LEVEL = 1
# A split gets one shard per CPU (compressed in parallel, read in parallel
# downstream) once its serialized examples reach this size, else one.
MIN_SHARD_BYTES = 8 * 1024 ** 2
# Serialized tf.Examples take about four times the bytes of their CSV rows.
_EXAMPLE_BYTES_PER_CSV_BYTE = 4
# Rows are written in a seeded random order. Stock shuffles too (Beam's
# Reshuffle); the CSV's own order (often by time) would otherwise reach the
# Trainer's bounded shuffle buffer and any first-N sample of a split.
SHUFFLE_SEED = 0

_STAGING_PREFIX = '.staging-'


class ArrowCsvExecutor(beam_fallback.BeamOnFallback, csv_executor.Executor):
  """Stock CSV ExampleGen executor, done in-process with Arrow when it can."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    input_config = example_gen_pb2.Input()
    proto_utils.json_to_proto(
        exec_properties[standard_component_specs.INPUT_CONFIG_KEY],
        input_config)
    output_config = example_gen_pb2.Output()
    proto_utils.json_to_proto(
        exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY],
        output_config)
    input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
    files = {split.name: _split_files(input_base, split.pattern)
             for split in input_config.splits}

    reason = _beam_reason(files, output_config, exec_properties)
    if reason:
      logging.info('ArrowCsvExecutor: running the stock Beam executor: %s',
                   reason)
      self.init_beam()
      return super().Do(input_dict, output_dict, exec_properties)

    self._log_startup(input_dict, output_dict, exec_properties)
    examples = output_dict[standard_component_specs.EXAMPLES_KEY]
    artifact = artifact_utils.get_single_instance(examples)
    split_names = example_gen_utils.generate_output_split_names(
        input_config, output_config)
    artifact.split_names = artifact_utils.encode_split_names(split_names)

    started = time.monotonic()
    staging = os.path.join(artifact.uri, _STAGING_PREFIX + uuid.uuid4().hex)
    try:
      if output_config.split_config.splits:
        # Stock: one input split (generate_output_split_names checked),
        # hashed into the output splits.
        (pattern_files,) = files.values()
        buckets = [s.hash_buckets for s in output_config.split_config.splits]
        rows = _convert(pattern_files, split_names, buckets, staging)
      else:
        # Stock: each input split on its own, types inferred per split.
        rows = sum(_convert(files[name], [name], None, staging)
                   for name in split_names)
      _publish(staging, examples, split_names)
    finally:
      if fileio.exists(staging):
        fileio.rmtree(staging)
    seconds = time.monotonic() - started
    logging.info('ArrowCsvExecutor: %d rows in %.1f s (%.0f rows/s)', rows,
                 seconds, rows / max(seconds, 1e-9))

    # As the stock executor sets them.
    payload_format = exec_properties.get(
        standard_component_specs.OUTPUT_DATA_FORMAT_KEY)
    file_format = exec_properties.get(
        standard_component_specs.OUTPUT_FILE_FORMAT_KEY,
        example_gen_pb2.FILE_FORMAT_UNSPECIFIED)
    for output in examples:
      if payload_format:
        examples_utils.set_payload_format(output, payload_format)
      if file_format:
        examples_utils.set_file_format(
            output, write_split.to_file_format_str(file_format))


def _split_files(input_base: str, pattern: str) -> List[str]:
  csv_pattern = os.path.join(input_base, pattern)
  found = fileio.glob(csv_pattern)
  if not found:
    # Stock's message, for either path.
    raise RuntimeError(
        f'Split pattern {csv_pattern} does not match any files.')
  return sorted(found)


def _beam_reason(files: Dict[str, List[str]],
                 output_config: example_gen_pb2.Output,
                 exec_properties: Dict[str, Any]) -> Optional[str]:
  """Why the stock Beam executor must run, or None."""
  payload_format = exec_properties.get(
      standard_component_specs.OUTPUT_DATA_FORMAT_KEY,
      example_gen_pb2.FORMAT_TF_EXAMPLE)
  if payload_format != example_gen_pb2.FORMAT_TF_EXAMPLE:
    return f'payload format {payload_format} is not FORMAT_TF_EXAMPLE'
  file_format = exec_properties.get(
      standard_component_specs.OUTPUT_FILE_FORMAT_KEY,
      example_gen_pb2.FILE_FORMAT_UNSPECIFIED)
  if file_format not in (example_gen_pb2.FILE_FORMAT_UNSPECIFIED,
                         example_gen_pb2.FORMAT_TFRECORDS_GZIP):
    return f'file format {file_format} is not gzip TFRecords'
  if output_config.split_config.HasField('partition_feature_name'):
    return 'splitting by partition_feature_name'
  total = sum(fileio.stat(f).length for paths in files.values()
              for f in paths)
  if total > MAX_IN_MEMORY_BYTES:
    return (f'{total:,} input bytes exceed MAX_IN_MEMORY_BYTES='
            f'{MAX_IN_MEMORY_BYTES:,}')
  for paths in files.values():
    names = io_utils.load_csv_column_names(paths[0])
    for path in paths[1:]:
      if io_utils.load_csv_column_names(path) != names:
        raise RuntimeError(
            f'Files in same split have different headers: {paths[0]} has '
            f'{names}, {path} has {io_utils.load_csv_column_names(path)}')
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
      return f'{paths[0]}: duplicate column names {duplicates}'
  return None


def _convert(paths: Sequence[str], split_names: Sequence[str],
             hash_buckets: Optional[Sequence[int]], staging: str) -> int:
  """Converts the CSV files of one input split into the shards of
  ``split_names`` under ``staging``; returns the number of rows."""
  names = io_utils.load_csv_column_names(paths[0])
  table = pa.concat_tables(
      [csv_fast.read_csv(p, names, open_fn=lambda f: fileio.open(f, 'rb'))
       for p in paths])
  n = table.num_rows
  columns = [csv_fast.encode_column(c)
             for c in csv_fast.convert_table(table, ', '.join(paths))]
  del table

  in_bytes = sum(fileio.stat(p).length for p in paths)
  shares = (np.array(hash_buckets) / sum(hash_buckets) if hash_buckets
            else np.ones(1))
  writers = []
  for name, share in zip(split_names, shares):
    estimate = in_bytes * share * _EXAMPLE_BYTES_PER_CSV_BYTE
    count = max(1, min(os.cpu_count() or 1,
                       math.ceil(estimate / MIN_SHARD_BYTES)))
    split_dir = os.path.join(staging, f'Split-{name}')
    fileio.makedirs(split_dir)
    writers.append([
        _ShardWriter(os.path.join(
            split_dir, f'{write_split.DEFAULT_TF_RECORD_FILE_NAME}-{i:05d}-of-'
            f'{count:05d}.gz')) for i in range(count)])
  try:
    order = np.random.default_rng(SHUFFLE_SEED).permutation(n)
    for start in range(0, n, BATCH_ROWS):
      rows = order[start:start + BATCH_ROWS]
      records = csv_fast.encode_examples(columns, rows)
      buckets, crcs = csv_fast.hashes_and_crcs(
          records, sum(hash_buckets) if hash_buckets else None)
      split_of = (csv_fast.split_indices(buckets, hash_buckets)
                  if hash_buckets else np.zeros(len(rows), dtype=np.int64))
      for index, shard_writers in enumerate(writers):
        selected = np.flatnonzero(split_of == index)
        # Contiguous parts of a random order: equal, random shards.
        for writer, part in zip(shard_writers,
                                np.array_split(selected, len(shard_writers))):
          if len(part):
            writer.put(csv_fast.tfrecord_frames(records.take(part),
                                                crcs[part]))
  finally:
    errors = [w.close() for ws in writers for w in ws]
  for error in errors:
    if error is not None:
      raise error
  return n


class _ShardWriter:
  """One gzip TFRecord file written by its own thread: zlib releases the
  GIL, so shards compress in parallel with each other and with encoding."""

  def __init__(self, path: str):
    self.path = path
    self._queue: 'queue.Queue' = queue.Queue(maxsize=2)
    self._error: Optional[BaseException] = None
    self._thread = threading.Thread(target=self._run, daemon=True,
                                    name=f'shard-writer-{path}')
    self._thread.start()

  def _run(self):
    try:
      # wbits 31: a gzip stream, which TFRecord and Beam readers expect.
      compressor = zlib.compressobj(COMPRESSION_LEVEL, zlib.DEFLATED, 31)
      with fileio.open(self.path, 'wb') as f:
        while (chunk := self._queue.get()) is not None:
          f.write(compressor.compress(chunk))
        f.write(compressor.flush())
    except BaseException as e:  # pylint: disable=broad-except
      self._error = e
      # Keep draining so that put() never blocks on a dead writer.
      while self._queue.get() is not None:
        pass

  def put(self, chunk) -> None:
    if self._error is not None:
      raise self._error
    self._queue.put(chunk)

  def close(self) -> Optional[BaseException]:
    self._queue.put(None)
    self._thread.join()
    return self._error


def _publish(staging: str, examples: List[types.Artifact],
             split_names: Sequence[str]) -> None:
  """Moves the finished shards from ``staging`` into ``Split-<name>``."""
  for name in split_names:
    split_uri = artifact_utils.get_split_uri(examples, name)
    if fileio.exists(split_uri):
      # Left by an earlier attempt into the same output URI.
      fileio.rmtree(split_uri)
    fileio.makedirs(split_uri)
    staged = os.path.join(staging, f'Split-{name}')
    for path in sorted(fileio.glob(os.path.join(staged, '*'))):
      fileio.rename(path, os.path.join(split_uri, os.path.basename(path)))


# The class behind tfx.v1.components.CsvExampleGen, imported directly:
# tfx.v1 also imports every other component (16 s more here, under load).
class ArrowCsvExampleGen(csv_component.CsvExampleGen):
  """``CsvExampleGen`` with ``ArrowCsvExecutor``: same parameters, same
  driver, same output artifact."""

  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(ArrowCsvExecutor)
