"""``python -m pipeline init``: the starter config (pipeline/starter.py).

Each task shape of tests/task_data.py is written, ``init`` is run on it,
and what it wrote is loaded with ``core.config.load_config`` and checked
against the file by the pre-run check, as ``run`` would.
"""

import os
import subprocess
import sys

import pytest
import yaml

import task_data
from core import config as config_lib
from pipeline import infer, preflight, starter


@pytest.mark.parametrize('shape, label, task, label_config', [
    ('multiclass', 'species', 'multiclass', config_lib.LabelConfig('species')),
    # Log-normal and positive: fitted in log space.
    ('regression', 'target', 'regression',
     config_lib.LabelConfig('target', target_transform='log')),
    ('imbalanced', 'fraud', 'binary', config_lib.LabelConfig('fraud')),
])
def test_task_shapes(tmp_path, shape, label, task, label_config):
  data = task_data.SHAPES[shape][0](tmp_path / f'{shape}.csv')
  out = starter.main(data, label, output=str(tmp_path / 'c.yaml'))
  assert out == str(tmp_path / 'c.yaml')
  config = config_lib.load_config(out)
  assert config.task == task
  assert config.data.label == label_config
  assert config.data.path == os.path.abspath(data)
  features = config.data.features
  assert not features.auto
  assert list(features.numeric) == task_data.FEATURES['numeric']
  assert list(features.categorical) == task_data.FEATURES['categorical']
  assert features.log_scale == ()
  name = f'{shape}-{label}'
  assert config.pipeline_name == name
  assert config.output.root == f'outputs/{name}'
  # The default regularization and gate, as run would use them.
  default = config_lib.load_config(
      overrides=[f'task={task}', f'data.label={label}'])
  assert config.regularization == default.regularization
  assert config.gate == default.gate
  # Only existing columns, readable for the task: the pre-run check passes.
  preflight.check_csv(config)
  text = open(out, encoding='utf-8').read()
  assert f'python -m pipeline run --config {out}' in text
  assert f'task: {task}' in text


def test_regression_without_skew(tmp_path):
  data = task_data.regression(tmp_path / 'r.csv')
  config = config_lib.load_config(
      starter.main(data, 'target', output=str(tmp_path / 'c.yaml')))
  assert config.task == 'regression'
  assert config.data.label.target_transform is None


def test_taxi_tips(tmp_path):
  config = config_lib.load_config(starter.main(
      config_lib.taxi_sample_path(), 'tips', output=str(tmp_path / 'c.yaml')))
  assert config.task == 'regression'
  assert config.data.label.target_transform == 'log'
  assert config.pipeline_name == 'data-tips'
  assert 'fare' in config.data.features.numeric
  assert 'payment_type' in config.data.features.categorical
  assert 'tips' not in config.data.features.all


def _labelled(tmp_path, labels, name='label.csv'):
  return task_data.write_csv(tmp_path / name, ['x', 'colour', 'y'],
                [[f'{i * 0.37 % 5:.2f}', ['a', 'b', 'c'][i % 3], v]
                 for i, v in enumerate(labels)])


def _guess(tmp_path, labels):
  out = starter.main(_labelled(tmp_path, labels), 'y',
                     output=str(tmp_path / 'c.yaml'), force=True)
  return config_lib.load_config(out)


def test_two_valued_labels(tmp_path):
  # Text: the rarer value is the positive class.
  config = _guess(tmp_path, ['no'] * 80 + ['yes'] * 20)
  assert config.task == 'binary'
  assert config.data.label.positive_value == 'yes'
  config = _guess(tmp_path, ['churned'] * 10 + ['stayed'] * 90)
  assert config.data.label.positive_value == 'churned'
  # A yes/no pair: the affirmative, even where it is the more common.
  assert _guess(tmp_path, ['no', 'yes'] * 50).data.label.positive_value == 'yes'
  assert _guess(tmp_path, ['False'] * 30 + ['True'] * 70
                ).data.label.positive_value == 'True'
  # A tie otherwise: the larger value.
  assert _guess(tmp_path, ['cat', 'dog'] * 50).data.label.positive_value == (
      'dog')
  # Numbers other than 0/1: the value, as a string (quoted in the YAML).
  config = _guess(tmp_path, [1] * 70 + [2] * 30)
  assert config.data.label.positive_value == '2'
  # 0/1 (also written as floats): read as they are.
  config = _guess(tmp_path, [0] * 70 + [1] * 30)
  assert config.task == 'binary' and config.data.label.positive_value is None
  assert _guess(tmp_path, ['0.0'] * 70 + ['1.0'] * 30).task == 'binary'
  preflight.check_csv(config)


def test_integer_labels(tmp_path):
  # Few integer values: classes.
  config = _guess(tmp_path, [i % 5 for i in range(200)])
  assert config.task == 'multiclass'
  preflight.check_csv(config)
  # More than MAX_CATEGORICAL_INTS: a quantity.
  bound = infer.MAX_CATEGORICAL_INTS
  assert _guess(tmp_path, [i % (bound + 1) for i in range(200)]
                ).task == 'regression'
  # Floats with more than two values: regression.
  assert _guess(tmp_path, [f'{i % 3}.5' for i in range(200)]
                ).task == 'regression'


def test_rare_class_warning(tmp_path):
  out = starter.main(_labelled(tmp_path, ['a'] * 100 + ['b'] * 100 + ['c'] * 3),
                     'y', output=str(tmp_path / 'c.yaml'))
  text = open(out, encoding='utf-8').read()
  assert "Warning: class 'c' has fewer than 10 rows" in text


def test_classes_that_differ_only_in_case_are_warned_of(tmp_path):
  out = starter.main(_labelled(tmp_path, ['Yes'] * 100 + ['no'] * 90
                               + [' yes'] * 12), 'y',
                     output=str(tmp_path / 'c.yaml'))
  text = ' '.join(line.lstrip('# ') for line in
                  open(out, encoding='utf-8').read().splitlines())
  assert ("Warning: label 'y': 'Yes' (100 rows) and 'yes' (12 rows) differ "
          'only in case') in text


def test_names_that_need_quotes(tmp_path):
  """Column names YAML would read as booleans or numbers stay strings."""
  data = task_data.write_csv(tmp_path / 'My Data.v2.csv', ['yes', '1', 'a: b', 'Label'],
                [[f'{i * 0.1:.1f}', ['p', 'q'][i % 2], i % 4, i % 2]
                 for i in range(100)])
  out = starter.main(data, 'Label', output=str(tmp_path / 'c.yaml'))
  config = config_lib.load_config(out)
  assert config.data.features.numeric == ('yes',)
  assert config.data.features.categorical == ('1', 'a: b')
  assert config.pipeline_name == 'my-data-v2-label'
  preflight.check_csv(config)


def test_default_output_and_overwrite(tmp_path, monkeypatch):
  data = _labelled(tmp_path, [0, 1] * 50)
  monkeypatch.chdir(tmp_path)
  out = starter.main(data, 'y')
  assert out == 'label-y.yaml' and os.path.exists(tmp_path / out)
  with pytest.raises(starter.InitError, match='exists; pass --force'):
    starter.main(data, 'y')
  (tmp_path / out).write_text('stale')
  assert starter.main(data, 'y', force=True) == out
  assert 'task: binary' in (tmp_path / out).read_text()
  # No staging file is left beside it.
  assert sorted(os.listdir(tmp_path)) == ['label-y.yaml', 'label.csv']


@pytest.mark.parametrize('labels, message', [
    (['a'] * 50, "label column 'y' has one value \\('a'\\) in all 50 rows"),
    (['', 'NA', 'nan'] * 20, "label column 'y' has no values"),
    ([f'id{i}' for i in range(60)], 'an identifier, not classes'),
    ([f'{i}.5' for i in range(59)] + ['inf'], "holds 'inf' in data row 60"),
    # Counted among the labelled rows, named in the file's.
    ([''] + [f'{i}.5' for i in range(58)] + ['inf'],
     "holds 'inf' in data row 60"),
])
def test_bad_labels(tmp_path, labels, message):
  with pytest.raises(starter.InitError, match=message):
    starter.main(_labelled(tmp_path, labels), 'y',
                 output=str(tmp_path / 'c.yaml'))
  assert not os.path.exists(tmp_path / 'c.yaml')


@pytest.mark.parametrize('missing', ['', 'NA', 'nan'])
def test_rows_without_a_label_are_dropped(tmp_path, missing):
  # Empty or a missing-value token (data.missing_values' default): the
  # config drops those rows, says so, and the pre-run check agrees.
  labels = ['a', 'b', missing, 'c'] * 20
  out = starter.main(_labelled(tmp_path, labels), 'y',
                     output=str(tmp_path / 'c.yaml'))
  text = open(out, encoding='utf-8').read()
  assert '20 of 80 rows have no label (the first: data row 3)' in ' '.join(
      line.lstrip('# ') for line in text.splitlines())
  config = config_lib.load_config(out)
  assert config.task == 'multiclass'
  assert config.data.label.drop_missing
  assert config.data.label.required_columns == ('y',)
  summary = preflight.check_data(config)
  assert (summary.rows_total, summary.rows_dropped) == (60, 20)
  assert summary.first_dropped == 'data row 3'


def test_bad_files(tmp_path):
  with pytest.raises(starter.InitError, match='no such file'):
    starter.main(str(tmp_path / 'missing.csv'), 'y')
  data = _labelled(tmp_path, [0, 1] * 50)
  with pytest.raises(starter.InitError,
                     match=r"no column 'tip' \(--label\); columns are "
                     r"\['x', 'colour', 'y'\]"):
    starter.main(data, 'tip', output=str(tmp_path / 'c.yaml'))
  header_only = tmp_path / 'h.csv'
  header_only.write_text('x,y\n')
  with pytest.raises(starter.InitError, match='only a header'):
    starter.main(str(header_only), 'y', output=str(tmp_path / 'c.yaml'))
  only_label = task_data.write_csv(tmp_path / 'o.csv', ['id', 'y'],
                      [[i, i % 2] for i in range(50)])
  with pytest.raises(starter.InitError, match='no column can be a feature'):
    starter.main(only_label, 'y', output=str(tmp_path / 'c.yaml'))
  assert not os.path.exists(tmp_path / 'c.yaml')


def test_written_text_is_commented_yaml(tmp_path):
  data = task_data.imbalanced(tmp_path / 'f.csv', n=2000)
  out = starter.main(data, 'fraud', output=str(tmp_path / 'c.yaml'))
  text = open(out, encoding='utf-8').read()
  raw = yaml.safe_load(text)
  assert set(raw) == {'pipeline_name', 'task', 'data', 'regularization',
                      'gate', 'output'}
  # Only the binary task's bounds, with the defaults' values.
  assert 'min_r2_skill' not in raw['gate'] and 'min_auc' in raw['gate']
  assert '# left out:' in text and '#   fraud: the label' in text
  assert max(len(line) for line in text.splitlines()
             if not line.startswith(('#', '  path:'))) <= 79


def test_no_heavy_imports(tmp_path):
  """``init`` reads, infers and writes without TensorFlow, TFX or Beam."""
  data = _labelled(tmp_path, [0, 1] * 50)
  code = (
      'import sys\n'
      'from pipeline import starter\n'
      f'starter.main({data!r}, "y", output={str(tmp_path / "c.yaml")!r})\n'
      "heavy = sorted({m.split('.')[0] for m in sys.modules} & {\n"
      "    'tensorflow', 'tfx', 'tfx_bsl', 'apache_beam',\n"
      "    'tensorflow_transform'})\n"
      'print(heavy)\n')
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  out = subprocess.run([sys.executable, '-c', code], cwd=root, check=True,
                       capture_output=True, text=True).stdout
  assert out.strip() == '[]'
  assert os.path.exists(tmp_path / 'c.yaml')


def test_penguins_csv_with_na_cells(tmp_path):
  # The CSV inside the palmerpenguins package writes missing values as NA.
  palmerpenguins = pytest.importorskip('palmerpenguins')
  data = os.path.join(os.path.dirname(palmerpenguins.__file__), 'data',
                      'penguins.csv')
  out = starter.main(data, 'species', output=str(tmp_path / 'p.yaml'))
  features = config_lib.load_config(out).data.features
  assert {'bill_length_mm', 'bill_depth_mm', 'flipper_length_mm',
          'body_mass_g'} <= set(features.numeric)
  assert {'island', 'sex'} <= set(features.categorical)
  raw = yaml.safe_load(open(out, encoding='utf-8'))
  assert raw['task'] == 'multiclass'
  # The pre-run check reads the file as init did.
  summary = preflight.check_data(config_lib.load_config(out))
  assert summary.rows_total == 344


def test_another_delimiter_is_written_into_the_config(tmp_path):
  path = tmp_path / 'semi.csv'
  path.write_text('x;colour;y\n' + ''.join(
      f'{i * 0.37 % 5:.2f};{"ab"[i % 2]};{i % 2}\n' for i in range(60)))
  out = starter.main(str(path), 'y', output=str(tmp_path / 'c.yaml'))
  config = config_lib.load_config(out)
  assert config.data.delimiter == ';'
  assert config.data.features.numeric == ('x',)
  assert preflight.check_data(config).rows_total == 60
  # Tabs in a .tsv need no key: auto reads them.
  tsv = tmp_path / 'tabs.tsv'
  tsv.write_text(path.read_text().replace(';', '\t'))
  out = starter.main(str(tsv), 'y', output=str(tmp_path / 't.yaml'))
  assert '  delimiter:' not in open(out, encoding='utf-8').read()
  assert preflight.check_data(config_lib.load_config(out)).rows_total == 60


def test_what_run_refuses_init_refuses_with_the_same_message(tmp_path):
  # sklearn's boston_house_prices.csv: a count line above the real header.
  preamble = tmp_path / 'preamble.csv'
  preamble.write_text('6,3,,\nx,colour,y,z\n' + ''.join(
      f'{i},a,{i % 2},{i}\n' for i in range(6)))
  # sklearn's wine_data.csv: a 5-field first line above 4-field rows.
  ragged = tmp_path / 'ragged.csv'
  ragged.write_text('3,2,a,b,c\n' + ''.join(
      f'{i},{i},{i % 2},1\n' for i in range(60)))
  # Two names a saved model would read as one.
  clash = tmp_path / 'clash.csv'
  clash.write_text('x,x-1,x 1,y\n' + ''.join(
      f'{i},{i},{i},{i % 2}\n' for i in range(60)))
  # An infinity in a column the data types numeric.
  infinite = tmp_path / 'infinite.csv'
  infinite.write_text('x,w,y\n' + ''.join(
      f"{'inf' if i == 11 else i},{i * 7 % 5},{i % 2}\n" for i in range(60)))
  for path, message in ((preamble, r'header columns \[3, 4\] have no name'),
                        (ragged, 'data row 1 has 4 fields, the header has 5'),
                        (clash, "'x-1', 'x 1' all read as 'x_1'"),
                        (infinite, "numeric column 'x' holds 'inf' at data "
                         'row 12; an infinite value cannot be scaled')):
    with pytest.raises(starter.InitError, match=message) as refused:
      starter.main(str(path), 'y', output=str(tmp_path / 'c.yaml'))
    config = config_lib.load_config(overrides=[
        f'data.path={path}', 'data.label={name: y}', 'data.features=auto'])
    with pytest.raises(preflight.InputDataError) as checked:
      preflight.check_data(config)
    assert str(refused.value) == str(checked.value)
  assert not os.path.exists(tmp_path / 'c.yaml')


def test_a_folder_of_parquet_files(tmp_path):
  """``init`` takes what data.path takes: here a folder of two Parquet
  files, then three, one label empty in the third."""
  import pyarrow as pa  # pylint: disable=g-import-not-at-top
  import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
  folder = tmp_path / 'parts'
  folder.mkdir()
  for part, rows in enumerate((range(0, 80), range(80, 150))):
    pq.write_table(pa.table({
        'amount': [i * 1.5 for i in rows],
        'shop': [['x', 'y', 'z'][i % 3] for i in rows],
        'y': [['no', 'yes'][i % 4 == 0] for i in rows]}),
        folder / f'part-{part}.parquet')
  out = starter.main(str(folder), 'y', output=str(tmp_path / 'c.yaml'))
  config = config_lib.load_config(out)
  assert config.task == 'binary'
  assert config.data.label.positive_value == 'yes'
  assert config.data.features.numeric == ('amount',)
  assert config.data.features.categorical == ('shop',)
  assert preflight.check_data(config).rows_total == 150

  pq.write_table(pa.table({'amount': [1.0, 2.0], 'shop': ['x', 'y'],
                           'y': ['no', None]}), folder / 'part-2.parquet')
  out = starter.main(str(folder), 'y', output=str(tmp_path / 'd.yaml'))
  assert 'row 2 of' in open(out, encoding='utf-8').read()
  summary = preflight.check_data(config_lib.load_config(out))
  assert (summary.rows_total, summary.rows_dropped) == (151, 1)
  assert summary.first_dropped.startswith('row 2 of ')
  assert summary.first_dropped.endswith('part-2.parquet')
