"""StatisticsGen without Beam for inputs that fit on one machine.

``component.StatisticsGen`` swaps the stock executor for
``executor.Executor``, which writes the stock statistics artifact computed
by TFDV's generators as combiners (``compute``), with exact top-k and
uniques (``topk``); larger inputs and Beam-only options use the stock path.
"""
