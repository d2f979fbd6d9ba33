"""ff_plugins: the built-in plugins (GPT, byte-level text data, losses); each satisfies a trainer Protocol."""
