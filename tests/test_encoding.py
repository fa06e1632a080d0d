"""Feature encodings chosen from the data: numeric scaling (robust scaling
with a smooth clip, or the z-score) decided from Transform's analyzers, read
back for the report; categorical one-hot or a learned embedding by
vocabulary size, exported and served.

The numeric part runs ``preprocessing_fn`` by tf.Transform itself on a few
hand-made rows, so that the expected values are computed by hand here.
"""

import functools
import json
import os

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata
import tf_keras as keras

from components import preprocessing
from components.trainer import model as model_lib
from core import config as config_lib
from core import tasks

# 20 rows: a bulk 1..19 and one outlier. tft.quantiles with 20 buckets
# returns the sorted values at ranks 1..19 here, so the median is the value
# at rank 10 (11) and the IQR the values at ranks 15 and 5 (16 - 6 = 10).
MONEY = [float(v) for v in range(1, 20)] + [1000.0]
EVEN = [float(v) for v in range(1, 21)]          # uniform: stays a z-score
COUNTS = [float(v) for v in range(20)]            # logged, then robust
COUNTS[-1] = 1e6
# Every fourth value missing; the bulk 1..15 (as ranked) plus an outlier.
SPARSE = [None if i % 4 == 3 else float(i) for i in range(19)] + [5000.0]
CONSTANT = [7.0] * 20
ROWS = len(MONEY)


def _smooth_clip(x):
  return x / np.sqrt(1 + (x / 3) ** 2)


def _config(encoding):
  return config_lib.load_config(None, [
      'task=regression', 'data.label={name: y}',
      'data.features={numeric: [money, even, counts, sparse, constant], '
      f'log_scale: [counts], categorical: [], numeric_encoding: {encoding}}}'])


def _transform(config, root, tf1=True):
  """``preprocessing_fn`` over ROWS rows; the outputs by column in input
  order, and the written transform graph (a TF1 graph by default, as the
  pipeline's Transform writes it, force_tf_compat_v1)."""
  rows = [{'money': m, 'even': int(e), 'counts': c,
           'sparse': [] if s is None else [s], 'constant': k, 'y': float(i)}
          for i, (m, e, c, s, k) in enumerate(
              zip(MONEY, EVEN, COUNTS, SPARSE, CONSTANT))]
  spec = {name: tf.io.FixedLenFeature([], tf.float32)
          for name in ('money', 'counts', 'constant', 'y')}
  spec['even'] = tf.io.FixedLenFeature([], tf.int64)  # Integer columns too.
  spec['sparse'] = tf.io.VarLenFeature(tf.float32)
  metadata = dataset_metadata.DatasetMetadata.from_feature_spec(spec)
  fn = functools.partial(preprocessing.preprocessing_fn,
                         custom_config={'config': config.to_dict()})
  out_prefix = os.path.join(root, 'rows')
  graph = os.path.join(root, 'transform_graph')
  options = PipelineOptions(['--direct_running_mode=in_memory'])
  with beam.Pipeline(options=options) as p, tft_beam.Context(
      temp_dir=os.path.join(root, 'tft'), force_tf_compat_v1=tf1):
    (data, _), transform_fn = ((p | beam.Create(rows), metadata)
                               | tft_beam.AnalyzeAndTransformDataset(
                                   fn, output_record_batches=False))
    _ = (data
         | beam.Map(lambda row: json.dumps(
             {k: np.ravel(v).tolist()[0] for k, v in row.items()}))
         | beam.io.WriteToText(out_prefix, num_shards=1))
    _ = transform_fn | tft_beam.WriteTransformFn(graph)
    _ = metadata | tft_beam.WriteMetadata(
        os.path.join(graph, tft.TFTransformOutput.RAW_METADATA_DIR), p)
  with open(f'{out_prefix}-00000-of-00001', encoding='utf-8') as f:
    out = sorted((json.loads(line) for line in f), key=lambda r: r['y'])
  return ({k: np.array([r[k] for r in out]) for k in out[0]},
          tft.TFTransformOutput(graph))


@pytest.fixture(scope='module')
def auto(tmp_path_factory):
  return _transform(_config('auto'), str(tmp_path_factory.mktemp('auto')))


@pytest.fixture(scope='module')
def zscore(tmp_path_factory):
  return _transform(_config('zscore'), str(tmp_path_factory.mktemp('z')))


def _ranked(values, k, buckets=20):
  """The value tft.quantiles returns as boundary k of ``buckets`` on these
  small columns: the sorted value at rank k * n / buckets."""
  ordered = np.sort(values)
  return ordered[k * len(ordered) // buckets]


def test_robust_scaling_and_smooth_clip_by_hand(auto):
  out, _ = auto
  money = np.array(MONEY)
  median, iqr = _ranked(money, 10), _ranked(money, 15) - _ranked(money, 5)
  assert (median, iqr) == (11.0, 10.0)
  np.testing.assert_allclose(out['money_xf'],
                             _smooth_clip((money - median) / iqr), rtol=1e-5)


def test_an_outlier_no_longer_dominates(auto, zscore):
  robust, z = auto[0]['money_xf'], zscore[0]['money_xf']
  # Z-scored, the outlier sits 4 sigma out and squeezes the bulk of 19 rows
  # into a tenth of a unit; robust, every value is bounded by the clip and
  # the bulk keeps its spread.
  assert z[-1] > 4 and np.ptp(z[:-1]) < 0.1
  assert np.all(np.abs(robust) < preprocessing.CLIP)
  assert np.ptp(robust[:-1]) > 1.5
  assert robust[-1] == pytest.approx(3 * 98.9 / np.sqrt(9 + 98.9 ** 2),
                                     rel=1e-5)


def test_auto_keeps_the_z_score_for_a_well_behaved_column(auto):
  even = np.array(EVEN)
  np.testing.assert_allclose(auto[0]['even_xf'],
                             (even - even.mean()) / even.std(), rtol=1e-5)


def test_log_scale_still_forces_the_log(auto, zscore):
  logs = np.log1p(np.array(COUNTS))
  # zscore: the z-score of the log; auto: the log is heavy-tailed still
  # (1e6 is 14 in log units, the bulk within 3), so robust of the log.
  np.testing.assert_allclose(zscore[0]['counts_xf'],
                             (logs - logs.mean()) / logs.std(), rtol=1e-5)
  median, iqr = _ranked(logs, 10), _ranked(logs, 15) - _ranked(logs, 5)
  np.testing.assert_allclose(auto[0]['counts_xf'],
                             _smooth_clip((logs - median) / iqr), rtol=1e-5)


def test_missing_values_are_the_median_with_an_indicator(auto):
  out, _ = auto
  present = np.array([s is not None for s in SPARSE])
  kept = np.array([s for s in SPARSE if s is not None])
  median, iqr = _ranked(kept, 10), _ranked(kept, 15) - _ranked(kept, 5)
  np.testing.assert_allclose(out['sparse_xf'][present],
                             _smooth_clip((kept - median) / iqr), rtol=1e-5)
  assert np.all(out['sparse_xf'][~present] == 0)
  np.testing.assert_array_equal(out['sparse_missing_xf'],
                                (~present).astype(np.float32))


def test_auto_keeps_a_heavy_columns_z_score_as_a_second_input(auto, zscore):
  out, z = auto[0], zscore[0]
  # The clipped encoding loses how far out the tail lies; the companion
  # keeps it, and is zeros for a column that kept its z-score anyway.
  np.testing.assert_allclose(out['money_linear_xf'], z['money_xf'], rtol=1e-5)
  np.testing.assert_allclose(out['counts_linear_xf'], z['counts_xf'],
                             rtol=1e-5)
  assert np.all(out['even_linear_xf'] == 0)
  present = np.array([s is not None for s in SPARSE])
  np.testing.assert_allclose(out['sparse_linear_xf'][present],
                             z['sparse_xf'][present], rtol=1e-5)
  assert np.all(out['sparse_linear_xf'][~present] == 0)
  assert not any(k.endswith('_linear_xf') for k in z)


def test_the_model_takes_the_companion_of_heavy_columns_only(auto, zscore):
  features = _config('auto').data.features
  specs = model_lib.input_specs(
      auto[1], features, preprocessing.numeric_encodings(auto[1], features))
  names = [spec.name for spec in specs]
  assert names == ['money_xf', 'money_linear_xf', 'even_xf', 'counts_xf',
                   'counts_linear_xf', 'sparse_xf', 'sparse_linear_xf',
                   'sparse_missing_xf', 'constant_xf']
  # What a numeric embedding embeds: each column's value, not its
  # companions (the linear part, the missing-value indicator).
  assert [spec.name for spec in specs if spec.continuous] == [
      'money_xf', 'even_xf', 'counts_xf', 'sparse_xf', 'constant_xf']
  assert preprocessing.with_linear(
      preprocessing.numeric_encodings(zscore[1], features)) == set()


def test_a_constant_column_is_zeros(auto):
  assert np.all(auto[0]['constant_xf'] == 0)


def test_the_choice_is_read_back_from_transforms_graph(auto, zscore):
  features = _config('auto').data.features
  assert preprocessing.numeric_encodings(auto[1], features) == {
      'money': 'robust + zscore', 'even': 'zscore',
      'counts': 'robust + zscore of log', 'sparse': 'robust + zscore',
      'constant': 'constant'}
  assert preprocessing.numeric_encodings(zscore[1], features) == {
      'money': 'zscore', 'even': 'zscore', 'counts': 'zscore of log',
      'sparse': 'zscore', 'constant': 'constant'}


def test_each_output_needs_only_its_blocks_columns(tmp_path, monkeypatch):
  # The analyzers see all numeric columns stacked; an output must see only
  # its block's (preprocessing.ENCODING_BLOCK), or tf.Transform's loader
  # walks the whole graph once per output (193 s to load a 1,000-column
  # graph) and a subset of the features cannot be fed.
  monkeypatch.setattr(preprocessing, 'ENCODING_BLOCK', 2)
  out, graph = _transform(_config('auto'), str(tmp_path))
  fed = {'money': tf.constant(MONEY[:3]),  # The first block: money, even.
         'even': tf.constant([int(e) for e in EVEN[:3]], tf.int64)}
  got = graph.transform_features_layer()(fed)
  assert set(got) == {'money_xf', 'money_linear_xf', 'even_xf',
                      'even_linear_xf'}
  for name in got:
    np.testing.assert_allclose(np.ravel(got[name]), out[name][:3], rtol=1e-6)


def test_robust_everywhere_when_asked(tmp_path):
  # TF2 mode this time: the read-back works on either kind of graph.
  out, graph = _transform(_config('robust'), str(tmp_path), tf1=False)
  even = np.array(EVEN)
  median, iqr = _ranked(even, 10), _ranked(even, 15) - _ranked(even, 5)
  np.testing.assert_allclose(out['even_xf'],
                             _smooth_clip((even - median) / iqr), rtol=1e-5)
  assert preprocessing.numeric_encodings(
      graph, _config('robust').data.features)['even'] == 'robust'
  assert not any(k.endswith('_linear_xf') for k in out)


def test_unknown_numeric_encoding_is_a_config_error():
  with pytest.raises(config_lib.ConfigError, match='numeric_encoding'):
    config_lib.load_config(None, [
        'data.features={numeric: [a], numeric_encoding: quantile}'])


# --- Categorical: one-hot below the threshold, an embedding above it.

TASK = tasks.get('binary')
INFO = {'positive_rate': 0.5}


def _specs(features):
  """input_specs' decision for a small (12) and a large (500) vocabulary."""
  specs = [model_lib.InputSpec('x')]
  for name, tokens in (('small', 12), ('large', 500)):
    dim = model_lib.embedding_dim(tokens, features)
    specs.append(model_lib.InputSpec(
        name, num_tokens=tokens, embedding_dim=dim,
        embedding_l2=features.embedding_l2 if dim else 0.0,
        embedding_dropout=features.embedding_dropout if dim else 0.0))
  return specs


def test_embedding_width_follows_fast_ai_and_the_threshold():
  features = config_lib.FeaturesConfig()
  assert features.embedding_min_vocab == 64
  assert model_lib.embedding_dim(63, features) is None
  assert model_lib.embedding_dim(64, features) == 16
  assert model_lib.embedding_dim(
      100, config_lib.FeaturesConfig(embedding_max_dim=100)) == round(
          1.6 * 100 ** 0.56)
  assert model_lib.embedding_dim(
      10_000, config_lib.FeaturesConfig(embedding_min_vocab=0)) is None


def test_embedding_above_the_threshold_one_hot_below():
  model = model_lib.build_model(_specs(config_lib.FeaturesConfig()), (8,),
                                task=TASK, label_info=INFO)
  layers = {layer.name: layer for layer in model.layers}
  assert isinstance(layers['small_onehot'], keras.layers.CategoryEncoding)
  assert 'large_onehot' not in layers
  embedding = layers['large_embedding']
  assert isinstance(embedding, keras.layers.Embedding)
  assert embedding.input_dim == 500 and embedding.output_dim == 16
  assert isinstance(layers['large_embedding_dropout'], keras.layers.Dropout)
  # The first layer sees 1 + 12 + 16 inputs, not 1 + 12 + 500.
  assert layers['hidden_0'].kernel.shape[0] == 29
  # The embedding's own L2 penalty is among the model's losses.
  assert len(model.losses) == 1


def test_embedding_model_exports_and_serves(tmp_path):
  features = config_lib.FeaturesConfig()
  model = model_lib.build_model(_specs(features), (8,), task=TASK,
                                label_info=INFO)
  model.compile(optimizer='adam', loss='binary_crossentropy')
  rng = np.random.default_rng(0)
  n = 256
  x = {'x': rng.normal(size=(n, 1)).astype('float32'),
       'small': rng.integers(0, 12, size=(n, 1)),
       'large': rng.integers(0, 500, size=(n, 1))}
  y = (x['large'] % 2).astype('float32')
  model.fit(x, y, epochs=1, batch_size=64, verbose=0)
  directory = str(tmp_path / 'model')

  @tf.function(input_signature=[{
      'x': tf.TensorSpec([None, 1], tf.float32, name='x'),
      'small': tf.TensorSpec([None, 1], tf.int64, name='small'),
      'large': tf.TensorSpec([None, 1], tf.int64, name='large')}])
  def serve(features):
    return {'probability': model(features, training=False)}

  model.save(directory, save_format='tf',
             signatures={'serving_default': serve})
  loaded = tf.saved_model.load(directory)
  batch = {k: tf.constant(v[:5]) for k, v in x.items()}
  served = loaded.signatures['serving_default'](**batch)['probability']
  np.testing.assert_allclose(served.numpy(),
                             model(batch, training=False).numpy(), rtol=1e-5)
  assert np.all((served.numpy() > 0) & (served.numpy() < 1))


def test_input_encodings_for_the_report():
  specs = _specs(config_lib.FeaturesConfig())
  assert model_lib.input_encodings(specs) == {
      'small': {'encoding': 'one-hot', 'tokens': 12},
      'large': {'encoding': 'embedding', 'tokens': 500, 'dim': 16,
                'l2': 1e-4, 'dropout': 0.1}}


# --- Numeric: periodic embeddings (model.numeric_embedding).

PERIODIC = config_lib.PeriodicEmbeddingConfig(frequencies=16, sigma=1.0, dim=16)


def _wiggle(n, seed):
  """A label that flips eight times over x in [-1, 1]."""
  x = np.random.default_rng(seed).uniform(-1, 1, (n, 1)).astype('float32')
  return {'x': x}, (np.sin(2 * np.pi * 4 * x) > 0).astype('float32')


def _wiggle_accuracy(numeric_embedding):
  keras.utils.set_random_seed(0)
  model = model_lib.build_model(
      [model_lib.InputSpec('x', continuous=True)], (16,), task=TASK,
      label_info=INFO, numeric_embedding=numeric_embedding, seed=0)
  model.compile(optimizer=keras.optimizers.Adam(1e-2),
                loss='binary_crossentropy')
  x, y = _wiggle(2048, 1)
  model.fit(x, y, epochs=20, batch_size=64, verbose=0)
  x, y = _wiggle(1024, 2)
  return float(((model.predict(x, verbose=0) > 0.5) == y).mean())


def test_periodic_embeddings_learn_what_a_plain_input_cannot():
  # Measured: 0.96 held out with the embedding, 0.59 without (16 ReLUs fed
  # the raw value): a scalar the first layer can only use as a line.
  assert _wiggle_accuracy(PERIODIC) > 0.9
  assert _wiggle_accuracy(None) < 0.75


def test_periodic_embeddings_replace_continuous_inputs_only():
  specs = [model_lib.InputSpec('x', continuous=True),
           model_lib.InputSpec('x_missing'),
           model_lib.InputSpec('small', num_tokens=12)]
  model = model_lib.build_model(specs, (8,), task=TASK, label_info=INFO,
                                l2=1e-3, numeric_embedding=PERIODIC)
  layers = {layer.name: layer for layer in model.layers}
  periodic = layers['x_periodic']
  assert isinstance(periodic, model_lib.PeriodicEmbedding)
  assert periodic.coefficients.shape == (1, 16) and periodic.trainable
  assert layers['x_periodic_linear'].kernel.shape == (32, 16)
  assert 'x_missing_periodic' not in layers
  # The first layer sees 16 + 1 + 12 inputs.
  assert layers['hidden_0'].kernel.shape[0] == 29
  # The embedding's linear layer is penalized as the others are.
  assert len(model.losses) == 3
  plain = model_lib.build_model(specs, (8,), task=TASK, label_info=INFO)
  assert plain.get_layer('hidden_0').kernel.shape[0] == 14


def test_periodic_embedding_model_exports_and_serves(tmp_path):
  specs = [model_lib.InputSpec('x', continuous=True)]
  model = model_lib.build_model(specs, (8,), task=TASK, label_info=INFO,
                                numeric_embedding=PERIODIC)
  x, _ = _wiggle(16, 3)
  expected = model.predict(x, verbose=0)
  model.save(str(tmp_path), save_format='tf')
  serve = tf.saved_model.load(str(tmp_path)).signatures['serving_default']
  np.testing.assert_allclose(serve(x=tf.constant(x['x']))['probability'],
                             expected, rtol=1e-5)


@pytest.mark.parametrize('value, expected', [
    ('true', config_lib.PeriodicEmbeddingConfig()),
    ('false', None),
    ('{frequencies: 8, sigma: 0.5}',
     config_lib.PeriodicEmbeddingConfig(frequencies=8, sigma=0.5))])
def test_numeric_embedding_configuration(value, expected):
  cfg = config_lib.load_config(None, [f'model.numeric_embedding={value}'])
  assert cfg.model.numeric_embedding == expected
  # As the Trainer and Tuner receive it (custom_config).
  assert config_lib.from_dict(cfg.to_dict()) == cfg
  assert config_lib.load_config().model.numeric_embedding is None


def test_numeric_embedding_is_range_checked():
  with pytest.raises(config_lib.ConfigError, match='numeric_embedding'):
    config_lib.load_config(None, ['model.numeric_embedding={frequencies: 0}'])


def test_the_report_names_the_periodic_embedding():
  from components.trainer import run as run_lib  # pylint: disable=g-import-not-at-top
  from pipeline import report  # pylint: disable=g-import-not-at-top
  features = config_lib.FeaturesConfig(numeric=('a',))
  specs = [model_lib.InputSpec('a_xf', continuous=True)]

  def section(numeric_embedding):
    return report.encoding_section({'encoding': run_lib.feature_encodings(
        features, {'a': 'zscore'}, specs, numeric_embedding)})

  assert ('then a periodic embedding: 16 frequencies (initial sd 1), a '
          '16-wide ReLU layer') in section(PERIODIC)
  assert 'periodic' not in section(None)
