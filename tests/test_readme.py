"""The README's examples run as written."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_sampler_example_prints_what_the_readme_says():
    block = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    sampler_part = block.split("# The LR range test")[0]
    expected = re.search(r"print\(study.best_params\)\s+# (.*)", sampler_part).group(1)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(sampler_part, str(README), "exec"), {})
    assert out.getvalue().strip() == expected


def test_the_readme_names_only_commands_that_exist():
    from lrbench.cli import build_parser

    commands = set(build_parser()._subparsers._group_actions[0].choices)
    code = "\n".join(re.findall(r"```[a-z]*\n(.*?)```", README.read_text(), re.S))
    named = set(re.findall(r"(?:^|/)lrbench ([a-z-]+)", code, re.M))
    assert named and named <= commands
