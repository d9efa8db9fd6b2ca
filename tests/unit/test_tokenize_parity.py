"""Token counts equal tiktoken's, exactly, for every encoding tokenlord ships.

tiktoken downloads its vocabularies at run time; here they come offline from
the PyPI package ``bpe-openai`` (its ``data/*.tiktoken.gz``), written into a
private ``TIKTOKEN_CACHE_DIR`` under the names tiktoken looks for.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.resources
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenlord import _core

tiktoken = pytest.importorskip("tiktoken")
URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
ENCODINGS = ("o200k_base", "cl100k_base")


@pytest.fixture(scope="module", autouse=True)
def offline_vocab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    cache = tmp_path_factory.mktemp("tiktoken-cache")
    data = importlib.resources.files("bpe_openai") / "data"
    for name in ENCODINGS:
        raw = gzip.decompress((data / f"{name}.tiktoken.gz").read_bytes())
        key = hashlib.sha1(URL.format(name=name).encode()).hexdigest()
        (Path(cache) / key).write_bytes(raw)
    mp = pytest.MonkeyPatch()
    mp.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    yield
    mp.undo()


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
    enc = tiktoken.get_encoding(encoding)
    texts = corpus()
    want = [len(enc.encode_ordinary(t)) for t in texts]
    assert _core.count_tokens(texts, encoding) == want


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_random_unicode_matches(text: str) -> None:
    for encoding in ENCODINGS:
        assert _core.count_tokens([text], encoding) == [len(tiktoken.get_encoding(encoding).encode_ordinary(text))]
