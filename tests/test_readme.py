"""Every command the README and the pages of docs/ show is run by a test, and each test says which:
``@pytest.mark.readme(command)``, the command exactly as the page writes it.

    python tests/test_readme.py      # each command with the tests that run it

A command is a line of a ```bash block (its comment dropped) or an inline code span that starts with snakemake,
python, python3, bash or tools/. The markers are read from the test files' source, so the check holds whichever
tests a run selects.
"""

import ast
import json
import re
import shlex
import subprocess
import sys
from itertools import takewhile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]  # every page a user reads
COMMAND = re.compile(r"(snakemake|python3?|bash|tools/)\b")
FENCE = re.compile(r"^ *```(\w*)\n(.*?)^ *```", flags=re.S | re.M)
FAST_TIER = 'python -m pytest -m "not workflow and not slurm and not browser"'
TEST_COMMAND = ("python3 -m venv .venv && . .venv/bin/activate && pip install -r requirements.txt && "
                "pip install --no-deps -r requirements-no-deps.txt && python -m pytest")


def all_pages() -> str:
    return "\n".join(page.read_text() for page in PAGES)


def readme_commands(text: str) -> list[str]:
    """The commands of a page's text in the order they first appear."""
    commands = []
    for language, body in FENCE.findall(text):
        if language == "bash":
            commands += [line for line in (re.split(r"\s#\s", raw)[0].strip() for raw in body.splitlines()) if line]
    for span in re.findall(r"`([^`]+)`", FENCE.sub("", text)):
        span = " ".join(span.split())  # a span may run over a line break
        if COMMAND.match(span):
            commands.append(span)
    return list(dict.fromkeys(commands))


def covering_tests() -> dict[str, list[str]]:
    """command -> the tests (``file::name``) marked ``@pytest.mark.readme(command)``."""
    covered: dict[str, list[str]] = {}
    for path in sorted((REPO / "tests").glob("test_*.py")):
        module = ast.parse(path.read_text())
        # a command may be a module-level string constant, named in the marker
        constants = {target.id: node.value for node in module.body if isinstance(node, ast.Assign)
                     for target in node.targets if isinstance(target, ast.Name)}
        for node in ast.walk(module):
            if not isinstance(node, ast.FunctionDef):
                continue
            for decorator in node.decorator_list:
                if isinstance(decorator, ast.Call) and ast.unparse(decorator.func) == "pytest.mark.readme":
                    for argument in decorator.args:
                        value = constants.get(argument.id) if isinstance(argument, ast.Name) else argument
                        covered.setdefault(ast.literal_eval(value), []).append(f"{path.name}::{node.name}")
    return covered


@pytest.mark.readme("python tests/test_readme.py")
def test_every_readme_command_is_run_by_a_test():
    commands, covered = readme_commands(all_pages()), covering_tests()
    assert len(commands) > 20 and len(PAGES) > 5
    missing = [command for command in commands if command not in covered]
    assert not missing, f"commands of the README or docs/ that no test runs (mark one with readme): {missing}"
    stale = sorted(set(covered) - set(commands))
    assert not stale, f"tests name commands that neither the README nor docs/ show: {stale}"
    listing = subprocess.run([sys.executable, str(REPO / "tests" / "test_readme.py")], capture_output=True, text=True,
                             check=True).stdout
    assert listing.count("\n    test_") >= len(commands) and "NO TEST" not in listing


def configfiles(command: str) -> list[str]:
    """The files a snakemake command's ``--configfile`` names (it takes one or more)."""
    words, named = command.split(), []
    for index, word in enumerate(words):
        if word == "--configfile":
            named += takewhile(lambda argument: not argument.startswith("-"), words[index + 1:])
    return named


def test_every_config_under_config_is_run_by_a_test():
    covered = {name for command in covering_tests() for name in configfiles(command)}
    assert configfiles("snakemake --configfile config/a.yaml config/b.yaml --cores 2") == ["config/a.yaml",
                                                                                          "config/b.yaml"]
    for path in sorted((REPO / "config").glob("*.yaml")):
        assert f"config/{path.name}" in covered, f"config/{path.name}: no test runs it"


def test_no_page_has_an_empty_code_block():
    for page in PAGES:
        blocks = FENCE.findall(page.read_text())
        assert all(body.strip() for _, body in blocks), page


def test_the_readme_is_short_and_its_links_resolve():
    """The README is a front page (what the project is, how to run it, a map of docs/); every relative link of every
    page names a file that exists, and a #fragment a heading of that file."""
    assert len(README.read_text().splitlines()) <= 250
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"\w+://", target):
                continue
            path, _, fragment = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            assert linked.exists(), f"{page.name}: link to {target}, which does not exist"
            if fragment and linked.suffix == ".md":
                headings = {heading_anchor(h) for h in re.findall(r"(?m)^#+ (.+)$", linked.read_text())}
                assert fragment in headings, f"{page.name}: link to {target}, no such heading in {linked.name}"


def heading_anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_no_page_or_comment_tells_the_projects_history_by_issue():
    """Users have no issue tracker: the why goes in a comment, the story in CHANGELOG.md."""
    sources = [*PAGES, *REPO.glob("latent_interp/**/*.py"), *REPO.glob("workflow/**/*.smk"), REPO / "Snakefile",
               *REPO.glob("workflow/scripts/*.py"), *REPO.glob("bench/**/*.py"), *REPO.glob("tools/*"),
               *REPO.glob("tests/*.py"), REPO / "config.yaml", *REPO.glob("config/*.yaml")]
    pattern = re.compile(r"\bissues? \d+", re.I)
    found = [f"{path.relative_to(REPO)}: {match.group(0)}" for path in sources if path.is_file()
             for match in pattern.finditer(path.read_text()) if "zarr-python issue" not in
             path.read_text()[max(0, match.start() - 12):match.end()]]
    assert not found, found


@pytest.mark.readme(TEST_COMMAND)
def test_ci_runs_the_readme_test_command():
    """CI's .ci/run installs what the tests need, then runs the README's test command as written."""
    assert TEST_COMMAND in readme_commands(README.read_text())
    assert TEST_COMMAND in (REPO / ".ci" / "run").read_text().splitlines()


# One process collects for every command: the test modules (torch, diffusers) are imported once, not per command.
COLLECT_EACH = """
import json, sys, pytest

class Selected:
    count = 0

    def pytest_collection_finish(self, session):
        self.count = len(session.items)

counts = []
for arguments in json.loads(sys.argv[1]):
    selected = Selected()
    code = pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", *arguments], plugins=[selected])
    counts.append([int(code), selected.count])
print("COUNTS " + json.dumps(counts))
"""


@pytest.mark.readme("python -m pytest tests/test_finetune.py -k kl_share",
                    "python -m pytest tests/test_vae_families.py", FAST_TIER)
def test_the_pytest_commands_of_the_pages_select_tests():
    commands = [command for command in readme_commands(all_pages())
                if command.startswith("python -m pytest ") and "&&" not in command]
    arguments = [shlex.split(command)[3:] for command in commands]
    listing = subprocess.run([sys.executable, "-c", COLLECT_EACH, json.dumps(arguments)], cwd=REPO,
                             capture_output=True, text=True)
    counts = json.loads(listing.stdout.rsplit("COUNTS ", 1)[-1]) if "COUNTS " in listing.stdout else []
    assert len(counts) == len(commands), listing.stdout[-2000:] + listing.stderr[-2000:]
    for command, (code, selected) in zip(commands, counts):
        assert code == 0 and selected, f"{command}: selects no test (exit {code})"


if __name__ == "__main__":
    covered = covering_tests()
    for command in readme_commands(all_pages()):
        print(f"{command}\n    " + "\n    ".join(covered.get(command, ["NO TEST"])))
