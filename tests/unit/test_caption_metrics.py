"""Caption metrics (mmrun.metrics.captioning): parity with coco-caption, tokenisation, edge cases."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mmrun.errors import ConfigError
from mmrun.metrics import captioning
from mmrun.metrics.captioning import caption_scores, cider_per_sample, normalise

FIXTURE = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "captions.json").read_text(encoding="utf-8")
)
CANDIDATES: list[str] = FIXTURE["candidates"]
REFERENCES: list[list[str]] = FIXTURE["references"]

# Expected values: coco-caption's own pipeline on the fixture, run once with pycocoevalcap 1.2
# (pycocotools 2.0.11, numpy 2.4, Python 3.11, OpenJDK 17) from the repository root, exactly as
# pycocoevalcap.eval.COCOEvalCap.evaluate runs it: the Java PTBTokenizer (CoreNLP 3.4.1 jar
# shipped in the package), then the scorers on its output:
#
#   fx = json.load(open("tests/fixtures/captions.json"))
#   gts = {i: [{"caption": r} for r in refs] for i, refs in enumerate(fx["references"])}
#   res = {i: [{"caption": c}] for i, c in enumerate(fx["candidates"])}
#   gts, res = PTBTokenizer().tokenize(gts), PTBTokenizer().tokenize(res)
#   assert [res[i][0] for i in res] == fx["candidates_tokenised"]   # the hand-written forms
#   assert [gts[i] for i in gts] == fx["references_tokenised"]
#   bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
#   rouge, _ = Rouge().compute_score(gts, res)
#   cider, cider_each = Cider().compute_score(gts, res)
#   meteor, _ = Meteor().compute_score(gts, res)
#
# (Bleu, Rouge, Cider, Meteor, PTBTokenizer from pycocoevalcap.{bleu.bleu, rouge.rouge,
# cider.cider, meteor.meteor, tokenizer.ptbtokenizer}.) The two asserts passed: the
# hand-written tokenisations in the fixture are the Java tokenizer's output.
REFERENCE_BLEU = [0.7926297717241004, 0.6260178076783547, 0.41913441464311224, 0.23679551356994072]
REFERENCE_ROUGE_L = 0.5929198604949593
REFERENCE_CIDER = 1.4758843884941464
REFERENCE_CIDER_EACH = [
    1.857155523600063,
    2.4494251122648993,
    0.0,
    1.5939353255670161,
    2.3767192258572165,
    0.6592989976179803,
    1.5906949758659312,
    1.2798459471800636,
]
REFERENCE_METEOR = 0.3400073720487369
TOL = 1e-4

needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="needs a Java runtime")


# --- tokenisation -------------------------------------------------------------------------------


def test_normalise_matches_the_reference_tokenisation_of_the_fixture():
    assert [normalise(c) for c in CANDIDATES] == FIXTURE["candidates_tokenised"]
    assert [[normalise(r) for r in refs] for refs in REFERENCES] == FIXTURE["references_tokenised"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ""),
        ("  \t\n ", ""),
        ("A Man  riding\ta\u00a0HORSE.", "a man riding a horse"),
        ("Don't, can't; won't: isn't!", "do n't ca n't wo n't is n't"),
        ("The dog's ball and the cats' toys.", "the dog 's ball and the cats toys"),
        ("I'm sure they're, we've, he'll, she'd", "i 'm sure they 're we 've he 'll she 'd"),
        ("It cannot be, we're gonna go", "it can not be we 're gon na go"),
        ("\u201cSmart\u201d dog\u2019s bowl \u2014 really\u2026", "smart dog 's bowl really"),
        ("A \"quoted\" 'word' and `this`", "a quoted word and this"),
        ("A cat (a kitten) on a [mat]", "a cat -lrb- a kitten -rrb- on a -lsb- mat -rsb-"),
        ("What?! No!! Yes?", "what ?! no !! yes"),
        (
            "Mr. Smith on St. Mark's St. near the U.S. flag at 5 p.m.",
            "mr. smith on st. mark 's st. near the u.s. flag at 5 p.m.",
        ),
        (
            "a black-and-white photo of 1,000 birds at 10:30, 3.5 km away",
            "a black-and-white photo of 1,000 birds at 10:30 3.5 km away",
        ),
        ("A dog. A cat... the end -- or - not", "a dog a cat the end or not"),
        ("$5 pizza, 100% cheese & #1 at AT&T", "$ 5 pizza 100 % cheese & # 1 at at&t"),
        ("a player wearing No. 5", "a player wearing no. 5"),
        ("no. it is not.", "no it is not"),
    ],
)
def test_normalise_examples(text, expected):
    assert normalise(text) == expected


# Plausible caption text with the PTB tokenizer's special cases (checked against Java below).
TRICKY = [
    "A man's hat isn't on the table; it's on the chair.",
    "Two children (a boy and a girl) play in the snow!",
    'The word "STOP" is written on a red sign.',
    "A 10-foot-tall statue of Mr. Lincoln in Washington, D.C.",
    "A sign reads 'No parking' near St. Paul's Cathedral.",
    "People watching TV at 8:30 p.m. -- they can't stop laughing...",
    "A plate with 3.5 oz. of rice, beans, etc. and a fork",
    "An old black-and-white photo from the '60s of a U.S. Army jeep",
    "Kids wanna play; parents gotta work, I guess?!",
    "A \u2018vintage\u2019 car\u2014a 1950s Chevrolet\u2014parked outside a caf\u00e9.",
    "She's holding a $20 bill & a 50% off coupon at R&B Co.",
    "THE DOG'S OWNER WON'T LET GO OF THE LEASH",
    "A man wearing a #23 jersey (No. 23) dunks",
    "A cat sits on the keyboard.A dog watches",
]


@needs_java
def test_normalise_agrees_with_the_java_ptb_tokenizer(tmp_path):
    """The real thing: pycocoevalcap's CoreNLP jar with its options, then its punctuation filter."""
    from pycocoevalcap.tokenizer import ptbtokenizer

    jar = Path(ptbtokenizer.__file__).with_name(ptbtokenizer.STANFORD_CORENLP_3_4_1_JAR)
    lines = TRICKY + CANDIDATES + [r for refs in REFERENCES for r in refs]
    src = tmp_path / "captions.txt"
    src.write_text("\n".join(lines), encoding="utf-8")
    cmd = ["java", "-cp", str(jar), "edu.stanford.nlp.process.PTBTokenizer"]
    out = subprocess.run(
        [*cmd, "-preserveLines", "-lowerCase", str(src)], capture_output=True, check=True
    )
    java = [
        " ".join(w for w in line.rstrip().split(" ") if w not in ptbtokenizer.PUNCTUATIONS)
        for line in out.stdout.decode("utf-8").split("\n")[: len(lines)]
    ]
    assert [normalise(line) for line in lines] == java


# --- parity with coco-caption ---------------------------------------------------------------


def test_scores_match_coco_caption_on_the_fixture():
    scores = caption_scores(CANDIDATES, REFERENCES)
    assert set(scores) == {"bleu1", "bleu2", "bleu3", "bleu4", "rouge_l", "cider"}
    for n, expected in enumerate(REFERENCE_BLEU, start=1):
        assert scores[f"bleu{n}"] == pytest.approx(expected, abs=TOL), f"bleu{n}"
    assert scores["rouge_l"] == pytest.approx(REFERENCE_ROUGE_L, abs=TOL)
    assert scores["cider"] == pytest.approx(REFERENCE_CIDER, abs=TOL)
    assert all(isinstance(v, float) for v in scores.values())


def test_per_sample_cider_matches_coco_caption_and_averages_to_the_corpus_score():
    each = cider_per_sample(CANDIDATES, REFERENCES)
    assert each == pytest.approx(REFERENCE_CIDER_EACH, abs=TOL)
    assert math.fsum(each) / len(each) == pytest.approx(
        caption_scores(CANDIDATES, REFERENCES, ("cider",))["cider"], abs=1e-12
    )


def test_metrics_selects_the_families():
    assert set(caption_scores(CANDIDATES, REFERENCES, ("rouge",))) == {"rouge_l"}
    assert set(caption_scores(CANDIDATES, REFERENCES, ("bleu",))) == {
        "bleu1",
        "bleu2",
        "bleu3",
        "bleu4",
    }


def test_every_reference_counts():
    """Dropping the one reference a candidate matches exactly lowers its scores."""
    cands = ["a dog runs on the beach", "a cat sleeps on a red sofa", "two birds sit on a wire"]
    refs = [
        ["A brown dog running along the sand.", "A dog runs on the beach."],
        ["A cat asleep on the couch.", "A kitten lying on a red sofa."],
        ["Birds perched on a power line.", "Two small birds on a wire."],
    ]
    full = caption_scores(cands, refs)
    first_only = caption_scores(cands, [r[:1] for r in refs])
    for key in ("bleu4", "rouge_l", "cider"):
        assert full[key] > first_only[key], key


def test_a_perfect_caption_beats_a_wrong_one():
    refs = REFERENCES + [["A bowl of oranges on a wooden table.", "Oranges in a bowl on a table."]]
    perfect = caption_scores(CANDIDATES + ["a bowl of oranges on a wooden table"], refs)
    wrong = caption_scores(CANDIDATES + ["an airplane flying over snowy mountains"], refs)
    for key in ("bleu1", "bleu4", "rouge_l", "cider"):
        assert perfect[key] > wrong[key], key
    each_perfect = cider_per_sample(CANDIDATES + ["A bowl of oranges on a wooden table!"], refs)
    each_wrong = cider_per_sample(CANDIDATES + ["an airplane flying over snowy mountains"], refs)
    assert each_perfect[-1] > 1.0 and each_wrong[-1] == 0.0


# --- edge cases ---------------------------------------------------------------------------------


def test_an_empty_candidate_scores_zero_and_nothing_breaks():
    scores = caption_scores(CANDIDATES, REFERENCES)
    assert all(math.isfinite(v) for v in scores.values())
    assert cider_per_sample(CANDIDATES, REFERENCES)[2] == 0.0  # CANDIDATES[2] == ""
    rouge = caption_scores([""], [["a man on a horse"]], ("rouge",))["rouge_l"]
    assert rouge == 0.0


def test_all_candidates_empty_gives_finite_near_zero_scores():
    scores = caption_scores(["", " ", "."], [["a dog"], ["a cat on a mat"], ["two birds"]])
    assert all(math.isfinite(v) for v in scores.values())
    assert scores["cider"] == 0.0 and scores["rouge_l"] == 0.0 and scores["bleu4"] < 1e-6


def test_references_without_any_token_give_zero_cider_not_a_crash():
    # pycocoevalcap's Cider fails on an empty document-frequency table; here the score is 0.
    assert cider_per_sample(["a dog", "a cat"], [["..."], [""]]) == [0.0, 0.0]


def test_a_single_sample_has_zero_cider():
    # With one sample every n-gram's document frequency equals the number of samples: idf 0.
    assert cider_per_sample(["a dog on a mat"], [["a dog on a mat"]]) == [0.0]


def test_no_candidates():
    assert caption_scores([], []) == {}
    assert cider_per_sample([], []) == []


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="2 candidates but 1 reference"):
        caption_scores(["a", "b"], [["a"]])
    with pytest.raises(ValueError, match="sample 1 has no"):
        caption_scores(["a", "b"], [["a"], []])
    with pytest.raises(ValueError, match="sample 0 has no"):
        cider_per_sample(["a"], ["a dog"])  # a string, not a list of references
    with pytest.raises(TypeError):
        caption_scores("a dog", [["a dog"]])


def test_unknown_metric_is_a_config_error():
    with pytest.raises(ConfigError, match=r"task\.metrics.*spice"):
        caption_scores(CANDIDATES, REFERENCES, ("bleu", "spice"))


def test_meteor_without_java_is_a_one_line_config_error(monkeypatch):
    monkeypatch.setattr(captioning.shutil, "which", lambda name: None)
    with pytest.raises(ConfigError) as info:
        caption_scores(CANDIDATES, REFERENCES, ("bleu", "meteor"))
    message = str(info.value)
    assert "\n" not in message
    assert "task.metrics" in message and "java" in message.lower() and "meteor" in message
    # Without meteor, no Java is needed.
    assert "meteor" not in caption_scores(CANDIDATES, REFERENCES)


@needs_java
def test_meteor_with_java_matches_coco_caption():
    scores = caption_scores(CANDIDATES, REFERENCES, ("bleu", "rouge", "cider", "meteor"))
    assert scores["meteor"] == pytest.approx(REFERENCE_METEOR, abs=TOL)
    assert scores["bleu4"] == pytest.approx(REFERENCE_BLEU[3], abs=TOL)


def test_missing_pycocoevalcap_is_a_config_error_with_the_fix(monkeypatch):
    for name in [m for m in sys.modules if m.startswith("pycocoevalcap")] + ["pycocoevalcap"]:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ConfigError, match=r"pip install 'mmrun\[caption\]'"):
        caption_scores(CANDIDATES, REFERENCES)


def test_importing_the_module_does_not_import_pycocoevalcap():
    code = (
        "import sys, mmrun.metrics.captioning; "
        "assert not [m for m in sys.modules if m.startswith('pycocoevalcap')]"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- torchmetrics, for the record ---------------------------------------------------------------


def test_torchmetrics_bleu_agrees_here_but_rouge_l_does_not():
    """Why the module uses pycocoevalcap for all three metrics (see its docstring).

    On ordinary text torchmetrics' BLEUScore gives coco-caption's BLEU (float32 precision);
    it differs without smoothing (no 4-gram match: 0 instead of a small positive value) and
    when two references are equally close in length. Its ROUGEScore ("rougeL", best reference)
    is a different ROUGE-L: beta 1 instead of 1.2, the best reference by F-measure instead of
    the best precision and recall separately (0.5714 here against coco-caption's 0.5929).
    """
    from torchmetrics.text import BLEUScore, ROUGEScore

    cands, refs = FIXTURE["candidates_tokenised"], FIXTURE["references_tokenised"]
    for n, expected in enumerate(REFERENCE_BLEU, start=1):
        assert float(BLEUScore(n_gram=n)(cands, refs)) == pytest.approx(expected, abs=1e-6)
    rouge = ROUGEScore(rouge_keys="rougeL", accumulate="best")(cands, refs)
    assert abs(float(rouge["rougeL_fmeasure"]) - REFERENCE_ROUGE_L) > 0.01
    # Short candidates: no 4-gram at all. coco-caption's smoothing keeps BLEU-4 above 0.
    short_c, short_r = ["the cat sat", "a dog"], [["the cat sat on the mat"], ["a dog runs"]]
    assert float(BLEUScore(n_gram=4)(short_c, short_r)) == 0.0
    assert caption_scores(short_c, short_r, ("bleu",))["bleu4"] > 0.01
