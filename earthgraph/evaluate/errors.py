"""The one error of an evaluation: bad input, or a setting that cannot be met.

Every step raises :class:`EvaluationError` with a message that names the input (forecast,
truth, climatology, observation store, checkpoint ...), its path or URL and the field at
fault; ``earthgraph.evaluate.cli.main`` prints it and exits with :data:`EXIT_CODE`, with no
traceback. The scoring and training libraries raise their own types (``ValueError`` and its
subclasses, ``MissingInputError``, ``CheckpointError``, ``DeviceUnavailableError``); each
step turns those it expects into an :class:`EvaluationError` with :func:`reported`, keeping
their message, so an unexpected error (a bug) still shows its traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

EXIT_CODE = 1
"""The exit status of an evaluation refused for bad input (argparse's own usage errors exit 2)."""


class EvaluationError(Exception):
    """Why an evaluation stopped, in words naming the input, its path and the field."""


@contextmanager
def reported(*kinds: type[BaseException], prefix: str = "") -> Iterator[None]:
    """Raise the errors of ``kinds`` (default ``ValueError``) raised inside as an
    :class:`EvaluationError` with their message (after ``prefix``)."""
    try:
        yield
    except EvaluationError:
        raise
    except kinds or (ValueError,) as err:
        raise EvaluationError(f"{prefix}{err}") from err
