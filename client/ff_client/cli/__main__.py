"""`python -m ff_client.cli`: the same as `ffctl`."""

from ff_client.cli import main

main()
