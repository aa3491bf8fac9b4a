"""The lexical guard of the semantic cache: a second opinion that vetoes a match the embedding liked.

Sentence embeddings score "How do I convert ethane to ethene?" and "How do I convert ethene to
ethane?" as near-identical (0.997), and likewise questions that differ only in a number, a name or a
"not". On Quora Question Pairs no cosine threshold alone serves right answers 97 times in 100
(``docs/caching.md``). So a match also needs the two prompts to say the same meaningful words in the
same order: numbers (digits and number words), symbols (``C++`` vs ``C#``), negations, pronouns
("How do *I*…" vs "How do *you*…"), modal verbs, question words and every content word (a name, a
noun, a verb), compared after folding case and plural endings. That rejects a changed detail, a
swap (Denver→Seattle is not Seattle→Denver) and a moved "not" alike.

What may differ: articles, prepositions, forms of "be"/"have", contractions ("what's"), filler
("really", "please"), plural endings, case, spacing and punctuation — the differences between
paraphrases, which the embedding then confirms.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"[a-z0-9]+|[^\sa-z0-9.,?!'\"()\-:;]")


def _set(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Words whose presence or absence rarely changes what is asked. Pronouns, modals, negations and
# question words are deliberately not here: they change the question.
_FILLER = _set("""
a an the is are was were be been being am have has had having of in on at to for from by with about
as into through over under than then so and or but if there here some any all just also get got really doing
actually ever one way best good please tell know this that these those s re m ll ve d
""")
_NEGATIONS = frozenset({"not", "no", "never", "without", "nor", "cannot", "t", "none", "nothing", "neither"})
_NUMBER_WORDS = _set("""
zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen
seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand million
billion first second third fourth fifth sixth seventh eighth ninth tenth half double triple
""")


def _words(text: str) -> list[str]:
    out = []
    for word in _TOKEN.findall(text.lower()):
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        out.append(word)
    return out


def _exact_kind(word: str) -> bool:
    """Numbers, symbols and negations: these must match one for one."""
    return not word.isalnum() or word in _NUMBER_WORDS or word in _NEGATIONS or any(c.isdigit() for c in word)


def agree(a: str, b: str) -> bool:
    """Whether two prompts say the same meaningful words in the same order (see the module docstring)."""
    meaningful_a = [w for w in _words(a) if w not in _FILLER or _exact_kind(w)]
    meaningful_b = [w for w in _words(b) if w not in _FILLER or _exact_kind(w)]
    return meaningful_a == meaningful_b
