"""Features inferred from the data: ``data.features`` left out, or ``auto``.

The columns arrive as ingestion converts them (``csv_fast.convert_table``):
each has the type stock CsvExampleGen gives it (INT, FLOAT, STRING, or
UNKNOWN when no row has a value), so a column inferred as numeric is one
the pipeline can actually read as a number. The rules, in order:

* the label (``label.name``) and the column it is thresholded from
  (``label.column``) are left out: they give the answer away. The column a
  threshold is relative to (the taxi's ``fare``) is kept when it has a value
  in every row, as ``validate`` allows it: on its own it says nothing about
  the label. Where it is missing the label is 0 by definition, so its
  missing-value indicator would give the label away; then it is left out;
* a column with no values, a numeric column with only NaN or infinity, and
  a constant column (one distinct value; empty cells not counted) are left
  out: there is nothing to learn from them;
* a STRING column whose cells are numbers in at least ``NUMERIC_SHARE`` of
  the rows with a value is numeric: a few cells are not numbers (a typo, a
  unit, a token the file uses for a missing value), and the pre-run check
  then names the first of them, where typing it as text would have made a
  category of every number or left it out as an identifier;
* a STRING column that is numbers in at least ``MOSTLY_NUMBERS_SHARE``
  of those rows, its other cells at most ``MAX_TOKENS`` distinct values,
  is typed by the rules below with a note naming those cells: most likely
  a missing-value token the file uses, which ``data.missing_values`` reads;
* a STRING column of dates or timestamps (``_DATE``, in at least
  ``NUMERIC_SHARE`` of the rows with a value) is left out with a note: as
  categories, the dates seen in training never come again;
* a STRING or INT column with a distinct value in at least
  ``IDENTIFIER_SHARE`` of the rows that have one is an identifier (a row id,
  a name, a key): as a category nearly every value is seen once and so is
  never learnt, as a number it is an arbitrary code;
* INT columns with at most ``MAX_CATEGORICAL_INTS`` distinct values are
  categorical, other INT and all FLOAT columns numeric, STRING categorical;
* a numeric column that is non-negative and skewed to the right (sample
  skewness above ``LOG_SCALE_SKEW``) is also listed in ``log_scale``.

No TensorFlow, TFX or Beam here: this runs before anything heavy is loaded.
"""

import dataclasses
import math
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
import pyarrow.compute as pc
import yaml

from components.ingest import csv_fast
from core import config as config_lib

ColumnType = csv_fast.ColumnType

# Integer codes people write as numbers (weekday 7, month 12, hour 24, day
# of the month 31, a rating, a small count) fall under this bound; integers
# with more values are usually quantities (ages, durations, amounts), whose
# order a one-hot encoding would throw away. The taxi's trip_start_hour (24
# values) is categorical, its trip_seconds (110 values) numeric. Codes with
# many values (census tracts, ZIP codes) come out numeric: move them.
MAX_CATEGORICAL_INTS = 31
# "A distinct value per row", with room for a few repeats (a record sent
# twice, a join that duplicated rows): at 95% distinct, nearly every value
# occurs once, below the vocabulary's min_frequency, so a category would
# never be learnt. The taxi's trip_start_timestamp (92% distinct) stays
# numeric.
IDENTIFIER_SHARE = 0.95
# The exponential distribution's skewness is 2: more skewed than that, a
# non-negative column (fares, distances, durations, counts) has a long right
# tail that would dominate its z-score; log1p compresses it. On the taxi
# sample this picks fare (16), trip_miles (94) and trip_seconds (31) and
# nothing else.
LOG_SCALE_SKEW = 2.0
# 99%: one bad cell in a hundred rows is a number column with bad cells; a
# column of codes that mixes numbers and text ('12', 'A4') has more text.
NUMERIC_SHARE = 0.99
# Below it, a text column still this much numbers is typed categorical with
# a note naming its other cells: most likely a missing-value token.
MOSTLY_NUMBERS_SHARE = 0.8
# A file's missing-value tokens are few and repeated ('?', '-'); more
# distinct non-numbers than this are codes or text, not tokens.
MAX_TOKENS = 3
# Dates and timestamps: '2013-01-01', '2013/1/1 05:00', ISO 8601 with a zone
# ('2013-01-01T05:00:00Z', '+05:30', ' UTC', as BigQuery exports) and
# '01/01/2013 12:00:00 AM' (month or day first): as categories, a date the
# model was trained on never comes again. Matched ignoring case.
_TIME = (r'([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?(\s*[ap]m)?'
         r'(\s*(z|utc|gmt|[+-]\d{2}(:?\d{2})?))?)?')
_DATE = (r'^\s*(\d{4}[-/]\d{1,2}[-/]\d{1,2}|\d{1,2}/\d{1,2}/\d{4})'
         + _TIME + r'\s*$')
# A cell Python's float() reads (tfx_bsl types cells the same way), spaces
# around it allowed.
_NUMBER = (r'^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$'
           r'|^\s*[-+]?(inf|infinity|nan)\s*$')
# A number written with thousands separators ('12,345.5'), which is text to
# the CSV reader: typed numeric all the same, so that the check names it.
_GROUPED = r'^\s*[-+]?\d{1,3}(,\d{3})+(\.\d*)?\s*$'
# The same for a decimal comma ('3,5', from a ';'-separated export).
_DECIMAL_COMMA = r'^\s*[-+]?\d+,\d+\s*$'
COMMA_NUMBER = f'{_GROUPED}|{_DECIMAL_COMMA}'


@dataclasses.dataclass(frozen=True)
class InferredFeatures:
  """The lists inferred from one file, in the file's column order, and
  every column left out with the reason why."""
  numeric: Tuple[str, ...]
  categorical: Tuple[str, ...]
  log_scale: Tuple[str, ...]
  left_out: Mapping[str, str]
  # Why a column is in a list where its type alone would not put it (a text
  # column that is numbers but for a few cells).
  notes: Mapping[str, str] = dataclasses.field(default_factory=dict)
  # Text columns typed categorical that are mostly numbers, with the other
  # cells they hold (a missing-value token the file uses, say '?').
  mostly_numbers: Mapping[str, str] = dataclasses.field(default_factory=dict)

  @property
  def all(self) -> Tuple[str, ...]:
    return self.numeric + self.categorical


def _distinct(column: csv_fast.Column, finite: Optional[np.ndarray]) -> int:
  if column.type == ColumnType.STRING:
    return pc.count_distinct(column.values, mode='only_valid').as_py()
  return int(np.unique(finite).size)


def _count(column: csv_fast.Column, pattern: str) -> int:
  """How many cells of a STRING column match ``pattern``."""
  return pc.sum(pc.match_substring_regex(column.values, pattern,
                                         ignore_case=True)).as_py() or 0


def _tokens(column: csv_fast.Column, pattern: str) -> Optional[str]:
  """The cells of a STRING column not matching ``pattern``, with their
  counts ("'?' (60), 'n/a' (2)"), when they are at most MAX_TOKENS distinct
  values, as a file's missing-value tokens are; else None."""
  values = column.values
  others = pc.filter(values, pc.invert(pc.match_substring_regex(
      values, pattern, ignore_case=True)))
  counts = sorted(((c['counts'].as_py(), c['values'].as_py())
                   for c in pc.value_counts(others)), reverse=True)
  if not counts or len(counts) > MAX_TOKENS:
    return None
  return ', '.join(
      f'{_text(value)!r} ({count})' for count, value in counts)


def _text(value) -> str:
  return (value.decode('utf-8', 'replace') if isinstance(value, bytes)
          else str(value))


def skewness(values: np.ndarray) -> float:
  """The sample skewness (third standardized moment); 0 for a constant."""
  values = values.astype(np.float64)
  centred = values - values.mean()
  std = math.sqrt(float(np.mean(centred * centred)))
  return float(np.mean(centred ** 3)) / std ** 3 if std > 0 else 0.0


def _label_reasons(label: config_lib.LabelConfig,
                   columns: Sequence[csv_fast.Column]) -> Dict[str, str]:
  reasons = {label.name: 'the label'}
  if label.column is not None:
    reasons[label.column] = (f'the label {label.name!r} is derived from it '
                             '(label.column)')
  if label.relative_to is not None:
    reference = next((c for c in columns if c.name == label.relative_to), None)
    if reference is not None and not reference.present.all():
      reasons[label.relative_to] = (
          f'label.relative_to, empty in {int((~reference.present).sum())} '
          f'rows, where the label is 0 by definition: its missing values '
          'would give the label away')
  return reasons


def infer_features(columns: Sequence[csv_fast.Column],
                   label: config_lib.LabelConfig,
                   rows: Optional[int] = None) -> InferredFeatures:
  """Types ``columns`` (``csv_fast.convert_table`` of the whole file;
  ``rows``: its number of data rows, for the reasons' wording) by the rules
  in the module docstring."""
  label_reasons = _label_reasons(label, columns)
  numeric, categorical, log_scale = [], [], []
  left_out: Dict[str, str] = {}
  notes: Dict[str, str] = {}
  mostly_numbers: Dict[str, str] = {}
  for column in columns:
    name = column.name
    rows_here = rows if rows is not None else column.present.size
    present = int(column.present.sum())
    if name in label_reasons:
      left_out[name] = label_reasons[name]
      continue
    if column.type == ColumnType.UNKNOWN:
      left_out[name] = f'no values in the {rows_here} rows'
      continue
    # NaN and infinity are not values to learn from (nor to count).
    finite = None
    if column.type != ColumnType.STRING:
      finite = column.values[column.present]
      finite = finite[np.isfinite(finite)]
      if finite.size == 0:
        left_out[name] = ('no finite values (only NaN, infinity, or numbers '
                          "beyond +-3.4e38, a tf.Example's 32-bit range)")
        continue
    if column.type == ColumnType.STRING:
      # One pass over a text column; the second, which tells the grouped
      # numbers apart, only for the columns typed numeric by it.
      numbers = _count(column, f'{_NUMBER}|{COMMA_NUMBER}')
      if numbers >= NUMERIC_SHARE * present:
        commas = _count(column, COMMA_NUMBER)
        numeric.append(name)
        notes[name] = (f'{numbers} of its {present} cells with a value are '
                       'numbers' + (
                           f', {commas} of them written with a comma (a '
                           "thousands separator, '12,345', or a decimal "
                           "comma, '3,5'), which the CSV reader takes for "
                           'text: write them without separators and with a '
                           'decimal point' if commas else ''))
        continue
      tokens = (_tokens(column, f'{_NUMBER}|{COMMA_NUMBER}')
                if numbers >= MOSTLY_NUMBERS_SHARE * present else None)
      if tokens:
        mostly_numbers[name] = (
            f'{numbers} of its {present} cells with a value are numbers; the '
            f'others: {tokens}. If they mark missing values, add them to '
            'data.missing_values (a list that replaces the default one: '
            'keep its tokens) and list the column as numeric')
    if (column.type == ColumnType.STRING
        and _count(column, _DATE) >= NUMERIC_SHARE * present):
      left_out[name] = ('dates or times: as categories, those seen in '
                        'training do not come again; derive the parts that '
                        'matter (hour, weekday, month) as columns of their '
                        'own')
      continue
    distinct = _distinct(column, finite)
    if distinct == 1:
      empty = rows_here - present
      left_out[name] = 'constant: one value' + (
          f' (and {empty} empty cells)' if empty else ' in every row')
      continue
    if (column.type in (ColumnType.STRING, ColumnType.INT)
        and distinct >= IDENTIFIER_SHARE * present):
      left_out[name] = (f'identifier-like: {distinct} distinct values in '
                        f'{present} rows with a value')
      continue
    if column.type == ColumnType.STRING or (
        column.type == ColumnType.INT and distinct <= MAX_CATEGORICAL_INTS):
      categorical.append(name)
      continue
    numeric.append(name)
    if finite.min() >= 0 and skewness(finite) > LOG_SCALE_SKEW:
      log_scale.append(name)
  for name, why in mostly_numbers.items():
    if name in left_out:  # As an identifier, say: its floats all differ.
      left_out[name] += f'; {why}'
  return InferredFeatures(
      tuple(numeric), tuple(categorical), tuple(log_scale), left_out, notes,
      {n: why for n, why in mostly_numbers.items() if n in categorical})


def with_features(config: config_lib.PipelineConfig,
                  inferred: InferredFeatures) -> config_lib.PipelineConfig:
  """``config`` with ``data.features`` set to the inferred lists (its other
  feature settings kept), validated; ConfigError when no column is usable."""
  if not inferred.all:
    reasons = '; '.join(f'{c}: {r}' for c, r in inferred.left_out.items())
    raise config_lib.ConfigError(
        f'data.features: no column of {config.data.path or "the taxi sample"} '
        f'can be a feature ({reasons}); list data.features yourself')
  features = dataclasses.replace(
      config.data.features, auto=False, numeric=inferred.numeric,
      categorical=inferred.categorical, log_scale=inferred.log_scale)
  data = dataclasses.replace(config.data, features=features)
  return config_lib.validate(dataclasses.replace(config, data=data))


def resolve_features(config: config_lib.PipelineConfig,
                     columns: Sequence[csv_fast.Column],
                     rows: Optional[int] = None) -> config_lib.PipelineConfig:
  """``config`` itself when its features are listed; else with the features
  inferred from ``columns``."""
  if not config.data.features.auto:
    return config
  return with_features(config, infer_features(columns, config.data.label,
                                              rows))


def yaml_scalar(value) -> str:
  """``value`` as one YAML flow scalar: a column named ``yes``, ``1``,
  ``a: b`` or ``city, name`` is quoted, so it reads back as the same string,
  in a flow list too (dumped as a list's item for that reason)."""
  text = yaml.safe_dump([value], default_flow_style=True, width=math.inf,
                        allow_unicode=True, sort_keys=False).strip()
  return text[1:-1]


def yaml_list(key: str, names: Sequence[str], indent: int,
              width: int = 80) -> str:
  """``key: [a, b, ...]`` wrapped at ``width``, continuation lines aligned
  under the first item (as core/configs/default.yaml writes them)."""
  head = f'{" " * indent}{key}: ['
  lines, line = [], head
  for i, name in enumerate(names):
    item = yaml_scalar(name) + (',' if i < len(names) - 1 else '')
    if line != head and len(line) + 1 + len(item) > width:
      lines.append(line)
      line = ' ' * len(head) + item
    else:
      line += ('' if line == head else ' ') + item
  lines.append(line + ']')
  return '\n'.join(lines)


def format_features(inferred: InferredFeatures, indent: int = 2) -> str:
  """The inferred lists as YAML to paste under ``data:`` (at ``indent``
  spaces), the left-out columns as comments after them."""
  pad = ' ' * indent
  lines = [f'{pad}features:',
           yaml_list('numeric', inferred.numeric, indent + 2),
           yaml_list('log_scale', inferred.log_scale, indent + 2),
           yaml_list('categorical', inferred.categorical, indent + 2)]
  if inferred.notes:
    lines.append(f'{pad}# numeric, though not every cell is a number (the '
                 'pre-run check names the first that is not):')
    lines += [f'{pad}#   {column}: {note}'
              for column, note in inferred.notes.items()]
  if inferred.mostly_numbers:
    lines.append(f'{pad}# categorical, though mostly numbers:')
    lines += [f'{pad}#   {column}: {note}'
              for column, note in inferred.mostly_numbers.items()]
  if inferred.left_out:
    lines.append(f'{pad}# left out:')
    lines += [f'{pad}#   {column}: {reason}'
              for column, reason in inferred.left_out.items()]
  return '\n'.join(lines)
