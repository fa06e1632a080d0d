"""TFRecord files of tf.Examples, read the way ImportExampleGen reads them.

Stock ``ImportExampleGen`` (payload ``FORMAT_TF_EXAMPLE``) reads every file
with Beam's ``ReadFromTFRecord``: gzip when the name ends in ``.gz`` (Beam
decides compression by the suffix, in any case), uncompressed otherwise,
concatenated gzip members included and every CRC checked. It parses each
record with ``tf.train.Example.FromString``, hashes the deterministic
re-serialization to choose the split, and writes the Example.

* ``read_records`` does the reading (framing and CRCs checked here, so a
  corrupt file is named with its record);
* ``reserialize`` gives the deterministic serialization stock hashes (and
  that the in-process executor writes: the same Examples);
* ``decode`` turns records into an Arrow table as TFDV sees them (tfx_bsl's
  decoder: one list column per feature; an empty Feature is a null), for
  the pre-run check.

Nothing here imports TensorFlow at module level: the pre-run check reads
files with this module before anything heavy is loaded.
"""

import gzip
import zlib
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import google_crc32c
import numpy as np
import pyarrow as pa

_MASK_DELTA = 0xa282ead8
# Records decoded per tfx_bsl call in ``decode``.
DECODE_BATCH = 8192
GZIP_MAGIC = b'\x1f\x8b'


class TFRecordInputError(ValueError):
  """A TFRecord file cannot be read; the message names the file and record."""


def is_gzip(path: str) -> bool:
  """Beam's rule: compression follows the name's suffix, in any case."""
  return path.lower().endswith('.gz')


def _masked_crc(data) -> int:
  crc = google_crc32c.value(data)
  return ((((crc >> 15) | (crc << 17)) & 0xffffffff) + _MASK_DELTA) & 0xffffffff


def read_bytes(path: str,
               open_fn: Optional[Callable[[str], object]] = None) -> bytes:
  """The file's TFRecord bytes, decompressed when its name ends in .gz."""
  with (open(path, 'rb') if open_fn is None else open_fn(path)) as f:
    data = f.read()
  if is_gzip(path):
    try:
      return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
      raise TFRecordInputError(
          f'{path}: the name ends in .gz but the file is not gzip data '
          f'({e}); ImportExampleGen decides compression by the name') from None
  if data[:2] == GZIP_MAGIC:
    raise TFRecordInputError(
        f'{path}: the file is gzip-compressed but its name does not end in '
        '.gz; ImportExampleGen decides compression by the name, so it would '
        'read the compressed bytes as records: rename it to end in .gz')
  return data


def frames(data: bytes, path: str) -> Iterator[Tuple[int, bytes]]:
  """(record number from 1, record bytes) of TFRecord ``data``, with both
  CRCs of every record checked."""
  view = memoryview(data)
  size = len(view)
  position, number = 0, 0
  while position < size:
    number += 1
    if size - position < 12:
      raise TFRecordInputError(f'{path}: record {number} is truncated (its '
                               'length field is incomplete)')
    head = data[position:position + 8]
    if int.from_bytes(view[position + 8:position + 12], 'little') != (
        _masked_crc(head)):
      raise TFRecordInputError(
          f'{path}: record {number}: corrupt length (its CRC does not match); '
          'not a TFRecord file, or a damaged one')
    length = int.from_bytes(head, 'little')
    start = position + 12
    end = start + length
    if end + 4 > size:
      raise TFRecordInputError(f'{path}: record {number} is truncated '
                               f'({length} bytes announced)')
    record = data[start:end]
    if int.from_bytes(view[end:end + 4], 'little') != _masked_crc(record):
      raise TFRecordInputError(f'{path}: record {number}: corrupt data (its '
                               'CRC does not match)')
    yield number, record
    position = end + 4


def read_records(path: str,
                 open_fn: Optional[Callable[[str], object]] = None
                 ) -> List[bytes]:
  """Every record of the file, as bytes."""
  return [r for _, r in frames(read_bytes(path, open_fn), path)]


def reserialize(records: Sequence[bytes], path: str) -> List[bytes]:
  """Each record parsed as a tf.Example and serialized deterministically,
  as stock does before hashing it. Imports TensorFlow's protos: for the
  executor, where TensorFlow is loaded anyway."""
  # pylint: disable=g-import-not-at-top
  from google.protobuf import message
  from tensorflow.core.example import example_pb2
  # pylint: enable=g-import-not-at-top
  parse = example_pb2.Example.FromString
  out = []
  for number, record in enumerate(records, 1):
    try:
      out.append(parse(record).SerializeToString(deterministic=True))
    except message.DecodeError as e:
      raise TFRecordInputError(f'{path}: record {number} is not a tf.Example '
                               f'({e})') from None
  return out


def _has_values(example, names: Sequence[str]) -> bool:
  features = example.features.feature
  for name in names:
    if name not in features:
      return False
    kind = features[name].WhichOneof('kind')
    if kind is None or not getattr(features[name], kind).value:
      return False
  return True


def example_has_values(record, names: Sequence[str]) -> bool:
  """Whether a tf.Example (or its serialization) has a value in every one
  of the features ``names``."""
  if isinstance(record, bytes):
    from tensorflow.core.example import example_pb2  # pylint: disable=g-import-not-at-top
    record = example_pb2.Example.FromString(record)
  return _has_values(record, names)


def has_value(records: pa.LargeBinaryArray, name: str) -> np.ndarray:
  """Per serialized tf.Example, whether feature ``name`` has a value."""
  from tensorflow.core.example import example_pb2  # pylint: disable=g-import-not-at-top
  parse = example_pb2.Example.FromString
  return np.fromiter((_has_values(parse(r), (name,))
                      for r in records.to_pylist()), bool, len(records))


def decode(records: Sequence[bytes], path: str) -> pa.Table:
  """The records as TFDV sees them: a list column per feature (int64,
  float32 or binary values), null where a record lacks the feature or has
  an empty Feature. Raises, naming the record, where one is not a
  tf.Example or a feature changes type."""
  from tfx_bsl.coders import example_coder  # pylint: disable=g-import-not-at-top
  decoder = example_coder.ExamplesToRecordBatchDecoder()
  types: dict = {}
  tables = []
  for start in range(0, len(records), DECODE_BATCH):
    batch = list(records[start:start + DECODE_BATCH])
    try:
      decoded = decoder.DecodeBatch(batch)
    except RuntimeError:
      decoded = None
    if decoded is None or any(
        types.get(f.name, f.type) != f.type and not pa.types.is_null(f.type)
        and not pa.types.is_null(types[f.name]) for f in decoded.schema):
      _locate_error(decoder, batch, start, types, path)
    for field in decoded.schema:
      if not pa.types.is_null(field.type):
        types[field.name] = field.type
      else:
        types.setdefault(field.name, field.type)
    tables.append(pa.Table.from_batches([decoded]))
  if not tables:
    return pa.table({})
  return pa.concat_tables(tables, promote=True)


def _locate_error(decoder, batch, start, types, path) -> None:
  """Decodes the records of a failing batch one by one to name the first
  one that is not a tf.Example or changes a feature's type; raises."""
  types = dict(types)
  for offset, record in enumerate(batch):
    number = start + offset + 1
    try:
      decoded = decoder.DecodeBatch([record])
    except RuntimeError as e:
      raise TFRecordInputError(f'{path}: record {number} is not a tf.Example '
                               f'({e})') from None
    for field in decoded.schema:
      if pa.types.is_null(field.type):
        continue
      known = types.setdefault(field.name, field.type)
      if not pa.types.is_null(known) and known != field.type:
        raise TFRecordInputError(
            f'{path}: record {number}: feature {field.name!r} holds '
            f'{_kind(field.type)} values, earlier records {_kind(known)}; a '
            'feature keeps one type')
      types[field.name] = field.type
  raise TFRecordInputError(f'{path}: records {start + 1} to '
                           f'{start + len(batch)} cannot be decoded together')


def _kind(list_type: pa.DataType) -> str:
  value = list_type.value_type
  if pa.types.is_integer(value):
    return 'int64'
  if pa.types.is_floating(value):
    return 'float'
  return 'bytes'
