"""The user's seed corpus: read a folder of documents, cut them into chunks along headings, split by document.

A seed folder (local path or fsspec URL) holds Markdown, plain text, HTML and PDF documents. HTML is
cleaned with trafilatura (boilerplate such as navigation and footers removed, headings kept as
Markdown). PDF text is read with pypdf and reflowed: the printed lines of a page are joined into
paragraphs (end-of-line hyphens undone), and short title-like lines are set apart as headings. A PDF
without a text layer (a scan) counts as `empty`: there is no OCR here. Files that cannot be used are
counted by reason, never fatal: `empty`, `undecodable` (also a broken or encrypted PDF),
`unsupported`. Markdown (and HTML) is reduced to what a reader sees (`plain_markdown`): a link becomes
its text, an image its alt text, emphasis markers and inline HTML tags go, link reference definitions
and MkDocs admonition markers are dropped; code spans, code blocks and tables stay as they are. Chunks
follow the document's own structure: Markdown headings (`#`, setext) or, in plain text, numbered
title lines (`Chapter 2. Pumps`, `3.1 Seal leaks`) and short title-like lines that stand alone between
blank lines: a line of a hard-wrapped paragraph is never a heading. Sections are packed into chunks of at
most `max_words`, and a section
shorter than `min_words` joins its neighbour. Every id is a hash of the document's relative path
(and the chunk's position and text), so a rerun or another machine gets the same ids.

Held-out documents (for benchmarks) are chosen per document by a seeded hash of its id, so adding
a document never moves another one across the split.
"""
from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

SEED_SUFFIXES = {".md": "markdown", ".markdown": "markdown", ".txt": "text", ".text": "text",
                 ".html": "html", ".htm": "html", ".pdf": "pdf"}


@dataclass(frozen=True)
class SeedSettings:
    """How seed documents are chunked and split (the seed_corpus stage)."""

    max_chunk_words: int = 350  # a chunk holds at most this many words (sections, then paragraphs)
    min_chunk_words: int = 40  # a shorter chunk joins the section that follows it
    heldout_fraction: float = 0.2  # share of documents reserved for benchmarks (never feed SFT/DPO or selection)
    split_seed: int = 0  # seeds the hash that assigns a document to generation or held-out


_SEED = SeedSettings()


@dataclass(frozen=True)
class SeedDocument:
    id: str       # sha256 of the path relative to the seed folder (first 16 hex digits)
    source: str   # that relative path, e.g. "pumps/centrifugal.md"
    title: str
    text: str     # cleaned text; headings as Markdown '#' lines for Markdown and HTML input
    kind: str = "text"  # what it was read as: markdown, text, html or pdf


@dataclass(frozen=True)
class Chunk:
    id: str
    doc_id: str
    source: str
    heading: str  # heading path of the chunk's first section, e.g. "Chapter 1. Pumps > 1.2 Seal leaks"
    text: str     # the chunk's section headings and paragraphs, as in the document
    index: int    # position of the chunk in its document


def _hash(text: str, n: int = 16) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:n]


def _decode(data: bytes) -> str | None:
    for encoding in ("utf-8-sig", "utf-16") if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ("utf-8-sig",):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return None


def _html_to_markdown(html: str) -> tuple[str, str]:
    import trafilatura

    text = trafilatura.extract(html, output_format="markdown", include_formatting=True,
                               include_comments=False, include_tables=True) or ""
    meta = trafilatura.extract_metadata(html)
    return text, (meta.title if meta and meta.title else "")


def _pdf_to_text(data: bytes) -> str | None:
    """The text of a PDF, reflowed page by page; None when pypdf cannot read it (broken, encrypted)."""
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            return None
        pages = [page.extract_text() or "" for page in reader.pages]
    except Exception:  # noqa: BLE001 - pypdf raises many kinds of errors on damaged files; one skipped file
        return None
    return "\n\n".join(t for t in (_reflow_pdf_page(p) for p in pages) if t)


def _reflow_pdf_page(text: str) -> str:
    """A page's printed lines as paragraphs separated by blank lines, title-like lines on their own.

    PDF text has no paragraph marks: a wrapped line ends where the printed line did. A line is a
    heading when it reads as a title (see `_plain_heading_level`), holds at most 8 words, follows
    the end of a sentence or a page top, and the line after it does not continue it in lower case.
    A paragraph ends at a line that closes a sentence and stops well short of the page's width.
    """
    lines = [line.strip() for line in text.split("\n")]
    width = max((len(line) for line in lines), default=0)
    blocks: list[str] = []
    para: list[str] = []

    def flush() -> None:
        if para:
            blocks.append(" ".join(para))
            para.clear()

    for i, line in enumerate(lines):
        if not line:
            flush()
            continue
        nxt = next((x for x in lines[i + 1:] if x), "")
        after_sentence = not para or para[-1][-1] in ".!?:"
        if (after_sentence and len(line.split()) <= 8 and _plain_heading_level(line, True, True)
                and not nxt[:1].islower()):
            flush()
            blocks.append(line)
            continue
        if para and para[-1].endswith("-") and line[:1].islower():
            para[-1] = para[-1][:-1] + line  # "bear-" + "ings"
        else:
            para.append(line)
        if line[-1] in ".!?" and len(line) < 0.8 * width:
            flush()
    flush()
    return "\n\n".join(blocks)


def _list_files(folder: str | Path):
    """(relative posix path, opener) for every file under `folder`, sorted; local path or fsspec URL."""
    folder_s = str(folder)
    if "://" in folder_s:
        import fsspec

        fs, root = fsspec.core.url_to_fs(folder_s)
        root = root.rstrip("/")
        paths = sorted(p for p in fs.find(root) if not fs.isdir(p))
        return [(PurePosixPath(p).relative_to(root).as_posix(), (lambda p=p: fs.cat_file(p))) for p in paths]
    root = Path(folder_s)
    if not root.is_dir():
        raise FileNotFoundError(f"seed folder {folder_s!r} does not exist or is not a folder")
    return [(p.relative_to(root).as_posix(), p.read_bytes) for p in sorted(root.rglob("*")) if p.is_file()]


def read_seed_documents(folder: str | Path) -> tuple[list[SeedDocument], dict[str, int]]:
    """Documents of a seed folder, sorted by path, plus the count of skipped files by reason."""
    docs: list[SeedDocument] = []
    skipped = {"empty": 0, "undecodable": 0, "unsupported": 0}
    for rel, read in _list_files(folder):
        name = PurePosixPath(rel).name
        kind = SEED_SUFFIXES.get(PurePosixPath(rel).suffix.lower())
        if name.startswith(".") or kind is None:
            skipped["unsupported"] += 1
            continue
        data = read()
        raw = _pdf_to_text(data) if kind == "pdf" else _decode(data)
        if raw is None:
            skipped["undecodable"] += 1
            continue
        title = ""
        if kind == "html":
            raw, title = _html_to_markdown(raw)
        elif kind == "markdown":
            raw, title = _strip_front_matter(raw)
            raw = _SHORTCODE.sub(" ", _SHORTCODE_TARGET.sub("](#)", raw))  # a link to a relref keeps its text
        text = _normalize(raw)
        if kind in ("markdown", "html"):
            text = _normalize(plain_markdown(text))
        if not text.strip():
            skipped["empty"] += 1
            continue
        title = title or _first_heading(text, kind) or PurePosixPath(rel).stem
        docs.append(SeedDocument(id=_hash(rel), source=rel, title=title.strip(), text=text, kind=kind))
    return docs, skipped


_FRONT_MATTER = re.compile(r"\A\ufeff?(---|\+\+\+)[ \t]*\r?\n(.*?)\r?\n\1[ \t]*(?:\r?\n|\Z)", re.S)
# Hugo shortcodes ({{% warning %}}, {{< relref "page" >}}): template markup around prose, never prose.
_SHORTCODE = re.compile(r"[ \t]*\{\{[<%].*?[>%]\}\}[ \t]*")
_SHORTCODE_TARGET = re.compile(r"\]\(\s*\{\{[<%].*?[>%]\}\}\s*\)")
_FRONT_TITLE = re.compile(r"^title\s*[:=]\s*(.+?)\s*$", re.M)


def _strip_front_matter(text: str) -> tuple[str, str]:
    """(body, title) of a Markdown file with YAML (`---`) or TOML (`+++`) front matter, as Hugo, Jekyll and MkDocs
    sites write it: the block is metadata, not prose, and would otherwise open the first chunk ("--- title: ...
    draft: false type: docs"). Its `title`, when set, names the document."""
    m = _FRONT_MATTER.match(text)
    # Only a block of `key: value` / `key = value` lines (nested ones indented, list items, comments) is front
    # matter; a page that merely opens with a horizontal rule keeps its prose.
    if not m or not all(re.match(r"[\w\"'.-]+\s*[:=]|\s|-\s|#", line)
                        for line in m.group(2).splitlines() if line.strip()):
        return text, ""
    title = _FRONT_TITLE.search(m.group(2))
    return text[m.end():], (title.group(1).strip("\"'") if title else "")


def _normalize(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ")
    return "\n".join(line.rstrip() for line in text.split("\n")).strip() + "\n"


# ----------------------------------------------------------------------------- Markdown as a reader sees it

_CODE_SPAN = re.compile(r"(`+)((?:(?!\n\s*\n)[\s\S])+?)\1")
_IMAGE = re.compile(r"!\[([^\]]*)\]\((?:[^()\s]|\([^)]*\))*(?:\s+\"[^\"]*\")?\)")
_LINK = re.compile(r"\[((?:[^\[\]]|\[[^\]]*\])+)\]\((?:[^()\s]|\([^)]*\))*(?:\s+\"[^\"]*\")?\)")
_REF_LINK = re.compile(r"\[((?:[^\[\]]|\[[^\]]*\])+)\]\[[^\]]*\]")
_AUTOLINK = re.compile(r"<((?:https?|ftp|mailto):[^>\s]+)>")
_HTML_TAG = re.compile(r"</?(?:a|abbr|b|br|code|del|details|div|em|font|hr|i|img|ins|kbd|mark|p|s|small|span|strong|"
                       r"sub|summary|sup|u)\b[^>]*>", re.I)
_LINK_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s+\S+.*$")
_ADMONITION = re.compile(r"^\s*(?:!!!|\?\?\?\+?)\s*[\w-]+(?:\s+\"[^\"]*\")?\s*$")
_EMPHASIS = [re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*"), re.compile(r"(?<!\w)__(?=\S)(.+?)(?<=\S)__(?!\w)"),
             re.compile(r"(?<![\w*])\*(?=[^\s*])([^*]+?)(?<=\S)\*(?![\w*])"),
             re.compile(r"(?<![\w_])_(?=[^\s_])([^_]+?)(?<=\S)_(?![\w_])")]


def plain_inline(line: str) -> str:
    """Markdown text (a line or a paragraph: a link's text may wrap) without link syntax, emphasis markers and
    inline HTML; code spans kept as they are."""
    spans: list[str] = []

    def keep(m: re.Match) -> str:
        spans.append(m.group(0))
        return f"\x00{len(spans) - 1}\x00"

    s = _CODE_SPAN.sub(keep, line)
    s = re.sub(r"<!--.*?-->", "", s)
    s = _IMAGE.sub(lambda m: m.group(1), s)
    for _ in range(2):  # a link inside a link's text ("[![badge](img)](url)")
        s = _LINK.sub(lambda m: m.group(1), s)
    s = _REF_LINK.sub(lambda m: m.group(1), s)
    s = _AUTOLINK.sub(lambda m: m.group(1), s)
    s = _HTML_TAG.sub("", s)
    for pat in _EMPHASIS:
        s = pat.sub(lambda m: m.group(1), s)
    return re.sub("\x00(\\d+)\x00", lambda m: spans[int(m.group(1))], s)


def plain_markdown(text: str) -> str:
    """Markdown as a reader sees it, line for line: links become their text (images their alt text), emphasis
    markers, inline HTML tags and comments go; link reference definitions and MkDocs admonition markers
    (`!!! note`, whose indented body is dedented) and mkdocstrings directives (`::: module.name`) are dropped.
    Fenced code blocks, code spans, tables,
    headings and list markers are left as they are, so chunking still sees the document's structure."""
    out: list[str] = []
    prose: list[str] = []  # the lines since the last code block: inline markup may wrap from line to line
    fence = ""
    admonition = directive = False

    def flush() -> None:
        if prose:
            out.extend(plain_inline(re.sub(r"<!--.*?-->", "", "\n".join(prose), flags=re.S)).split("\n"))
            prose.clear()

    for line in text.split("\n"):
        m = _FENCE.match(line)
        if fence:
            out.append(line[4:] if admonition and line.startswith("    ") else line)
            if m and m.group(1) == fence:
                fence = ""
            continue
        if admonition:
            if line.startswith("    ") or not line.strip():
                line = line[4:]
            else:
                admonition = False
        if m:
            flush()
            fence = m.group(1)
            out.append(line)
            continue
        if _ADMONITION.match(line):
            admonition = True
            prose.append("")
            continue
        if _LINK_DEF.match(line):
            continue
        if line.startswith(":::"):  # a mkdocstrings directive ("::: httpx.get"): options indented below it
            directive = True
            continue
        if directive and line.startswith("    ") and line.strip().startswith(":"):
            continue
        directive = False
        prose.append(line)
    flush()
    return "\n".join(out)


# ----------------------------------------------------------------------------- headings and sections

_ATX = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_SETEXT = re.compile(r"^(=+|-+)\s*$")
_NUMBERED = re.compile(r"^(?:(?:chapter|section|part|appendix)\s+\w+\.?|(\d+(?:\.\d+)*)\.?)\s+\S", re.I)
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_FENCE = re.compile(r"^\s*(```|~~~)")


def _plain_heading_level(line: str, prev_blank: bool, next_blank: bool) -> int:
    """Level of a title-like line in plain text, 0 if it reads as body text.

    A heading is short (<= 12 words), does not end like a sentence or a list entry, and starts
    after a blank line. A numbered title ("3.1 Seal leaks", "Chapter 2. Pumps") may be followed
    directly by its text; an unnumbered line, or a numbered one that could be a list entry
    ("1. Pumps"), must stand alone (blank line after it): the first line of a hard-wrapped
    paragraph is body text. Its level is the depth of its numbering ("3" -> 1, "3.1" -> 2); a
    "Chapter/Section/Part" line or an unnumbered one is level 1.
    """
    s = line.strip()
    if not s or not prev_blank or len(s.split()) > 12 or s[-1] in ".!?,;:":
        return 0
    if _LIST_ITEM.match(s) and not (next_blank and re.match(r"^\d+\.\s", s)):
        return 0
    if not (s[0].isupper() or s[0].isdigit()):
        return 0
    m = _NUMBERED.match(s)
    if m and m.group(1):
        if any(len(part) > 3 for part in m.group(1).split(".")):  # "2019 was the year ..." is not a heading
            return 0 if not next_blank else 1
        return min(6, m.group(1).count(".") + 1)
    if m or next_blank:
        return 1
    return 0


def _first_heading(text: str, kind: str) -> str:
    for block in _sections(text, kind):
        if block[0]:
            return block[0][-1][1]
    return ""


def _sections(text: str, kind: str) -> list[tuple[list[tuple[int, str]], list[str]]]:
    """(heading path, paragraphs) for each section of the document, in order.

    The heading path is the list of (level, heading line) from the top of the document down to
    the section's own heading; text before the first heading has an empty path.
    """
    lines = text.split("\n")
    path: list[tuple[int, str]] = []
    sections: list[tuple[list[tuple[int, str]], list[str]]] = [([], [])]
    para: list[str] = []
    in_fence = False

    def end_paragraph():
        if para:
            sections[-1][1].append("\n".join(para).strip())
            para.clear()

    def open_section(level: int, heading: str):
        nonlocal path
        end_paragraph()
        path = [h for h in path if h[0] < level] + [(level, heading)]
        sections.append((list(path), []))

    markdown = kind in ("markdown", "html")
    prev_blank = True
    for i, line in enumerate(lines):
        if _FENCE.match(line):
            in_fence = not in_fence
            para.append(line)
            prev_blank = False
            continue
        if in_fence:
            para.append(line)
            continue
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if markdown and (m := _ATX.match(line)):
            open_section(len(m.group(1)), m.group(2).strip())
        elif (markdown and line.strip() and not para and _SETEXT.match(nxt)
              and not _LIST_ITEM.match(line) and prev_blank):
            open_section(1 if nxt.strip()[0] == "=" else 2, line.strip())
        elif markdown and _SETEXT.match(line) and sections[-1][0] and not para and sections[-1][0][-1][1]:
            pass  # the underline of a setext heading just opened
        elif not markdown and (level := _plain_heading_level(line, prev_blank, not nxt.strip())):
            open_section(level, line.strip())
        elif not line.strip():
            end_paragraph()
        else:
            para.append(line.strip() if not markdown else line)
        prev_blank = not line.strip() or bool(sections[-1][0] and not sections[-1][1] and not para)
    end_paragraph()
    return [(p, paras) for p, paras in sections if p or paras]


def _words(text: str) -> int:
    return len(text.split())


def _split_long(paragraph: str, max_words: int) -> list[str]:
    """A paragraph over `max_words`, cut at sentence ends (or, failing that, every `max_words` words)."""
    if _words(paragraph) <= max_words:
        return [paragraph]
    lines = paragraph.split("\n")
    if _FENCE.match(lines[0]) or any(_LIST_ITEM.match(x) or x.lstrip().startswith("|") for x in lines):
        return _split_lines(lines, max_words)
    sentences = re.split(r"(?<=[.!?])\s+", paragraph)
    pieces, cur = [], []
    for s in sentences:
        for j in range(0, max(1, _words(s)), max_words):
            part = " ".join(s.split()[j:j + max_words]) if _words(s) > max_words else s
            if cur and _words(" ".join(cur)) + _words(part) > max_words:
                pieces.append(" ".join(cur))
                cur = []
            cur.append(part)
    if cur:
        pieces.append(" ".join(cur))
    return pieces


def _split_lines(lines: list[str], max_words: int) -> list[str]:
    """A long list, table or code block cut between its lines (a list item with its continuation lines
    stays whole), lines kept as lines; a code block's pieces each get their fences, a table's its header."""
    fence = lines[0].strip()[:3] if _FENCE.match(lines[0]) else ""
    body = lines[1:-1] if fence and len(lines) > 1 and _FENCE.match(lines[-1]) else lines[1:] if fence else lines
    header = body[:2] if not fence and len(body) > 2 and re.match(r"^\s*\|?\s*:?-{3,}", body[1]) else []
    units: list[list[str]] = []
    for line in body[len(header):]:
        cont = units and not fence and line[:1] in (" ", "\t") and not _LIST_ITEM.match(line)
        if cont:
            units[-1].append(line)
        else:
            units.append([line])
    pieces, cur = [], []
    budget = max(1, max_words - _words(" ".join(header)) - (1 if fence else 0))
    for unit in units:
        if cur and _words(" ".join(cur + unit)) > budget:
            pieces.append(cur)
            cur = []
        cur = cur + unit
    if cur:
        pieces.append(cur)
    if fence:
        return ["\n".join([lines[0], *p, fence]) for p in pieces]
    return ["\n".join(header + p) for p in pieces]


def chunk_document(doc: SeedDocument, max_words: int = _SEED.max_chunk_words, min_words: int = _SEED.min_chunk_words) -> list[Chunk]:
    """Chunks of a document along its headings, then paragraphs; each at most `max_words` words.

    Consecutive sections are packed while they fit in `max_words` and either share a parent
    heading or the chunk so far is shorter than `min_words` (a lone intro paragraph joins the
    section that follows it). A chunk's text repeats the headings of the sections it holds, so a
    reader (or a teacher) sees what each paragraph is about.
    """
    kind = SEED_SUFFIXES.get(PurePosixPath(doc.source).suffix.lower(), "text")
    units: list[tuple[tuple, tuple, str, str]] = []  # (parent path, own path, heading path string, text)
    for path, paras in _sections(doc.text, kind):
        heading_line = path[-1][1] if path else ""
        own = tuple(h for _, h in path)
        pieces = [p for para in paras for p in _split_long(para, max_words)]
        if not pieces:
            continue
        head = " > ".join(own)
        # A section longer than max_words becomes several units, each repeating its heading.
        cur: list[str] = []
        for piece in pieces:
            if cur and _words(" ".join(cur)) + _words(piece) + _words(heading_line) > max_words:
                units.append((own[:-1], own, head, "\n\n".join(([heading_line] if heading_line else []) + cur)))
                cur = []
            cur.append(piece)
        units.append((own[:-1], own, head, "\n\n".join(([heading_line] if heading_line else []) + cur)))

    # Each chunk: heading, texts, first unit's parent and own path, deepest heading depth so far.
    chunks: list[list] = []
    for parent, own, head, text in units:
        if chunks:
            _, c_texts, c_parent, c_own, c_depth = chunks[-1]
            size = _words("\n".join(c_texts))
            # Siblings join only while the chunk holds no subsections of them (no "1.4" then "Chapter 2").
            sibling = parent == c_parent and c_depth <= len(c_own)
            child = bool(c_own) and len(own) > len(c_own) and own[:len(c_own)] == c_own
            if size + _words(text) <= max_words and (sibling or child or size < min_words):
                c_texts.append(text)
                chunks[-1][4] = max(c_depth, len(own))
                continue
        chunks.append([head, [text], parent, own, len(own)])
    # A last chunk below min_words joins the previous one when it fits.
    if len(chunks) > 1 and _words("\n".join(chunks[-1][1])) < min_words \
            and _words("\n".join(chunks[-2][1] + chunks[-1][1])) <= max_words:
        chunks[-2][1].extend(chunks.pop()[1])

    out = []
    for i, (head, texts, *_) in enumerate(chunks):
        text = "\n\n".join(texts).strip()
        out.append(Chunk(id=_hash(f"{doc.id}|{i}|{text}"), doc_id=doc.id, source=doc.source,
                         heading=head or doc.title, text=text, index=i))
    return out


def chunk_documents(docs: list[SeedDocument], max_words: int = _SEED.max_chunk_words,
                    min_words: int = _SEED.min_chunk_words) -> list[Chunk]:
    return [c for d in docs for c in chunk_document(d, max_words, min_words)]


def is_heldout(doc_id: str, heldout_fraction: float = _SEED.heldout_fraction, seed: int = _SEED.split_seed) -> bool:
    """Whether a document is reserved for benchmarks: a seeded hash of its id, uniform on [0, 1)."""
    u = int(hashlib.sha256(f"{seed}|{doc_id}".encode()).hexdigest()[:15], 16) / 16 ** 15
    return u < heldout_fraction


def split_documents(docs: list[SeedDocument], heldout_fraction: float = _SEED.heldout_fraction,
                    seed: int = _SEED.split_seed) -> tuple[list[SeedDocument], list[SeedDocument]]:
    """(generation documents, held-out documents). Held-out ones never feed SFT/DPO data."""
    if not 0.0 <= heldout_fraction <= 1.0:
        raise ValueError(f"heldout_fraction must lie in [0, 1], got {heldout_fraction}")
    gen = [d for d in docs if not is_heldout(d.id, heldout_fraction, seed)]
    held = [d for d in docs if is_heldout(d.id, heldout_fraction, seed)]
    return gen, held


def seed_batch(doc_id: str, n_batches: int) -> int:
    """The batch (0..n-1) a document's synthetic items are generated in: a hash of its id, stable as documents come."""
    return int(hashlib.sha256(f"batch|{doc_id}".encode()).hexdigest()[:15], 16) % n_batches
