"""Features inferred from the data (pipeline/infer.py) and ``features: auto``
in the configuration (core/config.py)."""

import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

import task_data
from components.ingest import csv_fast
from core import config as config_lib
from pipeline import infer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _columns(path):
  table = csv_fast.read_csv(path, csv_fast.read_header(path))
  return csv_fast.convert_table(table, path), table.num_rows


def _inferred(path):
  """The features inferred from the CSV at ``path``, label ``y``."""
  columns, rows = _columns(path)
  return infer.infer_features(columns, config_lib.LabelConfig(name='y'), rows)


@pytest.fixture(scope='module')
def taxi():
  # A features section without lists: inferred, with its settings kept.
  config = config_lib.load_config(
      overrides=['data.features={min_frequency: 20}'])
  columns, rows = _columns(config_lib.taxi_sample_path())
  return config, columns, rows


def test_taxi_sample(taxi):
  config, columns, rows = taxi
  inferred = infer.infer_features(columns, config.data.label, rows)
  assert {'fare', 'trip_miles', 'trip_seconds', 'pickup_latitude',
          'dropoff_longitude'} <= set(inferred.numeric)
  # Integer codes with at most 31 values, and text, are categories.
  assert {'payment_type', 'company', 'trip_start_hour', 'trip_start_day',
          'trip_start_month'} <= set(inferred.categorical)
  # Exactly the default's log_scale: non-negative and skewed beyond 2.
  assert inferred.log_scale == ('fare', 'trip_miles', 'trip_seconds')
  # tips is what big_tipper is thresholded from: it would leak the label.
  assert 'tips' in inferred.left_out and 'tips' not in inferred.all
  # fare (label.relative_to, present in every row) stays a feature, as in
  # the default config.
  assert 'fare' not in inferred.left_out
  # One value in one row of 15,002.
  assert inferred.left_out['pickup_census_tract'].startswith('constant')
  # 92% distinct: below the identifier share, a number.
  assert 'trip_start_timestamp' in inferred.numeric
  # Every column is placed once, in the file's order.
  placed = inferred.all + tuple(inferred.left_out)
  assert sorted(placed) == sorted(c.name for c in columns)
  assert list(inferred.numeric) == [c.name for c in columns
                                    if c.name in inferred.numeric]


def test_taxi_resolve(taxi):
  config, columns, rows = taxi
  assert config.data.features.auto
  resolved = infer.resolve_features(config, columns, rows)
  features = resolved.data.features
  assert not features.auto
  assert 'fare' in features.numeric and 'tips' not in features.all
  assert features.min_frequency == 20  # The section's other settings kept.
  # Explicit lists are left as they are.
  explicit = config_lib.load_config()
  assert infer.resolve_features(explicit, columns, rows) is explicit


def _mixed_csv(path, n=400):
  rng = np.random.default_rng(0)
  header = ['id', 'code', 'const', 'empty', 'rating', 'visits', 'price',
            'temperature', 'city', 'flag', 'nothing', 'yes', 'y']
  rows = []
  for i in range(n):
    rows.append([
        i,                                     # identifier (integer)
        f'u{i:05d}',                           # identifier (text)
        'same',                                # constant
        '',                                    # no values
        int(rng.integers(1, 6)),               # 5 integer values
        int(rng.lognormal(3, 1)),              # many integers, skewed
        f'{rng.lognormal(3, 1):.2f}',          # float, skewed, >= 0
        f'{rng.normal(5, 10):.2f}',            # float with negatives
        ['oslo', 'rome', 'lima'][i % 3],       # text
        int(rng.random() < 0.3),               # 0/1
        'inf',                                 # only infinity ('nan'
                                               # is a missing value)
        f'{rng.normal():.3f}',                 # a name YAML reads as true
        int(rng.random() < 0.5),               # the label
    ])
  return task_data.write_csv(path, header, rows)


def test_mixed_columns(tmp_path):
  columns, rows = _columns(_mixed_csv(tmp_path / 'mixed.csv'))
  inferred = infer.infer_features(columns, config_lib.LabelConfig(name='y'),
                                  rows)
  assert inferred.numeric == ('visits', 'price', 'temperature', 'yes')
  assert inferred.categorical == ('rating', 'city', 'flag')
  assert inferred.log_scale == ('visits', 'price')
  reasons = inferred.left_out
  assert set(reasons) == {'id', 'code', 'const', 'empty', 'nothing', 'y'}
  assert reasons['id'].startswith('identifier-like: 400 distinct')
  assert reasons['code'].startswith('identifier-like')
  assert reasons['const'] == 'constant: one value in every row'
  assert reasons['empty'] == 'no values in the 400 rows'
  assert reasons['nothing'].startswith('no finite values')
  assert reasons['y'] == 'the label'


def test_format_reads_back(tmp_path):
  """The printed lists are YAML that reads back as the same lists (a column
  named ``yes`` stays a string), wrapped and indented to paste."""
  columns, rows = _columns(_mixed_csv(tmp_path / 'mixed.csv'))
  inferred = infer.infer_features(columns, config_lib.LabelConfig(name='y'),
                                  rows)
  text = infer.format_features(inferred, indent=0)
  assert "'yes'" in text and '# left out:' in text
  features = yaml.safe_load(text)['features']
  assert features == {'numeric': list(inferred.numeric),
                      'log_scale': list(inferred.log_scale),
                      'categorical': list(inferred.categorical)}
  names = [f'column_{i}' for i in range(30)]
  wrapped = infer.yaml_list('numeric', names, 4)
  assert all(len(line) <= 80 for line in wrapped.splitlines())
  assert len(wrapped.splitlines()) > 1
  assert yaml.safe_load('x:\n' + wrapped)['x']['numeric'] == names
  # Headers as users write them: a comma or a bracket inside a flow list.
  odd = ['city, name', 'Age (years)', 'Income $', '[x]', "it's", 'a: b']
  assert yaml.safe_load(infer.yaml_list('c', odd, 0))['c'] == odd


def test_identifier_share(tmp_path):
  n = 200
  # 95% distinct: an identifier; 90%: a number.
  near = [i if i < 190 else 0 for i in range(n)]
  less = [i if i < 180 else 0 for i in range(n)]
  path = task_data.write_csv(tmp_path / 'ids.csv', ['near', 'less', 'y'],
                [[a, b, i % 2] for i, (a, b) in enumerate(zip(near, less))])
  inferred = _inferred(path)
  assert 'near' in inferred.left_out
  assert inferred.numeric == ('less',)


def test_numbers_with_a_few_text_cells_are_numeric(tmp_path):
  n = 400
  # 399 numbers and a typo: numeric, with why; 95% numbers: codes, text.
  typo = [f'{i * 1.5:.1f}' if i != 300 else '1.5 kg' for i in range(n)]
  codes = [str(i) if i % 20 else f'A{i}' for i in range(n)]
  path = task_data.write_csv(tmp_path / 'typo.csv', ['typo', 'codes', 'y'],
                             [[a, b, i % 2] for i, (a, b)
                              in enumerate(zip(typo, codes))])
  inferred = _inferred(path)
  assert inferred.numeric == ('typo',)
  assert inferred.notes == {
      'typo': '399 of its 400 cells with a value are numbers'}
  assert 'codes' in inferred.left_out  # Distinct in every row: identifier.
  assert '#   typo: 399 of its 400' in infer.format_features(inferred)
  # Amounts with thousands separators: numeric, and the note says why.
  grouped = task_data.write_csv(
      tmp_path / 'grouped.csv', ['amount', 'y'],
      [[f'{1000 + 37 * i:,}', i % 2] for i in range(n)])
  inferred = _inferred(grouped)
  assert inferred.numeric == ('amount',)
  assert "a thousands separator, '12,345'" in inferred.notes['amount']
  # Decimal commas (quoted here; a ';' file needs no quotes): the same.
  decimal = task_data.write_csv(
      tmp_path / 'decimal.csv', ['price', 'y'],
      [[f'{i * 0.37:.2f}'.replace('.', ','), i % 2] for i in range(n)])
  inferred = _inferred(decimal)
  assert inferred.numeric == ('price',)
  assert f'{n} of them written with a comma' in inferred.notes['price']


def test_numbers_with_a_missing_value_token_are_named(tmp_path):
  """2% '?' cells: past NUMERIC_SHARE, so text, and the note names the
  token and the setting that reads it as missing."""
  n = 400
  cells = ['?' if i % 50 == 7 else f'{i * 0.37:.2f}' for i in range(n)]
  levels = ['?' if i % 50 == 7 else str(i % 5) for i in range(n)]
  path = task_data.write_csv(tmp_path / 'q.csv', ['x', 'level', 'y'],
                             [[a, b, i % 2] for i, (a, b)
                              in enumerate(zip(cells, levels))])
  inferred = _inferred(path)
  note = ("392 of its 400 cells with a value are numbers; the others: '?' "
          '(8). If they mark missing values, add them to data.missing_values')
  # Distinct floats: an identifier as text, with the note.
  assert note in inferred.left_out['x'], inferred.left_out
  assert inferred.categorical == ('level',)
  assert inferred.mostly_numbers['level'].startswith(
      "392 of its 400 cells with a value are numbers; the others: '?' (8)")
  assert '# categorical, though mostly numbers:' in infer.format_features(
      inferred)


def test_dates_and_timestamps_are_left_out_with_what_to_derive(tmp_path):
  n = 400
  rows = [[f'2013-{1 + i % 12:02d}-{1 + i % 28:02d} {i % 24:02d}:00:00',
           f'2013/{1 + i % 12}/{1 + i % 3}', f'2013-01-0{1 + i % 9}T05:00Z',
           f'2013-01-0{1 + i % 9} 05:00:00 UTC',
           f'{1 + i % 12:02d}/0{1 + i % 9}/2013 0{i % 9}:00:00 '
           + ['AM', 'PM'][i % 2], f'2013-01-01 05:00:00 +05{i % 2}0',
           ['a', 'b'][i % 2], i % 2] for i in range(n)]
  dated = ('time_hour', 'day', 'iso', 'bigquery', 'portal', 'offset')
  path = task_data.write_csv(tmp_path / 'dates.csv', [*dated, 'kind', 'y'],
                             rows)
  inferred = _inferred(path)
  assert inferred.categorical == ('kind',)
  for name in dated:
    assert inferred.left_out[name].startswith('dates or times'), name
    assert 'hour, weekday, month' in inferred.left_out[name]


def test_categorical_int_bound(tmp_path):
  n = 400
  path = task_data.write_csv(tmp_path / 'ints.csv', ['day', 'code', 'y'],
                [[i % infer.MAX_CATEGORICAL_INTS,
                  i % (infer.MAX_CATEGORICAL_INTS + 1), i % 2]
                 for i in range(n)])
  inferred = _inferred(path)
  assert inferred.categorical == ('day',)
  assert inferred.numeric == ('code',)


def test_relative_to_with_missing_values(tmp_path):
  """A missing reference value makes the label 0 by definition, so the
  column is left out when it has missing values, kept when it has none."""
  rows = [[f'{i % 7 + 1}.0', f'{i % 3}.0', f'{i % 5}.0'] for i in range(50)]
  rows[4][0] = ''
  path = task_data.write_csv(tmp_path / 'rel.csv', ['fare', 'tips', 'miles'], rows)
  columns, n = _columns(path)
  label = config_lib.LabelConfig(name='big', column='tips', threshold=0.2,
                                 relative_to='fare')
  inferred = infer.infer_features(columns, label, n)
  assert 'label.relative_to, empty in 1 rows' in inferred.left_out['fare']
  assert inferred.numeric == ('miles',)
  rows[4][0] = '3.0'
  columns, n = _columns(task_data.write_csv(tmp_path / 'rel.csv', ['fare', 'tips', 'miles'],
                               rows))
  assert infer.infer_features(columns, label, n).numeric == ('fare', 'miles')


def test_nothing_usable(tmp_path):
  path = task_data.write_csv(tmp_path / 'bare.csv', ['id', 'y'],
                [[i, i % 2] for i in range(50)])
  columns, rows = _columns(path)
  config = config_lib.load_config(overrides=[
      f'data={{path: {path}, label: y}}'])
  with pytest.raises(config_lib.ConfigError, match='no column .* can be a '
                     'feature .*id: identifier-like'):
    infer.resolve_features(config, columns, rows)


# --------------------------------------------------------------------------
# The configuration side: what means "infer".


def _load(tmp_path, data_yaml):
  path = tmp_path / 'c.yaml'
  path.write_text('data:\n' + data_yaml)
  return config_lib.load_config(str(path))


@pytest.mark.parametrize('features', [
    '',  # Left out.
    '  features: auto\n',
    '  features: null\n',
    '  features: {min_frequency: 5}\n',
    '  features: {auto: true}\n',
])
def test_auto_config(tmp_path, features):
  config = _load(tmp_path, '  path: d.csv\n  label: y\n' + features)
  assert config.data.features.auto
  assert config.data.features.all == ()
  if 'min_frequency' in features:
    assert config.data.features.min_frequency == 5
  # The typed value survives the components' dict form.
  assert config_lib.from_dict(config.to_dict()) == config


def test_explicit_config(tmp_path):
  config = _load(tmp_path, '  path: d.csv\n  label: y\n'
                 '  features: {numeric: [a], categorical: [b]}\n')
  assert not config.data.features.auto
  assert config.data.features.all == ('a', 'b')
  assert not config_lib.load_config().data.features.auto  # The taxi's lists.


@pytest.mark.parametrize('features, message', [
    ('{auto: true, numeric: [a]}', 'auto infers numeric'),
    ('{log_scale: [a]}', 'auto infers log_scale'),
    ('{auto: false}', 'list at least one'),
    ('{numeric: [], categorical: []}', 'list at least one'),
])
def test_auto_config_errors(tmp_path, features, message):
  with pytest.raises(config_lib.ConfigError, match=message):
    _load(tmp_path, f'  path: d.csv\n  label: y\n  features: {features}\n')


def test_no_heavy_imports(tmp_path):
  """Inference runs before TensorFlow, TFX or Beam are imported."""
  path = _mixed_csv(tmp_path / 'mixed.csv', n=50)
  code = (
      'import sys\n'
      'from components.ingest import csv_fast\n'
      'from core import config\n'
      'from pipeline import infer\n'
      f'path = {path!r}\n'
      'table = csv_fast.read_csv(path, csv_fast.read_header(path))\n'
      'columns = csv_fast.convert_table(table, path)\n'
      "c = config.load_config(overrides=[f'data={{path: {path}, label: y}}'])\n"
      'c = infer.resolve_features(c, columns, table.num_rows)\n'
      "heavy = sorted({m.split('.')[0] for m in sys.modules} & {\n"
      "    'tensorflow', 'tfx', 'tfx_bsl', 'apache_beam',\n"
      "    'tensorflow_transform'})\n"
      'print(heavy)\n')
  out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, check=True,
                       capture_output=True, text=True).stdout
  assert out.strip() == '[]'


def _penguins_csv():
  palmerpenguins = pytest.importorskip('palmerpenguins')
  return os.path.join(os.path.dirname(palmerpenguins.__file__), 'data',
                      'penguins.csv')


MEASUREMENTS = ('bill_length_mm', 'bill_depth_mm', 'flipper_length_mm',
                'body_mass_g')


def test_penguins_with_na_cells_are_numeric():
  # penguins.csv writes missing values as NA: data.missing_values' default
  # makes them missing, so the measurements are numbers, not categories.
  path = _penguins_csv()
  columns, rows = _columns(path)
  inferred = infer.infer_features(
      columns, config_lib.LabelConfig(name='species'), rows)
  assert set(MEASUREMENTS) <= set(inferred.numeric)
  assert {'island', 'sex'} <= set(inferred.categorical)
  assert 'year' in inferred.all  # Three values: categorical by the INT rule.
  sex = next(c for c in columns if c.name == 'sex')
  assert b'NA' not in sex.values.to_pylist()
  assert int((~sex.present).sum()) == 11
  # Stock's rule ('' only) reads 'NA' as text: every measurement a string.
  table = csv_fast.read_csv(path, csv_fast.read_header(path),
                            missing_values=[''])
  stock = {c.name: c.type for c in csv_fast.convert_table(table, path)}
  assert {stock[m] for m in MEASUREMENTS} == {csv_fast.ColumnType.STRING}
