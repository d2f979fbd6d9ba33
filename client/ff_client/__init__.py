"""ff_client: ffctl and the importable API behind it, in three rooms and a hallway.

fit/      points, the approaches (one module each, behind one Protocol), bootstrap, outliers, backtest,
          table, report, plots and the analysis that ties them (no click, no kubernetes)
cluster/  the Kubernetes connection and what `ffctl status` shows (no click)
cli/      the click commands and terminal output (the only place that imports click)
executor.py (the local executor), sweeps.py and params.py (reading a sweep, counting its parameters),
text.py (plain-text formatting shared by cli/ and cluster/).
"""
