"""Optional search over regularization strengths: the Tuner's ``tuner_fn``.

KerasTuner's RandomSearch picks L1, L2, dropout and weight decay from the
grids in ``tuning``; the objective is the eval split's AUC. The Tuner writes
the best values, and ``run.run_fn`` applies them over the configured
regularization (see ``run.regularization_with``).
"""

import dataclasses

import keras_tuner
import tensorflow_transform as tft
from tfx import v1 as tfx

from components.trainer import fit, inputs, model as model_lib
from pipeline import config as config_lib

OBJECTIVE = 'val_auc'


class RegularizationSearch(keras_tuner.RandomSearch):
  """RandomSearch whose trials are tf_keras models, fitted here.

  KerasTuner 1.4 binds itself to Keras 3 whenever that is installed (TF 2.16
  installs it) and rejects tf_keras models in its default trial loop, so each
  trial builds, fits and reports its best eval AUC itself.
  """

  def run_trial(self, trial, *args, **kwargs):
    model = self.hypermodel.build(trial.hyperparameters)
    history = model.fit(*args, **kwargs)
    return {OBJECTIVE: max(history.history[OBJECTIVE])}


def search_space(tuning: config_lib.TuningConfig) -> keras_tuner.HyperParameters:
  hp = keras_tuner.HyperParameters()
  for name in ('l1', 'l2', 'dropout', 'weight_decay'):
    hp.Choice(name, list(getattr(tuning, name)))
  return hp


def tuner_fn(fn_args: tfx.components.FnArgs) -> tfx.components.TunerFnResult:
  cfg = config_lib.from_dict(fn_args.custom_config['config'])
  tf_transform_output = tft.TFTransformOutput(fn_args.transform_graph_path)
  specs = model_lib.input_specs(tf_transform_output, cfg.data.features)

  def build(hp: keras_tuner.HyperParameters):
    reg = dataclasses.replace(
        cfg.regularization, l1=hp.get('l1'), l2=hp.get('l2'),
        dropout=hp.get('dropout'), weight_decay=hp.get('weight_decay'))
    model = model_lib.build_model(
        specs, cfg.model.hidden_units, l1=reg.l1, l2=reg.l2,
        dropout=reg.dropout, max_norm=reg.max_norm, seed=cfg.model.seed)
    fit.compile_model(model, cfg.model, reg)
    return model

  tuner = RegularizationSearch(
      build, hyperparameters=search_space(cfg.tuning),
      objective=keras_tuner.Objective(OBJECTIVE, 'max'),
      max_trials=cfg.tuning.max_trials, seed=cfg.model.seed,
      directory=fn_args.working_dir, project_name='regularization')

  def dataset(files, shuffle):
    split = inputs.read_split(
        files, fn_args.data_accessor, tf_transform_output, cfg.data.label.name,
        max_in_memory_bytes=cfg.model.in_memory_max_bytes)
    return inputs.make_dataset(split, cfg.model.batch_size, shuffle=shuffle,
                               seed=cfg.model.seed)

  return tfx.components.TunerFnResult(
      tuner=tuner,
      fit_kwargs={'x': dataset(fn_args.train_files, True),
                  'validation_data': dataset(fn_args.eval_files, False),
                  'epochs': cfg.tuning.epochs, 'verbose': 0})
