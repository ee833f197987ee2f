"""Full-text tokens as Qdrant makes them, for ``match`` ``text`` / ``text_any`` /
``phrase`` and the ``text`` payload index.

A text is split into tokens by the tokenizer (``word``: runs of Unicode letters and
digits; ``whitespace``: runs of non-space; ``prefix``: words, each also indexed as all
its prefixes), and each token is lowercased (unless ``lowercase`` is false), dropped if
it is a stopword, and dropped if shorter than ``min_token_len`` or longer than
``max_token_len`` characters, in Qdrant's order. A key without a text index is matched
with the default parameters (``word``, lowercased), as Qdrant does since 1.19.1.

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
        out = []
        for word in _WORD.findall(text):
            token = word.lower() if self.lowercase else word
            if self.min_token_len is not None and len(token) < self.min_token_len:
                continue
            out.append(token if self.max_token_len is None else token[: self.max_token_len])
        return out

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
        low = 1 if self.min_token_len is None else self.min_token_len
        high = len(word) if self.max_token_len is None else min(self.max_token_len, len(word))
        grams = [word[:n] for n in range(low, high + 1) if n < len(word)]
        # the whole word ends the run, unless max_token_len cut it short
        return grams + [word] if high == len(word) else grams


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
    tokenizer = raw.get("tokenizer") or "word"
    if tokenizer in _REFUSED_TOKENIZERS:
        raise ValidationError(
            f"the {tokenizer} tokenizer is not supported: use one of {', '.join(TOKENIZERS)}",
            field=f"{field}.tokenizer",
        )
    if tokenizer not in TOKENIZERS:
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
    """Whether ``phrase`` occurs in ``tokens`` as consecutive tokens."""
    n, want = len(phrase), tuple(phrase)
    return any(tuple(tokens[i : i + n]) == want for i in range(len(tokens) - n + 1))
