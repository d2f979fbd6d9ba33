"""The error hierarchy of ff_core: one base class, a few subclasses sorted by what the caller can do."""


class FlopsFitError(Exception):
    """Base of every error flops-fit raises on purpose; its message says what to change."""


class SpecError(FlopsFitError):
    """The sweep file or spec is invalid (permanent: fix the file)."""


class StoreError(FlopsFitError):
    """A result store cannot be reached, or holds something unreadable."""


class UsageError(FlopsFitError):
    """Options that contradict each other or do not apply to the input (ffctl: a usage error, exit 2)."""
