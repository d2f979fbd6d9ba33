"""The cluster half of ffctl: the Kubernetes connection (connection.py) and what `ffctl status` shows (views.py)."""
