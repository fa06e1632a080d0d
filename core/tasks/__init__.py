"""The tasks, by name: ``get(config.task)`` is the one object components ask.

Adding a task is one module here (a :class:`base.Task` subclass) plus its
line in ``TASKS``.
"""

from typing import Dict, List, Mapping, Optional, Sequence

from core.tasks import base, binary, multiclass, regression
from core.tasks.base import LabelError, Metric, QualityCheck, Task, TASK_JSON

TASKS: Mapping[str, Task] = {
    t.name: t for t in (binary.TASK, multiclass.TASK, regression.TASK)}


def write_model_task(model_dir: str, task: Task, label: str, info,
                     features: Optional[Mapping[str, Sequence[str]]] = None
                     ) -> None:
  """Records the task, the label's name, ``info`` and the raw ``features``
  by kind (``{'numeric': [...], 'categorical': [...]}``) inside an exported
  model (``TASK_JSON``): the gate, the pusher and the report read them."""
  import json  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  path = f'{model_dir.rstrip("/")}/{TASK_JSON}'
  tf.io.gfile.makedirs(path.rsplit('/', 1)[0])
  record = {'task': task.name, 'label': label, 'info': info}
  if features is not None:
    record['features'] = {kind: sorted(names)
                          for kind, names in sorted(features.items())}
  with tf.io.gfile.GFile(path, 'w') as f:
    json.dump(record, f, indent=2)


def _read_record(model_dir: str) -> dict:
  import json  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  path = f'{model_dir.rstrip("/")}/{TASK_JSON}'
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f'{path}: the model records no task (exported by '
                            'an older Trainer?)')
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


def read_model_task(model_dir: str):
  """(task, label name, info) recorded in an exported model."""
  recorded = _read_record(model_dir)
  return get(recorded['task']), recorded['label'], recorded['info']


def read_model_features(model_dir: str) -> Optional[Dict[str, List[str]]]:
  """The raw feature names by kind recorded in an exported model; None for
  a model exported before features were recorded."""
  return _read_record(model_dir).get('features')


def get(name: str) -> Task:
  """The task called ``name``; KeyError names the known ones."""
  try:
    return TASKS[name]
  except KeyError:
    raise KeyError(f'unknown task {name!r}; expected one of '
                   f'{", ".join(TASKS)}') from None


__all__ = ['LabelError', 'Metric', 'QualityCheck', 'Task', 'TASK_JSON',
           'TASKS', 'base', 'get', 'read_model_features', 'read_model_task',
           'write_model_task']
