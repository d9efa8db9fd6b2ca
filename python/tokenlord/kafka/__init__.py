"""Kafka helpers: a local single-node KRaft broker (``local``) and admin helpers (``admin``)."""
