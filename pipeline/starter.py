"""``python -m pipeline init DATA --label COLUMN``: a starter config for data.

DATA is what ``data.path`` takes: a CSV, Parquet or TFRecord file, a folder
or a glob. It is read whole by the pre-run check's reader
(``components.ingest.formats``), so ``init`` refuses what ``run`` would
refuse, with the same message. The task is guessed from the label's
values, the features are inferred (``pipeline.infer``) and written out as
explicit lists for the user to edit, next to the default regularization and
the gate's bounds for that task. The written file is loaded with
``core.config.load_config`` before it is put in place, so what ``init``
writes is a config ``run`` accepts.

Task rules (on the label's cells, spaces trimmed, as the tasks read them):

* two distinct values: ``binary``. 0 and 1 are read as they are; any other
  pair gets ``positive_value``: the affirmative of a yes/no pair (yes,
  true, y, t, positive, pos; any case), else the rarer of the two: the class
  a binary model is asked to find (fraud, churn, a disease) is usually the
  rare one, and the gate's PR-AUC skill is about the positive class;
* text with more values, or integers with at most
  ``infer.MAX_CATEGORICAL_INTS`` distinct values (class codes):
  ``multiclass``;
* other numbers: ``regression``, with ``target_transform: log`` when the
  target is non-negative and right-skewed by ``infer``'s ``log_scale`` rule.

No TensorFlow, TFX or Beam here: ``init`` answers before they would have
loaded.
"""

import dataclasses
import json
import os
import re
import shlex
import tempfile
import textwrap
from typing import List, Optional, Sequence, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import yaml

from components.ingest import csv_fast
from components.ingest import formats
from core import config as config_lib
from core import tasks
from pipeline import infer, preflight

ColumnType = csv_fast.ColumnType

# A class with fewer rows than this may land in eval or test only, which the
# Trainer refuses (a class the train split never showed): worth a warning.
RARE_CLASS_ROWS = 10
# Classes named in the task's comment, at most.
SHOWN_CLASSES = 8

# The gate's bounds each task uses (docs/gate.md); the others are dropped
# from a starter config, as they do not apply. Keys of the default config's
# gate that none of these name apply to every task and are all written.
_TASK_GATE_KEYS = {
    'binary': ('min_accuracy_skill', 'min_log_loss_skill', 'min_auc',
               'min_pr_auc_skill'),
    'multiclass': ('min_accuracy_skill', 'min_log_loss_skill'),
    'regression': ('min_r2_skill', 'rmse_margin'),
}
# What a key means, where default.yaml's comment does not say.
_COMMENTS = {
    'l2': 'L2 penalty on every kernel',
    'dropout': 'after each hidden layer',
    'min_accuracy_skill': "no worse than the train split's majority class",
    'min_log_loss_skill': "1 - log loss / the train prior's log loss",
    'min_auc': 'held-out AUC floor (0.5 is chance)',
    'min_pr_auc_skill': '(PR-AUC - positive rate) / (1 - positive rate)',
    'min_r2_skill': '1 - MSE / MSE of the train mean',
    'rmse_margin': "RMSE at most (1 - margin) x the train mean's",
    'baseline_tolerance': 'how much worse than the last blessed model',
}


class InitError(ValueError):
  """The starter config cannot be written; the message says why (exit 2)."""


@dataclasses.dataclass(frozen=True)
class LabelGuess:
  """The task guessed from the label column, and why (a YAML comment)."""
  task: str
  label: config_lib.LabelConfig
  reason: str
  warnings: Tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Starter:
  """Everything ``init`` decided, and the YAML it writes."""
  pipeline_name: str
  guess: LabelGuess
  features: infer.InferredFeatures
  text: str


# --------------------------------------------------------------------------
# Reading the file


def _read(path: str) -> Tuple[formats.CheckData, str]:
  """Every row of ``path`` as the pre-run check and ExampleGen read it (any
  input format, a folder or a glob), with their errors; and the
  ``data.delimiter`` to write: a CSV whose header only another delimiter
  splits (';', tabs in a .csv, ...) gets it, else ``auto``."""
  delimiter = config_lib.AUTO_DELIMITER
  try:
    found = formats.find(path)
    csv_format = found.format.configured(delimiter, path)
    if isinstance(csv_format, formats.CsvFormat) and found.files:
      delimiter = csv_format.sniffed(found.files[0]) or delimiter
    # data.missing_values' default ('NA', 'null', ... and empty cells), as
    # the written config (which leaves the key out) will read the file.
    _, data = formats.read(
        path, missing_values=config_lib.DataConfig().missing_values,
        delimiter=delimiter)
  except (formats.FormatError, formats.InputError) as e:
    raise InitError(str(e)) from None
  if not data.total:
    raise InitError(f'{path}: {data.no_rows}')
  return data, delimiter


# --------------------------------------------------------------------------
# The task, from the label's values


def _percent(count: int, total: int) -> str:
  return f'{100.0 * count / total:.3g}%'


def _quoted(values: Sequence[str]) -> str:
  return ', '.join(repr(v) for v in values)


# Two-valued labels that name their positive class: affirmative -> negative.
_YES_NO = {'yes': 'no', 'true': 'false', 'y': 'n', 't': 'f',
           'positive': 'negative', 'pos': 'neg'}


def guess_label(path: str, data: formats.CheckData, name: str
                ) -> LabelGuess:
  """The task and label section for column ``name`` of ``data`` (read from
  ``path``), with ``drop_missing`` where some rows have no label.
  InitError for a label no task can read."""
  texts = pc.utf8_trim_whitespace(data.cells(name))
  empty = pc.fill_null(pc.equal(texts, ''), True).to_numpy(
      zero_copy_only=False)
  if empty.all():
    raise InitError(f'{path}: label column {name!r} has no values')
  guess = _guess_label(path, data, name, np.flatnonzero(~empty))
  if data.column(name).type == ColumnType.STRING:
    spelling = preflight.spelling_warning(
        data.cells(name).filter(pa.array(~empty)), name)
    if spelling:
      guess = dataclasses.replace(guess, warnings=guess.warnings + (
          spelling.removeprefix('warning: '),))
  if not empty.any():
    return guess
  note = (f'{int(empty.sum())} of {len(empty)} rows have no label (the '
          f'first: {data.row_name(int(np.flatnonzero(empty)[0]))}); '
          'drop_missing drops them')
  return dataclasses.replace(
      guess, label=dataclasses.replace(guess.label, drop_missing=True),
      warnings=(note,) + guess.warnings)


def _guess_label(path: str, data: formats.CheckData, name: str,
                 kept: np.ndarray) -> LabelGuess:
  """``guess_label`` on the rows ``kept`` (those with a label)."""
  column = data.column(name)
  cells = data.cells(name).take(pa.array(kept))
  texts = pc.utf8_trim_whitespace(cells)
  counts = pc.value_counts(texts).to_pylist()
  counts = {c['values']: c['counts'] for c in counts}
  rows = len(cells)
  if len(counts) == 1:
    raise InitError(f'{path}: label column {name!r} has one value '
                    f'({next(iter(counts))!r}) in all {rows} rows; there is '
                    'nothing to predict')
  numeric = column.type in (ColumnType.INT, ColumnType.FLOAT)

  if len(counts) == 2:
    if set(counts) in ({'0', '1'}, {'0.0', '1.0'}, {'0', '1.0'},
                       {'0.0', '1'}):
      positives = sum(n for v, n in counts.items() if float(v) == 1)
      return LabelGuess('binary', config_lib.LabelConfig(name=name),
                        f'{name!r} holds 0 and 1: binary '
                        f'({_percent(positives, rows)} positives)')
    lowered = {v.lower(): v for v in counts}
    yes = next((y for y, n in _YES_NO.items() if set(lowered) == {y, n}), None)
    if yes is not None:
      positive, why = lowered[yes], 'the affirmative'
    else:
      # The rarer value is positive; on a tie, the larger (2 > 1).
      fewest = min(counts.values())
      positive = max((v for v in counts if counts[v] == fewest),
                     key=float if numeric else str)
      why = 'the rarer'
    other = next(v for v in counts if v != positive)
    return LabelGuess(
        'binary', config_lib.LabelConfig(name=name, positive_value=positive),
        f'{name!r} holds two values, {positive!r} '
        f'({_percent(counts[positive], rows)}) and {other!r}: binary, with '
        f'{why}, {positive!r}, as the positive class')

  classes = sorted(counts, key=lambda v: (-counts[v], v))
  is_classes = column.type == ColumnType.STRING or (
      column.type == ColumnType.INT
      and len(counts) <= infer.MAX_CATEGORICAL_INTS)
  if is_classes:
    if (column.type == ColumnType.STRING
        and len(counts) >= infer.IDENTIFIER_SHARE * rows):
      raise InitError(
          f'{path}: label column {name!r} holds {len(counts)} distinct texts '
          f'in {rows} rows: an identifier, not classes to predict')
    shown = _quoted(classes[:SHOWN_CLASSES]) + (
        ', ...' if len(classes) > SHOWN_CLASSES else '')
    kind = 'text' if column.type == ColumnType.STRING else (
        f'integers: at most {infer.MAX_CATEGORICAL_INTS} distinct ones are '
        'classes')
    rare = [c for c in classes if counts[c] < RARE_CLASS_ROWS]
    warnings = ()
    if rare:
      several = len(rare) > 1
      warnings = (
          f'{"classes" if several else "class"} '
          f'{_quoted(rare[-SHOWN_CLASSES:])} {"have" if several else "has"} '
          f'fewer than {RARE_CLASS_ROWS} rows: a class that only the eval or '
          'test split holds stops the run; merge or drop rare classes',)
    return LabelGuess('multiclass', config_lib.LabelConfig(name=name),
                      f'{name!r} holds {len(counts)} classes ({kind}): '
                      f'{shown}', warnings)

  values = column.values[kept]
  bad = np.flatnonzero(~np.isfinite(values))
  if bad.size:
    raise InitError(
        f'{path}: label column {name!r} holds {cells[int(bad[0])].as_py()!r} '
        f'in {data.row_name(int(kept[bad[0]]))}; a regression target is a finite '
        'number')
  reason = (f'{name!r} holds numbers, {len(counts)} distinct values: '
            'regression')
  if column.type == ColumnType.INT:
    reason += (f' (an integer label with at most '
               f'{infer.MAX_CATEGORICAL_INTS} would be classes)')
  warnings = ()
  if (column.type == ColumnType.INT
      and len(counts) >= infer.IDENTIFIER_SHARE * rows):
    warnings = (f'{name!r} has a distinct value in nearly every row: if it '
                'is an identifier, it is not a label',)
  transform = None
  skew = infer.skewness(values)
  if values.min() >= 0 and skew > infer.LOG_SCALE_SKEW:
    transform = 'log'
    reason += (f'; non-negative and right-skewed (skewness {skew:.3g} > '
               f'{infer.LOG_SCALE_SKEW:g}): fitted on log1p of it')
  return LabelGuess('regression', config_lib.LabelConfig(
      name=name, target_transform=transform), reason, warnings)


# --------------------------------------------------------------------------
# The YAML


pipeline_name_for = config_lib.pipeline_name_for


def _comment(text: str, indent: int = 0) -> List[str]:
  pad = ' ' * indent + '# '
  return textwrap.wrap(text, width=79, initial_indent=pad,
                       subsequent_indent=pad, break_on_hyphens=False)


def _commented(line: str, comment: Optional[str]) -> List[str]:
  """``line`` with its comment aligned after it as in default.yaml, or on
  the line above when the line would grow past 79 characters."""
  if not comment:
    return [line]
  after = f'{line.ljust(25)} # {comment}'
  if len(after) <= 79:
    return [after]
  return [*_comment(comment, len(line) - len(line.lstrip())), line]


def _entry(key: str, value, indent: int, comment: Optional[str]) -> List[str]:
  return _commented(f'{" " * indent}{key}: {infer.yaml_scalar(value)}',
                    comment)


def _section(name: str, values, comment: str, comments) -> List[str]:
  """A top-level section from default.yaml's values, one key a line."""
  if not isinstance(values, dict):
    return [f'{name}: {infer.yaml_scalar(values)}']
  lines = _commented(f'{name}:', comment)
  for key, value in values.items():
    lines += _entry(key, value, 2, comments.get(key))
  return lines


def _default_comments() -> dict:
  """default.yaml's own end-of-line comments, by (section, key), but those
  that only name the task a key applies to (``# binary``): the starter keeps
  a task's keys only, so ``_COMMENTS`` says what they mean instead."""
  comments, section = {}, None
  for line in config_lib.default_config_text().splitlines():
    top = re.match(r'^(\w+):', line)
    if top:
      section = top.group(1)
      continue
    entry = re.match(r'^  (\w+):[^#]*#\s*(.+)$', line)
    if entry and section and entry.group(2).strip() not in tasks.TASKS:
      comments[(section, entry.group(1))] = entry.group(2).strip()
  return comments


def starter_text(data_path: str, guess: LabelGuess,
                 inferred: infer.InferredFeatures, rows: int,
                 pipeline_name: str, output_path: str,
                 command: str,
                 delimiter: str = config_lib.AUTO_DELIMITER) -> str:
  """The commented YAML for ``data_path``; ``command`` is how it was asked
  for, quoted in the header; ``delimiter`` is written unless ``auto``."""
  task = tasks.get(guess.task)
  default = yaml.safe_load(config_lib.default_config_text()) or {}
  other_tasks = {k for t, keys in _TASK_GATE_KEYS.items() if t != task.name
                 for k in keys} - set(_TASK_GATE_KEYS[task.name])
  gate = {k: v for k, v in (default.get('gate') or {}).items()
          if k not in other_tasks}
  regularization = default.get('regularization', 'none')
  label = {k: v for k, v in dataclasses.asdict(guess.label).items()
           if v is not None and v is not False}
  fallback = _default_comments()

  def comments(section: str) -> dict:
    keys = default.get(section)
    known = {k: fallback[(section, k)] for k in keys or ()
             if (section, k) in fallback} if isinstance(keys, dict) else {}
    return {**_COMMENTS, **known}

  lines = [
      f'# Starter configuration for {data_path} ({rows} rows), written by',
      f'#   {command}',
      '# Train, gate and push a model with',
      f'#   python -m pipeline run --config {shlex.quote(output_path)}',
      '# Keys left out keep their defaults (core/configs/default.yaml, but',
      "# not the taxi's data section); docs/configuration.md has every key.",
      '',
      f'pipeline_name: {infer.yaml_scalar(pipeline_name)}',
      *_comment(f'Guessed from the label: {guess.reason}.'),
      *[w for text in guess.warnings for w in _comment(f'Warning: {text}.')],
      f'task: {task.name}',
      '',
      'data:',
      f'  path: {infer.yaml_scalar(data_path)}',
      *([f'  delimiter: {json.dumps(delimiter)}  # the header\'s separator']
        if delimiter != config_lib.AUTO_DELIMITER else []),
      f'  label: {infer.yaml_scalar(label)}',
      *_comment('Inferred from the data (docs/configuration.md, "Features '
                'inferred"); edit the lists freely.', indent=2),
      infer.format_features(inferred, indent=2),
      '',
      *_section('regularization', regularization,
                'replaces the default section as a whole',
                {**comments('regularization'), 'early_stopping':
                     f'watches val_{task.default_monitor} on the eval split '
                     'and restores the best epoch'}),
      '',
      *_section('gate', gate, "max_gap, baseline_metric: the task's",
                comments('gate')),
      '',
      'output:',
      *_entry('root', f'outputs/{pipeline_name}', 2,
              'pipeline_root, metadata.sqlite, serving_model/ below it'),
  ]
  return '\n'.join(lines) + '\n'


def build_starter(data_path: str, label_column: str,
                  output_path: str) -> Starter:
  """Reads ``data_path`` and decides everything ``init`` writes; InitError
  for a file or label that cannot make a config ``run`` accepts."""
  data, delimiter = _read(data_path)
  if label_column not in data.names:
    raise InitError(f'{data_path}: no column {label_column!r} (--label); '
                    f'columns are {data.names}')
  if label_column in data.unusable:
    raise InitError(f'{data_path}: label column {label_column!r} '
                    f'{data.unusable[label_column]}')
  try:
    guess = guess_label(data_path, data, label_column)
    columns = [data.column(n) for n in data.names if n not in data.unusable]
  except formats.InputError as e:  # A column no type can hold.
    raise InitError(str(e)) from None
  inferred = infer.infer_features(columns, guess.label, data.total)
  if not inferred.all:
    reasons = '; '.join(f'{c}: {r}' for c, r in inferred.left_out.items())
    raise InitError(f'{data_path}: no column can be a feature ({reasons})')
  name = pipeline_name_for(data_path, label_column)
  command = (f'python -m pipeline init {shlex.quote(data_path)} --label '
             f'{shlex.quote(label_column)}')
  text = starter_text(os.path.abspath(data_path), guess, inferred,
                      data.total, name, output_path, command, delimiter)
  return Starter(name, guess, inferred, text)


def write_starter_config(data_path: str, label_column: str, output_path: str,
                         force: bool = False) -> str:
  """Writes the starter config for ``data_path`` to ``output_path`` (not
  over an existing file unless ``force``); returns ``output_path``.

  The text is loaded with ``load_config`` from a temporary file beside the
  target before it replaces it, so a config that would not load is never
  left behind."""
  if os.path.isdir(output_path):
    raise InitError(f'{output_path} is a directory; --output names a file')
  if os.path.exists(output_path) and not force:
    raise InitError(f'{output_path} exists; pass --force to overwrite it')
  starter = build_starter(data_path, label_column, output_path)
  directory = os.path.dirname(os.path.abspath(output_path))
  os.makedirs(directory, exist_ok=True)
  fd, staging = tempfile.mkstemp(prefix='.init-', suffix='.yaml',
                                 dir=directory)
  try:
    with os.fdopen(fd, 'w', encoding='utf-8') as f:
      f.write(starter.text)
    # mkstemp's file is private (0600); a config is as readable as any file
    # the user creates.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o666 & ~umask)
    config = config_lib.load_config(staging)
    loaded = config.data.features
    written = (loaded.numeric, loaded.categorical, loaded.log_scale)
    if loaded.auto or written != (starter.features.numeric,
                                  starter.features.categorical,
                                  starter.features.log_scale):
      raise RuntimeError(f'the starter config reads back features {written}, '
                         f'not the inferred {starter.features}')
    # What ``run`` checks before anything runs, so that init never writes a
    # config whose first run is refused (an infinite value, a ragged row).
    try:
      preflight.check_data(config)
    except preflight.InputDataError as e:
      raise InitError(str(e)) from None
    os.replace(staging, output_path)
  finally:
    if os.path.exists(staging):
      os.remove(staging)
  return output_path


def main(data_path: str, label: str, output: Optional[str] = None,
         force: bool = False) -> str:
  """``python -m pipeline init DATA --label COLUMN [--output FILE]
  [--force]``: writes the starter config (default ``<pipeline name>.yaml``
  in the current directory); returns the path written."""
  if output is None:
    output = f'{pipeline_name_for(data_path, label)}.yaml'
  return write_starter_config(data_path, label, output, force=force)
