"""``python -m pipeline``: see pipeline/cli.py."""

import logging
import os
import sys

from pipeline.cli import main

code = main()
# Everything a run writes is on disk and closed by now (MLMD commits each
# update, the report and the log are written and closed). What is left is
# the interpreter's teardown of TensorFlow, Beam and gRPC, about 3 s after a
# run, which would only delay the exit code a scheduler waits for.
sys.stdout.flush()
sys.stderr.flush()
logging.shutdown()
os._exit(code)  # pylint: disable=protected-access
