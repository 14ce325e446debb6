"""The user's seed folder: reading, cleaning, chunking along headings, stable ids and the held-out split."""
import shutil
from pathlib import Path

import pytest

from curation.seed import chunk_document, chunk_documents, read_seed_documents, split_documents

FIXTURES = Path(__file__).parent / "fixtures" / "seed_docs"


@pytest.fixture(scope="module")
def docs():
    docs, skipped = read_seed_documents(FIXTURES)
    return docs, skipped


def test_reads_markdown_text_html_and_pdf_and_counts_what_it_skips(docs):
    docs, skipped = docs
    assert sorted(d.source for d in docs) == ["boiler-notes.txt", "compressor-faq.html", "gearbox-service-manual.pdf",
                                              "pumps/centrifugal-pump-care.md", "pumps/positive-displacement.markdown"]
    assert {d.source: d.kind for d in docs}["gearbox-service-manual.pdf"] == "pdf"
    # whitespace-only Markdown; a file that is not UTF-8 and a broken PDF; an image
    assert skipped == {"empty": 1, "undecodable": 2, "unsupported": 1}
    titles = {d.source: d.title for d in docs}
    assert titles["pumps/centrifugal-pump-care.md"] == "Centrifugal pump care"
    assert titles["pumps/positive-displacement.markdown"] == "Positive displacement pumps"
    assert titles["boiler-notes.txt"] == "Steam boiler field notes"
    html = next(d for d in docs if d.source.endswith(".html"))
    # boilerplate gone, content and headings kept
    for junk in ("cookies", "All rights reserved", "Related posts", "Contact"):
        assert junk not in html.text
    assert "blocked oil cooler" in html.text and "# Rotary screw air compressor FAQ" in html.text


def test_chunks_follow_headings_cover_every_paragraph_and_respect_the_size_limit(docs):
    docs, _ = docs
    md = next(d for d in docs if d.source == "pumps/centrifugal-pump-care.md")
    chunks = chunk_document(md, max_words=120, min_words=40)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert all(len(c.text.split()) <= 120 for c in chunks)
    headings = [c.heading for c in chunks]
    assert "Centrifugal pump care > Cavitation" in headings
    assert "Centrifugal pump care > Mechanical seal leaks" in headings
    # a section's paragraphs stay under its heading: the cavitation checklist is in the cavitation chunk
    cav = next(c for c in chunks if c.heading.endswith("Cavitation"))
    assert "suction strainer" in cav.text and "seal" not in cav.text
    joined = " ".join(" ".join(c.text.split()) for c in chunks)
    for para in md.text.split("\n\n"):
        para = " ".join(para.replace("#", "").split())
        assert para in joined.replace("#", "").replace("  ", " "), para[:60]

    txt = next(d for d in docs if d.source == "boiler-notes.txt")
    plain = chunk_document(txt, max_words=60, min_words=20)
    # numbered plain-text headings are recognised at their depth ("2.1" under "2. Combustion")
    assert any(c.heading.endswith("2. Combustion > 2.1 Black smoke") for c in plain)
    assert any(c.heading.endswith("2.2 Flame failure at light-off") for c in plain)


def test_a_long_section_is_split_and_big_chunks_hold_whole_documents(docs):
    docs, _ = docs
    md = next(d for d in docs if d.source == "pumps/centrifugal-pump-care.md")
    small = chunk_document(md, max_words=40, min_words=10)
    assert all(len(c.text.split()) <= 40 for c in small) and len(small) >= 6
    big = chunk_document(md, max_words=2000, min_words=40)
    assert len(big) == 1


def test_ids_are_stable_across_reads_and_folders_and_independent_of_other_documents(docs, tmp_path):
    docs, _ = docs
    again, _ = read_seed_documents(FIXTURES)
    assert [(d.id, d.text) for d in docs] == [(d.id, d.text) for d in again]
    assert [c.id for c in chunk_documents(docs)] == [c.id for c in chunk_documents(again)]
    # the same folder copied elsewhere keeps its ids (they hash the relative path, not the absolute one)
    copy = tmp_path / "copy"
    shutil.copytree(FIXTURES, copy)
    (copy / "pumps" / "centrifugal-pump-care.md").write_text("# Changed\n\nA different document now.\n")
    moved, _ = read_seed_documents(copy)
    by_src = {d.source: d for d in moved}
    for d in docs:
        if d.source != "pumps/centrifugal-pump-care.md":
            assert by_src[d.source].id == d.id
            assert [c.id for c in chunk_document(by_src[d.source])] == [c.id for c in chunk_document(d)]
    assert len({c.id for c in chunk_documents(docs)}) == len(chunk_documents(docs))


def test_reads_an_fsspec_url_like_a_local_folder(docs):
    import fsspec

    fs = fsspec.filesystem("memory")
    for p in FIXTURES.rglob("*"):
        if p.is_file():
            fs.pipe(f"/seedtest/{p.relative_to(FIXTURES).as_posix()}", p.read_bytes())
    remote, skipped = read_seed_documents("memory://seedtest")
    local, _ = docs
    assert [(d.id, d.source, d.text) for d in remote] == [(d.id, d.source, d.text) for d in local]
    assert skipped == {"empty": 1, "undecodable": 2, "unsupported": 1}


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="seed folder"):
        read_seed_documents(tmp_path / "nope")


def test_split_is_seeded_per_document_and_stable_when_documents_are_added():
    from curation.seed import SeedDocument

    docs = [SeedDocument(id=f"{i:04d}", source=f"d{i}.md", title="t", text="x") for i in range(400)]
    gen, held = split_documents(docs, 0.2, seed=0)
    assert (gen, held) == split_documents(docs, 0.2, seed=0)
    assert 0.14 < len(held) / len(docs) < 0.26
    assert {d.id for d in gen}.isdisjoint({d.id for d in held}) and len(gen) + len(held) == len(docs)
    assert {d.id for d in split_documents(docs, 0.2, seed=1)[1]} != {d.id for d in held}
    # a new document never moves an old one across the split
    more = docs + [SeedDocument(id=f"new{i}", source=f"n{i}.md", title="t", text="x") for i in range(50)]
    assert {d.id for d in held} <= {d.id for d in split_documents(more, 0.2, seed=0)[1]}
    assert split_documents(docs, 0.0)[1] == [] and split_documents(docs, 1.0)[0] == []
    with pytest.raises(ValueError):
        split_documents(docs, 1.5)


def _pdf(pages: list[list[str]]) -> bytes:
    """A minimal PDF: Helvetica text, one printed line per string, as a word processor would set it."""
    objs = ["<< /Type /Catalog /Pages 2 0 R >>", "", "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for lines in pages:
        esc = [x.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") for x in lines]
        stream = "BT /F1 11 Tf 14 TL 72 760 Td " + " ".join(f"({x}) Tj T*" for x in esc) + " ET"
        objs.append(f"<< /Length {len(stream.encode('latin-1'))} >>\nstream\n{stream}\nendstream")
        objs.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {len(objs)} 0 R "
                    f"/Resources << /Font << /F1 3 0 R >> >> >>")
        kids.append(len(objs))
    objs[1] = f"<< /Type /Pages /Kids [{' '.join(f'{k} 0 R' for k in kids)}] /Count {len(kids)} >>"
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def test_reads_a_pdf_into_paragraphs_and_headings_and_counts_a_scan_as_empty(tmp_path):
    page1 = ["Gearbox Service Manual",
             "1. Oil temperature",
             "A gearbox that runs hot after an oil change usually holds too much oil: the gears churn",
             "it and heat it. Drain the oil down to the middle of the sight glass and run the gear-",
             "box for an hour before measuring again.",
             "2. Noise under load",
             "A whine that rises with load points to worn or badly meshed gear teeth. Check the tooth",
             "contact pattern with marking compound."]
    page2 = ["3. Leaks at the shaft",
             "Oil at the output shaft means a worn lip seal. Replace the seal and polish the shaft",
             "where the old lip ran."]
    (tmp_path / "gearbox.pdf").write_bytes(_pdf([page1, page2]))
    (tmp_path / "scan.pdf").write_bytes(_pdf([[]]))  # a page without a text layer
    docs, skipped = read_seed_documents(tmp_path)
    assert [d.source for d in docs] == ["gearbox.pdf"] and skipped == {"empty": 1, "undecodable": 0, "unsupported": 0}
    doc = docs[0]
    assert doc.title == "Gearbox Service Manual" and doc.kind == "pdf"
    # wrapped lines joined into one paragraph, the end-of-line hyphen undone
    assert "the gears churn it and heat it. Drain the oil down to the middle of the sight glass and run the gearbox " \
           "for an hour" in doc.text
    chunks = chunk_document(doc, max_words=40, min_words=10)
    headings = [c.heading for c in chunks]
    assert any(h.endswith("1. Oil temperature") for h in headings)
    assert any(h.endswith("3. Leaks at the shaft") for h in headings)  # a heading at the top of page 2
    leak = next(c for c in chunks if c.heading.endswith("3. Leaks at the shaft"))
    assert "worn lip seal" in leak.text and "Noise under load" not in leak.text


def test_markdown_front_matter_and_shortcodes_are_metadata_not_prose(tmp_path):
    # As Hugo/Jekyll documentation sites write their pages (e.g. Poetry's docs): YAML front matter, shortcodes.
    (tmp_path / "pyproject.md").write_text(
        '---\ntitle: "The pyproject.toml file"\ndraft: false\ntype: docs\nmenu:\n  docs:\n    weight: 90\n---\n\n'
        "# The `pyproject.toml` file\n\n{{% warning %}}\nIn package mode, the only required fields are `name` and "
        "`version`, see [the build system]({{< relref \"pyproject#build\" >}}).\n{{% /warning %}}\n\nThe `name` field is the name of the package. It is required in package mode.\n")
    (tmp_path / "plain.md").write_text("---\n\nA horizontal rule first, then prose.\n\n---\n\nMore prose.\n")
    docs, _ = read_seed_documents(tmp_path)
    by_source = {d.source: d for d in docs}
    page = by_source["pyproject.md"]
    assert page.title == "The pyproject.toml file"
    assert "draft" not in page.text and "weight" not in page.text and "{{" not in page.text
    assert page.text.startswith("# The `pyproject.toml` file") and "only required fields" in page.text
    assert "see the build system." in page.text  # a link to a shortcode target keeps its text
    # a rule is not front matter unless the block closes: the prose of a page that opens with one stays whole
    assert "A horizontal rule first" in by_source["plain.md"].text and "More prose" in by_source["plain.md"].text
