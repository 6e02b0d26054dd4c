"""The README holds: every image it shows (the UI pictures under docs/images, which
`pytest bangkok_pipeline_tests/test_ui.py --readme-screenshots docs/images` renews) and every
file it links exist in the repository, and every `bangkok-pipeline` command in its shell blocks
is one the CLI takes (its SQL examples run in cli/test_readme_queries.py)."""

import re
import shlex
from pathlib import Path

import pytest

from bangkok_pipeline.cli.main import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"
# `![alt](target)`, `[text](target)` (an optional "title" after the target is not part of it)
# and `<img src="target">`.
MARKDOWN_LINK = re.compile(r"(!?)\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_IMAGE = re.compile(r"<img\s[^>]*src=\"([^\"]+)\"")


def _local_links() -> list[tuple[bool, str]]:
    """(is an image, path) of every README link that is not a URL or an anchor."""
    text = README.read_text()
    links = [(bang == "!", target) for bang, target in MARKDOWN_LINK.findall(text)]
    links += [(True, target) for target in HTML_IMAGE.findall(text)]
    return [
        (image, target.split("#")[0])
        for image, target in links
        if not re.match(r"[a-z][a-z0-9+.-]*:", target) and not target.startswith("#")
    ]


def test_every_image_the_readme_shows_exists() -> None:
    images = [target for image, target in _local_links() if image]
    assert images, "the README shows no local image"
    missing = [target for target in images if not (README.parent / target).is_file()]
    assert not missing, missing


def test_every_file_the_readme_links_exists() -> None:
    files = [target for image, target in _local_links() if not image]
    missing = [target for target in files if not (README.parent / target).exists()]
    assert not missing, missing


def _readme_commands() -> list[list[str]]:
    """The arguments of every `bangkok-pipeline …` command in the README's shell blocks."""
    commands, fenced, lines = [], False, []
    for line in README.read_text().splitlines():
        if line.startswith("```"):
            fenced = line.strip() in ("```bash", "```sh")
        elif fenced:
            lines.append(line)
    for line in "\n".join(lines).replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True  # words end at blanks and at ; & | ( ) only
        words: list[str] = []
        for token in [*lexer, ";"]:
            if token not in (";", "&&", "||", "|", "(", ")", "&"):
                words.append(token)
                continue
            while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # VAR=value prefixes
                words.pop(0)
            if words and words[0] == "bangkok-pipeline":
                commands.append(words[1:])
            words = []
    return commands


def test_every_command_the_readme_shows_is_one_the_cli_takes() -> None:
    commands = _readme_commands()
    assert len(commands) >= 10, commands
    parser = build_parser()
    for arguments in commands:
        try:
            parsed, extra = parser.parse_known_args(arguments)
        except SystemExit:
            pytest.fail(f"the README shows `bangkok-pipeline {shlex.join(arguments)}`")
        assert not extra or getattr(parsed, "passthrough", False), arguments
