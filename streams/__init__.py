"""The Faust app and its agents, one module per topic they consume.

- :mod:`streams.app` builds the Faust app from :class:`tokenlord.settings.Settings`;
- :mod:`streams.events` is the agent on ``tokenlord.events``.
"""
