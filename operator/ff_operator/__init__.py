"""ff_operator: reconciles ScalingSweep resources into one batch/v1 Job per experiment (pure core first)."""
