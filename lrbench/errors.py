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
    """Ctrl-C (SIGINT) or SIGTERM: the message says what is stored; the CLI exits 128 + the
    signal's number (130, 143)."""

    def __init__(self, message: str, exit_code: int = 130) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class OutOfMemory(LrbenchError):
    """The model or batch does not fit on the device."""


_OOM_SIGNS = ("out of memory", "can't allocate memory", "cannot allocate memory")


def out_of_memory(exc: BaseException, what: str = "training") -> OutOfMemory | None:
    """`exc` as an OutOfMemory naming what to change, or None if it is another error."""
    text = str(exc)
    is_oom = type(exc).__name__ == "OutOfMemoryError" or (
        isinstance(exc, (RuntimeError, MemoryError)) and any(s in text.lower() for s in _OOM_SIGNS)
    )
    if not is_oom:
        return None
    first = next((line for line in text.splitlines() if line.strip()), type(exc).__name__)
    return OutOfMemory(
        f"out of memory on the device while {what}: {first.strip()[:300]}. Use a smaller model "
        "(task options such as hidden), a smaller batch_size, or another --device"
    )
