# tokenlord worker image: build the wheel with maturin, run on a slim Python.
FROM python:3.11-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends curl build-essential \
    && rm -rf /var/lib/apt/lists/* \
    && curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
ENV PATH=/root/.cargo/bin:$PATH
WORKDIR /src
RUN pip install --no-cache-dir "maturin>=1.9,<2"
COPY Cargo.toml Cargo.lock pyproject.toml README.md ./
COPY rust rust
COPY python python
COPY streams streams
RUN maturin build --release --out /wheels

FROM python:3.11-slim
RUN useradd --create-home tokenlord
# The worker's dependencies exactly as locked (`make lock`): pinned versions, and
# pip refuses any file whose sha256 is not in the lock. Then the wheel built
# above, alone (--no-deps: nothing unpinned comes in with it).
COPY requirements/worker.lock /tmp/worker.lock
RUN pip install --no-cache-dir --require-hashes -r /tmp/worker.lock && rm /tmp/worker.lock
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-deps /wheels/*.whl && rm -rf /wheels && pip check
USER tokenlord
WORKDIR /home/tokenlord
ENTRYPOINT ["tokenlord"]
CMD ["worker"]
