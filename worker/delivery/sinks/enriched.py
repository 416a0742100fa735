"""A sink whose changes carry the user's profile: looked up first, in the body if asked.

The batch path has already read the page's profiles (worker/delivery/enrich.py), so this is no
read at all there; a change sent from elsewhere (the retry lane, a redrive) has its
profile read now, through the same cache. `in_body` puts `"user"` into the body this
sink sends; without it the sink only gets the profile to use (the email's address).
"""

from __future__ import annotations

import dataclasses

from worker.core.models import Notification
from worker.delivery.enrich import Profiles
from worker.delivery.sinks import Sink


class EnrichedSink:
    """A sink whose changes get the user's profile looked up first (and into the body if asked)."""

    def __init__(self, *, sink: Sink, profiles: Profiles, in_body: bool) -> None:
        self.name = sink.name
        self.local = sink.local
        self._sink = sink
        self._profiles = profiles
        self._in_body = in_body

    def send(self, notification: Notification) -> None:
        """No read when the page was enriched; `"user"` in the body as configured, then sent."""
        completed = self._profiles.complete(notification)
        if self._in_body != completed.user_in_body:
            completed = dataclasses.replace(completed, user_in_body=self._in_body)
        self._sink.send(completed)

    def flush(self) -> None:
        """The wrapped sink's flush: enrichment buffers nothing."""
        self._sink.flush()

    def close(self) -> None:
        """Closes the wrapped sink; the profile cache is shared, so it stays."""
        self._sink.close()
