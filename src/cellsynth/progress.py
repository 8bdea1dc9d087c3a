"""Progress bars: one meaning of the ``progress`` argument everywhere in the package.

Every long-running function takes ``progress``:

- ``None`` (the default): show a bar when stderr is a terminal (an interactive session),
  none in logs, pipes, notebooks run as scripts and Dask workers;
- ``True``: always show it;
- ``False``: never.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def progress_bar(iterable: Iterable[Any] | None = None, *, progress: bool | None = None, **options: Any) -> Any:
    """A ``tqdm`` bar that follows the package's meaning of ``progress`` (see the module notes).

    Parameters
    ----------
    iterable
        What to iterate over; None for a bar updated by hand (``bar.update(n)``).
    progress
        None: only on a terminal; True: always; False: never.
    **options
        Passed to :class:`tqdm.auto.tqdm` (``total``, ``desc``, ``unit``, ...).

    Examples
    --------
    >>> sum(progress_bar(range(4), progress=False, desc="counting"))
    6
    """
    from tqdm.auto import tqdm

    return tqdm(iterable, disable=None if progress is None else not progress, **options)
