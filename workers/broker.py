"""kombu's Redis transport, with one fix: a worker survives losing Redis while it holds tasks.

When a worker's broker connection drops while it holds unacknowledged tasks, Celery closes the
channel and reconnects with a new one; the held tasks still belong to the old channel. In kombu
5.7, everything that channel then does raises AttributeError (its connection is gone), and Celery
treats that as unrecoverable, so the worker exits: putting the tasks back on their queues at
once, and acknowledging or rejecting a task that finishes after the reconnect. Here those three
are logged and skipped instead. Nothing is lost or run twice for it: the tasks stay in Redis's
unacked set, and the restore sweep of a connected worker puts them back after the visibility
timeout, as for a worker that died (see `workers.settings`); a task that did finish is then
answered again from its stored outcome (the tasks are idempotent), and the router drops the
repeat.

`workers.app` selects this transport with Celery's `broker_transport` setting.
"""

from __future__ import annotations

import logging

import redis
from kombu.transport import redis as kombu_redis

log = logging.getLogger(__name__)

CHANNEL_GONE = (AttributeError, OSError, redis.ConnectionError, redis.TimeoutError)


class QoS(kombu_redis.QoS):
    def restore_unacked(self, client=None):
        try:
            return super().restore_unacked(client)
        except CHANNEL_GONE as exc:
            log.warning(
                "could not put %d unacknowledged task(s) back now (%s); the restore sweep will",
                len(self._delivered),
                type(exc).__name__,
            )
            return None

    def ack(self, delivery_tag):
        try:
            super().ack(delivery_tag)
        except CHANNEL_GONE as exc:
            log.warning(
                "could not acknowledge a task on a lost connection (%s); it will be delivered "
                "again and answered from its stored outcome",
                type(exc).__name__,
            )

    def reject(self, delivery_tag, requeue=False):
        try:
            super().reject(delivery_tag, requeue=requeue)
        except CHANNEL_GONE as exc:
            log.warning(
                "could not reject a task on a lost connection (%s); the restore sweep will deliver it again",
                type(exc).__name__,
            )


class Channel(kombu_redis.Channel):
    QoS = QoS


class Transport(kombu_redis.Transport):
    Channel = Channel
