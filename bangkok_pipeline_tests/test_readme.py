"""The README's local links hold: every image it shows (the UI pictures under docs/images, which
`pytest bangkok_pipeline_tests/test_ui.py --readme-screenshots docs/images` renews) and every
file it links exist in the repository."""

import re
from pathlib import Path

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
