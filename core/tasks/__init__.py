"""The tasks, by name: ``get(config.task)`` is the one object components ask.

Adding a task is one module here (a :class:`base.Task` subclass) plus its
line in ``TASKS``.
"""

from typing import Mapping

from core.tasks import base, binary, multiclass, regression
from core.tasks.base import LabelError, Metric, QualityCheck, Task, TASK_JSON

TASKS: Mapping[str, Task] = {
    t.name: t for t in (binary.TASK, multiclass.TASK, regression.TASK)}


def write_model_task(model_dir: str, task: Task, label: str, info) -> None:
  """Records the task, the label's name and ``info`` inside an exported
  model (``TASK_JSON``): the gate, the pusher and the report read them."""
  import json  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  path = f'{model_dir.rstrip("/")}/{TASK_JSON}'
  tf.io.gfile.makedirs(path.rsplit('/', 1)[0])
  with tf.io.gfile.GFile(path, 'w') as f:
    json.dump({'task': task.name, 'label': label, 'info': info}, f, indent=2)


def read_model_task(model_dir: str):
  """(task, label name, info) recorded in an exported model."""
  import json  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  path = f'{model_dir.rstrip("/")}/{TASK_JSON}'
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f'{path}: the model records no task (exported by '
                            'an older Trainer?)')
  with tf.io.gfile.GFile(path) as f:
    recorded = json.load(f)
  return get(recorded['task']), recorded['label'], recorded['info']


def get(name: str) -> Task:
  """The task called ``name``; KeyError names the known ones."""
  try:
    return TASKS[name]
  except KeyError:
    raise KeyError(f'unknown task {name!r}; expected one of '
                   f'{", ".join(TASKS)}') from None


__all__ = ['LabelError', 'Metric', 'QualityCheck', 'Task', 'TASK_JSON',
           'TASKS', 'base', 'get', 'read_model_task', 'write_model_task']
