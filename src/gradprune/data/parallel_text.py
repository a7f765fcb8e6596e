"""Parallel text for translation: Multi30k (task 1 raw), WMT16 En-De (training corpora, newstest2013
and newstest2015, read inside their registered archives), WMT14 newstest2014 (SGM), IWSLT17 (xml).

Results are lists of (source, target) sentence pairs. WMT's SGM and IWSLT's xml are "fake SGML"
(not reliably parseable as XML), so, like sacrebleu, segments are read line by line from
`<seg id=..>text</seg>`; whitespace is collapsed as sacrebleu does, and entities are unescaped.
"""

from __future__ import annotations

import gzip
import html
import re
from dataclasses import dataclass
from pathlib import Path

from gradprune.data.archives import read_tar_member, read_tar_members
from gradprune.data.errors import FormatError

MULTI30K_SIZES = {
    "train": 29_000,
    "val": 1_014,
    "test_2016_flickr": 1_000,
    "test_2017_flickr": 1_000,
    "test_2017_mscoco": 461,
    "test_2018_flickr": 1_071,
}
NEWSTEST2014_SIZE = 3_003
NEWSTEST_SIZES = {"newstest2013": 3_000, "newstest2015": 2_169}

# WMT16 En-De as TF NMT's wmt16_en_de.sh assembles it, read from the archives as published (they
# are the registry's files: their sha256 is known, that of the members is not). Member paths as
# in tensorflow_datasets' wmt.py; the archives' sizes and sha256 in registry.tsv are those of
# tensorflow_datasets' url_checksums/wmt16_translate.txt and of Hugging Face's wmt16
# dataset_infos.json, which agree. newstest2013/2015 come from WMT19's dev.tgz, which holds every
# earlier newstest and, unlike WMT16's dev.tgz/test.tgz, has a published sha256.
WMT16_CORPORA: dict[str, tuple[str, str]] = {  # corpus -> (archive file, member with {lang})
    "europarl-v7": ("training-parallel-europarl-v7.tgz", "training/europarl-v7.de-en.{lang}"),
    "commoncrawl": ("training-parallel-commoncrawl.tgz", "commoncrawl.de-en.{lang}"),
    "news-commentary-v11": ("training-parallel-nc-v11.tgz",
                            "training-parallel-nc-v11/news-commentary-v11.de-en.{lang}"),
}
WMT_DEV_ARCHIVE = "wmt19-dev.tgz"
IWSLT17_SIZES = {2016: 1_133, 2017: 1_138}

_DOC = re.compile(r"<doc\b[^>]*\bdocid=\"([^\"]*)\"")
_SEG = re.compile(r"<seg\b[^>]*?\bid=\"?([^\">\s]*)\"?[^>]*>(.*)</seg>")


@dataclass(frozen=True)
class Segment:
    docid: str
    segid: str
    text: str


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(text).strip())


# --- Multi30k ----------------------------------------------------------------------------------


def read_lines(path: str | Path) -> list[str]:
    """Lines of a (.gz) UTF-8 text file, without their line ends."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="\n") as f:
        return [line.rstrip("\r\n") for line in f]


def load_multi30k(
    root: str | Path,
    split: str = "train",
    src: str = "en",
    tgt: str = "de",
    check_size: bool = True,
) -> list[tuple[str, str]]:
    """Pairs of root/<split>.<src>.gz and root/<split>.<tgt>.gz (split e.g. 'test_2016_flickr')."""
    if split not in MULTI30K_SIZES:
        raise ValueError(f"unknown Multi30k split {split!r}; known: {sorted(MULTI30K_SIZES)}")
    src_path, tgt_path = (Path(root) / f"{split}.{lang}.gz" for lang in (src, tgt))
    return _pair(
        read_lines(src_path),
        read_lines(tgt_path),
        src_path,
        tgt_path,
        MULTI30K_SIZES[split] if check_size else None,
    )


def _pair(src: list, tgt: list, src_path, tgt_path, expected: int | None) -> list[tuple[str, str]]:
    if len(src) != len(tgt):
        raise FormatError(f"{src_path} has {len(src)} lines but {tgt_path} has {len(tgt)}")
    if expected is not None and len(src) != expected:
        raise FormatError(f"{src_path}: {len(src)} segments, expected {expected}")
    return list(zip(src, tgt))


# --- SGM / IWSLT xml ---------------------------------------------------------------------------


def parse_segments(text: str, source: str = "<text>") -> list[Segment]:
    """Segments of an SGM/IWSLT-xml document, in order, tagged with their doc and seg ids."""
    segments, docid = [], ""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("<doc"):
            m = _DOC.search(line)
            docid = m.group(1) if m else ""
        elif line.startswith("<seg"):
            m = _SEG.search(line)
            if m is None:
                raise FormatError(f"{source}: cannot parse segment line {line[:80]!r}")
            segments.append(Segment(docid, m.group(1), _clean(m.group(2))))
    if not segments:
        raise FormatError(f"{source}: no <seg> lines found")
    return segments


def read_segments(path: str | Path) -> list[Segment]:
    return parse_segments(Path(path).read_text(encoding="utf-8"), str(path))


def pair_segments(
    src: list[Segment],
    tgt: list[Segment],
    src_name: str,
    tgt_name: str,
    expected: int | None = None,
) -> list[tuple[str, str]]:
    """Pairs of aligned segments; the (docid, segid) sequences must agree."""
    if [(s.docid, s.segid) for s in src] != [(t.docid, t.segid) for t in tgt]:
        raise FormatError(f"segments of {src_name} and {tgt_name} are not aligned (doc/seg ids)")
    return _pair([s.text for s in src], [t.text for t in tgt], src_name, tgt_name, expected)


def load_newstest2014(
    root: str | Path, src: str = "en", tgt: str = "de", check_size: bool = True
) -> list[tuple[str, str]]:
    """newstest2014 de-en pairs from root/newstest2014-deen-{src,ref}.<lang>.sgm.

    The WMT14 files come as source side `src.<src>` with reference `ref.<tgt>`; both directions
    use the same 3,003 sentences.
    """
    if {src, tgt} != {"en", "de"}:
        raise ValueError(f"newstest2014 here is de-en only, got {src}-{tgt}")
    src_path = Path(root) / f"newstest2014-deen-src.{src}.sgm"
    tgt_path = Path(root) / f"newstest2014-deen-ref.{tgt}.sgm"
    return pair_segments(
        read_segments(src_path),
        read_segments(tgt_path),
        str(src_path),
        str(tgt_path),
        NEWSTEST2014_SIZE if check_size else None,
    )


def iwslt17_member(src: str, tgt: str, year: int = 2017) -> tuple[str, str]:
    """(archive file, member) of the IWSLT17 TED test source side for src->tgt."""
    pair = f"{src}-{tgt}"
    return f"{pair}.tgz", f"{pair}/IWSLT17.TED.tst{year}.{pair}.{src}.xml"


def load_iwslt17(
    root: str | Path,
    src: str = "en",
    tgt: str = "de",
    year: int = 2017,
    check_size: bool = True,
) -> list[tuple[str, str]]:
    """IWSLT17 TED test pairs read from the archives root/<src>-<tgt>.tgz and root/<tgt>-<src>.tgz.

    Each archive holds only a source side; as in sacrebleu, the reference of src->tgt is the
    source side of the reverse pair (same talks, same doc/seg ids). Nothing is written to disk.
    """
    if year not in IWSLT17_SIZES:
        raise ValueError(f"IWSLT17 test year {year} unknown; known: {sorted(IWSLT17_SIZES)}")
    sides = []
    for a, b in ((src, tgt), (tgt, src)):
        archive, member = iwslt17_member(a, b, year)
        path = Path(root) / archive
        text = read_tar_member(path, member).decode("utf-8")
        sides.append((parse_segments(text, f"{path}:{member}"), f"{path}:{member}"))
    (s, s_name), (t, t_name) = sides
    return pair_segments(s, t, s_name, t_name, IWSLT17_SIZES[year] if check_size else None)


def load_wmt16_train(root: str | Path, src: str = "en", tgt: str = "de") -> list[tuple[str, str]]:
    """Europarl v7 + CommonCrawl + News Commentary v11 pairs, read from root/<archive>."""
    _check_en_de(src, tgt)
    pairs: list[tuple[str, str]] = []
    for archive, member in WMT16_CORPORA.values():
        path = Path(root) / archive
        names = [member.format(lang=src), member.format(lang=tgt)]
        data = read_tar_members(path, names)
        sides = [_lines(data[n].decode("utf-8")) for n in names]
        pairs += _pair(*sides, f"{path}:{names[0]}", f"{path}:{names[1]}", None)
    return pairs


def load_wmt_newstest(root: str | Path, name: str, src: str = "en", tgt: str = "de",
                      check_size: bool = True) -> list[tuple[str, str]]:
    """newstest2013 (plain text) or newstest2015 (SGM) pairs from root/wmt19-dev.tgz.

    newstest2015 is one set of 2,169 sentences for both directions; the archive names its files
    by the de-en direction (src.de, ref.en), so en->de reads ref.en as source and src.de as
    reference, as tensorflow_datasets does.
    """
    _check_en_de(src, tgt)
    path = Path(root) / WMT_DEV_ARCHIVE
    if name == "newstest2013":
        names = [f"dev/newstest2013.{src}", f"dev/newstest2013.{tgt}"]
        data = read_tar_members(path, names)
        sides = [_lines(data[n].decode("utf-8")) for n in names]
        return _pair(*sides, f"{path}:{names[0]}", f"{path}:{names[1]}",
                     NEWSTEST_SIZES[name] if check_size else None)
    if name == "newstest2015":
        files = {"de": "dev/newstest2015-deen-src.de.sgm", "en": "dev/newstest2015-deen-ref.en.sgm"}
        names = [files[src], files[tgt]]
        data = read_tar_members(path, names)
        s, t = (parse_segments(data[n].decode("utf-8"), f"{path}:{n}") for n in names)
        return pair_segments(s, t, f"{path}:{names[0]}", f"{path}:{names[1]}",
                             NEWSTEST_SIZES[name] if check_size else None)
    raise ValueError(f"unknown WMT test set {name!r}; known: {', '.join(NEWSTEST_SIZES)}")


def _lines(text: str) -> list[str]:
    # split("\n"), not splitlines(): CommonCrawl has \x0b, \x1c and U+2028 inside lines, and
    # splitting on them would misalign the two sides.
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.strip() for line in lines]


def _check_en_de(src: str, tgt: str) -> None:
    if {src, tgt} != {"en", "de"}:
        raise ValueError(f"WMT16 here is En<->De only, got {src}-{tgt}")
