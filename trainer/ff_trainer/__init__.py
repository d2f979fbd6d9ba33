"""ff_trainer: runs one experiment of a sweep (python -m ff_trainer, or under torchrun)."""
