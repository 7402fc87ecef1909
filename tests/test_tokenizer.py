"""Tests for the byte-level BPE tokenizer: lossless round trips on any input, the special token, training."""

import json
import random

import numpy as np
import pytest

from toy_model.corpus import build_corpus
from toy_model.tokenizer import EOT_ID, EOT_TEXT, SPLIT_PATTERN, Tokenizer, load_tokenizer, train


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


@pytest.fixture(scope="module")
def valid_docs():
    return build_corpus(seed=0)[1]


TEXTS = [
    "",
    "hello world",
    "Explain transformers with emoji",
    "📄➡️🧩 📍🔢 🔗👀 🧱🧱🧱 ⚡ vs 🐢",
    "👨‍👩‍👧‍👦 family, 🧑‍🤝‍🧑 people, 👍🏽 skin tone, 1️⃣ keycap",
    "flags: 🇯🇵🇫🇷🇧🇷 🏳️‍🌈",
    "café naïve Zürich São Paulo résumé crème brûlée",
    "Greek θάλασσα, Russian привет, Japanese こんにちは 猫",
    "control \x00 NUL \x01\x02\x1b[31m red \x7f DEL \x0b\x0c",
    "tabs\tand\r\nwindows newlines\n\n\n   trailing   ",
    "zero\u200bwidth \ufeffbom \u00a0nbsp",
    " " * 50 + "x" + "\n" * 20,
    "1234567890 3.14159 -42 1e9",
    "def f(x):\n    return x ** 2  # ok",
    "<|endoftext|>",
    "before<|endoftext|>after <|endoftext|>",
    b"\xff\xfe\x80abc".decode("utf-8", "surrogateescape"),
    b"emoji cut: \xf0\x9f\x98 then text".decode("utf-8", "surrogateescape"),
]

BYTES = [
    b"",
    b"\x00",
    b"\xff\xfe\x80abc",
    b"\xf0\x9f\x98",  # a truncated emoji
    b"\xf0\x9f\x98\x80\xf0\x9f",  # a whole emoji followed by a truncated one
    b"\xc3",  # a truncated 2-byte character
    b"\xc0\xaf\xe0\x80\xaf",  # overlong encodings
    b"\xed\xa0\x80",  # an encoded surrogate
    b"\x80\x80\x80 \xbf",  # stray continuation bytes
    b"<|endoftext|>",
    "naïve 🧱🧱🧱".encode(),
]


@pytest.mark.parametrize("text", TEXTS)
def test_round_trip_text(tok, text):
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert all(0 <= i < tok.vocab_size and i != EOT_ID for i in ids)


@pytest.mark.parametrize("data", BYTES)
def test_round_trip_bytes(tok, data):
    ids = tok.encode_bytes(data)
    assert tok.decode_bytes(ids) == data
    assert all(0 <= i < tok.vocab_size and i != EOT_ID for i in ids)
    # the same bytes given as a surrogate-escaped string encode identically
    assert tok.encode(data.decode("utf-8", "surrogateescape")) == ids


def test_round_trip_random_bytes(tok):
    rng = random.Random(1234)
    for _ in range(300):
        data = bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))
        ids = tok.encode_bytes(data)
        assert tok.decode_bytes(ids) == data
        assert tok.decode(ids) == data.decode("utf-8", "surrogateescape")
        assert max(ids, default=0) < tok.vocab_size and EOT_ID not in ids


def test_round_trip_random_unicode(tok):
    rng = random.Random(99)
    # mostly ASCII with some Latin, Greek, CJK and emoji code points (no surrogates: they are not text)
    ranges = [(0x00, 0x7F), (0x80, 0x24F), (0x370, 0x3FF), (0x3040, 0x30FF), (0x4E00, 0x4FFF),
              (0x1F300, 0x1FAFF)]
    for _ in range(200):
        text = "".join(chr(rng.randint(*rng.choice(ranges))) for _ in range(rng.randint(0, 40)))
        assert tok.decode(tok.encode(text)) == text


def test_endoftext_is_only_inserted_explicitly(tok):
    ids = tok.encode(EOT_TEXT)
    assert EOT_ID not in ids and len(ids) > 1
    assert tok.decode([EOT_ID]) == EOT_TEXT
    assert tok.decode_bytes([EOT_ID]) == EOT_TEXT.encode()
    assert tok.token_bytes(EOT_ID) == EOT_TEXT.encode()
    stream = tok.encode_documents(["a", "", "b <|endoftext|>"])
    assert [i for i, t in enumerate(stream) if t == EOT_ID] == [0, 2, 3, len(stream) - 1]
    assert tok.decode(stream) == "<|endoftext|>a<|endoftext|><|endoftext|>b <|endoftext|><|endoftext|>"


def test_vocabulary_layout(tok):
    assert tok.vocab_size == 1024
    assert tok.eot_id == EOT_ID == 256
    assert len(tok.merges) == 1024 - 257
    assert [tok.token_bytes(i) for i in range(256)] == [bytes([i]) for i in range(256)]
    # every merged token is the concatenation of its parts, and they are all distinct
    merged = [tok.token_bytes(i) for i in range(257, tok.vocab_size)]
    assert all(len(b) >= 2 for b in merged)
    assert len(set(merged)) == len(merged)
    for bad in (-1, tok.vocab_size):
        with pytest.raises(ValueError):
            tok.token_bytes(bad)
        with pytest.raises(ValueError):
            tok.decode([bad])


def test_decode_accepts_arrays(tok):
    ids = tok.encode("Explain transformers with emoji")
    assert tok.decode(np.array(ids)) == "Explain transformers with emoji"


def test_shipped_tokenizer_compresses_corpus(tok, valid_docs):
    n_bytes = sum(len(d.encode("utf-8")) for d in valid_docs)
    n_tokens = sum(len(tok.encode(d)) for d in valid_docs)
    assert n_tokens / n_bytes < 0.5
    # the demo prompt is a handful of tokens, and its key emoji are single tokens
    assert len(tok.encode("User: Explain transformers with emoji\nAssistant:")) <= 12
    assert len(tok.encode("🧩")) == 1 and len(tok.encode("👀")) == 1


def test_save_load_round_trip(tok, tmp_path):
    path = tmp_path / "tok.json"
    tok.save(path)
    data = json.loads(path.read_text())
    assert data["version"] == 1 and data["vocab_size"] == 1024 and len(data["merges"]) == 767
    loaded = Tokenizer.load(path)
    assert loaded.merges == tok.merges and loaded.vocab_size == tok.vocab_size
    text = "Explain transformers with emoji 📄➡️🧩"
    assert loaded.encode(text) == tok.encode(text)

    data["format"] = "something-else"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError):
        Tokenizer.load(path)


def test_training_is_deterministic_and_picks_the_most_frequent_pair():
    text = "the cat sat on the mat. the hat! 🐱🐱 naïve café 123 " * 3
    text += b"\xff".decode("utf-8", "surrogateescape")
    a = train(text, 300)
    b = Tokenizer.train(text, 300)
    assert a.merges == b.merges and a.vocab_size <= 300
    assert a.decode(a.encode(text)) == text
    assert len(a.encode(text)) < len(text.encode("utf-8", "surrogateescape")) // 2
    # chunks 'ab', ' ab', ' ab', ' cd': (a, b) is the most frequent pair, then (' ', ab)
    t = Tokenizer.train("ab ab ab cd", 259)
    assert t.merges == [(97, 98), (32, 257)]
    # ties go to the smallest (left, right) pair: here (' ', c) over (a, b) and (c, d)
    assert Tokenizer.train("ab cd", 258).merges == [(32, 99)]
    # training on bytes or a list of documents is the same as on one string when chunks are the same
    assert Tokenizer.train([b"ab ab", " ab cd"], 259).merges == t.merges
    with pytest.raises(ValueError):
        Tokenizer.train("abc", 200)


def test_merges_never_cross_chunk_boundaries():
    # "a." is very frequent but a letter and punctuation live in different chunks, so it never merges
    t = Tokenizer.train("a. " * 100, 270)
    assert all(b"a." not in t.token_bytes(i) for i in range(257, t.vocab_size))
    assert t.pattern == SPLIT_PATTERN
