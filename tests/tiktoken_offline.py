"""tiktoken as the reference tokenizer, with every vocabulary read offline.

tiktoken downloads its vocabularies at run time (no internet here). OpenAI's
come from the PyPI package ``bpe-openai`` (its ``data/*.tiktoken.gz``), written
into a ``TIKTOKEN_CACHE_DIR`` under the names tiktoken looks for. Llama 3 and
Llama 4 come from the PyPI package ``llama-models`` (``llama3/tokenizer.model``,
``llama4/tokenizer.model``) with the pattern read from the package's own
``tokenizer.py``. Used by the parity tests and benchmarks/tokenize_bench.py.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.resources
import importlib.util
import os
import re
from pathlib import Path
from typing import Any

OPENAI = ("o200k_base", "cl100k_base")
LLAMA = {"llama3": "pat_str", "llama4": "O200K_PATTERN"}  # encoding -> its pattern's name in tokenizer.py
ENCODINGS = (*OPENAI, *LLAMA)
URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"

_cache: dict[str, Any] = {}


def use_offline_cache(cache: Path) -> None:
    """Writes OpenAI's vocabularies into ``cache`` and points tiktoken at it."""
    cache.mkdir(parents=True, exist_ok=True)
    data = importlib.resources.files("bpe_openai") / "data"
    for name in OPENAI:
        target = cache / hashlib.sha1(URL.format(name=name).encode()).hexdigest()
        if not target.exists():
            target.write_bytes(gzip.decompress((data / f"{name}.tiktoken.gz").read_bytes()))
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)


def llama_dir() -> str:
    """The ``llama_models`` package directory (holds llama3/ and llama4/), found without importing it."""
    spec = importlib.util.find_spec("llama_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("llama-models is not installed: run `make install`")
    return str(spec.submodule_search_locations[0])


def upstream_pattern(name: str) -> str:
    source = (Path(llama_dir()) / name / "tokenizer.py").read_text()
    var = LLAMA[name]
    m = re.search(var + r'\s*=\s*r"""(.*?)"""', source, re.S) or re.search(var + r'\s*=\s*r"(.*?)"', source)
    if not m:
        raise RuntimeError(f"no {var} in llama_models/{name}/tokenizer.py")
    return m.group(1)


def reference(name: str) -> Any:
    """tiktoken's encoder for ``name`` (call :func:`use_offline_cache` first for OpenAI's)."""
    if name not in _cache:
        import tiktoken

        if name in LLAMA:
            from tiktoken.load import load_tiktoken_bpe

            ranks = load_tiktoken_bpe(str(Path(llama_dir()) / name / "tokenizer.model"))
            _cache[name] = tiktoken.Encoding(
                name, pat_str=upstream_pattern(name), mergeable_ranks=ranks, special_tokens={}
            )
        else:
            _cache[name] = tiktoken.get_encoding(name)
    return _cache[name]


def tokenizer_dir(name: str) -> str | None:
    """What tokenlord needs to count with ``name``: the llama_models directory, or nothing."""
    return llama_dir() if name in LLAMA else None
