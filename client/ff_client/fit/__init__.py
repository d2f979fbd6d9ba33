"""Fitting: points in; the approaches, bootstrap intervals, outliers, backtest, table, report and plots out.

No click and no Kubernetes here: notebooks and the CLI both call ff_client.fit.analysis.
"""
