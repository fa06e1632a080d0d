"""Input formats: what ``data.path`` may name, one object per format.

``data.path`` is a file, a folder or a glob of CSV (``.csv``, or gzip
``.csv.gz``), Parquet (``.parquet``) or TFRecord files of tf.Examples
(``.tfrecord``, ``.tfrecords``, gzip ``.gz``); ``data.format`` names the
format or is ``auto``: the one the file names claim. Everything that depends
on the format is one ``InputFormat`` in ``FORMATS``, which the rest asks and
never tests the name of:

* which names it claims (``suffix``), and so the pattern ExampleGen gets
  for a folder;
* how the pre-run check reads the data (``read``): every row of every file,
  with the reader ingestion uses, into a ``CheckData`` holding each column
  as ExampleGen will write it;
* which ExampleGen ingests it (``example_gen``): ``ArrowCsvExampleGen``
  (stock CsvExampleGen's spec), ``ParquetExampleGen`` (FileBasedExampleGen
  with TFX's Parquet executor's output) and ``TFRecordExampleGen``
  (ImportExampleGen's), each with an in-process executor that falls back
  to the stock Beam one (``components.ingest.component``).

Locations: ExampleGen reads ``os.path.join(input_base, pattern)`` through
TFX's ``fileio`` (so gs:// and any filesystem TensorFlow's gfile reads);
``location`` derives both from the path as a string alone, so a Kubeflow
spec compiles offline. ``find`` lists local files for the pre-run check with
gfile's glob rules (hidden files match ``*``), so it checks exactly the
files ExampleGen will read.

No TensorFlow or TFX at module level: the pre-run check answers in about a
second.
"""

import csv
import dataclasses
import fnmatch
import gzip
import io
import json
import os
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from components.ingest import csv_fast
from components.ingest import parquet_fast
from components.ingest import tfrecord_fast
from core import config as config_lib

ColumnType = csv_fast.ColumnType
AUTO = 'auto'
_WILDCARDS = '*?['
# Compressions Beam would also detect by the suffix; only gzip is read here.
_OTHER_COMPRESSIONS = ('.bz2', '.deflate', '.zst', '.zstd', '.xz', '.lzma')
# The delimiters a header read as one name is checked for (sniff_delimiter).
_DELIMITERS = {',': 'commas', ';': 'semicolons', '\t': 'tabs', '|': 'pipes'}


def sniff_delimiter(line: str, current: str = ',') -> Optional[str]:
  """The delimiter of ``_DELIMITERS`` other than ``current`` that splits a
  header ``line`` read as one column, if one does."""
  return next((d for d in _DELIMITERS if d != current and d in line), None)

Opener = Callable[[str], object]


class FormatError(config_lib.ConfigError):
  """``data.path`` or ``data.format`` names nothing a format reads."""


class InputError(ValueError):
  """The data cannot be read as its format; the message names the file
  (and the row)."""


def is_remote(path: str) -> bool:
  return '://' in path


def is_glob(path: str) -> bool:
  return any(c in path for c in _WILDCARDS)


def is_gzip(path: str) -> bool:
  return tfrecord_fast.is_gzip(path)


# ---------------------------------------------------------------------------
# Opening files


class _GzipReader(gzip.GzipFile):
  """A gzip stream over an open binary file, closing both."""

  def __init__(self, raw):
    super().__init__(fileobj=raw, mode='rb')
    self._raw = raw

  def close(self):
    try:
      super().close()
    finally:
      self._raw.close()


def open_binary(path: str, remote_open: Optional[Opener] = None):
  """``path``'s bytes as a binary file object with ``readline``, gunzipped
  when the name ends in .gz (Beam's rule). ``remote_open`` opens URLs
  (the executors pass TFX's fileio)."""
  if is_remote(path):
    if remote_open is None:
      raise FormatError(f'{path}: a URL; this reads local files')
    raw = remote_open(path)
  else:
    raw = open(path, 'rb')
  return _GzipReader(raw) if is_gzip(path) else raw


def _arrow_opener(path: str, remote_open: Optional[Opener]) -> Optional[Opener]:
  """How Arrow's CSV reader opens ``path``: None lets it read a local file
  itself; a gzip file is decompressed by Arrow's own stream (identical bytes,
  concatenated members included, without the GIL)."""
  if is_remote(path):
    return lambda p: open_binary(p, remote_open)
  if is_gzip(path):
    return lambda p: pa.input_stream(p, compression='gzip')
  return None


def _check_compression(path: str) -> None:
  lower = path.lower()
  for suffix in _OTHER_COMPRESSIONS:
    if lower.endswith(suffix):
      raise InputError(f'{path}: compressed as {suffix}; only gzip (.gz) is '
                       'read: recompress it with gzip')


# ---------------------------------------------------------------------------
# What the pre-run check reads


class CheckData:
  """Every row of the data as ExampleGen will write it, for the pre-run check.

  ``cells(name)``: the column as strings, as a task's ``parse_label`` reads
  them (null where ExampleGen writes no value); ``column(name)``: the typed
  ``csv_fast.Column`` stock's route gives it; ``locate(row)``: the file and
  its row (from 1) of a row of the whole data; ``unusable``: columns
  ExampleGen writes but the pipeline cannot read as one value per example,
  with the reason; ``lost(name)``: where the file holds a value that
  ExampleGen writes as missing (Parquet's zeros), explained by
  ``lost_note``.
  """

  def __init__(self, files: Sequence[str], rows: Sequence[int],
               names: Sequence[str], cells: Callable[[str], pa.Array],
               column: Callable[[str], csv_fast.Column], *,
               row_word: str = 'row', data_row_word: str = 'row',
               header_word: str = 'the columns', no_rows: str = 'no rows',
               unusable: Optional[Dict[str, str]] = None,
               lost: Optional[Callable[[str], np.ndarray]] = None,
               lost_note: str = '',
               stored: Optional[Callable[[str, int], object]] = None):
    self.files = list(files)
    self.rows = list(rows)
    self.names = list(names)
    self.row_word = row_word
    self.data_row_word = data_row_word
    self.header_word = header_word
    self.no_rows = no_rows
    self.unusable = dict(unusable or {})
    self._lost = lost
    self._stored = stored
    self.lost_note = lost_note
    self._cells = cells
    self._column = column
    self._cache: Dict[Tuple[str, str], object] = {}
    self._ends = np.cumsum(self.rows)

  @property
  def total(self) -> int:
    return int(self._ends[-1]) if len(self._ends) else 0

  def locate(self, row: int) -> Tuple[str, int]:
    """(file, row number in it from 1) of row ``row`` (from 0) of the data."""
    return _locate(self.files, self._ends, row)

  def row_name(self, row: int) -> str:
    """Row ``row`` (from 0) in words: 'row 7', or 'row 7 of b.csv' when
    the data is several files."""
    file, number = self.locate(row)
    return f'{self.data_row_word} {number}' + (
        f' of {file}' if len(self.files) > 1 else '')

  def cells(self, name: str) -> pa.Array:
    key = ('cells', name)
    if key not in self._cache:
      self._cache[key] = self._cells(name)
    return self._cache[key]

  def column(self, name: str) -> csv_fast.Column:
    key = ('column', name)
    if key not in self._cache:
      self._cache[key] = self._column(name)
    return self._cache[key]

  def lost(self, name: str) -> Optional[np.ndarray]:
    """Where the file holds a value that ExampleGen writes as missing, or
    None if it never does."""
    if self._lost is None or name in self.unusable:
      return None
    key = ('lost', name)
    if key not in self._cache:
      self._cache[key] = self._lost(name)
    return self._cache[key]

  def lost_at(self, name: str, row: int) -> bool:
    mask = self.lost(name)
    return mask is not None and bool(mask[row])

  def stored(self, name: str, row: int) -> object:
    """The value the file holds (for messages where it is lost)."""
    return None if self._stored is None else self._stored(name, row)


def _locate(files: Sequence[str], ends: np.ndarray, row: int
            ) -> Tuple[str, int]:
  index = int(np.searchsorted(ends, row, side='right'))
  start = int(ends[index - 1]) if index else 0
  return files[index], row - start + 1


def _string_cells(column: csv_fast.Column) -> pa.Array:
  """A typed column's values as strings, null where not present."""
  n = len(column.present)
  if column.type == ColumnType.UNKNOWN:
    return pa.nulls(n, pa.large_string())
  if column.type == ColumnType.STRING:
    try:
      text = pc.cast(column.values, pa.large_string())
    except pa.ArrowInvalid:
      text = pa.array([None if v is None else v.decode('utf-8', 'replace')
                       for v in column.values.to_pylist()], pa.large_string())
    return pc.if_else(pa.array(column.present), text,
                      pa.scalar(None, pa.large_string()))
  return pc.cast(pa.array(column.values, mask=~column.present),
                 pa.large_string())


# ---------------------------------------------------------------------------
# The formats


class InputFormat:
  """One input format; subclasses fill in what differs."""
  name = ''
  title = ''
  # Name endings it claims, longest first; the first is a folder's pattern
  # where the folder cannot be listed (a Kubeflow spec).
  suffixes: Tuple[str, ...] = ()

  def suffix(self, file_name: str) -> Optional[str]:
    """The ending of ``file_name`` (as written) that this format claims."""
    lower = os.path.basename(file_name).lower()
    for suffix in self.suffixes:
      if lower.endswith(suffix) and len(lower) > len(suffix):
        return os.path.basename(file_name)[-len(suffix):]
    return None

  @property
  def default_pattern(self) -> str:
    return '*' + self.suffixes[0]

  def read(self, files: Sequence[str],
           missing_values: Optional[Sequence[str]] = None) -> CheckData:
    """Every row of ``files``, read as ingestion reads them; raises
    InputError naming the file (and row). ``missing_values``
    (``data.missing_values``; None: its default) applies to text formats
    only: Parquet and TFRecord have real nulls and ignore it."""
    raise NotImplementedError

  def example_gen(self, *, input_base, input_config, output_config,
                  missing_values: Optional[Sequence[str]] = None,
                  required_columns: Sequence[str] = (),
                  code_version: str = ''):
    """The ExampleGen component that ingests this format (with
    ``missing_values`` where the format reads it, as ``read`` does), not
    writing rows without a value in one of ``required_columns``;
    ``code_version`` is for the cache key only."""
    raise NotImplementedError

  def configured(self, delimiter: str, path: str) -> 'InputFormat':
    """This format as ``data.delimiter`` asks for ``path`` (a file, folder
    or glob); formats without delimiters ignore it."""
    del delimiter, path
    return self

  def __repr__(self) -> str:
    return f'<input format {self.name}>'


# Names whose fields are tab-separated where data.delimiter is auto.
TAB_SUFFIXES = ('.tsv.gz', '.tab.gz', '.tsv', '.tab')


class CsvFormat(InputFormat):
  """Delimited text with a header line, plain or gzip (``.csv.gz``):
  commas, or the one character of ``data.delimiter`` (tabs for .tsv)."""
  name = 'csv'
  title = 'CSV'
  suffixes = ('.csv', '.csv.gz', '.tsv', '.tsv.gz', '.tab', '.tab.gz')

  def __init__(self, delimiter: str = ','):
    self.delimiter = delimiter

  def suffix(self, file_name: str) -> Optional[str]:
    # Longest first, so that a folder of .csv.gz files is not '*.gz'.
    lower = os.path.basename(file_name).lower()
    for suffix in sorted(self.suffixes, key=len, reverse=True):
      if lower.endswith(suffix) and len(lower) > len(suffix):
        return os.path.basename(file_name)[-len(suffix):]
    return None

  def configured(self, delimiter: str, path: str) -> 'CsvFormat':
    if delimiter == config_lib.AUTO_DELIMITER:
      name = os.path.basename(path.rstrip('/')).lower()
      delimiter = '\t' if name.endswith(TAB_SUFFIXES) else ','
    return CsvFormat(delimiter)

  def sniffed(self, path: str) -> Optional[str]:
    """The delimiter of ``path`` where it is not this format's: its header
    read with this one is one name that another splits (``init`` writes
    it into the config); else None."""
    try:
      header = self.header(path)
    except (csv_fast.CsvInputError, OSError, EOFError):
      return None  # Reading the file says why, as run would.
    if len(header) != 1:
      return None
    return sniff_delimiter(header[0], self.delimiter)

  def header(self, path: str, remote_open: Optional[Opener] = None
             ) -> List[str]:
    """The column names of one file, as ingestion reads them."""
    return csv_fast.read_header(path, lambda p: open_binary(p, remote_open),
                                delimiter=self.delimiter)

  def headers(self, paths: Sequence[str],
              remote_open: Optional[Opener] = None) -> List[str]:
    """The column names every file of one split shares; raises InputError
    naming both files and both headers where two differ (stock refuses
    that too, without saying which)."""
    names = self.header(paths[0], remote_open)
    for path in paths[1:]:
      other = self.header(path, remote_open)
      if other != names:
        raise InputError(
            f'{path}: its header differs from the first file\'s: {paths[0]} '
            f'has {names}, {path} has {other}; every CSV file of data.path '
            'needs the same columns in the same order')
    return names

  def read_table(self, path: str, names: Sequence[str],
                 remote_open: Optional[Opener] = None,
                 missing_values: Optional[Sequence[str]] = None) -> pa.Table:
    """Every data row of one file as string columns (ingestion's reader),
    null where a cell is one of ``missing_values``."""
    return csv_fast.read_csv(path, names,
                             open_fn=_arrow_opener(path, remote_open),
                             missing_values=missing_values,
                             delimiter=self.delimiter)

  def _checked_header(self, path: str) -> List[str]:
    try:
      header = self.header(path)
    except csv_fast.CsvInputError as e:
      raise InputError(f'{e}; save the CSV as UTF-8') from None
    except (OSError, EOFError) as e:
      raise InputError(f'{path}: cannot read ({e})') from None
    if not header or not any(header):
      raise InputError(f'{path}: no header row; expected column names on '
                       'the first line')
    if len(header) == 1:
      other = sniff_delimiter(header[0], self.delimiter)
      if other is not None:
        raise InputError(
            f'{path}: the header is one column, {header[0][:60]!r}, separated '
            f'by {_DELIMITERS[other]}; the pipeline reads it as separated by '
            f'{_DELIMITERS.get(self.delimiter, repr(self.delimiter))}: set '
            f'data.delimiter: {json.dumps(other)}')
    unnamed = [i + 1 for i, name in enumerate(header) if not name]
    if unnamed:
      # One empty name, the last: what a spreadsheet's export writes.
      trailing = unnamed == [len(header)]
      index = unnamed == [1] and len(header) > 1
      raise InputError(
          f'{path}: header columns {unnamed} have no name (column names are '
          'read from the first line)'
          + ('; the header line ends with a comma: if every line does (as '
             'spreadsheet exports write), remove the trailing commas'
             if trailing else '')
          + ("; an unnamed first column is the row index pandas' to_csv "
             'writes by default: write the file with index=False, or name '
             'the column (features: auto and init leave an identifier '
             'column out)' if index else ''))
    duplicates = sorted({h for h in header if header.count(h) > 1})
    if duplicates:
      raise InputError(f'{path}: duplicate column names {duplicates}')
    return header

  def _data_rows(self, path: str) -> Iterator[Tuple[int, List[str]]]:
    """(data row number, fields) of each row, read the slow way with
    Python's csv module (bytes that are not UTF-8 kept as surrogates), for
    naming the row of a problem Arrow found without saying where."""
    with io.TextIOWrapper(open_binary(path), encoding='utf-8-sig',
                          errors='surrogateescape', newline='') as f:
      reader = csv.reader(f, delimiter=self.delimiter)
      next(reader, None)
      # Blank lines are skipped by ingestion too.
      yield from enumerate((row for row in reader if row), start=1)

  def _ragged_row(self, path: str, width: int) -> str:
    """Which data row has the wrong number of fields (Arrow does not say
    when quoted values may hold newlines)."""
    for number, row in self._data_rows(path):
      if len(row) != width:
        # A quote left open swallows the following lines into one field.
        runs_on = next((i for i, cell in enumerate(row)
                        if '\n' in cell or '\r' in cell), None)
        return (f'data row {number} has {len(row)} fields, the header has '
                f'{width}' + ('' if runs_on is None else
                              f'; its field {runs_on + 1} is quoted and runs '
                              'on over the next lines '
                              f'({row[runs_on][:30]!r}...): close the quote '
                              '(a quote inside a value is written twice, "")'))
    return 'a row has the wrong number of fields'

  def _undecodable_cell(self, path: str, header: Sequence[str]) -> str:
    """Which data row and column hold bytes that are not UTF-8 (Arrow names
    neither)."""
    for number, row in self._data_rows(path):
      for i, cell in enumerate(row):
        bad = next((c for c in cell if '\udc80' <= c <= '\udcff'), None)
        if bad is not None:
          name = header[i] if i < len(header) else f'#{i + 1}'
          raw = cell.encode('utf-8', 'surrogateescape')
          return (f'data row {number}, column {name!r}: {raw!r} is not UTF-8 '
                  f'text (byte 0x{ord(bad) - 0xdc00:02x})')
    return 'the file is not UTF-8 text'

  def _checked_table(self, path: str, header: Sequence[str],
                     missing_values: Optional[Sequence[str]] = None
                     ) -> pa.Table:
    try:
      return self.read_table(path, header, missing_values=missing_values)
    except csv_fast.CsvInputError as e:
      cause = str(e.__cause__ or e)
      if (isinstance(e.__cause__, UnicodeDecodeError)
          or 'UTF8' in cause.upper()):
        raise InputError(
            f'{path}: {self._undecodable_cell(path, header)}; save the CSV '
            'as UTF-8 (from Latin-1: iconv -f latin1 -t utf-8)') from None
      if 'Expected' in cause and 'columns' in cause:
        raise InputError(f'{path}: {self._ragged_row(path, len(header))}'
                         ) from None
      raise InputError(f'{path}: cannot parse as CSV: {cause}') from None
    except (OSError, EOFError) as e:
      raise InputError(f'{path}: cannot read ({e})') from None

  def read(self, files: Sequence[str],
           missing_values: Optional[Sequence[str]] = None) -> CheckData:
    header, tables = None, []
    for path in files:
      _check_compression(path)
      if os.path.getsize(path) == 0:
        raise InputError(f'{path}: the file is empty; expected a CSV header '
                         'and at least one data row')
      names = self._checked_header(path)
      if header is None:
        header = names
      elif names != header:
        raise InputError(
            f'{path}: its header differs from the first file\'s: {files[0]} '
            f'has {header}, {path} has {names}; every CSV file of data.path '
            'needs the same columns in the same order')
      tables.append(self._checked_table(path, header, missing_values))
    table = pa.concat_tables(tables)

    def column(name):
      # One type per column over every file: stock infers types over all
      # the files of its one input split.
      try:
        return csv_fast.convert_column(name, table.column(name))
      except (pa.ArrowInvalid, ValueError) as e:
        raise InputError(f'{", ".join(files)}: column {name!r}: {e}') from e
    return CheckData(files, [t.num_rows for t in tables], header,
                     lambda name: table.column(name).combine_chunks(), column,
                     row_word='row', data_row_word='data row',
                     header_word='the header',
                     no_rows='only a header, no data rows')

  def example_gen(self, *, input_base, input_config, output_config,
                  missing_values: Optional[Sequence[str]] = None,
                  required_columns: Sequence[str] = (),
                  code_version: str = ''):
    from components.ingest import component  # pylint: disable=g-import-not-at-top
    return component.ArrowCsvExampleGen(
        input_base=input_base, input_config=input_config,
        output_config=output_config, missing_values=missing_values,
        required_columns=required_columns, code_version=code_version,
        delimiter=self.delimiter)


class ParquetFormat(InputFormat):
  """Parquet files, converted as TFX's Parquet executor converts them."""
  name = 'parquet'
  title = 'Parquet'
  suffixes = ('.parquet',)

  def read(self, files: Sequence[str],
           missing_values: Optional[Sequence[str]] = None) -> CheckData:
    del missing_values  # Parquet has real nulls.
    tables = []
    for path in files:
      if os.path.getsize(path) == 0:
        raise InputError(f'{path}: the file is empty; expected a Parquet '
                         'file')
      try:
        tables.append(parquet_fast.read_table(path))
      except parquet_fast.ParquetInputError as e:
        raise InputError(str(e)) from None
    try:
      table = pa.concat_tables(tables, promote=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
      raise InputError(_schema_conflict(files, tables)) from None
    where = ', '.join(files) if len(files) > 1 else files[0]
    duplicates = sorted({n for n in table.column_names
                         if table.column_names.count(n) > 1})
    if duplicates:
      raise InputError(f'{where}: duplicate column names {duplicates}')
    unusable = {}
    for name, column in zip(table.column_names, table.columns):
      kind = parquet_fast.kind_of(column.type)
      if kind is None:
        if _is_flat_list(column.type):
          unusable[name] = (f'is a list column ({column.type}); the pipeline '
                            'reads one value per row')
          continue
        raise InputError(
            f'{where}: column {name!r} is of type {column.type}, which TFX\'s '
            'Parquet route cannot write into a tf.Example (it takes integers, '
            'floats, booleans, strings and lists of those): cast or drop it')
      reason = parquet_fast.unsupported(table.select([name]))
      if reason:
        raise InputError(f'{where}: {reason}, which TFX\'s Parquet route '
                         'cannot write into a tf.Example')

    def column(name):
      if name in unusable:
        raise InputError(f'{where}: column {name!r} {unusable[name]}')
      return parquet_fast.convert_column(name, table.column(name))

    def lost(name):
      return parquet_fast.stored(table, name) & ~column(name).present

    return CheckData(
        files, [t.num_rows for t in tables], table.column_names,
        lambda name: _string_cells(column(name)), column,
        no_rows='no rows', unusable=unusable, lost=lost,
        lost_note=parquet_fast.LOST_NOTE,
        stored=lambda name, row: table.column(name)[row].as_py())

  def example_gen(self, *, input_base, input_config, output_config,
                  missing_values: Optional[Sequence[str]] = None,
                  required_columns: Sequence[str] = (),
                  code_version: str = ''):
    del missing_values  # Parquet has real nulls.
    from components.ingest import component  # pylint: disable=g-import-not-at-top
    return component.ParquetExampleGen(
        input_base=input_base, input_config=input_config,
        output_config=output_config, required_columns=required_columns,
        code_version=code_version)


def _is_flat_list(data_type: pa.DataType) -> bool:
  return ((pa.types.is_list(data_type) or pa.types.is_large_list(data_type))
          and parquet_fast.kind_of(data_type.value_type) not in (
              None, ColumnType.UNKNOWN))


def _schema_conflict(files: Sequence[str], tables: Sequence[pa.Table]) -> str:
  """Which two files give a column different types."""
  first: Dict[str, Tuple[str, pa.DataType]] = {}
  for path, table in zip(files, tables):
    for field in table.schema:
      seen = first.setdefault(field.name, (path, field.type))
      if seen[1] != field.type and not pa.types.is_null(field.type) and (
          not pa.types.is_null(seen[1])):
        return (f'{path}: column {field.name!r} is {field.type}, in '
                f'{seen[0]} it is {seen[1]}; every file of data.path needs '
                'the same column types')
  return f'{", ".join(files)}: the files\' columns do not agree'


class TFRecordFormat(InputFormat):
  """TFRecord files of tf.Examples, plain or gzip (``.gz``)."""
  name = 'tfrecord'
  title = 'TFRecord'
  suffixes = ('.tfrecord', '.tfrecords', '.tfrecord.gz', '.tfrecords.gz')

  def suffix(self, file_name: str) -> Optional[str]:
    found = super().suffix(file_name)
    if found is None:
      base = os.path.basename(file_name)
      # TFX's own shards: data_tfrecord-00000-of-00001.gz.
      if 'tfrecord' in base.lower() and is_gzip(base):
        return base[-3:]
    return found

  def read(self, files: Sequence[str],
           missing_values: Optional[Sequence[str]] = None) -> CheckData:
    del missing_values  # tf.Examples have real nulls.
    tables = []
    for path in files:
      _check_compression(path)
      try:
        tables.append(tfrecord_fast.decode(
            tfrecord_fast.read_records(path), path))
      except tfrecord_fast.TFRecordInputError as e:
        raise InputError(str(e)) from None
    try:
      table = pa.concat_tables(tables, promote=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
      raise InputError(_schema_conflict(files, tables)) from None
    rows = [t.num_rows for t in tables]
    ends = np.cumsum(rows)
    unusable = {}
    for name in table.column_names:
      lengths = pc.list_value_length(table.column(name).combine_chunks()
                                     ).fill_null(0).to_numpy(
                                         zero_copy_only=False)
      many = np.flatnonzero(lengths > 1)
      if many.size:
        path, record = _locate(files, ends, int(many[0]))
        unusable[name] = (f'holds {int(lengths[many[0]])} values in record '
                          f'{record} of {path}; the pipeline reads one value '
                          'per example')

    def column(name):
      if name in unusable:
        raise InputError(f'{files[0]}: feature {name!r} {unusable[name]}')
      return _single_values(name, table.column(name).combine_chunks())
    return CheckData(files, rows, table.column_names,
                     lambda name: _string_cells(column(name)), column,
                     row_word='record', data_row_word='record',
                     header_word='the features', no_rows='no records',
                     unusable=unusable)

  def example_gen(self, *, input_base, input_config, output_config,
                  missing_values: Optional[Sequence[str]] = None,
                  required_columns: Sequence[str] = (),
                  code_version: str = ''):
    del missing_values  # tf.Examples have real nulls.
    from components.ingest import component  # pylint: disable=g-import-not-at-top
    return component.TFRecordExampleGen(
        input_base=input_base, input_config=input_config,
        output_config=output_config, required_columns=required_columns,
        code_version=code_version)


def _single_values(name: str, column: pa.Array) -> csv_fast.Column:
  """A list column of at most one value per row as a typed column."""
  n = len(column)
  if pa.types.is_null(column.type):
    return csv_fast.Column(name, ColumnType.UNKNOWN, np.zeros(n, bool))
  lengths = pc.list_value_length(column).fill_null(0).to_numpy(
      zero_copy_only=False)
  present = lengths == 1
  if not present.any():
    return csv_fast.Column(name, ColumnType.UNKNOWN, present)
  flat = pc.list_flatten(column)
  value_type = column.type.value_type
  if pa.types.is_integer(value_type) or pa.types.is_floating(value_type):
    kind = (ColumnType.INT if pa.types.is_integer(value_type)
            else ColumnType.FLOAT)
    values = np.zeros(n, np.int64 if kind == ColumnType.INT else np.float32)
    values[present] = flat.to_numpy(zero_copy_only=False)
    return csv_fast.numeric_column(name, kind, values, present)
  index = np.cumsum(present) - 1
  values = flat.cast(pa.large_binary()).take(pa.array(index, mask=~present))
  return csv_fast.Column(name, ColumnType.STRING, present, values)


CSV = CsvFormat()
PARQUET = ParquetFormat()
TFRECORD = TFRecordFormat()
FORMATS: Dict[str, InputFormat] = {f.name: f for f in (CSV, PARQUET, TFRECORD)}
NAMES = tuple(FORMATS)


def _claimed_by(file_name: str) -> List[InputFormat]:
  return [f for f in FORMATS.values() if f.suffix(file_name)]


def _known_endings() -> str:
  return ', '.join(f'{f.title} ({" ".join(f.suffixes)})'
                   for f in FORMATS.values())


def resolve(name: str, path: str) -> InputFormat:
  """The format ``data.format`` names, or for ``auto`` the one the name of
  ``path`` (a file, or a glob's last part) claims. String rules only."""
  claimed = _claimed_by(os.path.basename(path.rstrip('/')))
  if name != AUTO:
    if name not in FORMATS:
      raise FormatError(f'data.format: unknown format {name!r}; expected '
                        f'{AUTO} or one of {", ".join(FORMATS)}')
    chosen = FORMATS[name]
    if claimed and chosen not in claimed:
      raise FormatError(f'{path}: data.format is {name}, but the name says '
                        f'{claimed[0].title}: fix one of them')
    return chosen
  if len(claimed) == 1:
    return claimed[0]
  raise FormatError(
      f'{path}: cannot tell the format from the name (known endings: '
      f'{_known_endings()}): set data.format to {", ".join(FORMATS)}')


@dataclasses.dataclass(frozen=True)
class Location:
  """Where ExampleGen reads: ``os.path.join(root, pattern)``."""
  root: str
  pattern: str


def location(path: str, fmt: InputFormat, is_dir: Optional[bool] = None
             ) -> Location:
  """ExampleGen's ``input_base`` and split pattern for ``path``, from the
  string alone: a glob splits before its first wildcard part; a folder
  (``is_dir``, or without it a path ending in '/' or whose last part has no
  dot) gets the format's pattern; a file is its folder and its name."""
  if is_glob(path):
    parts = path.split('/')
    first = next(i for i, p in enumerate(parts) if is_glob(p))
    root = '/'.join(parts[:first])
    if not root:
      root = '/' if path.startswith('/') else '.'
    elif root.endswith(':/'):
      root += '/'  # gs://* : the scheme's root.
    return Location(root, '/'.join(parts[first:]))
  if is_dir is None:
    base = os.path.basename(path.rstrip('/'))
    is_dir = path.endswith('/') or '.' not in base
  if is_dir:
    return Location(path.rstrip('/') or '/', fmt.default_pattern)
  root, name = os.path.split(path)
  return Location(root, name)


@dataclasses.dataclass(frozen=True)
class Found:
  """A local ``data.path`` resolved: its format, ExampleGen's location and
  the files it matches."""
  format: InputFormat
  location: Location
  files: Tuple[str, ...]


def _glob(pattern: str) -> List[str]:
  """Local files matching ``pattern`` by gfile's rules (which ExampleGen's
  fileio uses): wildcards within one path part, hidden names included."""
  parts = pattern.split('/')
  paths = ['/' if pattern.startswith('/') else '']
  for i, part in enumerate(parts):
    if not part:
      continue
    last = i == len(parts) - 1
    nxt = []
    for base in paths:
      if is_glob(part):
        try:
          names = sorted(os.listdir(base or '.'))
        except OSError:
          continue
        nxt += [os.path.join(base, n) for n in names
                if fnmatch.fnmatchcase(n, part)]
      else:
        nxt.append(os.path.join(base, part))
    paths = [p for p in nxt if (os.path.isfile(p) if last else os.path.isdir(p))]
  return sorted(paths)


def _infer(path: str, names: Sequence[str]) -> InputFormat:
  """The one format that claims every data file among ``names``."""
  found = {f.name for n in names for f in _claimed_by(n)}
  claimed = [f for f in FORMATS.values() if f.name in found]
  if len(claimed) == 1:
    return claimed[0]
  if not claimed:
    raise FormatError(
        f'{path}: cannot tell the format from the file names (known endings: '
        f'{_known_endings()}): set data.format to {", ".join(FORMATS)}')
  raise FormatError(
      f'{path}: holds {" and ".join(f.title for f in claimed)} files; '
      'set data.format, or name a glob of one kind (e.g. '
      f'{os.path.join(path, "*.csv")})')


def find(path: str, format_name: str = AUTO) -> Found:
  """Resolves a local ``data.path`` (a file, a folder or a glob) and lists
  the files ExampleGen will read; raises FormatError (or InputError)."""
  if is_remote(path):
    raise FormatError(
        f'{path}: a URL; local runs read local files (a Kubeflow run reads '
        'gs:// and other filesystems: see docs/kubeflow.md)')
  explicit = FORMATS.get(format_name) if format_name != AUTO else None
  if format_name != AUTO and explicit is None:
    resolve(format_name, path)  # Raises the unknown-format error.
  absolute = os.path.abspath(path)
  if is_glob(path):
    files = _glob(absolute)
    if not files:
      raise FormatError(f'{path}: no file matches (data.path)')
    fmt = explicit or _infer(path, files)
    if explicit is None:
      resolve(fmt.name, path)
    return Found(fmt, location(absolute, fmt), tuple(files))
  if not os.path.exists(path):
    raise FormatError(f'{path}: no such file (data.path)')
  if os.path.isdir(path):
    names = sorted(n for n in os.listdir(path)
                   if os.path.isfile(os.path.join(path, n)))
    # Spark's _SUCCESS, editors' and checksums' dot files: not data.
    visible = [n for n in names if not n.startswith(('.', '_'))]
    what = explicit.title if explicit else 'CSV, Parquet or TFRecord'
    if explicit is None and not any(_claimed_by(n) for n in visible):
      raise FormatError(
          f'{path}: is a directory without {what} files (known endings: '
          f'{_known_endings()}); data.path names a file, a folder of shards '
          'or a glob')
    fmt = explicit or _infer(path, visible)
    endings = sorted({fmt.suffix(n) for n in visible if fmt.suffix(n)})
    if not endings:
      raise FormatError(
          f'{path}: is a directory without {what} files (endings '
          f'{" ".join(fmt.suffixes)}); name a glob for other names')
    if len(endings) > 1:
      raise FormatError(
          f'{path}: is a directory of files ending in {" and ".join(endings)}; '
          'ExampleGen reads one pattern: name a glob (e.g. '
          f'{os.path.join(path, "*" + endings[0])}) or keep one kind')
    pattern = '*' + endings[0]
    files = [os.path.join(path, n) for n in names
             if fnmatch.fnmatchcase(n, pattern)]
    return Found(fmt, Location(absolute, pattern), tuple(files))
  fmt = resolve(format_name, path)
  return Found(fmt, location(absolute, fmt, is_dir=False), (path,))


def argument_name(column: str) -> str:
  """The name TensorFlow gives ``column`` where a saved function takes the
  columns as arguments (Transform's layer in the exported model): each
  character other than a letter or digit as '_', and 'arg_' before a first
  character that is no letter (``function_type.sanitize_arg_name``)."""
  swapped = ''.join(c if c.isalnum() else '_' for c in column)
  return swapped if swapped[:1].isalpha() else 'arg_' + swapped


def check_argument_names(path: str, names: Sequence[str]) -> None:
  """InputError where two columns share an ``argument_name``: the model
  would save, but neither the gate nor a server could load it."""
  by_argument: Dict[str, List[str]] = {}
  for name in names:
    by_argument.setdefault(argument_name(name), []).append(name)
  clashes = [group for group in by_argument.values() if len(group) > 1]
  if clashes:
    listed = '; '.join(
        f'{", ".join(repr(n) for n in group)} all read as '
        f'{argument_name(group[0])!r}' for group in clashes)
    raise InputError(
        f'{path}: columns whose names differ only in characters other than '
        f'letters and digits: {listed}. A saved TensorFlow model names its '
        'inputs with each such character as \'_\', so it could not be loaded '
        'with both: rename the columns apart')


def read(path: str, format_name: str = AUTO,
         missing_values: Optional[Sequence[str]] = None,
         delimiter: str = config_lib.AUTO_DELIMITER
         ) -> Tuple[Found, CheckData]:
  """``find`` and the format's ``read`` of every file (``delimiter``:
  ``data.delimiter``), with the checks that hold for every format
  (``check_argument_names``); raises FormatError or InputError. The
  returned ``Found.format`` is the configured one."""
  found = find(path, format_name)
  found = dataclasses.replace(
      found, format=found.format.configured(delimiter, path))
  data = found.format.read(found.files, missing_values=missing_values)
  check_argument_names(path, data.names)
  return found, data
