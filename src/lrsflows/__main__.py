"""`python -m lrsflows` and the `lrsflows` command: signals are handled before anything heavy is imported."""

import signal

from .errors import Stopped, fail, signal_name


def run() -> None:
    """The entry point: a SIGTERM or SIGINT at any moment, even while torch and Hydra are imported, is one
    sentence and exit 128 + its number; cli.main then installs handlers that know the task."""

    def stop(number, frame):
        raise Stopped(number, f"stopped by {signal_name(number)} while starting; nothing was run — rerun the command.")

    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, stop)
    try:
        from .cli import main

        main()
    except Stopped as error:
        fail(str(error), error.exit_code)


if __name__ == "__main__":
    run()
