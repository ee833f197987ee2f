"""Full-text tokens as Qdrant makes them, for ``match`` ``text`` / ``text_any`` /
``phrase`` and the ``text`` payload index.

A text is split into tokens by the tokenizer (``word``: runs of Unicode letters and
digits; ``whitespace``: runs of non-space; ``prefix``: words, each also indexed as all
its prefixes), and each token is lowercased (unless ``lowercase`` is false), dropped if
it is a stopword, and dropped if shorter than ``min_token_len`` or longer than
``max_token_len`` characters, in Qdrant's order. A key without a text index is matched
with the default parameters (``word``, lowercased), as Qdrant does since 1.19.1.

Qdrant's ``prefix`` tokenizer indexes every prefix of a word up to ``max_token_len``,
or all of them without one: a word of L characters would cost about L*L/2 characters,
so one upsert of a few long words could take gigabytes (and again at every replay of
the log). Here a word is indexed under its prefixes up to ``PREFIX_CAP`` characters
only (or ``min_token_len``, if more); past that it is one ``LongWord`` token, which
stands for its longer prefixes. A query word longer than that is a ``LongPrefix``,
equal to every ``LongWord`` it begins (and hashed alike), so a match means what it
means in Qdrant while memory stays linear in the text: a text index looks such a
token up under its capped prefix, which names a superset, and the filter then reads
the candidates' texts.

Qdrant's other options are refused by name rather than approximated: the
``multilingual`` and ``code`` tokenizers, stemmers, the stopword lists of languages,
``ascii_folding`` and BM25 ``scoring``: a filter must mean the same here as there.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from vectorizer.errors import ValidationError

TOKENIZERS = ("word", "whitespace", "prefix")
_REFUSED_TOKENIZERS = ("multilingual", "code")
# Accepted for Qdrant's clients and without effect here (storage and graph tuning).
_TUNING = ("on_disk", "memory", "enable_hnsw")
_WORD = re.compile(r"[^\W_]+")  # Rust's char::is_alphanumeric, as qdrant-client has it
# The longest prefix of a word a prefix index holds as a token of its own (unless
# min_token_len is longer): far above the words people type, and it bounds a word's
# prefixes to about PREFIX_CAP**2 / 2 characters however long the word.
PREFIX_CAP = 32


class _Long(str):
    """A token past the prefixes indexed on their own: a ``LongWord`` equals the
    ``LongPrefix`` tokens it begins with, and either kind equals its own kind of the same
    characters; never a plain token, which is never this long. Both hash on their first
    ``PREFIX_CAP`` characters, so that a word and a prefix it begins with hash alike."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Long):
            return False
        if type(other) is type(self):
            return str.__eq__(self, other)
        word, prefix = (self, other) if isinstance(self, LongWord) else (other, self)
        return word.startswith(prefix)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash(self[:PREFIX_CAP])


class LongWord(_Long):
    """A word of a prefix-tokenized text longer than the prefixes indexed on their own
    (cut at ``max_token_len``): one token standing for each of its longer prefixes."""

    __slots__ = ()


class LongPrefix(_Long):
    """A prefix query word longer than the prefixes indexed on their own: it matches the
    ``LongWord`` tokens it begins."""

    __slots__ = ()


@dataclass(frozen=True)
class TextParams:
    """A text index's tokenizer settings (the defaults are Qdrant's)."""

    tokenizer: str = "word"
    lowercase: bool = True
    min_token_len: int | None = None
    max_token_len: int | None = None
    phrase_matching: bool = False
    stopwords: frozenset[str] = frozenset()

    def to_dict(self) -> dict[str, Any]:
        """Qdrant's ``TextIndexParams`` form: the type, the tokenizer and what was set."""
        out: dict[str, Any] = {"type": "text", "tokenizer": self.tokenizer}
        if not self.lowercase:
            out["lowercase"] = False
        for name in ("min_token_len", "max_token_len"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.phrase_matching:
            out["phrase_matching"] = True
        if self.stopwords:
            out["stopwords"] = {"custom": sorted(self.stopwords)}
        return out

    def doc_tokens(self, text: str) -> list[str]:
        """The tokens a stored text is indexed under, in order (with repeats)."""
        if self.tokenizer == "prefix":
            return [gram for word in self._words(text) for gram in self._prefixes(word)]
        return [t for t in map(self._processed, self._split(text)) if t is not None]

    def query_tokens(self, text: str) -> list[str]:
        """The tokens of a query text, each of which a match asks for."""
        if self.tokenizer != "prefix":
            return self.doc_tokens(text)
        # Qdrant: a query word is the longest prefix indexed (no stopwords: a query may
        # be a word being typed), and none when it is shorter than any indexed prefix.
        out: list[str] = []
        cap = self.prefix_cap
        for word in _WORD.findall(text):
            token = word.lower() if self.lowercase else word
            if self.min_token_len is not None and len(token) < self.min_token_len:
                continue
            if self.max_token_len is not None:
                token = token[: self.max_token_len]
            out.append(token if len(token) <= cap else LongPrefix(token))
        return out

    @property
    def prefix_cap(self) -> int:
        """The longest prefix of a word the prefix tokenizer makes a token of its own."""
        return max(PREFIX_CAP, self.min_token_len or 0)

    def index_token(self, token: str) -> str:
        """The token a text index holds for a query token: the token itself, or (a
        ``LongPrefix``) its prefix of ``prefix_cap`` characters, held by every word it
        can match, and by others: the points indexed under it are a superset."""
        return token[: self.prefix_cap] if isinstance(token, LongPrefix) else token

    def _split(self, text: str) -> list[str]:
        return text.split() if self.tokenizer == "whitespace" else _WORD.findall(text)

    def _processed(self, token: str, check_max_len: bool = True) -> str | None:
        if self.lowercase:
            token = token.lower()
        if not token or token in self.stopwords:
            return None
        if self.min_token_len is not None and len(token) < self.min_token_len:
            return None
        if check_max_len and self.max_token_len is not None and len(token) > self.max_token_len:
            return None
        return token

    def _words(self, text: str) -> list[str]:
        return [w for w in (self._processed(t, False) for t in _WORD.findall(text)) if w]

    def _prefixes(self, word: str) -> list[str]:
        """The word's prefixes from ``min_token_len`` characters up to the whole word, or
        ``max_token_len``; those past ``prefix_cap`` as one ``LongWord``."""
        if self.max_token_len is not None:
            word = word[: self.max_token_len]
        low = 1 if self.min_token_len is None else self.min_token_len
        cap = self.prefix_cap
        grams = [word[:n] for n in range(low, min(len(word), cap) + 1)]
        return grams + [LongWord(word)] if len(word) > cap else grams


DEFAULT = TextParams()


def parse_text_params(raw: dict[str, Any], field: str) -> TextParams:
    """The settings of Qdrant's ``TextIndexParams`` object; what this server cannot
    reproduce exactly is refused, naming the option."""
    known = {
        "type",
        "tokenizer",
        "lowercase",
        "min_token_len",
        "max_token_len",
        "phrase_matching",
        "stopwords",
        "ascii_folding",
        "stemmer",
        "scoring",
        "nested",
        *_TUNING,
    }
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValidationError(f"unknown text index option {unknown[0]!r}", field=field)
    # (a falsy value that is not null is no default: [] {} 0 "" false are refused)
    tokenizer = "word" if raw.get("tokenizer") is None else raw["tokenizer"]
    if tokenizer in _REFUSED_TOKENIZERS:
        raise ValidationError(
            f"the {tokenizer} tokenizer is not supported: use one of {', '.join(TOKENIZERS)}",
            field=f"{field}.tokenizer",
        )
    if not isinstance(tokenizer, str) or tokenizer not in TOKENIZERS:
        raise ValidationError(
            f"tokenizer is one of {', '.join(TOKENIZERS)}", field=f"{field}.tokenizer"
        )
    for name in ("stemmer", "scoring", "nested"):
        if raw.get(name) not in (None, False) and raw.get(name) != {"type": "none"}:
            raise ValidationError(
                f"{name} is not supported on a text index", field=f"{field}.{name}"
            )
    if raw.get("ascii_folding"):
        raise ValidationError(
            "ascii_folding is not supported on a text index", field=f"{field}.ascii_folding"
        )
    lowercase = _flag(raw, "lowercase", True, field)
    for name in ("on_disk", "enable_hnsw"):  # (storage tuning: checked, not kept)
        _flag(raw, name, False, field)
    return TextParams(
        tokenizer=tokenizer,
        lowercase=lowercase,
        min_token_len=_length(raw, "min_token_len", field),
        max_token_len=_length(raw, "max_token_len", field),
        phrase_matching=_flag(raw, "phrase_matching", False, field),
        stopwords=_stopwords(raw.get("stopwords"), lowercase, field),
    )


def _flag(raw: dict[str, Any], name: str, default: bool, field: str) -> bool:
    value = raw.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ValidationError(f"{name} is a boolean", field=f"{field}.{name}")
    return value


def _length(raw: dict[str, Any], name: str, field: str) -> int | None:
    value = raw.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(f"{name} is a non-negative integer", field=f"{field}.{name}")
    return value


def _stopwords(raw: Any, lowercase: bool, field: str) -> frozenset[str]:
    """Only custom lists: ``{"custom": [...]}`` (stored lowercased when tokens are, as
    Qdrant does). The lists of languages are refused: this server does not ship them."""
    if raw is None:
        return frozenset()
    field = f"{field}.stopwords"
    if isinstance(raw, str) or (isinstance(raw, dict) and raw.get("languages")):
        raise ValidationError(
            "the stopword lists of languages are not supported: give {custom: [words]}",
            field=field,
        )
    if not isinstance(raw, dict) or set(raw) - {"custom", "languages"}:
        raise ValidationError("stopwords is {custom: [words]}", field=field)
    words = raw.get("custom") or []
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
        raise ValidationError("stopwords.custom is a list of strings", field=f"{field}.custom")
    return frozenset(w.lower() if lowercase else w for w in words)


def has_phrase(tokens: Sequence[str], phrase: Sequence[str]) -> bool:
    """Whether ``phrase`` occurs in ``tokens`` as consecutive tokens.

    Knuth-Morris-Pratt, so at most 3 * (len(tokens) + len(phrase)) comparisons: without
    a text index a phrase is matched on the event loop, where comparing it at every
    position of the text took seconds for texts of a few hundred KB."""
    n = len(phrase)
    if n == 0:
        return True
    if n > len(tokens):
        return False
    # border[j]: the length of the longest proper prefix of phrase[: j + 1] that also
    # ends it, where a partial match of j + 1 tokens resumes after a mismatch
    border = [0] * n
    k = 0
    for j in range(1, n):
        while k and phrase[j] != phrase[k]:
            k = border[k - 1]
        if phrase[j] == phrase[k]:
            k += 1
        border[j] = k
    k = 0  # phrase tokens matched so far, ending at the current token
    for token in tokens:
        while k and token != phrase[k]:
            k = border[k - 1]
        if token == phrase[k]:
            k += 1
            if k == n:
                return True
    return False
