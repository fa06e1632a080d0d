"""Configuration: parsing, overrides and the errors a user sees."""

import re

import pytest

from core import config as config_lib
from core.config import ConfigError, load_config


def test_default_config_is_the_taxi_sample_with_regularization():
  config = load_config()
  assert config.data.path is None
  assert config.data.resolved_path.endswith(
      'chicago_taxi_pipeline/data/simple/data.csv')
  assert config.data.label.name == 'big_tipper'
  assert 'tips' not in config.data.features.all  # The label's source leaks.
  assert config.regularization.active == ('l2', 'dropout', 'early_stopping')
  assert config.data.features.min_frequency == 20
  assert config.data.splits.as_buckets() == {'train': 14, 'eval': 3, 'test': 3}


def test_overrides_are_typed_and_applied_in_order():
  config = load_config(overrides=[
      'regularization.l1=1e-5', 'model.hidden_units=[8, 4]',
      'model.epochs=2', 'model.epochs=5', 'gate.max_gap.auc=0.1'])
  assert config.regularization.l1 == 1e-5
  assert config.regularization.active[0] == 'elastic_net'
  assert config.model.hidden_units == (8, 4)
  assert config.model.epochs == 5
  assert config.gate.max_gap['auc'] == 0.1
  assert config.gate.max_gap['accuracy'] == 0.03  # Others kept.


def test_none_turns_every_technique_off():
  config = load_config(overrides=['regularization=none'])
  assert config.regularization == config_lib.RegularizationConfig()
  assert config.regularization.active == ()


def test_round_trip_through_dict():
  config = load_config(overrides=['regularization.weight_decay=1e-3'])
  assert config_lib.from_dict(config.to_dict()) == config


def test_user_file_replaces_the_dataset(tmp_path):
  path = tmp_path / 'my.yaml'
  path.write_text(
      'data:\n  path: /data/penguins.csv\n'
      '  label: {name: is_adelie, column: null, positive_value: Adelie}\n'
      '  features: {numeric: [bill_length_mm], categorical: [island]}\n'
      'regularization: {dropout: 0.2}\n')
  config = load_config(str(path))
  assert config.data.features.numeric == ('bill_length_mm',)
  assert config.data.features.log_scale == ()  # Nothing of the taxi leaks in.
  assert config.data.splits.train == 14  # Left out entirely: default kept.
  assert config.regularization.active == ('dropout',)


@pytest.mark.parametrize('override, message', [
    ('regularization.l2=-1e-4', 'regularization.l2: strength must be >= 0'),
    ('regularization.l1=-1', 'regularization.l1: strength must be >= 0'),
    ('regularization.weight_decay=-0.1', 'weight_decay: strength must be >= 0'),
    ('regularization.dropout=1.0', 'dropout: rate must be in [0, 1)'),
    ('regularization.dropout=-0.1', 'dropout: rate must be in [0, 1)'),
    ('regularization.l3=0.1', "unknown technique 'l3'"),
    ('regularization.early_stopping.metric=f1', "unknown metric 'f1'"),
    ('regularization.max_norm=0', 'max_norm: must be > 0'),
    ('model.hidden_units=[]', 'model.hidden_units'),
    ('model.epochs=two', 'expected an integer'),
    ('distribution.strategy=gpu_cluster', "unknown strategy 'gpu_cluster'"),
    ('gate.max_gap.f1=0.1', "gate.max_gap: unknown metric 'f1'"),
    ('gate.max_gap.auc=-0.1', 'gate.max_gap.auc: must be >= 0'),
    ('data.features.numeric=[tips]', "would leak the label"),
    ('data.format=xls', "data.format: unknown format 'xls'"),
    ('nonsense', 'expected section.key=value'),
    ('model.hidden_units=[64, 32',
     "--set 'model.hidden_units=[64, 32': the value is not valid YAML"),
    ('gate.min_auc=.nan', 'gate.min_auc: expected a finite number'),
    ('gate.max_gap.auc=.inf', 'gate.max_gap.auc: expected a finite number'),
    ('regularization.l2=nan', 'regularization.l2: expected a finite number'),
    ('model.calibration=platt',
     "model.calibration: unknown 'platt'; expected one of temperature, none"),
])
def test_bad_configuration_is_a_clear_error(override, message):
  with pytest.raises(ConfigError, match=None) as info:
    load_config(overrides=[override])
  assert message in str(info.value)


def test_missing_config_file_is_named(tmp_path):
  with pytest.raises(ConfigError, match='does not exist'):
    load_config(str(tmp_path / 'nope.yaml'))


def test_parse_gate_validates_alone():
  gate = config_lib.parse_gate({'max_gap': {'accuracy': 0.01}}, 'binary')
  # The task's defaults for the metrics not given.
  assert gate.max_gap == {'accuracy': 0.01, 'auc': 0.03, 'log_loss': 0.05}
  assert gate.baseline_metric == 'auc'
  with pytest.raises(ConfigError):
    config_lib.parse_gate({'baseline_metric': 'f1'}, 'binary')
  with pytest.raises(ConfigError, match="a regression model reports rmse"):
    config_lib.parse_gate({'max_gap': {'auc': 0.1}}, 'regression')


def _task_config(tmp_path, task, label, extra=''):
  path = tmp_path / 'task.yaml'
  path.write_text(f'task: {task}\ndata:\n  path: /data/x.csv\n'
                  f'  label: {label}\n'
                  '  features: {numeric: [a], categorical: [b]}\n' + extra)
  return load_config(str(path))


@pytest.mark.parametrize('task, monitor, gaps, baseline', [
    ('binary', 'auc', {'accuracy', 'auc', 'log_loss'}, 'auc'),
    ('multiclass', 'log_loss', {'accuracy', 'macro_f1', 'log_loss'},
     'log_loss'),
    ('regression', 'rmse', {'rmse', 'mae'}, 'rmse'),
])
def test_each_task_fills_in_its_defaults(tmp_path, task, monitor, gaps,
                                         baseline):
  """Changing only ``task`` and the label gives a valid configuration: the
  default early stopping, gaps and baseline metric are the task's."""
  config = _task_config(tmp_path, task, 'y')
  assert config.task == task
  assert config.data.label == config_lib.LabelConfig(name='y')  # Shorthand.
  assert config.regularization.early_stopping.metric == monitor
  assert set(config.gate.max_gap) == gaps
  assert config.gate.baseline_metric == baseline
  assert config_lib.from_dict(config.to_dict()) == config


@pytest.mark.parametrize('task, label, extra, message', [
    ('ordinal', 'y', '', "task: unknown task 'ordinal'"),
    ('multiclass', '{name: y, column: tips, threshold: 1}', '',
     'label.column does not apply to multiclass'),
    ('binary', '{name: y, target_transform: log}', '',
     'target_transform applies to regression only'),
    ('regression', '{name: y, target_transform: sqrt}', '',
     "unknown transform 'sqrt'"),
    ('binary', '{name: y, column: tips}', '', 'set label.threshold'),
    ('regression', 'y', 'regularization: {label_smoothing: 0.1}\n',
     'regularization.label_smoothing: smooths class labels'),
    ('regression', 'y', 'regularization: {early_stopping: {metric: auc}}\n',
     'a regression model reports rmse, mae, r2'),
    ('multiclass', 'y', 'gate: {baseline_metric: auc}\n',
     "gate.baseline_metric: unknown metric 'auc'"),
])
def test_task_configuration_errors(tmp_path, task, label, extra, message):
  with pytest.raises(ConfigError) as info:
    _task_config(tmp_path, task, label, extra)
  assert message in str(info.value)


@pytest.mark.parametrize('value', ['null', 'false'])
def test_early_stopping_can_be_switched_off(value):
  config = load_config(overrides=[f'regularization.early_stopping={value}'])
  assert config.regularization.early_stopping is None
  assert 'early_stopping' not in config.regularization.active


@pytest.mark.parametrize('configured, rows, expected', [
    (256, 10_490, 256),  # The taxi train split: as configured.
    (256, 240, 16),  # Penguins: 240 rows, 16 a batch, 15 steps an epoch.
    (256, 1_050, 128),
    (256, 0, 16),
    (4, 240, 4),  # A smaller configured batch is kept.
])
def test_small_train_splits_get_smaller_batches(configured, rows, expected):
  model = config_lib.ModelConfig(batch_size=configured)
  assert model.batch_size_for(rows) == expected
  assert model.batch_size_for(rows) * config_lib.MIN_STEPS <= max(
      rows, config_lib.MIN_STEPS * expected)


def test_another_dataset_gets_a_pipeline_of_its_own(tmp_path):
  assert config_lib.load_config().pipeline_name == 'taxi-generalize'
  user = tmp_path / 'penguins.yaml'
  user.write_text('task: multiclass\ndata: {path: /data/Penguins Size.csv, '
                  'label: species}\n')
  assert config_lib.load_config(str(user)).pipeline_name == (
      'penguins-size-species')
  # Through --set too, and two labels of one file are two pipelines.
  assert config_lib.load_config(overrides=[
      'data.path=/d/flights.csv.gz', 'task=regression',
      'data.label=arr_delay']).pipeline_name == 'flights-arr-delay'
  # A glob is named by its fixed part, else by its folder.
  for path, name in (('/d/sales/part-*.parquet', 'part-y'),
                     ('/d/sales/*.csv', 'sales-y'),
                     ('/d/sales/2024-??/*.csv.gz', '2024-y'),
                     ('/d/sales/[ab]*', 'sales-y')):
    assert config_lib.pipeline_name_for(path, 'y') == name, path
  # A name the user gives is kept, and checked.
  assert config_lib.load_config(str(user), ['pipeline_name=mine']
                                ).pipeline_name == 'mine'
  with pytest.raises(config_lib.ConfigError, match='pipeline_name'):
    config_lib.load_config(str(user), ['pipeline_name=My_Pipeline'])


@pytest.mark.parametrize('setting, message', [
    ('gate.min_auc=0', 'gate.min_auc: 0.0 switches the check off'),
    ('gate.min_auc=0.5', 'above 0.5: better than chance'),
    ('gate.min_accuracy_skill=-0.1', 'no worse than the majority class'),
    ('gate.min_log_loss_skill=0', 'better than the prior'),
    ('gate.rmse_margin=-0.01', 'gate.rmse_margin'),
    ('gate.baseline_tolerance=-0.01', 'gate.baseline_tolerance'),
    ('gate.max_gap={accuracy: 0.9}', 'gate.max_gap.accuracy: 0.9 lets any gap'),
    ('gate.slice_max_gap=0.8', 'gate.slice_max_gap: 0.8'),
])
def test_a_threshold_that_switches_a_check_off_is_refused(setting, message):
  with pytest.raises(config_lib.ConfigError, match=re.escape(message)):
    config_lib.load_config(overrides=[setting])
  # The documented escape hatch, for small experiments.
  permissive = config_lib.load_config(overrides=[setting,
                                                 'gate.permissive=true'])
  assert permissive.gate.permissive


# data.missing_values


def test_missing_values_default_to_pandas_list(tmp_path):
  values = load_config().data.missing_values
  assert values == config_lib.PANDAS_MISSING_VALUES
  assert {'', 'NA', 'N/A', 'null', 'NULL', 'nan', 'NaN', 'None'} <= set(values)
  try:
    from pandas._libs import parsers  # pylint: disable=g-import-not-at-top
  except ImportError:
    parsers = None
  if parsers is not None:  # pandas 1.x lacks 'None', which 2.x adds.
    assert set(parsers.STR_NA_VALUES) <= set(values)
  # A user's data section that leaves the key out keeps the default.
  path = tmp_path / 'my.yaml'
  path.write_text('data: {path: /d/p.csv, label: y}\n')
  assert load_config(str(path)).data.missing_values == values


@pytest.mark.parametrize('value, expected', [
    ("['']", ('',)),  # Stock CsvExampleGen's rule.
    ("''", ('',)),
    ('[NA, "?"]', ('', 'NA', '?')),  # The empty cell is always missing.
    ("[NA, '', NA, '-999']", ('', 'NA', '-999')),
    ('[]', ('',)),
])
def test_missing_values_are_parsed(value, expected):
  config = load_config(overrides=[f'data.missing_values={value}'])
  assert config.data.missing_values == expected
  assert config_lib.from_dict(config.to_dict()) == config


@pytest.mark.parametrize('value, message', [
    ('[NA, null]', "data.missing_values[1]: expected a string, got None "
     "(NoneType); quote it in YAML (e.g. 'NULL'"),
    ('[-999]', 'data.missing_values[0]: expected a string, got -999 (int)'),
    ('[.nan]', 'data.missing_values[0]: expected a string, got nan (float)'),
    ('null', 'data.missing_values: expected a list of strings'),
    ('{NA: 1}', 'data.missing_values: expected a list of strings'),
    ('["a\\nb"]', 'spans lines'),
])
def test_bad_missing_values_are_refused(value, message):
  with pytest.raises(ConfigError, match=re.escape(message)):
    load_config(overrides=[f'data.missing_values={value}'])


def test_report_compare_unregularized_is_off_by_default_and_parses(tmp_path):
  assert load_config().report == config_lib.ReportConfig(
      compare_unregularized=False)
  path = tmp_path / 'my.yaml'
  path.write_text('report: {compare_unregularized: true}\n')
  config = load_config(str(path))
  assert config.report.compare_unregularized is True
  assert config_lib.from_dict(config.to_dict()) == config
  assert config.to_dict()['report'] == {'compare_unregularized': True}


@pytest.mark.parametrize('value', ['yes_please', '1', '"true"'])
def test_report_compare_unregularized_must_be_a_bool(value):
  with pytest.raises(ConfigError,
                     match='report.compare_unregularized: expected true or '
                     'false'):
    load_config(overrides=[f'report.compare_unregularized={value}'])
  with pytest.raises(ConfigError, match="report: unknown key 'compare'"):
    load_config(overrides=['report.compare=true'])


def test_an_unknown_top_level_key_is_named_as_such():
  with pytest.raises(ConfigError,
                     match="^top level: unknown key 'output_root'; expected "
                     'one of: pipeline_name, task'):
    load_config(overrides=['output_root=/tmp/x'])
