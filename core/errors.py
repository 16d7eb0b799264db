"""The two kinds of failure the command line reports without a traceback."""


class ConfigError(ValueError):
    """Bad user input: an unknown key, a wrong type, an out-of-range value, a bad file.
    The CLI exits with status 2 and writes nothing."""


class SimulationError(RuntimeError):
    """A run that cannot produce valid numbers (for example they became non-finite).
    The CLI exits with status 1 and writes nothing."""
