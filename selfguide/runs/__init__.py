"""A run on disk: the run directory and its files (``RunDir``), atomic writes,
run names, the workspace of runs, a run's summary, progress events, the training set's
records, the rounds of a run's data (earlier rounds' files kept), and safe output paths
outside the workspace.

It does not run models or decide what a stage computes.
"""
