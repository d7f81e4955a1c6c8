"""Generation-quality metrics for captioning: BLEU-1..4, ROUGE-L, CIDEr-D (and METEOR with Java).

The numbers are those of the reference scorer for image captioning, the MS COCO caption
evaluation code ("coco-caption"; Chen et al., "Microsoft COCO Captions: Data Collection and
Evaluation Server", 2015, arXiv:1504.00325), as packaged on PyPI by ``pycocoevalcap``:

* **BLEU-n** (Papineni et al., "BLEU: a Method for Automatic Evaluation of Machine Translation",
  ACL 2002): corpus level, i.e. clipped n-gram matches and lengths are summed over all samples
  before the precisions and the brevity penalty are taken (not a mean of sentence BLEUs); the
  effective reference length of a sample is that of its reference closest in length to the
  candidate (ties: the shorter). Scale 0-1.
* **ROUGE-L** (Lin, "ROUGE: A Package for Automatic Evaluation of Summaries", ACL workshop 2004):
  per sample, an F-measure with beta = 1.2 of the longest-common-subsequence precision and recall,
  each the best over the sample's references; the corpus score is the mean over samples. 0-1.
* **CIDEr-D** (Vedantam et al., "CIDEr: Consensus-based Image Description Evaluation", CVPR 2015,
  arXiv:1411.5726): tf-idf weighted 1- to 4-gram cosine similarity with every reference,
  with the "D" changes the COCO server uses: candidate n-gram weights clipped to the
  reference's, a Gaussian penalty on the length difference (sigma = 6), times 10. The
  document frequencies (idf) are computed over the references of the samples passed in,
  so a sample's CIDEr-D depends on the whole set it is scored with: score a whole split in
  one call, never batch by batch. Scale: 0 to about 10 per sample (coco-caption's own
  scale; values near 1 are typical of good models on COCO). With a single sample every
  idf is 0 and so is CIDEr-D.
* **METEOR** (only with a Java runtime): coco-caption's METEOR 1.5 jar, run as a subprocess.

Which implementation, and why
-----------------------------
The issue asks for torchmetrics "where it matches the reference". pycocoevalcap *is* the
reference, so its pure-Python scorers (``pycocoevalcap.bleu.bleu.Bleu``,
``pycocoevalcap.rouge.rouge.Rouge``, ``pycocoevalcap.cider.cider.Cider``; no Java, no network)
are used for all three metrics, imported lazily so that ``import mmrun.metrics.captioning``
works without the ``caption`` extra. torchmetrics does not reproduce them exactly
(torchmetrics 1.9, checked in tests/unit/test_caption_metrics.py): ``BLEUScore`` agrees on
ordinary text but has no count smoothing (coco-caption adds 1e-15 to every match count and 1e-9
to every n-gram count, so a corpus with no matching 4-gram still gets a small positive BLEU-4
where torchmetrics gives exactly 0) and breaks ties between equally close reference lengths
towards the first reference, not the shorter (another brevity penalty); ``ROUGEScore`` uses
beta = 1, takes the best reference by F-measure rather than the best precision and best recall
separately, and applies its own text normalisation; torchmetrics has no CIDEr. The ``Cider`` class of
pycocoevalcap 1.2 is CIDEr-D (clipping, sigma = 6 length penalty, x10), the metric the COCO
server reports under the name "CIDEr".

Tokenisation
------------
coco-caption tokenises every caption with the Stanford PTB tokenizer (Java, CoreNLP 3.4.1,
``-preserveLines -lowerCase``) and then drops the tokens of a fixed punctuation list.
:func:`normalise` does the same in pure Python for plain English; see its docstring for what it
reproduces and where it may differ.
"""

from __future__ import annotations

import contextlib
import math
import re
import shutil
from collections.abc import Sequence

from mmrun.errors import ConfigError

__all__ = ["METRICS", "caption_scores", "cider_per_sample", "normalise"]

#: Metric families ``caption_scores`` understands (``task.metrics`` values).
METRICS = ("bleu", "rouge", "cider", "meteor")

_INSTALL_HINT = "task=captioning needs pycocoevalcap: pip install 'mmrun[caption]'"

# ---------------------------------------------------------------------------------------------
# Tokenisation (PTB tokenizer as coco-caption runs it, in pure Python)
# ---------------------------------------------------------------------------------------------

# Tokens coco-caption deletes after tokenising. Its list also names -LRB-, -RRB-, -LCB- and
# -RCB-, but it compares them with the tokenizer's *lowercased* output, so they never match:
# brackets survive as the tokens -lrb-, -rrb-, -lsb-, -rsb-, -lcb-, -rcb-. Only the entries
# below can ever be removed. "?!", "!!" and other runs of ! and ? are single tokens that are
# not in the list, and so are kept.
_DROPPED = frozenset({"''", "'", "``", "`", ".", "?", "!", ",", ":", ";", "-", "--", "..."})

_BRACKETS = {"(": "-lrb-", ")": "-rrb-", "[": "-lsb-", "]": "-rsb-", "{": "-lcb-", "}": "-rcb-"}

# Typographic characters the PTB tokenizer rewrites to their ASCII/PTB forms.
_UNICODE = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201f": '"',
        "\u2033": '"',
        "\u2013": " -- ",
        "\u2014": " -- ",
        "\u2015": " -- ",
        "\u2026": " ... ",
    }
)

# Words whose final period the PTB tokenizer keeps ("st." stays "st."), whatever their case;
# found by running the CoreNLP 3.4.1 tokenizer on each candidate in lower and title case.
# fmt: off
_ABBREVIATIONS = frozenset({
    "mr", "mrs", "ms", "dr", "st", "mt", "jr", "sr", "vs", "v", "etc", "cf", "al", "seq", "ph.d",
    "inc", "co", "cos", "corp", "ltd", "plc", "pty", "cie", "bhd", "assn", "mfg", "bancorp", "bros",
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
    "mon", "tue", "wed", "thu", "fri", "ave", "blvd", "rd", "sq", "bldg", "ft", "dept", "univ",
    "est", "gen", "col", "lt", "sgt", "capt", "prof", "rev", "hon", "gov", "sen", "rep", "pres",
    "adm", "maj", "cpl", "pvt", "messrs", "sens", "reps", "comdr", "cmdr", "lieut", "supt", "det",
    "insp", "esq", "ph", "ste", "pte", "mme", "mlle", "intl", "natl", "tel", "ext",
    "calif", "fla", "ariz", "conn", "penn", "ala", "colo", "ga", "ind", "kan", "kans", "ky", "md",
    "mich", "minn", "mo", "mont", "neb", "nev", "okla", "tenn", "va", "vt", "wis", "wyo",
})
# ... and those it keeps only when capitalised ("Mass." stays, "mass." is split).
_CAPITALISED_ABBREVIATIONS = frozenset({
    "mass", "wash", "tex", "la", "ark", "del", "ill", "miss", "ore", "pa",
})
# fmt: on

_WORD_SPLITS = {
    "cannot": ["can", "not"],
    "gonna": ["gon", "na"],
    "gotta": ["got", "ta"],
    "wanna": ["wan", "na"],
    "lemme": ["lem", "me"],
    "gimme": ["gim", "me"],
}
# Words that start with an apostrophe and stay whole (other leading apostrophes are quotes).
_APOSTROPHE_WORDS = frozenset({"'em", "'cause", "'n'", "'s", "'m", "'d", "'ll", "'re", "'ve"})
_CONTRACTION = re.compile(r"^(.+?)(n't)$|^(.+)('s|'m|'d|'ll|'re|'ve)$", re.IGNORECASE)
_ROCK_N_ROLL = re.compile(r"^(\w+)('n')(\w+)$", re.IGNORECASE)
_NUMBER_SIGN = re.compile(r"^(no\.)(\d.*)$", re.IGNORECASE)
# Separators inside a chunk: a comma or colon not between two digits, a semicolon, a run of
# two or more hyphens, brackets, ``&`` unless between capitals (AT&T), ``+`` unless before a
# digit, and the symbols * = ^ | ~ \.
_SEPARATOR = re.compile(
    r"(?<!\d),|,(?!\d)|(?<!\d):|:(?!\d)|;|-{2,}|[()\[\]{}]|(?<![A-Z])&|&(?![A-Z])|\+(?!\d)|[*=^|~\\]"
)
_INITIALS = re.compile(r"^[A-Za-z](\.[A-Za-z])*$")


def _keeps_period(stem: str, next_chunk: str) -> bool:
    """Whether ``stem + "."`` is one token for the PTB tokenizer (an abbreviation or initials)."""
    low = stem.lower()
    if low in _ABBREVIATIONS or _INITIALS.match(stem):
        return True
    if low == "no":  # "No. 5", "No.," "No.:" and "No.;" keep it
        return next_chunk[:1].isdigit() or next_chunk[:1] in (",", ":", ";")
    return low in _CAPITALISED_ABBREVIATIONS and stem[:1].isupper()


def _word_tokens(word: str, whole: bool = True) -> list[str]:
    """Split a word with no outer punctuation into clitics (``don't`` -> ``do n't``)."""
    if not word:
        return []
    low = word.lower()
    if whole and low in _WORD_SPLITS:
        return list(_WORD_SPLITS[low])
    if low in _APOSTROPHE_WORDS:
        return [word]
    for pattern in (_ROCK_N_ROLL, _NUMBER_SIGN):
        m = pattern.match(word)
        if m:
            return [g for g in m.groups() if g]
    m = _CONTRACTION.match(word)
    if m:
        stem, suffix = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
        return _word_tokens(stem, whole=False) + [suffix]
    return [word]


def _chunk_tokens(chunk: str, next_chunk: str = "") -> list[str]:
    """PTB tokens of one whitespace-free chunk (``next_chunk``: the chunk after it, if any)."""
    if not chunk:
        return []
    if _SEPARATOR.search(chunk):
        out: list[str] = []
        pos = 0
        for m in _SEPARATOR.finditer(chunk):
            sep = m.group()
            out += _chunk_tokens(chunk[pos : m.start()], sep)
            out.append("--" if sep.startswith("-") else _BRACKETS.get(sep, sep))
            pos = m.end()
        return out + _chunk_tokens(chunk[pos:], next_chunk)

    head: list[str] = []
    while chunk:
        c = chunk[0]
        if c == '"':
            head.append("``")
            chunk = chunk[1:]
        elif c == "`":
            head.append("`")
            chunk = chunk[1:]
        elif c in "$#" and len(chunk) > 1:
            head.append(c)
            chunk = chunk[1:]
        elif c == "-" and len(chunk) > 1 and not chunk[1].isdigit():
            head.append("-")
            chunk = chunk[1:]
        elif chunk.startswith(".."):
            n = len(chunk) - len(chunk.lstrip("."))
            head += ["..."] if n > 2 else ["."] * n
            chunk = chunk[n:]
        elif c == "'" and len(chunk) > 1:
            low = chunk.lower()
            if re.match(r"'(\d\ds?|em|cause|n'|s|m|d|ll|re|ve)(?![a-z0-9])", low):
                break
            if re.match(r"'t(is|was)(?![a-z])", low):
                head.append("'t")
                chunk = chunk[2:]
            else:
                head.append("`")
                chunk = chunk[1:]
        else:
            break

    tail: list[str] = []
    while chunk:
        c = chunk[-1]
        if c == '"':
            tail.append("''")
            chunk = chunk[:-1]
        elif c == "`":
            tail.append("`")
            chunk = chunk[:-1]
        elif c == "'" and chunk.lower() not in _APOSTROPHE_WORDS:
            tail.append("'")
            chunk = chunk[:-1]
        elif c == "%":
            tail.append(c)
            chunk = chunk[:-1]
        elif c in "!?":
            stem = chunk.rstrip("!?")
            tail.append(chunk[len(stem) :])
            chunk = stem
        elif c == "-" and len(chunk) > 1:
            tail.append("-")
            chunk = chunk[:-1]
        elif c == ".":
            stem = chunk.rstrip(".")
            n = len(chunk) - len(stem)
            if stem and _keeps_period(stem, next_chunk):
                tail += ["."] * (n - 1)  # dropped: only whether the word keeps its "." matters
                chunk = stem + "."
                break
            tail += ["..."] if n > 2 else ["."] * n
            chunk = stem
        else:
            break
    return head + _word_tokens(chunk) + tail[::-1]


def normalise(text: str) -> str:
    """Tokenise a caption as coco-caption does: lowercase PTB tokens, punctuation removed.

    coco-caption runs the Stanford PTB tokenizer (CoreNLP 3.4.1, ``-preserveLines
    -lowerCase``) on every candidate and reference, then deletes the tokens ``'' ' `` ` . ? ! ,
    : ; - -- ...``. This function reproduces that in pure Python for plain English text:

    * words are lowercased; runs of whitespace (tabs, newlines, non-breaking spaces) become
      single spaces; leading and trailing spaces go; an empty caption gives ``""``;
    * punctuation at either end of a word is split off and dropped: ``. , ; : ! ?``, quotes,
      backquotes, ``-``, ``--`` and ``...`` (typographic quotes, dashes and the ellipsis too);
      a comma, colon, semicolon or ``--`` inside a word separates it (``a,b`` -> ``a b``) but
      not inside a number (``3,000``, ``10:30``, ``3.5`` stay whole);
    * clitics are split as the Penn Treebank does and kept as tokens: ``don't`` -> ``do n't``,
      ``can't`` -> ``ca n't``, ``won't`` -> ``wo n't``, ``it's`` -> ``it 's``, ``dog's`` ->
      ``dog 's``, also ``'m 'd 'll 're 've``; ``cannot gonna gotta wanna lemme gimme`` ->
      ``can not``, ``gon na``, ...; a possessive apostrophe after s (``dogs'``) is dropped;
    * hyphenated words, numbers, ``o'clock``, ``e-mail`` and URLs stay whole; ``$ # %`` are split
      off and kept; ``&`` is split off and kept except between capitals (``AT&T``, ``R&B``);
    * a final period stays on abbreviations and initials (``mr.``, ``st.``, ``etc.``, ``u.s.``,
      ``a.m.``, ``j.``), as PTB does, and is dropped elsewhere;
    * brackets become ``-lrb- -rrb- -lsb- -rsb- -lcb- -rcb-`` and are **kept**: coco-caption's list
      names ``-LRB-`` etc. in capitals and compares it with lowercased tokens, so they never
      match. Runs such as ``?!`` or ``!!`` are single tokens and are kept for the same reason.

    Where it may differ from the Java tokenizer (rare in captions): abbreviations outside the
    list found by probing CoreNLP 3.4.1; a single letter or abbreviation before a word PTB
    takes for a sentence start (``X. In`` loses its period there); ``y'all``, ``'bout``,
    ``gov't`` and other rare clitics; times glued to ``am``/``pm`` (``10:30am``); emoticons;
    ``<``, ``>`` and ``+`` between digits; ``&amp;``-style entities; fractions and other
    Unicode symbols PTB rewrites; non-English text. On 3,000 generated caption-like sentences
    (contractions, possessives, quotes, brackets, abbreviations, numbers, capitals, typographic
    punctuation) the output was identical to the Java tokenizer's, token for token; on random
    strings of words glued to punctuation about 1 in 100 differed.
    tests/unit/test_caption_metrics.py checks it against the Java tokenizer when Java is found.
    """
    chunks = text.translate(_UNICODE).split()
    tokens: list[str] = []
    for i, chunk in enumerate(chunks):
        tokens += _chunk_tokens(chunk, chunks[i + 1] if i + 1 < len(chunks) else "")
    return " ".join(t for t in (t.lower() for t in tokens) if t and t not in _DROPPED)


# ---------------------------------------------------------------------------------------------
# Scores
# ---------------------------------------------------------------------------------------------


def _check(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> None:
    if isinstance(candidates, str) or isinstance(references, str):
        raise TypeError("candidates and references must be lists of strings, not a string")
    if len(candidates) != len(references):
        raise ValueError(
            f"{len(candidates)} candidates but {len(references)} reference lists: "
            "give one list of references per candidate"
        )
    for i, refs in enumerate(references):
        if isinstance(refs, str) or len(refs) == 0:
            raise ValueError(
                f"sample {i} has no list of reference captions ({refs!r}); every candidate needs "
                "at least one reference (score generation-only data without metrics)"
            )


def _tokenised(candidates, references) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    """coco-caption's input form: ``{i: [tokenised candidate]}`` and ``{i: [tokenised refs]}``."""
    res = {i: [normalise(c)] for i, c in enumerate(candidates)}
    gts = {i: [normalise(r) for r in refs] for i, refs in enumerate(references)}
    return gts, res


def _scorer(module: str, name: str):
    """A pycocoevalcap scorer class, imported only when needed (its modules, not its package:
    ``pycocoevalcap.eval`` would import the Java-based scorers too)."""
    try:
        mod = __import__(f"pycocoevalcap.{module}", fromlist=[name])
    except ImportError as err:
        raise ConfigError(_INSTALL_HINT) from err
    return getattr(mod, name)


def _cider(gts: dict[int, list[str]], res: dict[int, list[str]]) -> list[float]:
    """Per-sample CIDEr-D from pycocoevalcap's ``Cider`` (n = 4, sigma = 6)."""
    Cider = _scorer("cider.cider", "Cider")
    if not any(r.strip() for refs in gts.values() for r in refs):
        # No reference has a token: every idf is undefined and pycocoevalcap fails on
        # max() of an empty document-frequency table; no n-gram can match, so the score is 0.
        return [0.0] * len(res)
    _, per_sample = Cider().compute_score(gts, res)
    return [float(s) for s in per_sample]


def _meteor(gts: dict[int, list[str]], res: dict[int, list[str]]) -> float:
    """Corpus METEOR 1.5 from pycocoevalcap's ``Meteor`` (a Java subprocess, closed after use)."""
    Meteor = _scorer("meteor.meteor", "Meteor")
    scorer = Meteor()
    proc = scorer.meteor_p
    try:
        score, _ = scorer.compute_score(gts, res)
    except (ValueError, OSError) as err:
        proc.kill()
        stderr = proc.stderr.read().decode(errors="replace").strip().splitlines()
        raise RuntimeError(
            "METEOR (java -jar meteor-1.5.jar -Xmx2G, started by pycocoevalcap) failed"
            + (f": {stderr[-1]}" if stderr else "")
        ) from err
    finally:
        # compute_score keeps its lock when it fails, and Meteor.__del__ takes that lock: free
        # it, or garbage collection would hang. Then end the process and close its pipes.
        if scorer.lock.locked():
            scorer.lock.release()
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            with contextlib.suppress(OSError):  # unwritten input to a process that died: BrokenPipeError
                pipe.close()
    return float(score)


def caption_scores(
    candidates: list[str],
    references: list[list[str]],
    metrics: tuple[str, ...] = ("bleu", "rouge", "cider"),
) -> dict[str, float]:
    """Corpus-level caption metrics, computed exactly as coco-caption computes them.

    Args:
        candidates: one generated caption per sample, raw text (an empty string is allowed:
            it scores 0 on every metric for that sample).
        references: for each sample, all of its reference captions, raw text (at least one).
        metrics: which families to compute, from ``bleu`` (keys ``bleu1`` .. ``bleu4``), ``rouge``
            (``rouge_l``), ``cider`` (``cider``: CIDEr-D, idf over these references) and
            ``meteor`` (``meteor``; needs a Java runtime on PATH).

    Returns:
        ``{name: score}``, every score a float, BLEU/ROUGE-L/METEOR on a 0-1 scale and CIDEr-D on
        coco-caption's scale (0 to about 10; see the module docstring). An empty candidate
        list returns ``{}``: there is nothing to score, and the caller decides whether that is
        an error (a whole split is never empty after the datamodule's checks).

    Every candidate is scored against all of its references; all inputs are tokenised with
    :func:`normalise` first. The scorers are pure Python and single-threaded; a call holds no
    state, so concurrent calls are safe (METEOR starts its own Java process per call).

    Raises:
        ConfigError: an unknown name in ``metrics``; ``meteor`` without Java; pycocoevalcap
            missing.
        ValueError: ``candidates`` and ``references`` of different lengths, or a sample with
            no references.
        RuntimeError: METEOR's Java process failed (it asks for a 2 GB heap).
    """
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ConfigError(
            f"task.metrics: unknown caption metric(s) {unknown}; choose from {list(METRICS)}"
        )
    if "meteor" in metrics and shutil.which("java") is None:
        raise ConfigError(
            "task.metrics includes meteor, which needs a Java runtime (java not found on PATH): "
            "install one (e.g. apt-get install default-jre) or drop meteor from task.metrics"
        )
    _check(candidates, references)
    if len(candidates) == 0:
        return {}
    gts, res = _tokenised(candidates, references)
    out: dict[str, float] = {}
    if "bleu" in metrics:
        Bleu = _scorer("bleu.bleu", "Bleu")
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
        out.update({f"bleu{n + 1}": float(b) for n, b in enumerate(bleu)})
    if "rouge" in metrics:
        Rouge = _scorer("rouge.rouge", "Rouge")
        rouge, _ = Rouge().compute_score(gts, res)
        out["rouge_l"] = float(rouge)
    if "cider" in metrics:
        per_sample = _cider(gts, res)
        out["cider"] = math.fsum(per_sample) / len(per_sample)
    if "meteor" in metrics:
        out["meteor"] = _meteor(gts, res)
    return out


def cider_per_sample(candidates: list[str], references: list[list[str]]) -> list[float]:
    """CIDEr-D of each sample (for captions.csv), idf over all ``references`` passed in.

    The same computation as ``caption_scores(...)["cider"]``, which is the mean of this list;
    like it, a sample's value depends on the other samples (through the document frequencies),
    so pass the whole split at once. An empty candidate list gives ``[]``.
    """
    _check(candidates, references)
    if len(candidates) == 0:
        return []
    return _cider(*_tokenised(candidates, references))
