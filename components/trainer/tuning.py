"""Optional search over regularization strengths: the Tuner's ``tuner_fn``.

KerasTuner's RandomSearch picks L1, L2, dropout and weight decay from the
grids in ``tuning``; the objective is the eval split's early-stopping metric
(the task's default when early stopping is off). The Tuner writes
the best values, and ``run.run_fn`` applies them over the configured
regularization (see ``run.regularization_with``).
"""

import dataclasses

import keras_tuner
import tensorflow_transform as tft
from tfx import v1 as tfx

from components.trainer import fit, inputs, model as model_lib
from components.trainer import run as run_lib
from core import config as config_lib
from core import tasks


def objective(cfg: config_lib.PipelineConfig) -> keras_tuner.Objective:
  """``val_<metric>`` of the early-stopping metric, in the task's direction."""
  task = tasks.get(cfg.task)
  es = cfg.regularization.early_stopping
  metric = es.metric if es is not None else task.default_monitor
  return keras_tuner.Objective(f'val_{metric}', task.monitor_mode(metric))


class RegularizationSearch(keras_tuner.RandomSearch):
  """RandomSearch whose trials are tf_keras models, fitted here.

  KerasTuner 1.4 binds itself to Keras 3 whenever that is installed (TF 2.16
  installs it) and rejects tf_keras models in its default trial loop, so each
  trial builds, fits and reports its best eval objective itself.
  """

  def run_trial(self, trial, *args, **kwargs):
    model = self.hypermodel.build(trial.hyperparameters)
    history = model.fit(*args, **kwargs)
    target = self.oracle.objective
    best = max if target.direction == 'max' else min
    return {target.name: best(history.history[target.name])}


def search_space(tuning: config_lib.TuningConfig) -> keras_tuner.HyperParameters:
  hp = keras_tuner.HyperParameters()
  for name in ('l1', 'l2', 'dropout', 'weight_decay'):
    hp.Choice(name, list(getattr(tuning, name)))
  return hp


def tuner_fn(fn_args: tfx.components.FnArgs) -> tfx.components.TunerFnResult:
  cfg = config_lib.from_dict(fn_args.custom_config['config'])
  task = tasks.get(cfg.task)
  tf_transform_output = tft.TFTransformOutput(fn_args.transform_graph_path)
  specs = model_lib.input_specs(tf_transform_output, cfg.data.features)

  def split(files):
    return inputs.read_split(
        files, fn_args.data_accessor, tf_transform_output, cfg.data.label.name,
        max_in_memory_bytes=cfg.model.in_memory_max_bytes)
  train, evaluation = split(fn_args.train_files), split(fn_args.eval_files)
  train_labels = inputs.labels(train)
  label_info = run_lib.task_label_info(task, cfg.data.label, train_labels,
                                       evaluation, tf_transform_output)
  batch_size = cfg.model.batch_size_for(len(train_labels))

  def build(hp: keras_tuner.HyperParameters):
    reg = dataclasses.replace(
        cfg.regularization, l1=hp.get('l1'), l2=hp.get('l2'),
        dropout=hp.get('dropout'), weight_decay=hp.get('weight_decay'))
    model = model_lib.build_model(
        specs, cfg.model.hidden_units, task=task, label_info=label_info,
        l1=reg.l1, l2=reg.l2, dropout=reg.dropout, max_norm=reg.max_norm,
        seed=cfg.model.seed)
    fit.compile_model(model, cfg.model, reg, task, label_info)
    return model

  tuner = RegularizationSearch(
      build, hyperparameters=search_space(cfg.tuning),
      objective=objective(cfg),
      max_trials=cfg.tuning.max_trials, seed=cfg.model.seed,
      directory=fn_args.working_dir, project_name='regularization')

  def dataset(split, shuffle):
    return inputs.make_dataset(split, batch_size, shuffle=shuffle,
                               seed=cfg.model.seed)

  return tfx.components.TunerFnResult(
      tuner=tuner,
      fit_kwargs={'x': dataset(train, True),
                  'validation_data': dataset(evaluation, False),
                  'epochs': cfg.tuning.epochs, 'verbose': 0})
