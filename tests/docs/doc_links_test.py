#!/usr/bin/env python3
"""Every relative link and image in the project's Markdown pages (README, docs/, notes/,
configs/, bench/) points to a file or folder that exists: a page that moved or was renamed
breaks this test instead of the reader's click. Usage: doc_links_test.py SOURCE_DIR"""
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
pages = [root / "README.md"] + sorted(
    p for d in ("docs", "notes", "configs", "bench") for p in (root / d).rglob("*.md"))
link = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
broken = []
for page in pages:
    text = page.read_text(encoding="utf-8")
    # Links inside code blocks are examples, not links.
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    for target in link.findall(text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # web addresses and anchors in the same page
        path = (page.parent / target.split("#", 1)[0]).resolve()
        if not path.exists():
            broken.append(f"{page.relative_to(root)}: ({target}) does not exist")
for line in broken:
    print(line)
print(f"{len(pages)} pages, {len(broken)} broken links")
sys.exit(1 if broken else 0)
