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
    def __init__(self, *, sink: Sink, profiles: Profiles, in_body: bool) -> None:
        self.name = sink.name
        self.local = sink.local
        self._sink = sink
        self._profiles = profiles
        self._in_body = in_body

    @property
    def inner(self) -> Sink:
        return self._sink

    def send(self, notification: Notification) -> None:
        completed = self._profiles.complete(notification)
        if self._in_body != completed.user_in_body:
            completed = dataclasses.replace(completed, user_in_body=self._in_body)
        self._sink.send(completed)

    def flush(self) -> None:
        self._sink.flush()

    def close(self) -> None:
        self._sink.close()
