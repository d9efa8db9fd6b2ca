"""Integrations with the gateways people already run (docs/gateways.md).

Each module imports only what a gateway has anyway (its own package,
confluent-kafka, orjson) and tokenlord's gateway API: never the worker's
dependencies (Faust, chDB, the ClickHouse client).

- :mod:`tokenlord.integrations.litellm`: a LiteLLM callback (proxy and SDK).
"""
