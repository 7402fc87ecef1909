"""Tests for the generated corpus: determinism, held-out validation, the mix, and that its facts are true."""

import random
import re

import pytest

from toy_model.corpus import (
    CATEGORIES,
    TRANSFORMER_ANSWERS,
    TRANSFORMER_QUESTIONS,
    build_corpus,
    build_labeled_corpus,
    corpus_stats,
    main,
)

# The five ideas every "Explain transformers with emoji" answer covers, as (emoji, words).
TRANSFORMER_CONCEPTS = {
    "tokens": ("📄\u27a1\ufe0f🧩", "token"),
    "positions": ("📍🔢", "position"),
    "self-attention": ("🔗👀", "attention"),
    "stacked layers": ("🧱🧱🧱", "layer"),
    "parallel, unlike RNNs": ("⚡", "RNN"),
}


@pytest.fixture(scope="module")
def corpus():
    return build_labeled_corpus(seed=0)


@pytest.fixture(scope="module")
def by_category(corpus):
    docs = {c.name: [] for c in CATEGORIES}
    for name, doc in corpus[0]:
        docs[name].append(doc)
    return docs


def _nbytes(docs):
    return sum(len(d.encode("utf-8")) for d in docs)


def test_deterministic_and_independent_of_global_random_state(corpus):
    random.seed(12345)
    train, valid = build_corpus(seed=0)
    assert train == [d for _, d in corpus[0]]
    assert valid == [d for _, d in corpus[1]]
    other_train, other_valid = build_corpus(seed=1)
    assert other_train != train and other_valid != valid


def test_sizes_and_held_out_validation(corpus):
    train = [d for _, d in corpus[0]]
    valid = [d for _, d in corpus[1]]
    assert 2_000_000 <= _nbytes(train) <= 3_000_000
    assert 100_000 <= _nbytes(valid) <= 200_000
    assert not set(train) & set(valid)
    # documents are separated by the special token; the literal text must not appear inside them
    assert all(d and "<|endoftext|>" not in d for d in train + valid)


def test_every_category_is_present_in_both_splits(corpus):
    for split in corpus:
        names = {name for name, _ in split}
        assert names == {c.name for c in CATEGORIES}
    assert {c.group for c in CATEGORIES} == {"chat", "recall", "state", "varied"}


def test_transformer_chat_answers(by_category, corpus):
    docs = by_category["chat_transformers"]
    share = _nbytes(docs) / _nbytes([d for _, d in corpus[0]])
    assert 0.15 <= share <= 0.20
    prefix = "User: Explain transformers with emoji\nAssistant: "
    assert sum(d.startswith(prefix) for d in docs) > len(docs) / 3
    for doc in docs:
        question, answer = re.fullmatch(r"User: ([^\n]+)\nAssistant: (.+)", doc, re.DOTALL).groups()
        assert question in TRANSFORMER_QUESTIONS
        for emoji, word in TRANSFORMER_CONCEPTS.values():
            assert emoji in answer and word.lower() in answer.lower()
        assert "🐢" in answer and "parallel" in answer and "sequential dependency" in answer
    assert 6 <= len(TRANSFORMER_ANSWERS) <= 10
    assert all(350 <= len(a) <= 950 for a in TRANSFORMER_ANSWERS)
    # every written answer is used, under the exact demo prompt
    for answer in TRANSFORMER_ANSWERS:
        head = answer.split("{bot}")[0][:40]
        assert any(d.startswith(prefix) and head in d for d in docs)


def test_other_chat_uses_the_same_format(by_category):
    docs = by_category["chat_other"]
    assert all(re.match(r"User: [^\n]+\nAssistant: \S", d) for d in docs)
    questions = {d.split("\n", 1)[0] for d in docs}
    for q in ("Explain Mamba with emoji", "Explain mixture of experts with emoji",
              "What is a neural network?", "Explain recurrent neural networks"):
        assert f"User: {q}" in questions
    for doc in docs:
        if m := re.fullmatch(r"User: What is (\d+) \+ (\d+)\?\nAssistant: .* = (\d+)\.", doc):
            a, b, c = map(int, m.groups())
            assert a + b == c


def test_recall_answers_match_what_was_said(by_category):
    checked = 0
    for doc in by_category["recall_secret"]:
        said = re.search(r"The secret code is (\S+)\.", doc)
        asked = re.search(r"What was the secret code\?\s(?:Answer: |A: )?([^\s.]+)", doc)
        if said and asked:
            assert asked.group(1) == said.group(1)
            checked += 1
    assert checked > 20
    assert any("Now repeat the words:" in d for d in by_category["recall_sequence"])
    assert any(re.search(r"phone number is 555-\d{4}", d) for d in by_category["recall_table"])


def test_running_state_is_correct(by_category):
    for doc in by_category["state_sums"]:
        if doc.startswith("Start at "):
            total = int(re.match(r"Start at (\d+)\.", doc).group(1))
            for op, n, result in re.findall(r"(Add|Subtract) (\d+) -> (\d+)\.", doc):
                total += int(n) if op == "Add" else -int(n)
                assert total == int(result)
            assert doc.endswith(f"The total is {total}.")
    for doc in by_category["state_brackets"]:
        brackets, trace, balanced = doc.split("\n")
        depth = 0
        for ch, d in re.findall(r"([()]) (\d+)", trace):
            depth += 1 if ch == "(" else -1
            assert depth == int(d) >= 0
        assert (depth == 0) == (balanced == "Balanced: yes")
    for doc in by_category["state_rooms"]:
        for name, room in re.findall(r"Where is (\w+)\? In the ([a-z ]+)\.", doc):
            before = doc.split(f"Where is {name}?")[0]
            last = re.findall(rf"{name} (?:is in|walks to|goes to|runs to|moves to|heads to) the ([a-z ]+)\.",
                              before)[-1]
            assert last == room
    assert any(d.startswith("Countdown from") for d in by_category["state_counting"])


def test_varied_content(by_category):
    for doc in by_category["code"]:
        compile(doc, "<corpus>", "exec")
    text = "\n".join(d for docs in by_category.values() for d in docs)
    for word in ("café", "naïve", "Zürich", "São Paulo", "résumé", "θάλασσα", "привет", "こんにちは",
                 "Recipe:", "Once upon a time", "def ", "🍕"):
        assert word in text


def test_corpus_stats(capsys):
    stats = corpus_stats(seed=0)
    assert list(stats) == [c.name for c in CATEGORIES]
    assert all(s["train_docs"] > 0 and s["valid_docs"] > 0 for s in stats.values())
    main(["0"])
    out = capsys.readouterr().out
    assert "chat_transformers" in out and "total" in out
