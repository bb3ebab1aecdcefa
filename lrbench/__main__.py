"""`python -m lrbench` and the `lrbench` command.

The CLI is imported inside `run`, so that Ctrl-C during its imports (torch, Optuna: seconds)
ends with one line and exit status 130, as it does once the CLI runs, not with a traceback.
"""

import os
import sys


def run() -> int:
    try:
        from lrbench.cli import main
    except KeyboardInterrupt:
        print("lrbench: interrupted while starting; nothing was done", file=sys.stderr)
        sys.stderr.flush()
        # Not `return 130`: an interrupt that landed inside code an extension ran through
        # Python's C API marks the interpreter, which then ends by SIGINT whatever we return.
        # Nothing is open yet that an immediate exit could leave half done.
        os._exit(130)
    return main()


if __name__ == "__main__":
    sys.exit(run())
