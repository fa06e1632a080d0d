"""Input checks that run before the pipeline: each names file and column."""

import pytest

from pipeline import config as config_lib
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
  assert 0 < summary.positive_rate < 1


@pytest.mark.parametrize('content, overrides, message', [
    (None, (), 'no such file'),
    ('', (), 'the file is empty'),
    (HEADER, (), 'only a header, no data rows'),
    ('fare,trip_miles,payment_type\n' + '1,2,Cash\n' * 20, (),
     "no column 'tips': expected column 'tips', which label 'big_tipper' is "
     'derived from'),
    ('fare,trip_miles,payment_type,tips\n' + '1,2,Cash,lots\n' * 20, (),
     "cannot derive label 'big_tipper': column 'tips' holds 'lots'"),
    (HEADER + '10,1,Cash,0\n' * 20, (), "label 'big_tipper' is constant (0)"),
    ('fare,trip_miles,payment_type,big_tipper\n' + '10,1,Cash,2\n' * 20,
     ('data.label.column=null',), "column 'big_tipper' holds '2', expected 0 or 1"),
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
