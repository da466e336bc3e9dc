"""The docs as GitHub renders them: every relative link and image of the README, of
``docs/`` and of the configs' READMEs points at a file of the checkout, and every
``#anchor`` at a heading of its page; every page and picture of ``docs/`` is reachable
from the README; the README stays a landing page."""
import glob
import os.path as osp
import re

from .conftest import REPO

#: ``[text](target)`` and ``![alt](target "title")``
_LINK = re.compile(r'!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)')
_FENCE = re.compile(r'^(```|~~~).*?^\1', re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r'`[^`\n]*`')
_SCHEME = re.compile(r'^[a-z][a-z0-9+.-]*:', re.IGNORECASE)


def doc_files():
    """The Markdown pages of the checkout that users read on GitHub."""
    files = [osp.join(REPO, 'README.md')]
    files += glob.glob(osp.join(REPO, 'docs', '**', '*.md'), recursive=True)
    files += glob.glob(osp.join(REPO, 'configs', '**', 'README.md'), recursive=True)
    return sorted(files)


def anchors(text):
    """The ``#anchors`` GitHub gives the headings of a Markdown page: the heading's text
    (code and link markup dropped) lower-cased, punctuation removed, spaces as hyphens,
    ``-1``, ``-2`` ... appended to repeats."""
    seen, result = {}, set()
    for line in _FENCE.sub('', text).splitlines():
        heading = re.match(r'^#{1,6}\s+(.*?)\s*#*\s*$', line)
        if not heading:
            continue
        title = re.sub(r'\[([^\]]*)\]\([^)]*\)', r'\1', heading.group(1)).replace('`', '')
        slug = re.sub(r'[^\w\- ]', '', title.strip().lower()).replace(' ', '-')
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f'{slug}-{count}')
    return result


def links(text):
    """The link and image targets of a page, outside code blocks and code spans."""
    return _LINK.findall(_CODE_SPAN.sub('', _FENCE.sub('', text)))


def broken_links(path):
    """The relative links of the page ``path`` that point at nothing.

    Args:
        path (str): A Markdown file.

    Returns:
        list[str]: Each broken target with the reason: no such file, or no such heading.
    """
    text = open(path, encoding='utf-8').read()
    broken = []
    for target in links(text):
        if _SCHEME.match(target):
            continue  # web links are not checked (no network in the tests)
        file_part, _, anchor = target.partition('#')
        linked = osp.normpath(osp.join(osp.dirname(path), file_part)) if file_part else path
        if not osp.exists(linked):
            broken.append(f'{target}: no such file')
        elif anchor and linked.endswith('.md') and \
                anchor not in anchors(open(linked, encoding='utf-8').read()):
            broken.append(f'{target}: no heading with this anchor')
    return broken


def test_every_link_resolves():
    """Every relative link and image of every page, anchors included."""
    pages = doc_files()
    assert osp.join(REPO, 'docs', 'en', 'get_started.md') in pages
    broken = {osp.relpath(p, REPO): broken_links(p) for p in pages}
    assert not {page: b for page, b in broken.items() if b}


def test_broken_links_are_found(tmp_path):
    """The checker itself: a missing file, a missing heading and a heading GitHub spells
    differently are reported; links in code and to the web are not followed."""
    (tmp_path / 'guide.md').write_text(
        '# Guide\n\n## How long a run is: `--epochs`\n\n## Setup\n\n## Setup\n')
    (tmp_path / 'pic.png').write_bytes(b'')
    page = tmp_path / 'README.md'
    page.write_text(
        '[ok](guide.md) [ok](guide.md#how-long-a-run-is---epochs) [ok](guide.md#setup-1)\n'
        '![ok](pic.png) [ok](#top) [web](https://example.com/missing.md)\n'
        '[missing](docs/missing.md) [bad anchor](guide.md#how-long-a-run-is-epochs)\n'
        '[no repeat](guide.md#setup-2) ![missing picture](images/none.png)\n'
        '`[in code](nowhere.md)`\n\n```bash\n[in a block](nowhere.md)\n```\n\n# Top\n')
    assert broken_links(str(page)) == [
        'docs/missing.md: no such file',
        'guide.md#how-long-a-run-is-epochs: no heading with this anchor',
        'guide.md#setup-2: no heading with this anchor',
        'images/none.png: no such file']


def test_docs_reachable_from_the_readme():
    """Following links from the README reaches every page and picture under docs/: none
    is left where a reader cannot find it."""
    reached, todo = set(), [osp.join(REPO, 'README.md')]
    while todo:
        page = todo.pop()
        if page in reached:
            continue
        reached.add(page)
        for target in links(open(page, encoding='utf-8').read()):
            file_part = target.partition('#')[0]
            if file_part and not _SCHEME.match(target):
                linked = osp.normpath(osp.join(osp.dirname(page), file_part))
                if linked.endswith('.md') and osp.isfile(linked):
                    todo.append(linked)
                else:
                    reached.add(linked)
    in_docs = set(glob.glob(osp.join(REPO, 'docs', '**', '*.*'), recursive=True))
    assert in_docs and not in_docs - reached, sorted(in_docs - reached)


def test_readme_is_a_landing_page():
    """Install and the first runs on the first screen, the rest in docs/: a short README
    of current results only (history goes to the changelog)."""
    text = open(osp.join(REPO, 'README.md'), encoding='utf-8').read()
    assert len(text.splitlines()) <= 200
    assert 'previous release' not in text.lower()
    headings = re.findall(r'^#{2,3} (.*)$', text, re.MULTILINE)
    assert headings[:4] == ['Install', 'Quick start', 'The demo', 'Your own teacher and data']
