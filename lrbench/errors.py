"""Errors a user can fix: bad input, missing or corrupt data, broken configs.

The CLI prints their message and exits with status 2 instead of a traceback.
"""


class LrbenchError(Exception):
    """Base class: the message is meant for the user and names what to fix."""

    exit_code = 2


class DataNotFoundError(LrbenchError):
    """A dataset's files are nowhere in the searched places."""


class CorruptDataError(LrbenchError):
    """A dataset file exists but is truncated or malformed."""


class ConfigError(LrbenchError):
    """A suite file, option or command-line value is invalid."""


class Interrupted(LrbenchError):
    """Ctrl-C (SIGINT): the message says what is stored; the CLI exits 130."""

    exit_code = 130
