"""A byte-level BPE tokenizer, small enough to read in one sitting.

Vocabulary layout:
    0..255              the raw bytes, so any input can be encoded (emoji, NUL, invalid UTF-8, ...)
    256                 <|endoftext|>: separates documents, starts a prompt and stops generation
    257..vocab_size-1   merges learned from the corpus, in the order they were learned

Before BPE the bytes are split into chunks with a regex (words with their leading space, short digit
runs, punctuation runs, whitespace, runs of emoji/CJK), and merges never cross a chunk boundary. The
regex works on bytes, so text that is not valid UTF-8 still splits, and it keeps the bytes of one UTF-8
character inside one chunk, so a frequent emoji can become a single token.

`encode` never produces <|endoftext|>: the literal text "<|endoftext|>" in user input is just bytes.
Only code that means it inserts the special id (see `encode_documents`).

The trained tokenizer ships as toy_model/data/tokenizer.json (JSON, no pickle); rebuild it with
`python -m toy_model.tokenizer`.
"""

from __future__ import annotations

import heapq
import json
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

EOT_ID = 256
EOT_TEXT = "<|endoftext|>"
N_BYTES = 256
FIRST_MERGE_ID = 257
DEFAULT_VOCAB_SIZE = 1024
DEFAULT_PATH = Path(__file__).resolve().parent / "data" / "tokenizer.json"
FORMAT_NAME = "toy_model.tokenizer"
FORMAT_VERSION = 1

# Letters are ASCII letters or any 2-byte UTF-8 character (Latin accents, Greek, Cyrillic, ...), so
# "café" and "θάλασσα" stay one chunk. 3- and 4-byte characters (emoji, CJK, arrows, variation selectors,
# zero-width joiners) form their own runs, so "📄➡️🧩" can merge into one token but never glue onto a word.
_LETTER = rb"(?:[A-Za-z]|[\xc2-\xdf][\x80-\xbf])"
_WIDE = rb"(?:[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3})"
SPLIT_PATTERN = (
    rb"'(?:s|t|re|ve|m|ll|d)"  # English contractions
    rb"| ?" + _LETTER + rb"+"  # a word with its leading space
    rb"|[0-9]{1,3}"  # numbers in runs of at most three digits
    rb"| ?" + _WIDE + rb"+"  # a run of emoji / CJK / symbols
    rb"| ?[^\sA-Za-z0-9\x80-\xff]+"  # a run of ASCII punctuation or control characters
    rb"|\s+(?!\S)|\s+"  # whitespace, leaving one space to lead the next word
    rb"|[\x80-\xff]"  # a byte that is not part of valid UTF-8, on its own
)


def _merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every non-overlapping occurrence of `pair` in `ids` (left to right) with `new_id`."""
    out = []
    i, n = 0, len(ids)
    a, b = pair
    while i < n:
        if i + 1 < n and ids[i] == a and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


class Tokenizer:
    """Byte-level BPE. `merges[i]` is the pair of ids that becomes id FIRST_MERGE_ID + i."""

    _CACHE_LIMIT = 200_000  # chunks remembered by encode; cleared when full so memory stays bounded

    def __init__(self, merges: Iterable[tuple[int, int]], pattern: bytes = SPLIT_PATTERN):
        self.merges = [(int(a), int(b)) for a, b in merges]
        self.pattern = pattern
        self._split = re.compile(pattern)
        self.eot_id = EOT_ID
        self.vocab_size = FIRST_MERGE_ID + len(self.merges)
        self._merge_ids: dict[tuple[int, int], int] = {}
        self._bytes = [bytes([i]) for i in range(N_BYTES)] + [EOT_TEXT.encode("ascii")]
        for new_id, (a, b) in enumerate(self.merges, FIRST_MERGE_ID):
            # a merge may only use ids that exist before it, and never the special token
            if not (0 <= a < new_id and 0 <= b < new_id and EOT_ID not in (a, b)):
                raise ValueError(f"invalid merge ({a}, {b}) for id {new_id}")
            self._merge_ids[(a, b)] = new_id
            self._bytes.append(self._bytes[a] + self._bytes[b])
        self._cache: dict[bytes, tuple[int, ...]] = {}

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size})"

    # ---------------------------------------------------------------------------------------------
    # training

    @classmethod
    def train(cls, text: str | bytes | Iterable[str | bytes], vocab_size: int = DEFAULT_VOCAB_SIZE,
              pattern: bytes = SPLIT_PATTERN) -> Tokenizer:
        """Learn vocab_size - 257 merges from `text` (one string, or an iterable of documents).

        Deterministic: the most frequent pair wins, ties go to the smallest (left id, right id).
        """
        if vocab_size < FIRST_MERGE_ID:
            raise ValueError(f"vocab_size must be at least {FIRST_MERGE_ID} (256 bytes + <|endoftext|>)")
        split = re.compile(pattern)
        docs = [text] if isinstance(text, str | bytes) else text
        # BPE only ever looks inside chunks, so each distinct chunk is processed once, weighted by its count.
        counts: Counter[bytes] = Counter()
        for doc in docs:
            counts.update(split.findall(_to_bytes(doc)))
        chunks = [list(chunk) for chunk in counts]
        freqs = list(counts.values())

        pair_counts: dict[tuple[int, int], int] = defaultdict(int)
        where: dict[tuple[int, int], set[int]] = defaultdict(set)  # chunks a pair occurs (or occurred) in
        for i, ids in enumerate(chunks):
            for pair in zip(ids, ids[1:], strict=False):
                pair_counts[pair] += freqs[i]
                where[pair].add(i)
        # A max-heap of (count, pair) with lazy deletion: an entry whose count is out of date is skipped
        # when popped, because a fresh entry was pushed when the count changed.
        heap = [(-count, pair) for pair, count in pair_counts.items()]
        heapq.heapify(heap)

        merges: list[tuple[int, int]] = []
        while len(merges) < vocab_size - FIRST_MERGE_ID and heap:
            neg_count, pair = heapq.heappop(heap)
            if pair_counts.get(pair) != -neg_count:
                continue
            new_id = FIRST_MERGE_ID + len(merges)
            merges.append(pair)
            changed = set()
            for i in where.pop(pair):
                old = chunks[i]
                new = _merge(old, pair, new_id)
                if len(new) == len(old):
                    continue  # stale entry: an earlier merge already consumed this pair here
                # re-count only this chunk's pairs: cheap, since chunks are a few tokens long
                f = freqs[i]
                for p in zip(old, old[1:], strict=False):
                    pair_counts[p] -= f
                    changed.add(p)
                for p in zip(new, new[1:], strict=False):
                    pair_counts[p] += f
                    where[p].add(i)
                    changed.add(p)
                chunks[i] = new
            for p in changed:
                if pair_counts[p] > 0:
                    heapq.heappush(heap, (-pair_counts[p], p))
                else:
                    del pair_counts[p]
        return cls(merges, pattern)

    # ---------------------------------------------------------------------------------------------
    # encoding and decoding

    def _encode_chunk(self, chunk: bytes) -> tuple[int, ...]:
        ids = list(chunk)
        while len(ids) >= 2:
            # apply the earliest-learned merge present, exactly as training would have
            new_id = min(self._merge_ids.get(p, self.vocab_size) for p in zip(ids, ids[1:], strict=False))
            if new_id == self.vocab_size:
                break
            ids = _merge(ids, self.merges[new_id - FIRST_MERGE_ID], new_id)
        return tuple(ids)

    def encode_bytes(self, data: bytes) -> list[int]:
        """Token ids for raw bytes; never contains eot_id."""
        out: list[int] = []
        cache = self._cache
        for chunk in self._split.findall(data):
            ids = cache.get(chunk)
            if ids is None:
                if len(cache) >= self._CACHE_LIMIT:
                    cache.clear()
                ids = cache[chunk] = self._encode_chunk(chunk)
            out.extend(ids)
        return out

    def encode(self, text: str) -> list[int]:
        """Token ids for text; never contains eot_id.

        Lone surrogates from surrogateescape (undecodable bytes, as os.fsdecode makes them) are encoded
        as the original bytes, so they round-trip through decode.
        """
        return self.encode_bytes(_to_bytes(text))

    def encode_documents(self, documents: Iterable[str]) -> list[int]:
        """One training stream: <|endoftext|> before every document and after the last one.

        The leading eot is what a prompt starts with at generation time, the trailing one teaches the
        model to stop.
        """
        out = [self.eot_id]
        for doc in documents:
            out.extend(self.encode(doc))
            out.append(self.eot_id)
        return out

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes of one token (b"<|endoftext|>" for eot_id). A multi-byte character may be split."""
        if not 0 <= token_id < self.vocab_size:
            raise ValueError(f"token id {token_id} out of range 0..{self.vocab_size - 1}")
        return self._bytes[token_id]

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The bytes of a sequence of ids; eot_id contributes b"<|endoftext|>"."""
        if hasattr(ids, "tolist"):  # numpy arrays and torch tensors
            ids = ids.tolist()
        return b"".join(self.token_bytes(i) for i in ids)

    def decode(self, ids: Iterable[int]) -> str:
        """Text for a sequence of ids; bytes that are not valid UTF-8 come back as surrogate escapes."""
        return self.decode_bytes(ids).decode("utf-8", "surrogateescape")

    # ---------------------------------------------------------------------------------------------
    # persistence (JSON, never pickle)

    def to_dict(self) -> dict:
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "vocab_size": self.vocab_size,
            "eot_id": self.eot_id,
            "eot_text": EOT_TEXT,
            "pattern": self.pattern.decode("latin-1"),
            "merges": [list(m) for m in self.merges],
        }

    @classmethod
    def from_dict(cls, d: dict) -> Tokenizer:
        if d.get("format") != FORMAT_NAME or d.get("version") != FORMAT_VERSION:
            raise ValueError(f"not a {FORMAT_NAME} v{FORMAT_VERSION} file "
                             f"(format={d.get('format')!r}, version={d.get('version')!r})")
        tok = cls([tuple(m) for m in d["merges"]], d["pattern"].encode("latin-1"))
        if tok.vocab_size != d["vocab_size"] or d["eot_id"] != EOT_ID:
            raise ValueError("tokenizer file is inconsistent: vocab_size or eot_id does not match the merges")
        return tok

    def save(self, path: str | Path) -> None:
        text = json.dumps(self.to_dict(), indent=1, ensure_ascii=True)
        # one merge per line keeps the file short and its diffs readable
        text = re.sub(r"\[\s+(\d+),\s+(\d+)\s+\]", r"[\1, \2]", text)
        Path(path).write_text(text + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def _to_bytes(text: str | bytes) -> bytes:
    return text if isinstance(text, bytes) else text.encode("utf-8", "surrogateescape")


def train(text: str | bytes | Iterable[str | bytes], vocab_size: int = DEFAULT_VOCAB_SIZE) -> Tokenizer:
    """Train a tokenizer on `text` (see `Tokenizer.train`)."""
    return Tokenizer.train(text, vocab_size)


def load_tokenizer(path: str | Path | None = None) -> Tokenizer:
    """The tokenizer shipped with the package (toy_model/data/tokenizer.json), or the one at `path`."""
    return Tokenizer.load(DEFAULT_PATH if path is None else path)


def main(argv: list[str] | None = None) -> None:
    """Retrain the shipped tokenizer on the generated corpus: python -m toy_model.tokenizer [OUT]."""
    from toy_model.corpus import build_corpus

    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else DEFAULT_PATH
    train_docs, valid_docs = build_corpus(seed=0)
    t0 = time.perf_counter()
    tok = Tokenizer.train(train_docs, DEFAULT_VOCAB_SIZE)
    print(f"trained {len(tok.merges)} merges in {time.perf_counter() - t0:.1f}s")
    out.parent.mkdir(parents=True, exist_ok=True)
    tok.save(out)
    print(f"wrote {out}")
    for name, docs in (("train", train_docs), ("valid", valid_docs)):
        t0 = time.perf_counter()
        n_tokens = sum(len(tok.encode(d)) for d in docs)
        n_bytes = sum(len(d.encode("utf-8")) for d in docs)
        print(f"{name}: {n_bytes} bytes -> {n_tokens} tokens, {n_tokens / n_bytes:.3f} tokens/byte "
              f"(encoded in {time.perf_counter() - t0:.1f}s)")


if __name__ == "__main__":
    main()
