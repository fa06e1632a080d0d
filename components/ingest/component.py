"""In-process ExampleGen executors, one per input format, each producing the
artifact of its stock TFX route.

* ``ArrowCsvExampleGen``: stock ``CsvExampleGen`` (same spec, parameters and
  driver, so input fingerprints, spans and versions are resolved as before)
  with ``ArrowCsvExecutor``. It reads every CSV file of the split pattern
  (shards with one header each, which must agree), plain or gzip, with
  Arrow; ``csv_fast`` reproduces stock's type inference (over all files of
  the split), serialization and hash partitioning. Stock itself cannot read
  a ``.csv.gz`` (it reads the header line still compressed, and cannot
  iterate the lines of Beam's decompressing file); the Beam path here reads
  both as the in-process path does, so both read gzip. Cells equal to one of
  ``data.missing_values`` (``custom_config``; by default pandas' 'NA',
  'null', ... as well as the empty cell) are missing values on both paths:
  the examples stock writes for the same file with those cells emptied;
  ``['']`` is stock exactly.
* ``ParquetExampleGen``: ``FileBasedExampleGen`` with ``ArrowParquetExecutor``,
  which subclasses TFX's ``custom_executors.parquet_executor`` and writes
  what it writes, but for zeros: stock's ``dict_to_example`` writes ``0``,
  ``0.0`` and ``False`` as missing values, ours as values (``parquet_fast``,
  and :func:`dict_to_example` on the Beam fallback).
* ``TFRecordExampleGen``: stock ``ImportExampleGen`` with
  ``TFRecordImportExecutor``: the same tf.Examples (parsed and
  re-serialized deterministically, as stock hashes them) in the same splits.

All three write gzip TFRecord shards
``Split-<name>/data_tfrecord-<i>-of-<n>.gz`` with stock's ``split_names``,
``payload_format`` and ``file_format``, rows in a seeded random order,
encoded with numpy and compressed in threads: measured on the 327,346-row
flights CSV in docs/performance.md (P2).

Everything they do not handle goes to the stock Beam executor
(``super().Do``), which can also spread work over a distributed runner:
inputs larger than ``MAX_IN_MEMORY_BYTES``, payloads other than tf.Example,
file formats other than gzip TFRecords, splitting by
``partition_feature_name``, compressions other than gzip, CSV files with
duplicate column names (whose meaning in stock, where the last column wins
with a type merged over both, is not worth reproducing), and Parquet files
with list or other non-scalar columns or schemas that differ between files.

No half-written output: shards are written under a staging directory inside
the output artifact and renamed into ``Split-*`` only after every shard is
complete; the staging directory is removed on failure. (The local launcher
also deletes the whole output directory of a failed execution; this covers
orchestrators that retry into the same output URI.)
"""

import dataclasses
import io
import math
import os
import queue
import threading
import time
import uuid
import zlib
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from absl import logging
import apache_beam as beam
from google.protobuf import struct_pb2
import numpy as np
import pyarrow as pa
import tensorflow as tf
from tfx import types
from tfx.components.example_gen import component as example_gen_component
from tfx.components.example_gen import utils as example_gen_utils
from tfx.components.example_gen import write_split
from tfx.components.example_gen.csv_example_gen import component as csv_component
from tfx.components.example_gen.csv_example_gen import executor as csv_executor
from tfx.components.example_gen.custom_executors import parquet_executor
from tfx.components.example_gen.import_example_gen import component as import_component
from tfx.components.example_gen.import_example_gen import executor as import_executor
from tfx.components.util import examples_utils
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils
from tfx.types import standard_component_specs
from tfx.utils import proto_utils
from tfx_bsl.coders import csv_decoder

from components import beam_fallback
from components.ingest import csv_fast
from components.ingest import formats
from components.ingest import parquet_fast
from components.ingest import tfrecord_fast

# Peak memory is about three times the input (Arrow string columns, then
# per column its distinct entries and row codes, and one batch of examples);
# above this, the Beam executor runs.
MAX_IN_MEMORY_BYTES = 2 * 1024 ** 3
# A gzip file counts as this many times its size against that bound: text
# and tf.Examples shrink 3 to 8 times; the bound assumes the most.
GZIP_EXPANSION = 8
BATCH_ROWS = 65_536
# gzip level 1: on the flights examples, zlib is 5x faster than at level 6
# (Beam's default), and the shards are about 10% larger than stock's.
COMPRESSION_LEVEL = 1
# A split gets one shard per CPU (compressed in parallel, read in parallel
# downstream) once its serialized examples reach this size, else one.
MIN_SHARD_BYTES = 8 * 1024 ** 2
# Rows are written in a seeded random order. Stock shuffles too (Beam's
# Reshuffle); the input's own order (often by time) would otherwise reach
# the Trainer's bounded shuffle buffer and any first-N sample of a split.
SHUFFLE_SEED = 0
# Beam would decompress these by the suffix too; the in-process readers
# read gzip only.
_OTHER_COMPRESSIONS = ('.bz2', '.deflate', '.zst', '.zstd', '.xz', '.lzma')

_STAGING_PREFIX = '.staging-'


class _FileioRaw(io.RawIOBase):
  """A fileio (gfile) file as a raw binary stream: gfile's objects lack
  ``closed`` and ``readinto``, which Arrow and ``io`` need."""

  def __init__(self, f):
    super().__init__()
    self._f = f

  def readable(self) -> bool:
    return True

  def seekable(self) -> bool:
    return True

  def readinto(self, buffer) -> int:
    data = self._f.read(len(buffer))
    buffer[:len(data)] = data
    return len(data)

  def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
    self._f.seek(offset, whence)
    return self._f.tell()

  def tell(self) -> int:
    return self._f.tell()

  def close(self) -> None:
    if not self.closed:
      self._f.close()
    super().close()


def _open(path: str):
  """A binary file object for any filesystem TFX's fileio reads (gs://)."""
  return io.BufferedReader(_FileioRaw(fileio.open(path, 'rb')),
                           buffer_size=1 << 20)


def _remote_open(path: str) -> Optional[Callable[[str], Any]]:
  """fileio for URLs; None lets Arrow and Python read local files directly."""
  return _open if formats.is_remote(path) else None


def _gzip_aware_size(path: str) -> int:
  size = fileio.stat(path).length
  return size * GZIP_EXPANSION if formats.is_gzip(path) else size


class _NeedsBeam(Exception):
  """Raised while reading: the stock Beam executor must convert this input."""


# The executors' options travel in the spec's ``custom_config`` execution
# property (an example_gen_pb2.CustomConfig, whose Any holds a
# google.protobuf.Struct): compiled into a Kubeflow spec like the other
# properties, and part of the execution's cache key.
MISSING_VALUES_KEY = 'missing_values'
# A row without a value in one of these columns (``data.label.drop_missing``:
# the label's source columns) is not written, on every path and format.
REQUIRED_COLUMNS_KEY = 'required_columns'
# The CSV's field separator, one character (``data.delimiter`` resolved).
DELIMITER_KEY = 'delimiter'
# The version of the pipeline's code (pipeline/code_version.py): read by no
# executor, it is in the cache key, so that new code never reuses old runs.
CODE_VERSION_KEY = 'code_version'
# The examples artifact's count of input rows not written for lacking a
# required column's value; set by the in-process path (the Beam one does not
# count them).
ROWS_DROPPED_PROPERTY = 'rows_dropped'


def ingest_custom_config(missing_values: Optional[Sequence[str]] = None,
                         required_columns: Sequence[str] = (),
                         code_version: str = '', delimiter: str = ','
                         ) -> example_gen_pb2.CustomConfig:
  """The ``custom_config`` carrying the CSV's missing-value tokens (None:
  ``data.missing_values``' default) and delimiter (Parquet and TFRecord
  ignore both), the columns a row needs a value in to be written, and the
  code's version."""
  options = struct_pb2.Struct()
  options.update({
      MISSING_VALUES_KEY: list(csv_fast.missing_value_tokens(missing_values)),
      REQUIRED_COLUMNS_KEY: list(required_columns),
      CODE_VERSION_KEY: code_version,
      DELIMITER_KEY: delimiter})
  custom_config = example_gen_pb2.CustomConfig()
  custom_config.custom_config.Pack(options)
  return custom_config


def _options(exec_properties: Dict[str, Any]) -> Dict[str, Any]:
  """The options an execution's ``custom_config`` carries (JSON, as a
  launcher passes it, or the proto); {} without one."""
  raw = exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)
  if not raw:
    return {}
  custom_config = raw
  if not isinstance(raw, example_gen_pb2.CustomConfig):
    custom_config = example_gen_pb2.CustomConfig()
    proto_utils.json_to_proto(raw, custom_config)
  options = struct_pb2.Struct()
  if (not custom_config.HasField('custom_config')
      or not custom_config.custom_config.Unpack(options)):
    return {}
  return dict(options)


def missing_values_of(exec_properties: Dict[str, Any]) -> Tuple[str, ...]:
  """The missing-value tokens of an execution; without any, the default of
  ``data.missing_values``."""
  options = _options(exec_properties)
  if MISSING_VALUES_KEY not in options:
    return csv_fast.missing_value_tokens()
  return csv_fast.missing_value_tokens(list(options[MISSING_VALUES_KEY]))


def delimiter_of(exec_properties: Dict[str, Any]) -> str:
  """The CSV delimiter of an execution (a comma without one)."""
  return str(_options(exec_properties).get(DELIMITER_KEY, ','))


def required_columns_of(exec_properties: Dict[str, Any]) -> Tuple[str, ...]:
  """The columns a row of this execution needs a value in to be written."""
  return tuple(_options(exec_properties).get(REQUIRED_COLUMNS_KEY, ()))


@dataclasses.dataclass
class _Records:
  """The serialized examples of one input split: ``take(rows)`` gives those
  of row indices ``rows``; ``size`` is their total in bytes."""
  count: int
  size: int
  take: Callable[[np.ndarray], pa.LargeBinaryArray]
  # Where column ``name`` has a value, per row.
  present: Callable[[str], np.ndarray]


def _rows_with(records: _Records, required: Sequence[str], where: str
               ) -> _Records:
  """The records with a value in every ``required`` column; InputError if
  that leaves none."""
  if not required:
    return records
  keep = np.ones(records.count, bool)
  for name in required:
    keep &= records.present(name)
  rows = np.flatnonzero(keep)
  if not len(rows):
    raise formats.InputError(
        f'{where}: no row has a value in every one of {list(required)} '
        '(data.label.drop_missing drops the others)')
  if len(rows) == records.count:
    return records
  logging.info('%s: %d of %d rows dropped, without a value in %s '
               '(data.label.drop_missing)', where, records.count - len(rows),
               records.count, list(required))
  return _Records(len(rows), records.size * len(rows) // records.count,
                  lambda r: records.take(rows[r]),
                  lambda name: records.present(name)[rows])


class _Ingest:
  """What one input format's in-process executor does differently."""

  def input_bytes(self, path: str) -> int:
    """The file's weight against MAX_IN_MEMORY_BYTES."""
    return _gzip_aware_size(path)

  def reason(self, paths: Sequence[str]) -> Optional[str]:
    """Why these files of one split need the Beam executor, or None."""
    for path in paths:
      if path.lower().endswith(_OTHER_COMPRESSIONS):
        return f'{path}: compressed other than with gzip'
    return None

  def records(self, paths: Sequence[str]) -> _Records:
    """The split's examples (may raise _NeedsBeam)."""
    raise NotImplementedError

  def configured(self, exec_properties: Dict[str, Any]) -> '_Ingest':
    """This reader with the execution's options (the CSV's missing-value
    tokens)."""
    del exec_properties
    return self


def _column_records(columns: Sequence[csv_fast.Column], n: int,
                    missing_as_empty_feature: bool = False) -> _Records:
  encoded = [csv_fast.encode_column(c, missing_as_empty_feature)
             for c in columns]
  by_name = {c.name: c.present for c in columns}
  return _Records(n, csv_fast.encoded_bytes(encoded),
                  lambda rows: csv_fast.encode_examples(encoded, rows),
                  lambda name: by_name.get(name, np.zeros(n, bool)))


class _CsvIngest(_Ingest):
  """CSV files, plain or gzip, read with Arrow (``csv_fast``); a cell equal
  to one of ``missing_values`` is a missing value."""

  def __init__(self, missing_values: Optional[Sequence[str]] = None,
               delimiter: str = ','):
    self.missing_values = csv_fast.missing_value_tokens(missing_values)
    self.csv = formats.CsvFormat(delimiter)

  def configured(self, exec_properties: Dict[str, Any]) -> '_CsvIngest':
    return _CsvIngest(missing_values_of(exec_properties),
                      delimiter_of(exec_properties))

  def reason(self, paths):
    reason = super().reason(paths)
    if reason:
      return reason
    # Raises, naming both files and headers, where two differ.
    names = self.csv.headers(paths, _open)
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
      return f'{paths[0]}: duplicate column names {duplicates}'
    return None

  def records(self, paths):
    names = self.csv.header(paths[0], _open)
    table = pa.concat_tables([
        self.csv.read_table(p, names, _open, self.missing_values)
        for p in paths])
    n = table.num_rows
    columns = csv_fast.convert_table(table, ', '.join(paths))
    del table
    return _column_records(columns, n)


class _ParquetIngest(_Ingest):
  """Parquet files, read with Arrow and converted as stock converts them."""

  def input_bytes(self, path):
    # The size in memory, from the footer: Parquet compresses a lot.
    return parquet_fast.uncompressed_bytes(path, _remote_open(path))

  def records(self, paths):
    tables = [parquet_fast.read_table(p, _remote_open(p)) for p in paths]
    fields = set(tables[0].schema)
    for path, table in zip(paths[1:], tables[1:]):
      # Stock converts each file's rows with that file's columns: a column
      # one file lacks is no feature at all in its rows.
      if set(table.schema) != fields:
        raise _NeedsBeam(f'{path} has other columns than {paths[0]}')
    order = tables[0].column_names
    table = pa.concat_tables([t.select(order) for t in tables])
    reason = parquet_fast.unsupported(table)
    if reason:
      raise _NeedsBeam(f'{", ".join(paths)}: {reason}')
    columns = parquet_fast.to_columns(table)
    n = table.num_rows
    del table, tables
    return _column_records(columns, n, missing_as_empty_feature=True)


class _TFRecordIngest(_Ingest):
  """TFRecord files of tf.Examples, plain or gzip."""

  def records(self, paths):
    records = []
    for path in paths:
      records += tfrecord_fast.reserialize(
          tfrecord_fast.read_records(path, _remote_open(path)), path)
    array = pa.array(records, pa.large_binary())
    size = sum(map(len, records))
    del records
    return _Records(len(array), size, array.take,
                    lambda name: tfrecord_fast.has_value(array, name))


def _split_files(input_base: str, pattern: str) -> List[str]:
  full_pattern = os.path.join(input_base, pattern)
  found = fileio.glob(full_pattern)
  if not found:
    # Stock's message, for either path.
    raise RuntimeError(
        f'Split pattern {full_pattern} does not match any files.')
  return sorted(found)


def _beam_reason(files: Dict[str, List[str]],
                 output_config: example_gen_pb2.Output,
                 exec_properties: Dict[str, Any],
                 ingest: Optional[_Ingest] = None) -> Optional[str]:
  """Why the stock Beam executor must run, or None (CSV unless ``ingest``
  says otherwise)."""
  ingest = ingest or _CsvIngest()
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
  for paths in files.values():
    reason = ingest.reason(paths)
    if reason:
      return reason
  total = sum(ingest.input_bytes(f) for paths in files.values()
              for f in paths)
  if total > MAX_IN_MEMORY_BYTES:
    return (f'{total:,} input bytes (in memory) exceed MAX_IN_MEMORY_BYTES='
            f'{MAX_IN_MEMORY_BYTES:,}')
  return None


class _InProcessExecutor(beam_fallback.BeamOnFallback):
  """The stock executor's ``Do``, in process where it can be; listed before
  the stock executor class it extends. ``INGEST`` is the format's reader."""

  INGEST: _Ingest = _Ingest()

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
    name = type(self).__name__
    ingest = self.INGEST.configured(exec_properties)
    required = required_columns_of(exec_properties)

    reason = _beam_reason(files, output_config, exec_properties, ingest)
    if reason:
      return self._beam_do(reason, input_dict, output_dict, exec_properties)

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
        read = ingest.records(pattern_files)
        rows = _write(_rows_with(read, required, ', '.join(pattern_files)),
                      split_names, buckets, staging)
        read_rows = read.count
      else:
        # Stock: each input split on its own (CSV: types inferred per split).
        rows = read_rows = 0
        for split in split_names:
          read = ingest.records(files[split])
          rows += _write(_rows_with(read, required, ', '.join(files[split])),
                         [split], None, staging)
          read_rows += read.count
      _publish(staging, examples, split_names)
      artifact.set_int_custom_property(ROWS_DROPPED_PROPERTY,
                                       read_rows - rows)
    except _NeedsBeam as e:
      reason = str(e)
    finally:
      if fileio.exists(staging):
        fileio.rmtree(staging)
    if reason:
      return self._beam_do(reason, input_dict, output_dict, exec_properties)
    seconds = time.monotonic() - started
    logging.info('%s: %d rows in %.1f s (%.0f rows/s)', name, rows, seconds,
                 rows / max(seconds, 1e-9))

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

  def GenerateExamplesByBeam(self, pipeline, exec_properties):
    """Stock's splits, without the rows that lack a required column's
    value (a row's split depends on it alone, so dropping after the split
    is dropping before)."""
    splits = super().GenerateExamplesByBeam(pipeline, exec_properties)
    required = required_columns_of(exec_properties)
    if not required:
      return splits
    return {name: split | f'RowsWithValues[{name}]' >> beam.Filter(
        tfrecord_fast.example_has_values, required)
            for name, split in splits.items()}

  def _beam_do(self, reason, input_dict, output_dict, exec_properties):
    logging.info('%s: running the stock Beam executor: %s',
                 type(self).__name__, reason)
    self.init_beam()
    return super().Do(input_dict, output_dict, exec_properties)


class _ReadCsvRecords(csv_executor._ReadCsvRecordsFromTextFile):  # pylint: disable=protected-access
  """Stock's CSV line reader, reading lines with ``readline``: Beam opens a
  .gz file as a ``CompressedFile``, which stock's ``for line in file``
  cannot iterate."""

  def process(self, csv_filepath: str):
    with beam.io.filesystems.FileSystems.open(csv_filepath) as file:
      file.readline()  # The header.
      buffer = csv_executor._CsvLineBuffer()  # pylint: disable=protected-access
      for line in iter(file.readline, b''):
        buffer.write(line.decode('utf-8'))
        if buffer.is_complete_line():
          yield buffer.read()
      if not buffer.is_empty():
        raise ValueError(
            f'Csv record had unbalanced quotes. File: {csv_filepath}')


class _CsvToExample(csv_executor._CsvToExample):  # pylint: disable=protected-access
  """Stock's CSV transform, able to read gzip: the column names read as the
  in-process path reads them (``CsvFormat.headers``: gzip decompressed, a
  byte-order mark dropped, names trimmed), where stock reads the header line
  raw, and the lines read by ``_ReadCsvRecords``; a cell equal to one of
  the missing-value tokens (``custom_config``) is emptied after parsing,
  which is what the in-process path's Arrow reader does with them. The rest
  is stock's."""

  def __init__(self, exec_properties: Dict[str, Any], split_pattern: str):
    super().__init__(exec_properties, split_pattern)
    self._missing_values = missing_values_of(exec_properties)
    self._csv = formats.CsvFormat(delimiter_of(exec_properties))

  def expand(self, pipeline):
    csv_files = fileio.glob(self._csv_pattern)
    if not csv_files:
      raise RuntimeError('Split pattern {} does not match any files.'.format(
          self._csv_pattern))
    column_names = self._csv.headers(csv_files, _open)
    # pylint: disable=protected-access
    parsed_csv_lines = (
        pipeline
        | 'CreateFilenames' >> beam.Create(csv_files)
        | 'ReadFromText' >> beam.ParDo(_ReadCsvRecords())
        | 'ParseCSVLine' >> beam.ParDo(csv_decoder.ParseCSVLine(
            delimiter=self._csv.delimiter))
        | 'ExtractParsedCSVLines' >> beam.Keys())
    tokens = {t.encode('utf-8') for t in self._missing_values} - {b''}
    if tokens:
      parsed_csv_lines = parsed_csv_lines | 'MissingValues' >> beam.Map(
          lambda cells: [b'' if c in tokens else c for c in cells])
    column_infos = beam.pvalue.AsSingleton(
        parsed_csv_lines
        | 'InferColumnTypes' >> beam.CombineGlobally(
            csv_decoder.ColumnTypeInferrer(column_names,
                                           skip_blank_lines=True)))
    return (parsed_csv_lines
            | 'ToTFExample' >> beam.ParDo(
                csv_executor._ParsedCsvToTfExample(), column_infos))
    # pylint: enable=protected-access


class ArrowCsvExecutor(_InProcessExecutor, csv_executor.Executor):
  """Stock CSV ExampleGen executor, done in-process with Arrow when it can."""
  INGEST = _CsvIngest()

  def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
    return _CsvToExample


def dict_to_example(instance: Dict[str, Any]) -> tf.train.Example:
  """Stock's ``example_gen.utils.dict_to_example`` writing ``0``, ``0.0``
  and ``False`` as values (``parquet_fast``): only ``None``, ``''`` and an
  empty list are missing."""
  feature = {}
  for key, value in instance.items():
    pyval = value.tolist() if isinstance(value, np.ndarray) else (
        value.item() if hasattr(value, 'item') else value)
    if isinstance(pyval, bytes):
      pyval = pyval.decode('utf-8')
    if pyval is None or (isinstance(pyval, (str, list)) and not pyval):
      feature[key] = tf.train.Feature()
    elif isinstance(pyval, (int, str, float, list)):
      feature[key] = example_gen_utils.pyval_to_feature(
          pyval if isinstance(pyval, list) else [pyval])
    else:
      raise RuntimeError(f'Value type {type(pyval)} is not supported.')
  return tf.train.Example(features=tf.train.Features(feature=feature))


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(tf.train.Example)
def _ParquetToExample(pipeline: beam.Pipeline, exec_properties: Dict[str, Any],  # pylint: disable=invalid-name
                      split_pattern: str) -> beam.pvalue.PCollection:
  """Stock's Parquet transform with :func:`dict_to_example`."""
  pattern = os.path.join(
      exec_properties[standard_component_specs.INPUT_BASE_KEY], split_pattern)
  return (pipeline
          | 'ReadFromParquet' >> beam.io.ReadFromParquet(pattern)
          | 'ToTFExample' >> beam.Map(dict_to_example))


class ArrowParquetExecutor(_InProcessExecutor, parquet_executor.Executor):
  """TFX's Parquet executor, done in-process with Arrow when it can; zeros
  are values on both paths (``parquet_fast``)."""
  INGEST = _ParquetIngest()

  def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
    return _ParquetToExample


class TFRecordImportExecutor(_InProcessExecutor, import_executor.Executor):
  """Stock ImportExampleGen executor, done in-process when it can."""
  INGEST = _TFRecordIngest()


def _write(records: _Records, split_names: Sequence[str],
           hash_buckets: Optional[Sequence[int]], staging: str) -> int:
  """Writes the examples of one input split into the shards of
  ``split_names`` under ``staging``; returns the number of rows."""
  n = records.count
  shares = (np.array(hash_buckets) / sum(hash_buckets) if hash_buckets
            else np.ones(1))
  writers = []
  for name, share in zip(split_names, shares):
    count = max(1, min(os.cpu_count() or 1,
                       math.ceil(records.size * share / MIN_SHARD_BYTES)))
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
      batch = records.take(rows)
      buckets, crcs = csv_fast.hashes_and_crcs(
          batch, sum(hash_buckets) if hash_buckets else None)
      split_of = (csv_fast.split_indices(buckets, hash_buckets)
                  if hash_buckets else np.zeros(len(rows), dtype=np.int64))
      for index, shard_writers in enumerate(writers):
        selected = np.flatnonzero(split_of == index)
        # Contiguous parts of a random order: equal, random shards.
        for writer, part in zip(shard_writers,
                                np.array_split(selected, len(shard_writers))):
          if len(part):
            writer.put(csv_fast.tfrecord_frames(batch.take(part),
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


# The classes behind tfx.v1.components' ExampleGens, imported directly:
# tfx.v1 also imports every other component (16 s more here, under load).
class ArrowCsvExampleGen(csv_component.CsvExampleGen):
  """``CsvExampleGen`` with ``ArrowCsvExecutor``: same parameters (and
  ``missing_values``), same driver, same output artifact.

  ``missing_values``: the cells that are missing values in every column
  (``data.missing_values``; None: its default, pandas' list); ``['']`` is
  stock's rule. ``required_columns``: a row without a value in one of them
  is not written (``data.label.drop_missing``). Both reach the executor in
  ``custom_config``, which stock CsvExampleGen's spec has but its
  constructor does not take."""

  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(ArrowCsvExecutor)

  def __init__(self, input_base=None, input_config=None, output_config=None,
               range_config=None,
               missing_values: Optional[Sequence[str]] = None,
               required_columns: Sequence[str] = (), code_version: str = '',
               delimiter: str = ','):
    # CsvExampleGen.__init__ passes no custom_config: call its base's.
    example_gen_component.FileBasedExampleGen.__init__(  # pylint: disable=non-parent-init-called
        self, input_base=input_base, input_config=input_config,
        output_config=output_config, range_config=range_config,
        custom_config=ingest_custom_config(missing_values, required_columns,
                                           code_version, delimiter))


class ParquetExampleGen(example_gen_component.FileBasedExampleGen):
  """``FileBasedExampleGen`` with ``ArrowParquetExecutor``: the artifact of
  FileBasedExampleGen with TFX's Parquet executor (``required_columns`` as
  for the CSV's)."""

  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(ArrowParquetExecutor)

  def __init__(self, input_base=None, input_config=None, output_config=None,
               range_config=None, required_columns: Sequence[str] = (),
               code_version: str = ''):
    super().__init__(
        input_base=input_base, input_config=input_config,
        output_config=output_config, range_config=range_config,
        custom_config=ingest_custom_config(required_columns=required_columns,
                                           code_version=code_version))


class TFRecordExampleGen(import_component.ImportExampleGen):
  """``ImportExampleGen`` with ``TFRecordImportExecutor``: same parameters,
  same driver, same output artifact (``required_columns`` as for the
  CSV's, in ``custom_config``, which ImportExampleGen's spec has but its
  constructor does not take)."""

  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(TFRecordImportExecutor)

  def __init__(self, input_base=None, input_config=None, output_config=None,
               range_config=None, required_columns: Sequence[str] = (),
               code_version: str = ''):
    example_gen_component.FileBasedExampleGen.__init__(  # pylint: disable=non-parent-init-called
        self, input_base=input_base, input_config=input_config,
        output_config=output_config, range_config=range_config,
        custom_config=ingest_custom_config(required_columns=required_columns,
                                           code_version=code_version))
