"""Token counts equal tiktoken's, exactly, for every encoding tokenlord ships
(o200k_base, cl100k_base built in; llama3 and llama4 loaded from the
``llama-models`` package directory as ``TOKENLORD_TOKENIZER_DIR`` would).
The reference vocabularies are read offline: see ``tiktoken_offline``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tiktoken_offline import ENCODINGS, llama_dir, reference, tokenizer_dir, use_offline_cache
from tokenlord import _core

pytest.importorskip("tiktoken")


@pytest.fixture(scope="module", autouse=True)
def offline_vocab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    mp = pytest.MonkeyPatch()
    mp.setenv("TIKTOKEN_CACHE_DIR", "")  # restored afterwards; use_offline_cache sets it
    use_offline_cache(Path(tmp_path_factory.mktemp("tiktoken-cache")))
    yield
    mp.undo()


def ours(texts: list[str], name: str) -> list[int]:
    return _core.count_tokens(texts, name, tokenizer_dir(name))


def corpus() -> list[str]:
    rng = random.Random(7)
    words = ["the", "token", "Lord", "naïve", "Straße", "東京", "日本語のテキスト", "😀", "👩‍💻", "عربى", "ελληνικά"]
    texts = [
        "",
        "hello world",
        "def f(x):\n    return x ** 2  # square\n\n\nclass A:\n\tpass\n",
        "SELECT * FROM t WHERE a = 'x'); DROP TABLE t; --",
        "a" * 100_000,
        " " * 5000 + "x" + "\n" * 3000 + "\t \t",
        "<|endoftext|> <|fim_prefix|><|im_start|>user",
        "1234567890 3.14159 -42 1e10 0x1F 1,000,000",
        "I'm You're they'll WE'VE it's",
        "\r\n\r\n  \u00a0\u2003 trailing   ",
        "🏳️‍🌈" * 200,
    ]
    for _ in range(300):
        texts.append(" ".join(rng.choice(words) for _ in range(rng.randrange(1, 60))))
    return texts


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_zero_mismatches_on_the_corpus(encoding: str) -> None:
    enc = reference(encoding)
    texts = corpus()
    want = [len(enc.encode_ordinary(t)) for t in texts]
    assert ours(texts, encoding) == want


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_random_unicode_matches(text: str) -> None:
    for encoding in ENCODINGS:
        assert ours([text], encoding) == [len(reference(encoding).encode_ordinary(text))]


def test_llama_models_map_to_their_vocabularies_once_loaded() -> None:
    assert _core.encoding_for("meta-llama/Llama-3.1-8B-Instruct", tokenizer_dir=llama_dir()) == ("llama3", False)
    assert _core.encoding_for("llama-4-scout", tokenizer_dir=llama_dir()) == ("llama4", False)
    assert set(_core.load_encodings(llama_dir())) == {"llama3", "llama4"}


def test_a_bad_vocabulary_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "broken.tiktoken").write_text("IQ== 0\nIg== 5\n")
    (tmp_path / "broken.pattern").write_text(r"\w+|\s+")
    with pytest.raises(_core.ConfigError, match=r"ranks must be 0\.\.2"):
        _core.load_encodings(tmp_path)
    with pytest.raises(_core.ConfigError, match="existing directory"):
        _core.load_encodings(tmp_path / "missing")


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_megabyte_single_piece_matches(encoding: str) -> None:
    # One 1 MB "word": the long-piece merge path (heap) against tiktoken's.
    text = "ab" * 300_000 + "c" * 400_000
    assert ours([text], encoding) == [len(reference(encoding).encode_ordinary(text))]


def test_ten_megabytes_and_special_token_text_are_ordinary_text() -> None:
    big = "<|endoftext|> <|begin_of_text|> naïve 東京 😀 " * 250_000  # ~11 MB
    assert len(big.encode()) >= 10_000_000
    for encoding in ENCODINGS:
        (n,) = ours([big], encoding)
        assert n > 2_000_000  # every special-token look-alike split into ordinary tokens


@pytest.mark.parametrize(
    ("model", "encoding"),
    [("gpt-4o", "o200k_base"), ("gpt-4", "cl100k_base"), ("llama-3.1-70b", "llama3"), ("Llama-4-Scout", "llama4")],
)
def test_text_only_events_get_exact_counts_in_the_core(model: str, encoding: str) -> None:
    import orjson

    prompt, output = corpus()[2], corpus()[20]
    core = _core.Core(tokenizer_dir=llama_dir())
    event = {"event_id": "e", "ts": 1_704_067_200_000, "user": "u", "model": model, "prompt": prompt, "output": output}
    out = core.process([0], [0], [orjson.dumps(event)], 1_704_067_200_000)
    enc = reference(encoding)
    assert out.events["input_tokens"] == [len(enc.encode_ordinary(prompt))]
    assert out.events["output_tokens"] == [len(enc.encode_ordinary(output))]
    assert out.events["tokens_estimated"] == [0]
