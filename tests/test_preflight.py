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
     (), "numeric column 'trip_miles' is all NaN"),
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
  path = _write(tmp_path, HEADER.encode() + b'10,1,Caf\xe9,1\n' * 10,
                mode='wb')
  with pytest.raises(InputDataError, match='not UTF-8'):
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
])
def test_label_unreadable_for_the_task(tmp_path, task, rows, extra, message):
  path = tmp_path / 'data.csv'
  path.write_text(TASK_HEADER + rows)
  with pytest.raises(InputDataError) as info:
    check_csv(_config(path, f'task={task}', 'data.label=y', *extra))
  assert message in str(info.value)
  assert str(path) in str(info.value)


@pytest.mark.parametrize('task, rows', [
    ('regression', '10,1,Cash,3.5\n10,2,Card,-7\n' * 10),
    ('multiclass', '10,1,Cash,a\n10,2,Card,b\n10,2,Card,c\n' * 10),
])
def test_task_labels_read(tmp_path, task, rows):
  path = tmp_path / 'data.csv'
  path.write_text(TASK_HEADER + rows)
  assert check_csv(_config(path, f'task={task}', 'data.label=y')).rows_total
