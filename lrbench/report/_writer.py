"""Writing a suite's report: load what the storage holds, lay out the sections, write the files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lrbench.errors import ConfigError
from lrbench.report._data import load_suite_data
from lrbench.report._document import Document
from lrbench.report._sections import report_sections

REPORTS_DIR = Path("reports")


def shown_storage(url: Any) -> str:
    """The storage as a report names it: an SQLite file relative to the working folder (or by
    its name alone when outside it: a report is shared, the machine's folders are not), any
    other URL without its password."""
    if not isinstance(url, str):
        return type(url).__name__
    prefix = "sqlite:///"
    if url.startswith(prefix):
        path = Path(url[len(prefix) :])
        if path.is_absolute():
            try:
                path = path.resolve().relative_to(Path.cwd().resolve())
            except ValueError:
                path = Path(path.name)
        return prefix + path.as_posix()
    import sqlalchemy.engine

    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy reads: say nothing of it but its scheme
        return url.split("://", 1)[0] + "://…"


def _suite_name(suite: str) -> str:
    if suite.endswith(".toml"):
        from lrbench.running import load_suite

        return load_suite(suite).name
    return suite


def make_report(
    suite: str, storage: str | Any | None = None, out: str | Path | None = None
) -> Path:
    """Write the comparison report of `suite` (a suite name) from `storage` (default
    `sqlite:///runs/<suite>.db`) into `out` (default `reports/<suite>/`); return `report.md`'s path.
    `report.html`, `runs.csv` and the PNG figures are written beside it.

    >>> import pathlib, tempfile, lrbench
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (tmp / "one.toml").write_text('''
    ... [suite]
    ... budget_epochs = 3
    ... [tasks.bowl]
    ... task = "functions"
    ... epochs_per_trial = 3
    ... target = 0.01
    ... [[strategies]]
    ... name = "fixed"
    ... ''')
    >>> url = lrbench.run_suite(tmp / "one.toml", storage=f"sqlite:///{tmp}/one.db",
    ...                         progress=False)
    >>> path = lrbench.make_report("one", url, tmp / "report")
    >>> path.name, sorted({p.suffix for p in path.parent.iterdir()})
    ('report.md', ['.csv', '.html', '.md', '.png'])
    """
    return write_report(suite, storage, out)[0]


def write_report(
    suite: str, storage: str | Any | None = None, out: str | Path | None = None
) -> tuple[Path, list[Path]]:
    """`make_report`, returning also every file written (md, html, csv, PNGs)."""
    from lrbench.storage import default_storage_url

    suite = _suite_name(str(suite))
    url = storage if storage is not None else default_storage_url(suite)
    data = load_suite_data(url, suite)
    if data is None:
        where = url if isinstance(url, str) else type(url).__name__
        raise ConfigError(
            f"storage {where!r} holds no run of suite {suite!r} (no study named '{suite}/…'); "
            "run it first with `lrbench run`, or give the --storage it was run into"
        )
    out = Path(out) if out is not None else REPORTS_DIR / suite
    _make_report_folder(out)
    data.results.to_csv(out / "runs.csv", index=False)

    doc = Document(out)
    report_sections(doc, suite, shown_storage(url), data)
    md = out / "report.md"
    md.write_text(doc.markdown(), encoding="utf-8")
    (out / "report.html").write_text(doc.html(f"lrbench report: {suite}"), encoding="utf-8")
    return md, [md, out / "report.html", out / "runs.csv", *doc.figures]


def _make_report_folder(out: Path) -> None:
    """The report's folder, created with its parents (a report is a new folder to fill)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: not a folder (a file of that name exists); name a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--out {out}: cannot create the folder: {e.strerror}") from None
