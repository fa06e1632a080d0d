"""Input checks that run before the pipeline: each names file and column."""

import pytest

from core import config as config_lib
from pipeline.preflight import InputDataError, check_csv

HEADER = 'fare,trip_miles,payment_type,tips\n'


def _config(path, *overrides):
  return config_lib.load_config(overrides=[
      f'data.path={path}', 'model.batch_size=4',
      'data.features.numeric=[fare, trip_miles]',
      'data.features.log_scale=[fare]',
      'data.features.categorical=[payment_type]', *overrides])


def _rows(n):
  return ''.join(f'{10 + i % 5},{i % 7},{"Cash" if i % 2 else "Card"},'
                 f'{5 * (i % 2)}\n' for i in range(n))


def _write(tmp_path, text, name='data.csv', mode='w'):
  path = tmp_path / name
  if mode == 'wb':
    path.write_bytes(text)
  else:
    path.write_text(text)
  return path


def test_good_file_summary(tmp_path):
  path = _write(tmp_path, HEADER + _rows(40))
  summary = check_csv(_config(path))
  assert summary.rows_total == 40


@pytest.mark.parametrize('content, overrides, message', [
    (None, (), 'no such file'),
    ('', (), 'the file is empty'),
    (HEADER, (), 'only a header, no data rows'),
    ('fare,trip_miles,payment_type\n' + '1,2,Cash\n' * 20, (),
     "no column 'tips': expected column 'tips', which label 'big_tipper' is "
     'derived from'),
    ('fare,trip_miles,payment_type,tips\n' + '1,2,Cash,lots\n' * 20, (),
     "cannot read label 'big_tipper' for task binary: column 'tips' holds 'lots'"),
    (HEADER + '10,1,Cash,0\n' * 20, (), "label 'big_tipper' is constant (0)"),
    ('fare,trip_miles,payment_type,big_tipper\n' + '10,1,Cash,2\n' * 20,
     ('data.label=big_tipper',), "column 'big_tipper' holds '2', expected 0 or 1"),
    ('fare,trip_miles,payment_type,tips\n' + '10,,Cash,1\n10,,Card,5\n' * 10, (),
     "numeric column 'trip_miles' has no values"),
    ('fare,trip_miles,payment_type,tips\n' + '10,nan,Cash,1\n10,nan,Card,5\n' * 10,
     ("data.missing_values=['']",), "numeric column 'trip_miles' is all NaN"),
    ('fare,trip_miles,payment_type,tips\n' + '10,nan,Cash,1\n10,NA,Card,5\n' * 10,
     (), "numeric column 'trip_miles' has no values"),
    ('fare,trip_miles,payment_type,tips\n' + '10,far,Cash,1\n10,3,Card,5\n' * 10,
     (), "numeric column 'trip_miles' holds 'far'"),
    ('fare,fare,payment_type,tips\n' + '10,1,Cash,1\n' * 20, (),
     "duplicate column names ['fare']"),
    (HEADER + _rows(3), (), 'fewer than one batch'),
    ('fare,payment_type,tips\n' + '10,Cash,1\n10,Card,5\n' * 10, (),
     "feature columns ['trip_miles'] not in the header"),
    (HEADER + '10,1,Cash\n' * 10, (), 'data row 1 has 3 fields, the header has 4'),
])
def test_bad_input_is_named(tmp_path, content, overrides, message):
  path = tmp_path / 'data.csv'
  if content is not None:
    path.write_text(content)
  with pytest.raises(InputDataError) as info:
    check_csv(_config(path, *overrides))
  assert message in str(info.value)
  assert str(path) in str(info.value)


def test_non_utf8_bytes(tmp_path):
  path = _write(tmp_path, HEADER.encode() + b'10,1,Cafe,1\n' * 2000
                + b'10,1,Caf\xe9,1\n' * 10, mode='wb')
  with pytest.raises(InputDataError) as info:
    check_csv(_config(path))
  assert (f"{path}: data row 2001, column 'payment_type': b'Caf\\xe9' is not "
          'UTF-8 text (byte 0xe9); save the CSV as UTF-8') in str(info.value)


def test_another_files_features_point_to_auto_and_init(tmp_path):
  path = _write(tmp_path, 'a,b,tips\n' + '1,2,3\n' * 20)
  with pytest.raises(InputDataError) as info:
    check_csv(_config(path, 'data.label={name: tips, column: null}',
                      'task=regression'))
  assert 'none of the listed features is a column' in str(info.value)
  assert f'python -m pipeline init {path} --label tips' in str(info.value)


def test_a_trailing_comma_on_every_line_is_named(tmp_path):
  path = _write(tmp_path, HEADER.rstrip('\n') + ',\n'
                + _rows(20).replace('\n', ',\n'))
  with pytest.raises(InputDataError, match=r'header columns \[5\] have no '
                     r'name .*the header line ends with a comma'):
    check_csv(_config(path))


def test_directory_instead_of_file(tmp_path):
  with pytest.raises(InputDataError, match='is a directory'):
    check_csv(_config(tmp_path))


TASK_HEADER = 'fare,trip_miles,payment_type,y\n'


@pytest.mark.parametrize('task, rows, extra, message', [
    ('regression', '10,1,Cash,3.5\n' * 10 + '10,1,Cash,lots\n', (),
     "row 11: cannot read label 'y' for task regression: column 'y' holds "
     "'lots', expected a finite number"),
    ('regression', '10,1,Cash,3.5\n10,1,Card,\n' * 10, (),
     "row 2: cannot read label 'y' for task regression: column 'y' holds ''"),
    ('regression', '10,1,Cash,inf\n' * 20, (), "holds 'inf', expected a finite"),
    ('regression', '10,1,Cash,3\n10,1,Card,-1\n' * 10,
     ('data.label={name: y, target_transform: log}',),
     'target_transform log needs values >= 0'),
    ('regression', '10,1,Cash,3\n' * 20, (), "label 'y' is constant (3.0)"),
    ('multiclass', '10,1,Cash,a\n10,1,Card,\n' * 10, (),
     "row 2: cannot read label 'y' for task multiclass: column 'y' is empty"),
    ('multiclass', '10,1,Cash,a\n' * 20, (), "label 'y' has one class ('a')"),
    ('binary', '10,1,Cash,1\n10,1,Card,\n' * 10, (),
     "row 2: cannot read label 'y' for task binary: column 'y' holds '', "
     'expected 0 or 1'),
    # Empty is not "other than positive_value": no label at all.
    ('binary', '10,1,Cash,yes\n10,1,Card,\n' * 10,
     ('data.label={name: y, positive_value: "yes"}',),
     "row 2: cannot read label 'y' for task binary: column 'y' is empty"),
])
def test_label_unreadable_for_the_task(tmp_path, task, rows, extra, message):
  path = tmp_path / 'data.csv'
  path.write_text(TASK_HEADER + rows)
  with pytest.raises(InputDataError) as info:
    check_csv(_config(path, f'task={task}', 'data.label=y', *extra))
  assert message in str(info.value)
  assert str(path) in str(info.value)


@pytest.mark.parametrize('task, label', [
    ('regression', 'y'), ('multiclass', 'y'), ('binary', 'y'),
    ('binary', '{name: y, positive_value: "1"}'),
    # A derived label: a row without its source value, 0 by default, goes.
    ('binary', '{name: big, column: y, threshold: 0.5}'),
])
def test_drop_missing_takes_the_rows_without_a_label_out(tmp_path, task,
                                                          label):
  path = tmp_path / 'data.csv'
  path.write_text(TASK_HEADER + '10,1,Cash,1\n10,1,Card,\n10,2,Card,0\n' * 10)
  base = (f'task={task}', f'data.label={label}')
  if 'column' in label:  # Read as 0 unless dropped.
    assert check_csv(_config(path, *base)).rows_total == 30
  else:
    with pytest.raises(InputDataError,
                       match='data.label.drop_missing: true drops the rows'):
      check_csv(_config(path, *base))
  drop = label[:-1] + ', drop_missing: true}' if label.startswith('{') else (
      f'{{name: {label}, drop_missing: true}}')
  summary = check_csv(_config(path, base[0], f'data.label={drop}'))
  assert (summary.rows_total, summary.rows_dropped) == (20, 10)
  assert summary.first_dropped == 'data row 2'


def test_drop_missing_with_no_label_at_all(tmp_path):
  path = tmp_path / 'data.csv'
  path.write_text(TASK_HEADER + '10,1,Cash,NA\n' * 30)
  with pytest.raises(InputDataError,
                     match=r"no data row has a value in every one of \['y'\]"):
    check_csv(_config(path, 'task=regression',
                      'data.label={name: y, drop_missing: true}'))
  # Too few labelled rows for a batch: said in those words.
  path.write_text(TASK_HEADER + '10,1,Cash,NA\n' * 30 + '10,1,Cash,2\n' * 3)
  with pytest.raises(InputDataError, match='3 data rows with a label, fewer than'):
    check_csv(_config(path, 'task=regression',
                      'data.label={name: y, drop_missing: true}'))


@pytest.mark.parametrize('task, rows', [
    ('regression', '10,1,Cash,3.5\n10,2,Card,-7\n' * 10),
    ('multiclass', '10,1,Cash,a\n10,2,Card,b\n10,2,Card,c\n' * 10),
])
def test_task_labels_read(tmp_path, task, rows):
  path = tmp_path / 'data.csv'
  path.write_text(TASK_HEADER + rows)
  assert check_csv(_config(path, f'task={task}', 'data.label=y')).rows_total


# --------------------------------------------------------------------------
# Files as users have them: each works, or gets an error naming the row.


def _variant_rows(n):
  return [(f'{10 + i % 5}', f'{i % 7}', 'Cash' if i % 2 else 'Card',
           f'{5 * (i % 2)}') for i in range(n)]


@pytest.mark.parametrize('variant', [
    'bom', 'crlf', 'quoted_commas', 'spaces_in_header', 'sorted_by_label',
    'huge_field'])
def test_real_world_variants_are_read(tmp_path, variant):
  rows = _variant_rows(60)
  header, newline, cells = 'fare,trip_miles,payment_type,tips', '\n', rows
  encoding = 'utf-8'
  if variant == 'bom':
    encoding = 'utf-8-sig'
  elif variant == 'crlf':
    newline = '\r\n'
  elif variant == 'quoted_commas':
    cells = [(f, m, f'"{p}, Inc."', t) for f, m, p, t in rows]
  elif variant == 'spaces_in_header':
    header = ' fare , trip_miles,payment_type ,tips'
  elif variant == 'sorted_by_label':
    cells = sorted(rows, key=lambda r: r[3])  # All 0s, then all 1s.
  elif variant == 'huge_field':
    cells = [(f, m, p * 1_000_000 if i == 30 else p, t)
             for i, (f, m, p, t) in enumerate(rows)]  # A 4 MB cell.
  path = tmp_path / 'data.csv'
  with open(path, 'w', encoding=encoding, newline='') as f:
    f.write(newline.join([header] + [','.join(r) for r in cells]) + newline)
  summary = check_csv(_config(path))
  assert summary.rows_total == 60
  assert summary.columns == ['fare', 'trip_miles', 'payment_type', 'tips']


def test_another_delimiter_is_named(tmp_path):
  path = _write(tmp_path, 'fare;trip_miles;payment_type;tips\n'
                + '10;1;Cash;1\n10;1;Cash;5\n' * 10)
  with pytest.raises(InputDataError, match='separated by semicolons; the '
                     'pipeline reads it as separated by commas: set '
                     'data.delimiter: ";"'):
    check_csv(_config(path))
  # As it says.
  assert check_csv(_config(path, 'data.delimiter=";"')).rows_total == 20


@pytest.mark.parametrize('bad, message', [
    ('10,lots,Cash,1',
     "numeric column 'trip_miles' holds 'lots' at data row 25001"),
    ('10,inf,Cash,1',
     "numeric column 'trip_miles' holds 'inf' at data row 25001; an infinite"),
    ('10,1,Cash,much',
     "row 25001: cannot read label 'big_tipper' for task binary: column "
     "'tips' holds 'much'"),
    ('10,1,Cash', 'data row 25001 has 3 fields, the header has 4'),
])
def test_bad_value_far_into_the_file_is_found(tmp_path, bad, message):
  lines = [','.join(r) for r in _variant_rows(30_000)]
  lines[25_000] = bad
  path = _write(tmp_path, HEADER + '\n'.join(lines) + '\n')
  with pytest.raises(InputDataError) as info:
    check_csv(_config(path))
  assert message in str(info.value)
  assert str(path) in str(info.value)


def test_inferred_features_name_a_bad_number_far_into_the_file(tmp_path):
  """With data.features: auto, a number column with one text cell is typed
  numeric and the cell named, not the column taken for text (a category per
  number, or an identifier left out in silence)."""
  lines = [','.join(r) for r in _variant_rows(30_000)]
  lines[25_000] = '10,lots,Cash,1'
  path = _write(tmp_path, HEADER + '\n'.join(lines) + '\n')
  with pytest.raises(InputDataError) as info:
    check_csv(_config(path, 'data.features=auto'))
  assert ("numeric column 'trip_miles' holds 'lots' at data row 25001"
          in str(info.value))
  assert 'data.features: auto typed it numeric: 29999 of its 30000 cells' in (
      str(info.value))


def test_features_left_out_are_inferred_from_the_whole_file(tmp_path):
  rows = [f'r{i},{10 + i % 5},{i % 7 * 1.5},{"Cash" if i % 2 else "Card"},'
          f'same,{5 * (i % 2)}' for i in range(60)]
  path = _write(tmp_path, 'ride_id,fare,miles,payment_type,city,tips\n'
                + '\n'.join(rows) + '\n')
  config = config_lib.load_config(overrides=[
      f'data.path={path}', 'model.batch_size=4', 'data.features=auto'])
  summary = check_csv(config)
  features = summary.config.data.features
  assert not features.auto
  assert features.numeric == ('miles',) and set(features.categorical) == {
      'fare', 'payment_type'}  # fare: 5 integer values, a code
  assert set(summary.inferred.left_out) == {'ride_id', 'city', 'tips'}


def test_check_csv_is_check_data(tmp_path):
  # The entry point's first name stays: scripts and benchmarks call it.
  from pipeline import preflight  # pylint: disable=g-import-not-at-top
  assert preflight.check_csv is preflight.check_data
  path = _write(tmp_path, HEADER + _rows(40))
  summary = check_csv(_config(path))
  assert (summary.format, summary.files) == ('csv', (str(path),))
  assert summary.location.pattern == 'data.csv'
  assert summary.config.data.format == 'csv'


def test_slice_features_must_be_columns(tmp_path):
  path = _write(tmp_path, HEADER + _rows(40))
  assert check_csv(_config(path, 'gate.slice_features=[payment_type]'))
  with pytest.raises(InputDataError, match=r"gate.slice_features \['company'\]"):
    check_csv(_config(path, 'gate.slice_features=[company]'))


# --------------------------------------------------------------------------
# Missing-value tokens (data.missing_values): pandas' 'NA', 'null', ... by
# default, in every column.

PENGUIN_HEADER = 'species,bill_length_mm,body_mass_g,sex\n'


def _penguin_rows(n, bad=None):
  rows = []
  for i in range(n):
    cells = [('Adelie', 'Gentoo', 'Chinstrap')[i % 3], f'{35 + i % 20}.5',
             str(3000 + 50 * (i % 40)), ('male', 'female')[i % 2]]
    if i % 9 == 3:
      cells[1:] = ['NA', 'NA', 'NA']  # As penguins.csv writes them.
    elif i % 11 == 5:
      cells[1:] = ['null', '', 'N/A']
    rows.append(','.join(cells) + '\n')
  if bad is not None:
    rows[bad] = 'Gentoo,abc,4000,male\n'
  return ''.join(rows)


def _penguin_config(path, *overrides):
  return config_lib.load_config(overrides=[
      f'data.path={path}', 'model.batch_size=4', 'task=multiclass',
      'data.label=species',
      'data.features={numeric: [bill_length_mm, body_mass_g], '
      'categorical: [sex]}', *overrides])


def test_missing_value_tokens_pass_with_numeric_features(tmp_path):
  path = _write(tmp_path, PENGUIN_HEADER + _penguin_rows(60))
  summary = check_csv(_penguin_config(path))
  assert summary.rows_total == 60
  # Inferred, the columns are numeric too, and 'NA' is no category of sex.
  inferred = check_csv(_penguin_config(path, 'data.features=auto')).inferred
  assert inferred.numeric == ('bill_length_mm', 'body_mass_g')
  assert inferred.categorical == ('sex',)


def test_stock_missing_values_refuse_the_tokens(tmp_path):
  path = _write(tmp_path, PENGUIN_HEADER + _penguin_rows(60))
  with pytest.raises(InputDataError) as info:
    check_csv(_penguin_config(path, "data.missing_values=['']"))
  assert ("numeric column 'bill_length_mm' holds 'NA' at data row 4"
          in str(info.value))


def test_a_real_non_number_is_still_refused(tmp_path):
  path = _write(tmp_path, PENGUIN_HEADER + _penguin_rows(60, bad=40))
  with pytest.raises(InputDataError) as info:
    check_csv(_penguin_config(path))
  assert str(info.value) == (
      f"{path}: numeric column 'bill_length_mm' holds 'abc' at data row 41; "
      'expected numbers (or move it to data.features.categorical)')


def test_a_custom_token(tmp_path):
  path = _write(tmp_path, PENGUIN_HEADER
                + _penguin_rows(60, bad=40).replace('abc', '?'))
  with pytest.raises(InputDataError, match="holds '\\?' at data row 41"):
    check_csv(_penguin_config(path))
  assert check_csv(_penguin_config(
      path, "data.missing_values=['', NA, 'null', N/A, '?']")).rows_total == 60


def test_many_numeric_features_are_warned_of():
  from pipeline import preflight  # pylint: disable=g-import-not-at-top
  names = [f'x{i}' for i in range(preflight.WIDE_NUMERIC_FEATURES + 1)]
  config = config_lib.load_config(overrides=[
      f'data.features={{numeric: [{", ".join(names)}]}}'])
  assert preflight.wide_warning(config).startswith(
      f'warning: {len(names)} numeric features')
  assert preflight.wide_warning(config_lib.load_config()) is None


def test_column_names_that_tensorflow_would_merge(tmp_path):
  """'fare' and 'fare ' are trimmed alike; 'trip miles' and 'trip-miles' are
  not, but a saved model's inputs would both be 'trip_miles'."""
  from components.ingest import formats  # pylint: disable=g-import-not-at-top
  from tensorflow.core.function.polymorphism import function_type  # pylint: disable=g-import-not-at-top
  for name in ('trip miles', 'trip-miles', 'Ünï côde', '1st', '_x', 'a.b/c'):
    assert formats.argument_name(name) == function_type.sanitize_arg_name(name)
  path = _write(tmp_path, 'fare,trip miles,trip_miles,payment_type,tips\n'
                + ''.join(f'{10 + i % 5},{i},{i % 7},Cash,{i % 2}\n'
                          for i in range(40)))
  with pytest.raises(InputDataError, match=(
      r"columns whose names differ only in characters other than letters and "
      r"digits: 'trip miles', 'trip_miles' all read as 'trip_miles'")):
    check_csv(_config(path))


def test_label_classes_that_differ_only_in_case_are_warned_of(tmp_path):
  path = _write(tmp_path, HEADER + ''.join(
      f'{10 + i % 5},{i % 7},Cash,{["Yes", "no", " yes"][min(i % 7, 2)]}\n'
      for i in range(70)))
  summary = check_csv(_config(path, 'task=multiclass', 'data.label=tips'))
  assert summary.warnings == (
      "warning: label 'tips': 'yes' (50 rows) and 'Yes' (10 rows) differ "
      "only in case, and the pipeline keeps them apart as different classes; "
      "if they are one, write it one way in the data (e.g. pandas: "
      "df[col].str.strip().str.lower())",)
  # Spaces around a value do not make another class.
  path = _write(tmp_path, HEADER + ''.join(
      f'{10 + i % 5},{i % 7},Cash,{["yes", " no", "no "][i % 3]}\n'
      for i in range(60)))
  assert check_csv(_config(path, 'data.label={name: tips, positive_value: '
                                 '"yes"}')).warnings == ()


@pytest.mark.parametrize('cell, message', [
    ('inf', "holds 'inf' at data row 31; an infinite value cannot be scaled"),
    # Finite in the file, infinite as the 32-bit float a tf.Example holds.
    ('5e+40', r"holds '5e\+40' at data row 31; beyond the range of the 32-bit "
     'floats a tf.Example holds'),
])
def test_numbers_that_would_be_infinite(tmp_path, cell, message):
  rows = _rows(40).splitlines(keepends=True)
  rows[30] = f'{cell},1,Cash,5\n'
  with pytest.raises(InputDataError, match=message):
    check_csv(_config(_write(tmp_path, HEADER + ''.join(rows))))


def test_a_decimal_comma_is_named(tmp_path):
  path = _write(tmp_path, 'fare;trip_miles;payment_type;tips\n'
                + '10;1,5;Cash;1\n10;2;Card;5\n' * 10)
  with pytest.raises(InputDataError, match=(
      r"numeric column 'trip_miles' holds '1,5' at data row 1; .*a number "
      'written with a comma')):
    check_csv(_config(path, 'data.delimiter=";"'))
