"""Progress bars for the ``progress(done_rows, total_rows)`` callbacks of the API, drawn by tqdm.

``tqdm.auto`` draws a widget in a notebook and a text bar on a terminal.
"""

from tqdm.auto import tqdm


class RowProgress:
    """A ``progress(done_rows, total_rows)`` callback that draws a tqdm bar.

    ``total_rows`` may change between calls (the generator's is an estimate until its last call);
    the bar closes when ``done_rows`` reaches it.  Use it as a context manager, so that it is
    closed on errors too.

    Parameters
    ----------
    desc : str, optional
        Label in front of the bar.
    quiet : bool, optional
        Draw nothing (``--quiet``).
    terminal_only : bool, optional
        Draw only when the output is a terminal (default); False draws on any stream.
    file : file-like, optional
        Where to draw (default stderr).
    """

    def __init__(self, desc=None, *, quiet=False, terminal_only=True, file=None):
        # None: tqdm's own is-a-terminal test
        self._options = {"desc": desc, "unit": " rows", "unit_scale": True, "file": file,
                         "disable": True if quiet else (None if terminal_only else False)}
        self._bar = None  # made at the first call: an error before any progress draws no bar

    def __call__(self, done, total):
        if self._bar is None:
            self._bar = tqdm(total=total, **self._options)
        elif total != self._bar.total:
            self._bar.total = total
        self._bar.update(done - self._bar.n)
        if done >= total:
            self._bar.close()

    def close(self):
        if self._bar is not None:
            self._bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
