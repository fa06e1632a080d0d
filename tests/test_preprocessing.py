"""``preprocessing_fn`` run by tf.Transform itself, on a few hand-made rows.

Checks what each encoding promises: z-scores over the present values with
missing values at 0 plus an indicator, the log scale, rare categories in the
OOV buckets, and the derived label.
"""

import functools
import json
import math
import re

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata

from components import preprocessing
from core import config as config_lib

FARES = [4.0, 8.0, None, 10.0, 30.0, None, 6.0, 12.0]
MILES = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
TIPS = [1.0, 0.5, 0.0, 3.0, 9.0, 1.0, 0.0, 2.0]
PAYMENT = ['Cash', 'Card', 'Card', 'Card', 'Cash', 'Card', 'Dispute', 'Cash']


def _config():
  return config_lib.load_config(None, [
      'data.features={numeric: [fare, trip_miles], log_scale: [trip_miles], '
      'categorical: [payment_type], min_frequency: 2, oov_buckets: 1, '
      'numeric_encoding: zscore}',
      'data.label={name: big_tipper, column: tips, threshold: 0.2, '
      'relative_to: fare}'])


def _run_transform(config, rows, spec, tmp_path_factory, order_by,
                   tf_compat_v1=False):
  """``preprocessing_fn`` over ``rows`` by tf.Transform (in its TF1 mode, as
  the pipeline's Transform runs it, with ``tf_compat_v1``); outputs by
  column, rows sorted by ``order_by`` (Beam keeps no order)."""
  metadata = dataset_metadata.DatasetMetadata.from_feature_spec(spec)
  fn = functools.partial(preprocessing.preprocessing_fn,
                         custom_config={'config': config.to_dict()})
  out_prefix = str(tmp_path_factory.mktemp('out') / 'rows')
  options = PipelineOptions(['--direct_running_mode=in_memory'])
  with beam.Pipeline(options=options) as p, tft_beam.Context(
      temp_dir=str(tmp_path_factory.mktemp('tft')),
      force_tf_compat_v1=tf_compat_v1):
    (data, _), _ = ((p | beam.Create(rows), metadata)
                    | tft_beam.AnalyzeAndTransformDataset(
                        fn, output_record_batches=False))
    _ = (data
         | beam.Map(lambda row: json.dumps(
             {k: np.ravel(v).tolist()[0] for k, v in row.items()}))
         | beam.io.WriteToText(out_prefix, num_shards=1))
  with open(f'{out_prefix}-00000-of-00001', encoding='utf-8') as f:
    out = [json.loads(line) for line in f]
  out.sort(key=lambda row: row[order_by])
  return {k: np.array([row[k] for row in out]) for k in out[0]}


@pytest.fixture(scope='module')
def transformed(tmp_path_factory):
  rows = [{'fare': [] if f is None else [f], 'trip_miles': [m], 'tips': [t],
           'payment_type': [p]}
          for f, m, t, p in zip(FARES, MILES, TIPS, PAYMENT)]
  spec = {'fare': tf.io.VarLenFeature(tf.float32),
          'trip_miles': tf.io.VarLenFeature(tf.float32),
          'tips': tf.io.VarLenFeature(tf.float32),
          'payment_type': tf.io.VarLenFeature(tf.string)}
  # Put the rows back in input order, by trip_miles.
  return _run_transform(_config(), rows, spec, tmp_path_factory,
                        'trip_miles_xf')


def test_z_scores_use_the_present_values_and_missing_is_zero(transformed):
  present = np.array([f is not None for f in FARES])
  fares = np.array([f for f in FARES if f is not None])
  expected = (fares - fares.mean()) / fares.std()
  z = transformed['fare_xf']
  np.testing.assert_allclose(z[present], expected, rtol=1e-5)
  assert np.all(z[~present] == 0)
  np.testing.assert_array_equal(transformed['fare_missing_xf'],
                                (~present).astype(np.float32))


def test_log_scale_before_the_z_score(transformed):
  logs = np.log1p(np.array(MILES))
  np.testing.assert_allclose(transformed['trip_miles_xf'],
                             (logs - logs.mean()) / logs.std(), rtol=1e-5)


def test_rare_categories_share_the_oov_bucket(transformed):
  ids = dict(zip(PAYMENT, transformed['payment_type_xf']))
  # Card (4 rows) and Cash (3) reach min_frequency 2; Dispute (1) does not.
  assert sorted([ids['Card'], ids['Cash']]) == [0, 1]
  assert ids['Dispute'] == 2  # The one OOV bucket, after the vocabulary.


def test_label_is_tips_above_a_fifth_of_the_fare(transformed):
  expected = [int(f is not None and t > 0.2 * f) for f, t in zip(FARES, TIPS)]
  np.testing.assert_array_equal(transformed['big_tipper'], expected)
  assert not math.isnan(float(transformed['fare_xf'].sum()))


SPECIES = ['gentoo', 'adelie', 'gentoo', 'chinstrap', 'gentoo', 'adelie',
           'adelie', 'gentoo']
PRICES = [3.0, 0.0, 12.5, 7.0, 1.0, 99.0, 4.0, 2.0]


@pytest.mark.parametrize('task, label, values, dtype', [
    ('multiclass', 'species', SPECIES, tf.string),
    ('regression', '{name: price, target_transform: log}', PRICES, tf.float32),
])
def test_label_as_each_task_reads_it(tmp_path_factory, task, label, values,
                                     dtype):
  name = label if task == 'multiclass' else 'price'
  config = config_lib.load_config(None, [
      f'task={task}', f'data.label={label}',
      'data.features={numeric: [trip_miles]}'])
  rows = [{'trip_miles': m, name: v} for m, v in zip(MILES, values)]
  spec = {'trip_miles': tf.io.FixedLenFeature([], tf.float32),
          name: tf.io.FixedLenFeature([], dtype)}
  out = _run_transform(config, rows, spec, tmp_path_factory, 'trip_miles_xf')
  if task == 'multiclass':
    # Class indices by frequency: gentoo (4), adelie (3), chinstrap (1).
    order = {'gentoo': 0, 'adelie': 1, 'chinstrap': 2}
    np.testing.assert_array_equal(out['species'], [order[v] for v in values])
  else:
    # The label stays in its units: the model, not Transform, takes the log.
    np.testing.assert_allclose(out['price'], values)


@pytest.mark.parametrize('encoding', config_lib.NUMERIC_ENCODINGS)
def test_one_numeric_column_in_the_pipelines_tf1_mode(tmp_path_factory,
                                                      encoding):
  """A single numeric column: tf.Transform's TF1 mode once refused the graph
  (an analyzer's [1] output bound as a scalar)."""
  config = config_lib.load_config(None, [
      'data.label={name: y}',
      f'data.features={{numeric: [x], numeric_encoding: {encoding}}}'])
  values = [float(i) for i in range(20)]
  rows = [{'x': [v], 'y': [i % 2]} for i, v in enumerate(values)]
  spec = {'x': tf.io.VarLenFeature(tf.float32),
          'y': tf.io.VarLenFeature(tf.int64)}
  out = _run_transform(config, rows, spec, tmp_path_factory, 'x_xf',
                       tf_compat_v1=True)
  if encoding == 'robust':
    assert np.all(np.diff(out['x_xf']) > 0)
    assert np.abs(out['x_xf']).max() < preprocessing.CLIP
  else:  # A uniform column is not heavy: auto keeps the z-score.
    np.testing.assert_allclose(
        out['x_xf'], (np.array(values) - 9.5) / np.std(values), rtol=1e-4)


def test_spaces_around_text_values_do_not_count(tmp_path_factory):
  """In a file written 'a, b, c' the class is 'yes', not ' yes', and the
  category 'Card', not ' Card': as the pre-run check reads them, and as a
  server sending 'Card' means it."""
  config = config_lib.load_config(None, [
      "data.label={name: answer, positive_value: 'yes'}",
      'data.features={numeric: [trip_miles], categorical: [payment_type], '
      'min_frequency: 1, oov_buckets: 1}'])
  answers = [' yes', 'no', 'yes ', ' no ', 'yes', 'no', ' yes', 'no']
  payments = [' Card', 'Card', 'Card ', 'Cash', ' Cash', 'Cash', 'Card', 'Card']
  rows = [{'trip_miles': m, 'answer': a, 'payment_type': p}
          for m, a, p in zip(MILES, answers, payments)]
  spec = {'trip_miles': tf.io.FixedLenFeature([], tf.float32),
          'answer': tf.io.FixedLenFeature([], tf.string),
          'payment_type': tf.io.FixedLenFeature([], tf.string)}
  out = _run_transform(config, rows, spec, tmp_path_factory, 'trip_miles_xf')
  np.testing.assert_array_equal(out['answer'],
                                [int(a.strip() == 'yes') for a in answers])
  # Two categories, by frequency: Card (5 rows), Cash (3).
  np.testing.assert_array_equal(out['payment_type_xf'],
                                [0 if 'Card' in p else 1 for p in payments])


def test_safe_names_for_any_column_name():
  """Name scopes and vocabulary files made of column names: valid ones are
  kept, others ('Age (years)', 'km/h', 'Ünïcode') made valid and distinct."""
  assert preprocessing.safe_name('trip_miles') == 'trip_miles'
  odd = ['Age (years)', 'Age [years]', 'km/h', 'Ünïcode col', 'city, name',
         '_x', ' x']
  safe = [preprocessing.safe_name(n) for n in odd]
  assert len(set(safe)) == len(odd)
  assert all(re.fullmatch(r'[A-Za-z0-9.][A-Za-z0-9_.-]*', s) for s in safe)
  assert preprocessing.vocabulary_name('Ünïcode col') == safe[3]


def _analyzer_count(numeric_columns: int, encoding: str) -> int:
  from tensorflow_transform import analyzer_nodes, impl_helper  # pylint: disable=g-import-not-at-top
  names = [f'x{i}' for i in range(numeric_columns)]
  config = config_lib.load_config(None, [
      f'data.features={{numeric: [{", ".join(names)}], '
      f'numeric_encoding: {encoding}}}', 'data.label=y'])
  spec = {n: tf.io.VarLenFeature(tf.float32) for n in names}
  spec['y'] = tf.io.FixedLenFeature([], tf.int64)
  custom_config = {'config': config.to_dict()}
  graph, _, _ = impl_helper.trace_preprocessing_function(
      lambda inputs: preprocessing.preprocessing_fn(inputs, custom_config),
      spec, use_tf_compat_v1=True)
  return len(graph.get_collection(analyzer_nodes.TENSOR_REPLACEMENTS))


@pytest.mark.parametrize('encoding', ['zscore', 'robust', 'auto'])
def test_numeric_analyzers_do_not_grow_with_the_column_count(encoding):
  # One analyzer per column made Transform's time and memory grow faster
  # than the column count (300 columns ran out of 23.5 GB).
  assert _analyzer_count(40, encoding) == _analyzer_count(2, encoding) > 0


def test_two_columns_with_one_output_name_are_refused():
  config = config_lib.load_config(None, [
      'data.features={numeric: [x, x_missing, fare], categorical: [c]}',
      'data.label=c_xf'])
  assert preprocessing.output_clashes(config.data.features, 'c_xf') == [
      "'x_missing_xf': column 'x' (its missing indicator) and column "
      "'x_missing' (its encoding)",
      "'c_xf': column 'c' (its encoding) and the label 'c_xf'"]
  with pytest.raises(ValueError, match="one name twice, 'x_missing_xf'"):
    preprocessing.preprocessing_fn({}, {'config': config.to_dict()})
  assert preprocessing.output_clashes(_config().data.features,
                                      'big_tipper') == []
