"""lrbench.report: the comparison report of a real (tiny) suite run, written from its storage."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import math
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import scipy.stats

from lrbench.cli import add_report_parser
from lrbench.errors import ConfigError
from lrbench.report import load_results, load_runs, make_report, markdown_table, rank_tests
from lrbench.report._data import chosen_schedule
from lrbench.report._figures import replayed_schedule
from lrbench.report._formatting import fmt_p
from lrbench.report._stats import paired_value_differences
from lrbench.storage.records import record_attrs
from lrbench.strategies import GROUPS, STRATEGY_GROUPS

# The suite and its once-per-session run live in test_results.py (loaded by path so that this
# works in any pytest import mode; the run itself is cached in the session's temp folder).
_spec = importlib.util.spec_from_file_location(
    "_lrbench_results_suite", Path(__file__).with_name("test_results.py")
)
_suite = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_suite)


@pytest.fixture(scope="module")
def storage(tmp_path_factory) -> str:
    return _suite.suite_storage(tmp_path_factory)


@pytest.fixture(scope="module")
def report(storage, tmp_path_factory):
    """The report written once through the CLI subcommand, into the default reports/<suite>/."""
    cwd = tmp_path_factory.mktemp("report")
    parser = argparse.ArgumentParser()
    add_report_parser(parser.add_subparsers())
    args = parser.parse_args(["report", "rtest", "--storage", storage])
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(printed):
        mp.chdir(cwd)
        assert args.func(args) == 0
    paths = [cwd / line.removeprefix("wrote ") for line in printed.getvalue().splitlines()]
    return cwd / "reports" / "rtest" / "report.md", paths


def _section(md_text: str, task: str) -> str:
    start = md_text.index(f"## Task `{task}`")
    end = md_text.find("\n## ", start + 1)
    return md_text[start : end if end >= 0 else None]


def _table_after(text: str, heading: str) -> list[str]:
    """The body rows of the first Markdown table after `heading`."""
    rest = text[text.index(heading) :]
    block = []
    for ln in rest.splitlines()[1:]:
        if ln.startswith("|"):
            block.append(ln)
        elif block:
            break
    assert block, f"no table after {heading!r}"
    return block[2:]  # header and separator


def test_report_files_exist(report, storage):
    md, paths = report  # the paths the CLI printed
    out = md.parent
    assert md.name == "report.md" and md.exists() and paths[0] == md
    assert all(p.exists() for p in paths)
    html = (out / "report.html").read_text()
    pngs = sorted(out.glob("*.png"))
    assert {p.name for p in paths} == {
        "report.md",
        "report.html",
        "runs.csv",
        *(p.name for p in pngs),
    }
    names = {p.name for p in pngs}
    for task in ("digits", "functions"):
        for kind in ("anytime", "epochs_to_target", "lr_scatter", "range_test", "schedules"):
            assert f"{task}_{kind}.png" in names
    assert "functions_tolerance.png" in names and "digits_tolerance.png" not in names
    for p in pngs:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The HTML page loads the PNG files beside it: every figure once, none embedded.
    assert sorted(re.findall(r'<img [^>]*src="([^"]+\.png)"', html)) == sorted(names)
    assert "base64" not in html
    text = md.read_text()
    for p in pngs:
        assert f"]({p.name})" in text
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == len(load_results(storage, "rtest"))
    assert {
        "epochs_to_target",
        "test",
        "best_val",
        "chosen_lr",
        "total_epochs",
        "wall_seconds",
    } <= set(runs.columns)


def test_strategies_table_one_row_per_strategy(report, storage):
    text = report[0].read_text()
    results = load_results(storage, "rtest")
    for task in ("digits", "functions"):
        section = _section(text, task)
        rows = _table_after(section, "### Strategies")
        strategies = [r.split("|")[2].strip() for r in rows]
        assert sorted(strategies) == sorted(set(results[results.task == task].strategy))
        for r in rows:
            assert r.strip().endswith("| 3 |")  # seeds behind each row
    # Units, splits, budget, seeds and the device are stated.
    assert "fraction correct" in text and "function value" in text
    assert "**Validation**" in text and "**Test**" in text
    assert "Budget per run: 4 epochs" in text and "Budget per run: 6 epochs" in text
    assert "device: cpu" in text


def test_strategies_by_group_then_by_median_epochs_to_target(report, storage):
    results = load_results(storage, "rtest")
    section = _section(report[0].read_text(), "digits")
    rows = _table_after(section, "### Strategies")
    by_group: dict[str, list[float]] = {}
    for r in rows:
        group, strategy = (c.strip() for c in r.split("|")[1:3])
        assert group == STRATEGY_GROUPS[strategy]
        by_group.setdefault(group, []).append(
            results[
                (results.task == "digits") & (results.strategy == strategy)
            ].epochs_to_target.median()
        )
    assert list(by_group) == [g for g in GROUPS if g in by_group] == ["search", "heuristic"]
    assert all(medians == sorted(medians) for medians in by_group.values())


def test_summary_names_the_fewest_epochs_strategy(report, storage):
    results = load_results(storage, "rtest")
    rows = _table_after(report[0].read_text(), "## Summary")
    assert [r.split("|")[1].strip() for r in rows] == ["digits", "functions"]
    for row in rows:
        task, winner = row.split("|")[1].strip(), row.split("|")[6].strip()
        runs = results[results.task == task]
        medians = runs.groupby("strategy").epochs_to_target.median()
        reached = runs.groupby("strategy").reached.sum()
        if math.isfinite(medians.min()):
            assert medians[winner] == medians.min()
        else:  # no strategy reached the target in half its runs: the most successful is named
            most = re.fullmatch(r"none in half its runs \(most often: (.+), (\d)/3\)", winner)
            assert most, winner
            assert reached[most[1]] == int(most[2]) == reached.max() > 0


def test_rank_tests_with_three_seeds(report, storage):
    text = report[0].read_text()
    functions = _section(text, "functions")  # three strategies: Friedman and Wilcoxon
    assert "Friedman test (`scipy.stats.friedmanchisquare`" in functions
    assert "χ² =" in functions
    assert "Pairwise Wilcoxon signed-rank tests" in functions
    assert len(_table_after(functions, "Pairwise Wilcoxon")) == 3  # 3 pairs
    digits = _section(text, "digits")  # two strategies: Wilcoxon only
    assert "Friedman test: needs ≥ 3 strategies" in digits
    assert len(_table_after(digits, "Pairwise Wilcoxon")) == 1


def test_rank_tests_match_an_independent_computation(storage):
    results = load_results(storage, "rtest")
    functions = results[results.task == "functions"]
    few = rank_tests(functions[functions.seed < 2])
    assert few["reason"] == "needs ≥ 3 seeds completed by every strategy (have 2)"
    res = rank_tests(functions)
    # The same numbers another way: seeds x strategies, unreached = 2 x budget, pandas' ranks
    # (ties share the mean rank), the Friedman statistic by its formula with the tie correction.
    wide = functions.pivot(index="seed", columns="strategy", values="epochs_to_target")
    wide = wide[res["strategies"]].replace(math.inf, 2 * functions.budget_epochs.max())
    ranks = wide.rank(axis=1)
    assert res["mean_ranks"] == pytest.approx(ranks.mean().to_dict())
    n, k = ranks.shape
    chi2 = 12 / (n * k * (k + 1)) * (ranks.sum() ** 2).sum() - 3 * n * (k + 1)
    ties = sum(t**3 - t for _, row in ranks.iterrows() for t in row.value_counts())
    chi2 /= 1 - ties / (n * (k**3 - k))
    assert res["friedman"]["statistic"] == pytest.approx(chi2)
    assert res["friedman"]["pvalue"] == pytest.approx(scipy.stats.chi2.sf(chi2, k - 1))


def test_report_states_the_rank_test_numbers(report, storage):
    results = load_results(storage, "rtest")
    res = rank_tests(results[results.task == "functions"])
    section = _section(report[0].read_text(), "functions")
    rows = _table_after(section, "Strategies are ranked within each seed")
    by_rank = sorted(res["mean_ranks"].items(), key=lambda kv: kv[1])
    assert rows == [f"| {s} | {r:.2f} |" for s, r in by_rank]
    fr = res["friedman"]
    assert f"χ² = {fr['statistic']:.3f}, p = {fmt_p(fr['pvalue'])}." in section
    holm_column = [r.split("|")[-2].strip() for r in _table_after(section, "Pairwise Wilcoxon")]
    assert holm_column == [fmt_p(p) for p in res["wilcoxon"]["pvalue_holm"]]


def test_tolerance_section_only_with_two_optimizers(report):
    text = report[0].read_text()
    functions = _section(text, "functions")
    assert "### Optimizer tolerance" in functions
    rows = _table_after(functions, "### Optimizer tolerance")
    assert sorted(r.split("|")[1].strip() for r in rows) == ["adam", "sgd"]
    assert "### Optimizer tolerance" not in _section(text, "digits")


def test_replayed_schedules_match_the_recorded_rates(storage):
    """The schedules figure rebuilds each chosen trial's torch scheduler; its end-of-epoch rates are the
    ones the engine recorded."""
    checked = 0
    for run in load_runs(storage, "rtest"):
        chosen = chosen_schedule(run)
        if chosen is None or not record_attrs(chosen.trial.user_attrs).get("history"):
            continue
        spe = chosen.steps_per_epoch
        x, rates = replayed_schedule(chosen, spe)
        assert len(x) == len(rates) == chosen.steps + 1
        assert x[spe] == 1.0 and x[-1] == chosen.steps / spe
        for rec in record_attrs(chosen.trial.user_attrs)["history"]:
            assert rates[rec["steps"]] == pytest.approx(rec["lr"], rel=1e-9)
        checked += 1
    assert checked >= 10


def test_missing_storage_or_suite_is_a_config_error(storage, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="no such file"):
        make_report("rtest")  # default storage runs/rtest.db does not exist
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    with pytest.raises(ConfigError, match="no run of suite 'other'"):
        make_report("other", storage=storage)
    from lrbench.cli import main

    assert main(["report", "other", "--storage", storage]) == 2


def test_markdown_table_escapes_and_blanks():
    df = pd.DataFrame({"a": ["x|y", None], "b": [1.5, math.nan]})
    assert markdown_table(df).splitlines() == [
        "| a | b |",
        "| --- | --- |",
        "| x\\|y | 1.5 |",
        "|  |  |",
    ]


def test_paired_differences_table_states_the_computed_pairs(report, storage):
    results = load_results(storage, "rtest")
    for task in results.task.unique():
        of_task = results[results.task == task]
        pairs = paired_value_differences(of_task, str(of_task.iloc[0]["direction"]))
        section = _section(report[0].read_text(), task)
        if pairs is None:
            assert "### Paired differences" not in section
            continue
        rows = _table_after(section, "### Paired differences")
        assert [r.split("|")[1].strip() for r in rows] == [
            f"{p.first} − {p.second}" for p in pairs.itertuples()
        ]
        assert [r.split("|")[3].strip() for r in rows] == [
            f"{p.mean:+.2f} ({p.ci_low:+.2f} to {p.ci_high:+.2f})" for p in pairs.itertuples()
        ]


def test_planned_comparisons_table_states_the_computed_answers(report, storage):
    from lrbench.report._planned import planned_comparisons

    results = load_results(storage, "rtest")
    text = report[0].read_text()
    for task in results.task.unique():
        planned = planned_comparisons(results[results.task == task])
        section = _section(text, task)
        assert "### Planned comparisons" in section
        if planned is None:
            assert "No planned comparisons" in section
            continue
        rows = _table_after(section, "### Planned comparisons")
        t = planned.comparisons
        assert [r.split("|")[1].strip() for r in rows] == list(t["strategy"])
        assert [r.split("|")[-3].strip() for r in rows] == [fmt_p(p) for p in t["p_holm"]]
        assert [r.split("|")[-2].strip() for r in rows] == list(t["verdict"])
        assert f"Control: `{planned.control}`; best: `{planned.best}`" in section


def test_the_table_of_contents_links_every_section_in_both_renderings(report):
    md = report[0]
    html = (md.parent / "report.html").read_text()
    ids = re.findall(r'<h[23] id="([^"]+)"', html)
    links = re.findall(r'<nav class="toc">.*?</nav>', html, re.S)[0]
    assert re.findall(r'href="#([^"]+)"', links) == ids and len(ids) == len(set(ids))
    assert {"summary", "task-digits", "task-functions", "planned-comparisons"} <= set(ids)
    text = md.read_text()
    assert re.findall(r"\]\(#([^)]+)\)", text) == ids  # the Markdown's links, the same anchors


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _rendered_dom(page: Path) -> str:
    """The page's DOM after a real browser loaded it (headless Chromium, images included)."""
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=20000"]
        + ["--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: chromium)")
def test_report_html_loads_every_figure_and_link_in_a_real_browser(report, tmp_path):
    out = report[0].parent
    pngs = sorted(p.name for p in out.glob("*.png"))
    dom = _rendered_dom(out / "report.html")
    images = re.findall(r"<img [^>]*>", dom)
    assert sorted(re.search(r'src="([^"]+)"', i).group(1) for i in images) == pngs
    assert not [i for i in images if 'class="missing"' in i]  # every figure file loaded
    ids = set(re.findall(r'\bid="([^"]+)"', dom))
    assert set(re.findall(r'href="#([^"]+)"', dom)) <= ids  # every in-page link has its target
    # The check can fail: the same page with one figure file gone marks exactly that one.
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / pngs[0]).unlink()
    broken = re.findall(r"<img [^>]*>", _rendered_dom(copy / "report.html"))
    assert [re.search(r'src="([^"]+)"', i).group(1) for i in broken if 'class="missing"' in i] == [
        pngs[0]
    ]


def test_a_report_names_its_storage_without_the_machines_folders_or_a_password(
    tmp_path, monkeypatch
):
    from lrbench.report._writer import shown_storage

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    assert shown_storage(f"sqlite:///{tmp_path}/runs/quick.db") == "sqlite:///runs/quick.db"
    assert shown_storage("sqlite:///runs/quick.db") == "sqlite:///runs/quick.db"
    assert shown_storage("sqlite:////elsewhere/deep/x.db") == "sqlite:///x.db"
    shown = shown_storage("postgresql://lrbench:secret@db.example:5432/runs")
    assert "secret" not in shown and "db.example:5432/runs" in shown
