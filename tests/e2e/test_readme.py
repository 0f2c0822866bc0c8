"""The README and docs/ stay true: every command they show composes, every link resolves.

Each `python train.py ...` and `cnnlab <verb> ...` line in a code block of README.md or
docs/*.md is checked the way the command itself would read it, without training: the train
overrides are composed with the train config (a `-m` sweep composes its first value), a
verb's arguments go through the verb's own parser, and the keys a verb hands back to the
run config must be keys of the train config. `<placeholders>` stand for a value.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from cnnlab.__main__ import VERBS
from cnnlab.config import compose_config
from cnnlab.paths import REPO_ROOT
from cnnlab.verbs import fetch
from cnnlab.verbs.cli import config_keys, parse

README = REPO_ROOT / "README.md"
PAGES = [README, *sorted((REPO_ROOT / "docs").glob("*.md"))]
CODE_BLOCK = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
PLACEHOLDER = re.compile(r"<[^<>\s][^<>]*>")
LINK = re.compile(r"\]\(([^)\s]+)\)")
MULTIRUN_FLAGS = {"-m", "--multirun"}
# How each verb's main() calls `cnnlab.verbs.cli.parse` (train, inspect and fetch do not).
PARSE_OPTIONS = {
    "describe": {},
    "evaluate": {"run_overrides": True},
    "predict": {"run_overrides": True},
    "export": {"run_overrides": True},
    "report": {"positional": True},
    "tune": {"run_overrides": True},
    "study": {},
    "search": {"run_overrides": True},
}


def commands(page: Path) -> list[str]:
    """Command lines in the page's code blocks (continuations joined, `# comments` kept
    for shlex to drop), those that start with `python train.py` or `cnnlab`."""
    found = []
    for block in CODE_BLOCK.findall(page.read_text()):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            if line.startswith(("python train.py", "cnnlab ")):
                found.append(line)
    return found


def arguments(command: str) -> list[str]:
    """The command's arguments as the shell passes them, placeholders filled in."""
    filled = PLACEHOLDER.sub("placeholder", command)
    return shlex.split(filled, comments=True)


def first_of_sweeps(args: list[str]) -> list[str]:
    """Overrides of one job of a `-m` sweep: each comma sweep at its first value."""
    overrides = [a for a in args if a not in MULTIRUN_FLAGS]
    single = []
    for override in OverridesParser.create().parse_overrides(overrides):
        if override.is_sweep_override():
            first = next(iter(override.sweep_string_iterator()))
            single.append(f"{override.get_key_element()}={first}")
        else:
            single.append(override.input_line)
    return single


CASES = [
    pytest.param(page, command, id=f"{page.name}: {command[:70]}")
    for page in PAGES
    for command in commands(page)
]


def test_the_readme_shows_the_commands_a_user_needs() -> None:
    text = README.read_text()
    for needed in ("make train", "make test", "make test-fast", "python train.py", "cnnlab "):
        assert needed in text, needed
    assert len(commands(README)) >= 10
    assert len(text.splitlines()) <= 250


@pytest.mark.parametrize(("page", "command"), CASES)
def test_each_command_composes(page: Path, command: str) -> None:
    args = arguments(command)
    if args[:2] == ["python", "train.py"]:
        compose_config("train", first_of_sweeps(args[2:]))
        return
    verb, rest = args[1], args[2:]
    assert verb in VERBS, f"{command}: unknown verb {verb!r}"
    if verb in ("train", "inspect"):
        compose_config(verb, first_of_sweeps(rest))
    elif verb == "fetch":  # argparse: one dataset, optionally --data-dir <dir>
        if "--data-dir" in rest:
            at = rest.index("--data-dir")
            rest = rest[:at] + rest[at + 2 :]
        assert len(rest) == 1 and rest[0] in fetch.FETCHERS, f"{command}: cnnlab fetch --help"
    else:
        parsed = parse(verb, rest, **PARSE_OPTIONS[verb])
        run_keys = config_keys("train")
        for override in parsed.run_overrides:
            key = override.key_or_group.split(".")[0]
            assert key in run_keys, f"{command}: {key!r} is an option of neither {verb} nor a run"


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = CODE_BLOCK.sub("", page.read_text())
    return {slug(m) for m in re.findall(r"^#+ (.+)$", text, re.MULTILINE)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_local_link_resolves(page: Path) -> None:
    for target in LINK.findall(CODE_BLOCK.sub("", page.read_text())):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.is_file(), f"{page.name}: {target} does not exist"
        if anchor and linked.suffix == ".md":
            assert anchor in anchors(linked), f"{page.name}: no heading for #{anchor}"


def test_the_readme_links_every_docs_page() -> None:
    linked = {t.partition("#")[0] for t in LINK.findall(README.read_text())}
    for page in PAGES[1:]:
        assert f"docs/{page.name}" in linked, f"README does not link docs/{page.name}"
