"""CSV to serialized tf.Examples with Arrow and numpy, the way CsvExampleGen does it.

Stock ``CsvExampleGen`` parses every CSV line with Python's ``csv`` module,
builds a ``tf.train.Example`` per row in Python and lets Beam hash, shuffle
and write each record: about 0.5 ms of CPU per row. This module does the
same work column-wise:

* ``read_csv`` parses whole files with ``pyarrow.csv`` into string columns,
  empty cells (quoted or not) being missing values, as in stock, and so
  every cell equal to one of ``missing_values`` (``data.missing_values``:
  by default pandas' 'NA', 'null', 'nan', ...; ``['']`` is stock's rule),
  in every column: the one place where those tokens are applied;
* ``convert_column`` infers each column's type with stock's rules
  (``tfx_bsl.coders.csv_decoder``: INT if every non-empty cell is a Python
  ``int`` within int64, else FLOAT if every one is a Python ``float``, else
  STRING; a column with no values has no type) and converts it, using Arrow's
  casts where they provably agree with Python and Python itself on the
  distinct remaining values;
* ``encode_examples`` writes the protobuf wire format directly with numpy:
  exactly the bytes of ``Example.SerializeToString(deterministic=True)`` of
  the Example stock would build. Those bytes are what stock hashes to choose
  a row's split, so ``split_indices`` puts every row in the same split;
  tfx_bsl's ``RecordBatchToExamples`` was not used because it writes the
  feature map in hash order, whose hash differs from stock's;
* ``tfrecord_frames`` frames records as TFRecords (length, masked CRC32C).

No TFX types here; ``components.ingest.component`` is the executor.
"""

import csv
import dataclasses
import enum
import hashlib
from typing import Callable, List, Optional, Sequence, Tuple

import google_crc32c
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
BLOCK_BYTES = 64 << 20


class ColumnType(enum.IntEnum):
  """tfx_bsl's ``csv_decoder.ColumnType``, values included (a test checks
  they agree). Defined here because importing tfx_bsl's coders imports Beam
  (seconds), and the pre-run checks read files with this module before
  anything heavy is imported."""
  UNKNOWN = -1  # No value in any row.
  INT = 0  # statistics_pb2.FeatureNameStatistics.INT
  FLOAT = 1
  STRING = 2


class CsvInputError(ValueError):
  """A CSV file cannot be converted; the message names the file (and column)."""


# ---------------------------------------------------------------------------
# Reading


GZIP_MAGIC = b'\x1f\x8b'
PARQUET_MAGIC = b'PAR1'


def _is_text(line: bytes) -> bool:
  try:
    line.decode('utf-8')
  except UnicodeDecodeError:
    return False
  return b'\x00' not in line


def read_header(path: str,
                open_fn: Optional[Callable[[str], object]] = None,
                delimiter: str = ',') -> List[str]:
  """The column names on the first line of ``path``.

  Stock (``io_utils.load_csv_column_names``) splits the line on commas as it
  is; names are read here the way users write them: a UTF-8 byte-order mark
  dropped, quotes honoured (``"a,b"`` is one name), and spaces around a name
  trimmed (``fare, tips``). The pre-run check and ingestion both call this,
  so they agree on the columns. ``open_fn``, if given, opens ``path`` as a
  binary file object with ``readline`` (a gs:// path, a gzip stream).
  """
  source = open(path, 'rb') if open_fn is None else open_fn(path)
  with source:
    first = source.readline()
  # Compressed or binary files under a text file's name: the reader picks
  # gzip by the suffix (as Beam does), so say which suffix.
  if first.startswith(GZIP_MAGIC):
    raise CsvInputError(f'{path}: the file is gzip-compressed but its name '
                        'does not end in .gz; rename it to end in .csv.gz')
  # 'PAR1' may begin a text header too; a Parquet file's next bytes are
  # binary (zero bytes, or bytes that are not UTF-8).
  if first.startswith(PARQUET_MAGIC) and not _is_text(first):
    raise CsvInputError(f'{path}: the file is Parquet, not CSV; name it '
                        '.parquet or set data.format: parquet')
  try:
    text = first.decode('utf-8-sig')
  except UnicodeDecodeError as e:
    raise CsvInputError(f'{path}: the header line is not UTF-8 text (byte '
                        f'{e.start}: {first[e.start:e.start + 1]!r})') from None
  text = text.rstrip('\r\n')
  if not text.strip():
    return []
  return [name.strip()
          for name in next(csv.reader([text], delimiter=delimiter))]


def read_csv(path: str, column_names: Sequence[str],
             open_fn: Optional[Callable[[str], object]] = None,
             missing_values: Optional[Sequence[str]] = None,
             delimiter: str = ',') -> pa.Table:
  """All rows of ``path`` as string columns named ``column_names``, fields
  separated by ``delimiter``.

  The header line is skipped, not parsed (``read_header`` reads it).
  ``open_fn``, if given, opens ``path`` as a binary file object (a gs://
  path, a gzip stream); else Arrow reads the local file itself.
  ``missing_values``: the cells that are null (missing), compared whole
  with the cell as parsed (quotes removed, spaces kept, as stock keeps
  them: ' NA' is no token, as ' ' is no empty cell); the empty cell is
  always one. None: ``data.missing_values``' default, pandas' list.
  """
  names = list(column_names)
  tokens = missing_value_tokens(missing_values)
  # Arrow parses in blocks and cannot split a row across two: a block far
  # larger than its 1 MiB default keeps huge fields (long text, serialized
  # blobs) readable at no cost for ordinary rows.
  read_options = pa_csv.ReadOptions(column_names=names, skip_rows=1,
                                    block_size=BLOCK_BYTES)
  # Stock joins physical lines until their quotes balance, so quoted values
  # may hold newlines; blank lines are skipped in both.
  parse_options = pa_csv.ParseOptions(delimiter=delimiter,
                                      newlines_in_values=True,
                                      ignore_empty_lines=True)
  convert_options = pa_csv.ConvertOptions(
      column_types={n: pa.string() for n in names},
      # Exact matches, quoted or not; with ('',), 'NA', 'null' and 'nan'
      # are values, as in stock. Type inference then sees only the rest:
      # numbers and 'NA' make an INT or FLOAT column with missing cells.
      null_values=list(tokens), strings_can_be_null=True,
      quoted_strings_can_be_null=True)
  source = path if open_fn is None else open_fn(path)
  try:
    return pa_csv.read_csv(source, read_options=read_options,
                           parse_options=parse_options,
                           convert_options=convert_options)
  except (pa.ArrowInvalid, UnicodeDecodeError) as e:
    raise CsvInputError(f'{path}: cannot read as CSV with columns {names}: '
                        f'{e}') from e
  finally:
    if source is not path:
      source.close()


def missing_value_tokens(missing_values: Optional[Sequence[str]] = None
                         ) -> Tuple[str, ...]:
  """The tokens ``read_csv`` treats as missing: ``missing_values`` checked
  as ``data.missing_values`` is (the empty cell always included), or its
  default."""
  from core import config as config_lib  # pylint: disable=g-import-not-at-top
  return config_lib.parse_missing_values(
      config_lib.PANDAS_MISSING_VALUES if missing_values is None
      else missing_values, where='missing_values')


# ---------------------------------------------------------------------------
# Type inference and conversion


def infer_value_type(cell: bytes) -> ColumnType:
  """Type of one non-empty cell: tfx_bsl csv_decoder._InferValueType."""
  try:
    return (ColumnType.INT if _INT64_MIN <= int(cell) <= _INT64_MAX
            else ColumnType.STRING)  # Larger integers are strings in stock.
  except ValueError:
    try:
      float(cell)
    except ValueError:
      return ColumnType.STRING
    return ColumnType.FLOAT


@dataclasses.dataclass
class Column:
  """A converted column: ``present`` marks its cells with a value (neither
  empty nor a missing-value token: null in ``read_csv``'s table); ``values``
  is an int64 or float32 numpy array for INT and FLOAT (anything where a
  cell is empty), a large_binary Arrow array with nulls for STRING, and
  None for UNKNOWN (no value in any row)."""
  name: str
  type: ColumnType
  present: np.ndarray
  values: object = None


def numeric_column(name: str, kind: ColumnType, values, present: np.ndarray
                   ) -> Column:
  """An INT or FLOAT column of ``values`` (int64 or float32, as stock's
  lists hold them)."""
  dtype = np.int64 if kind == ColumnType.INT else np.float32
  with np.errstate(over='ignore'):  # Beyond float32: inf, as in protobuf.
    values = np.asarray(values).astype(dtype, copy=False)
  return Column(name, kind, present, values)


_numeric = numeric_column


def convert_column(name: str, column: pa.ChunkedArray) -> Column:
  """Infers the column's type as stock does and converts its values."""
  column = column.combine_chunks() if isinstance(
      column, pa.ChunkedArray) else column
  present = column.is_valid().to_numpy(zero_copy_only=False)
  if not present.any():
    return Column(name, ColumnType.UNKNOWN, present)
  # Fast paths: Arrow's casts, where their accepted syntax is one Python
  # accepts too. Arrow's int parser also takes hex ('0x1F'), Python's not;
  # its float parser takes 'nan(123)', Python's not ('n' catches those and
  # nan/inf, which go the exact way); pure digit strings of 19+ characters
  # may exceed int64, which makes them strings in stock.
  ints = _try_cast(column, pa.int64())
  if ints is not None and not _contains_any(column, ('x', 'X')):
    return _numeric(name, ColumnType.INT, _fill(ints, 0), present)
  floats = _try_cast(column, pa.float64())
  if (floats is not None and not _contains_any(column, ('n', 'N'))
      and not _has_long_integers(column)):
    return _numeric(name, ColumnType.FLOAT, _fill(floats, 0.0), present)
  return _convert_exactly(name, column, present)


def _try_cast(column: pa.Array, to: pa.DataType) -> Optional[pa.Array]:
  """The cast, or None where a value does not parse. A failing cast of a
  whole column is slow (Arrow formats the error), so a prefix goes first."""
  try:
    pc.cast(column.slice(0, 1024), to)
    return pc.cast(column, to)
  except pa.ArrowInvalid:
    return None


def _contains_any(column: pa.Array, needles: Sequence[str]) -> bool:
  return any(pc.any(pc.match_substring(column, n)).as_py() for n in needles)


def _has_long_integers(column: pa.Array) -> bool:
  """Whether a cell is an integer of 19 or more digits: maybe beyond int64,
  so maybe a string to stock, though Arrow parses it as a float."""
  long_cells = column.filter(pc.greater_equal(pc.utf8_length(column), 19))
  return len(long_cells) > 0 and pc.any(
      pc.match_substring_regex(long_cells, r'^[+-]?[0-9]+$')).as_py()


def _fill(array: pa.Array, value) -> np.ndarray:
  return array.fill_null(value).to_numpy(zero_copy_only=False)


def _convert_exactly(name: str, column: pa.Array, present: np.ndarray
                     ) -> Column:
  """Python's rules on each distinct value: correct for any input, and fast
  when a column has few distinct values or is a string column."""
  encoded = column.dictionary_encode()
  distinct = [s.encode('utf-8') for s in encoded.dictionary.to_pylist()]
  kind = ColumnType.INT
  for cell in distinct:
    kind = max(kind, infer_value_type(cell))
    if kind == ColumnType.STRING:
      return Column(name, kind, present, pc.cast(column, pa.large_binary()))
  convert = int if kind == ColumnType.INT else float
  table = np.array([convert(c) for c in distinct],
                   dtype=np.int64 if kind == ColumnType.INT else np.float64)
  codes = encoded.indices.fill_null(0).to_numpy(zero_copy_only=False)
  return _numeric(name, kind, table[codes], present)


def convert_table(table: pa.Table, path: str) -> List[Column]:
  """Every column of ``table`` converted, in the table's order."""
  columns = []
  for name, column in zip(table.column_names, table.columns):
    try:
      columns.append(convert_column(name, column))
    except (pa.ArrowInvalid, ValueError) as e:
      raise CsvInputError(f'{path}: column {name!r}: {e}') from e
  return columns


# ---------------------------------------------------------------------------
# Protobuf wire format
#
# Example{features=1: Features{feature=1: map<string, Feature>}}; a map entry
# is a message {key=1, value=2}; Feature is a oneof bytes_list=1,
# float_list=2, int64_list=3, each a message with a single repeated field 1
# (packed for floats and ints). Deterministic serialization writes map
# entries sorted by key, each entry key first, and an empty list as a present
# but empty message, which is what stock builds for an empty cell; a column
# with no type at all gives an empty Feature.

_MAX_VARINT = 10
# A varint has k + 1 bytes when its value is at least 2**(7k).
_VARINT_STEPS = np.array([1 << (7 * k) for k in range(1, _MAX_VARINT)],
                         dtype=np.uint64)


def _varint_lengths(values: np.ndarray) -> np.ndarray:
  values = values.astype(np.uint64, copy=False)
  return 1 + np.searchsorted(_VARINT_STEPS, values, side='right')


def _varints(values: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
  """Varint bytes of unsigned ``values``: (n, widest) rows and lengths."""
  values = values.astype(np.uint64, copy=False)
  lengths = _varint_lengths(values)
  width = int(lengths.max()) if lengths.size else 1
  rows = np.empty((len(values), width), dtype=np.uint8)
  for k in range(width):
    byte = (values >> np.uint64(7 * k)).astype(np.uint8) & np.uint8(0x7f)
    # Continuation bit on every byte but the last.
    rows[:, k] = byte | ((k < lengths - 1).astype(np.uint8) << np.uint8(7))
  return rows, lengths


class _Rows:
  """Per-row byte strings built from fixed-width blocks, each with a mask of
  the bytes that are used; ``mat[mask]`` packs them row by row."""

  def __init__(self, n: int):
    self.n = n
    self.blocks: List[np.ndarray] = []
    self.masks: List[np.ndarray] = []

  def const(self, data: bytes, where: Optional[np.ndarray] = None):
    block = np.broadcast_to(np.frombuffer(data, dtype=np.uint8),
                            (self.n, len(data)))
    mask = np.ones((self.n, len(data)), dtype=bool) if where is None else (
        np.repeat(where[:, None], len(data), axis=1))
    self.blocks.append(block)
    self.masks.append(mask)

  def varint(self, values: np.ndarray, where: Optional[np.ndarray] = None):
    rows, lengths = _varints(values)
    mask = np.arange(rows.shape[1])[None, :] < lengths[:, None]
    if where is not None:
      mask &= where[:, None]
    self.blocks.append(rows)
    self.masks.append(mask)

  def raw(self, rows: np.ndarray, lengths: np.ndarray):
    self.blocks.append(rows)
    self.masks.append(np.arange(rows.shape[1])[None, :] < lengths[:, None])

  def to_arrow(self) -> pa.LargeBinaryArray:
    if not self.blocks:
      return pa.array([b''] * self.n, pa.large_binary())
    mat = np.concatenate(self.blocks, axis=1)
    mask = np.concatenate(self.masks, axis=1)
    return _binary_array(mat[mask], mask.sum(axis=1))


def _binary_array(data: np.ndarray, lengths: np.ndarray
                  ) -> pa.LargeBinaryArray:
  offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
  np.cumsum(lengths, out=offsets[1:])
  return pa.LargeBinaryArray.from_buffers(
      pa.large_binary(), len(lengths),
      [None, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(data))])


def _key_field(name: str) -> bytes:
  key = name.encode('utf-8')
  return b'\x0a' + _varint_bytes(len(key)) + key


def _varint_bytes(value: int) -> bytes:
  rows, lengths = _varints(np.array([value], np.uint64))
  return bytes(rows[0][:lengths[0]])


def _numeric_entries(kind: ColumnType, values: np.ndarray,
                     present: np.ndarray, key: bytes) -> pa.LargeBinaryArray:
  """Map entries of INT or FLOAT values; an empty list where not present."""
  rows = _Rows(len(values))
  if kind == ColumnType.INT:
    # Varints of the two's complement: negative int64s take 10 bytes.
    value_rows, value_len = _varints(values.view(np.uint64))
    value_len = np.where(present, value_len, 0)
    list_tag = 0x1a  # int64_list = 3
  else:
    value_rows = np.ascontiguousarray(values.astype('<f4')).view(
        np.uint8).reshape(-1, 4)
    value_len = np.where(present, 4, 0)
    list_tag = 0x12  # float_list = 2
  # XList{value: [v]} is 0a len(v) v (packed), empty for an empty cell.
  packed = np.where(present, 2 + value_len, 0)
  feature = 2 + packed                               # list_tag len(XList) ..
  entry = len(key) + 2 + feature                     # key 12 len(Feature) ..
  rows.const(b'\x0a')
  rows.varint(entry)
  rows.const(key)
  # Both lengths are below 128 (at most 14 and 12): one-byte varints.
  header = np.empty((len(values), 6), dtype=np.uint8)
  header[:, 0] = 0x12
  header[:, 1] = feature
  header[:, 2] = list_tag
  header[:, 3] = packed
  header[:, 4] = 0x0a
  header[:, 5] = value_len
  rows.raw(header, np.where(present, 6, 4))
  rows.raw(value_rows, value_len)
  return rows.to_arrow()


def _string_entries(values: pa.Array, present: np.ndarray, key: bytes
                    ) -> pa.LargeBinaryArray:
  """Map entries of byte strings; an empty list where not present."""
  data = values.fill_null(b'')
  length = pc.binary_length(data).to_numpy(zero_copy_only=False).astype(
      np.int64)
  # BytesList{value: [cell]} is 0a len(cell) cell, empty for an empty cell.
  blist = np.where(present, 1 + _varint_lengths(length) + length, 0)
  feature = 1 + _varint_lengths(blist) + blist       # 0a len(BytesList) ..
  entry = len(key) + 1 + _varint_lengths(feature) + feature
  rows = _Rows(len(values))
  rows.const(b'\x0a')
  rows.varint(entry)
  rows.const(key + b'\x12')
  rows.varint(feature)
  rows.const(b'\x0a')
  rows.varint(blist)
  rows.const(b'\x0a', where=present)
  rows.varint(length, where=present)
  return _join([rows.to_arrow(), data])


@dataclasses.dataclass
class EncodedColumn:
  """A column as serialized feature-map entries (key and Feature):
  ``entries[codes[row]]`` is the row's entry."""
  name: str
  entries: pa.LargeBinaryArray
  codes: np.ndarray


def _empty_feature_entry(key: bytes) -> bytes:
  """A map entry holding an empty Feature (no list at all): 0a len key 12 00."""
  return b'\x0a' + _varint_bytes(len(key) + 2) + key + b'\x12\x00'


def encode_column(column: Column, missing_as_empty_feature: bool = False
                  ) -> EncodedColumn:
  """Serializes each distinct value of the column once (most columns have
  few); rows then only pick their entry by code.

  A cell that is not present is an empty list of the column's type, as
  stock's CSV route writes it, or with ``missing_as_empty_feature`` an
  empty Feature, as stock's Parquet route (``dict_to_example``) writes it.
  """
  key = _key_field(column.name)
  n = len(column.present)
  if column.type == ColumnType.UNKNOWN:
    # No type: an empty Feature in every row.
    return EncodedColumn(column.name,
                         pa.array([_empty_feature_entry(key)],
                                  pa.large_binary()),
                         np.zeros(n, dtype=np.int32))
  if column.type == ColumnType.STRING:
    encoded = column.values.dictionary_encode()
  else:
    # Float bits, not float values: -0.0 and NaN payloads stay distinct.
    bits = column.values.view(
        np.int64 if column.type == ColumnType.INT else np.int32)
    encoded = pa.array(bits, mask=~column.present).dictionary_encode()
  distinct = len(encoded.dictionary)
  # Code ``distinct`` is the empty cell.
  codes = encoded.indices.fill_null(distinct).to_numpy(
      zero_copy_only=False).astype(np.int32)
  present = np.arange(distinct + 1) < distinct
  if column.type == ColumnType.STRING:
    values = pa.concat_arrays([encoded.dictionary.cast(pa.large_binary()),
                               pa.array([None], pa.large_binary())])
    entries = _string_entries(values, present, key)
  else:
    values = np.append(encoded.dictionary.to_numpy(), 0).astype(bits.dtype)
    entries = _numeric_entries(column.type, values.view(column.values.dtype),
                               present, key)
  if missing_as_empty_feature:
    entries = pa.concat_arrays([
        entries.slice(0, distinct),
        pa.array([_empty_feature_entry(key)], pa.large_binary())])
  return EncodedColumn(column.name, entries, codes)


def encode_examples(columns: Sequence[EncodedColumn], rows: np.ndarray
                    ) -> pa.LargeBinaryArray:
  """Deterministically serialized tf.Examples of ``rows`` (indices)."""
  # Map entries sorted by key, bytewise as upb does.
  ordered = sorted(columns, key=lambda c: c.name.encode('utf-8'))
  body = _join([c.entries.take(c.codes[rows]) for c in ordered])
  # Example{features: Features}: 0a len(Features) Features.
  head = _Rows(len(rows))
  head.const(b'\x0a')
  head.varint(pc.binary_length(body).to_numpy(zero_copy_only=False))
  return _join([head.to_arrow(), body])


def _join(arrays: Sequence[pa.Array]) -> pa.LargeBinaryArray:
  if len(arrays) == 1:
    return arrays[0]
  # The separator as a scalar built here: building Arrow scalars imports
  # pandas (a second), which module level would cost every pre-run check.
  return pc.binary_join_element_wise(*arrays,
                                     pa.scalar(b'', pa.large_binary()))


# ---------------------------------------------------------------------------
# Splitting and framing


def hashes_and_crcs(records: pa.LargeBinaryArray,
                    num_buckets: Optional[int]
                    ) -> Tuple[Optional[np.ndarray], np.ndarray]:
  """Per record: stock's hash bucket (sha256 of the serialized Example as a
  big-endian integer, modulo the total number of buckets; None without
  buckets) and the CRC32C of its bytes, which TFRecord framing needs.
  Hashing is the only per-record Python work left."""
  values = _values(records)
  crcs = np.fromiter(map(google_crc32c.value, values), dtype=np.uint32,
                     count=len(values))
  if num_buckets is None:
    return None, crcs
  sha256 = hashlib.sha256
  digests = np.frombuffer(b''.join([sha256(v).digest() for v in values]),
                          dtype=np.uint8).reshape(-1, 32)
  if num_buckets >= 1 << 48:  # The dot product below could overflow int64.
    return np.array([int.from_bytes(d.tobytes(), 'big') % num_buckets
                     for d in digests], dtype=np.int64), crcs
  # sum(byte_k * 256**(31-k)) mod m, with each power reduced mod m first.
  weights = np.array([pow(256, 31 - k, num_buckets) for k in range(32)],
                     dtype=np.int64)
  return (digests.astype(np.int64) @ weights) % num_buckets, crcs


def _values(records: pa.LargeBinaryArray) -> List[bytes]:
  """The records as bytes objects; 10x faster than ``to_pylist``."""
  data = bytes(_data_bytes(records))
  offsets = _offsets(records)
  offsets = (offsets - offsets[0]).tolist()
  return [data[a:b] for a, b in zip(offsets, offsets[1:])]


def split_indices(buckets: np.ndarray, hash_buckets: Sequence[int]
                  ) -> np.ndarray:
  """Split index per record, as stock's ``bisect`` over cumulative buckets."""
  return np.searchsorted(np.cumsum(hash_buckets), buckets, side='right')


def _masked_crc(crc: np.ndarray) -> np.ndarray:
  crc = crc.astype(np.uint32)
  return (((crc >> np.uint32(15)) | (crc << np.uint32(17)))
          + np.uint32(0xa282ead8)).astype(np.uint32)


def tfrecord_frames(records: pa.LargeBinaryArray, crcs: np.ndarray
                    ) -> memoryview:
  """The records framed as a TFRecord file's bytes: per record its length
  (uint64 LE), the masked CRC32C of those 8 bytes, the data and its masked
  CRC32C."""
  n = len(records)
  lengths = np.diff(_offsets(records)).astype('<u8')
  distinct, inverse = np.unique(lengths, return_inverse=True)
  length_crcs = np.array([google_crc32c.value(v.tobytes()) for v in distinct],
                         dtype=np.uint32)[inverse]
  head = np.empty((n, 12), dtype=np.uint8)
  head[:, :8] = lengths.view(np.uint8).reshape(n, 8)
  head[:, 8:] = _masked_crc(length_crcs).astype('<u4').view(
      np.uint8).reshape(n, 4)
  tail = _masked_crc(crcs).astype('<u4').view(np.uint8).reshape(n, 4)
  framed = _join([_binary_array(head.reshape(-1), np.full(n, 12)), records,
                  _binary_array(tail.reshape(-1), np.full(n, 4))])
  return _data_bytes(framed)


def _offsets(array: pa.LargeBinaryArray) -> np.ndarray:
  return np.frombuffer(array.buffers()[1], dtype=np.int64,
                       count=len(array) + 1, offset=8 * array.offset)


def _data_bytes(array: pa.LargeBinaryArray) -> memoryview:
  """The concatenated values of a binary array, without copying."""
  if len(array) == 0:
    return memoryview(b'')
  offsets = _offsets(array)
  return memoryview(array.buffers()[2])[int(offsets[0]):int(offsets[-1])]


def encoded_bytes(columns: Sequence[EncodedColumn]) -> int:
  """The bytes the examples' feature entries take, over all rows: their
  serialized size but for a few bytes of framing per example."""
  total = 0
  for column in columns:
    lengths = pc.binary_length(column.entries).to_numpy(
        zero_copy_only=False).astype(np.int64)
    total += int(np.bincount(column.codes, minlength=len(lengths)) @ lengths)
  return total
