"""The Celery app on Redis: queues, serialisation, acknowledgement and redelivery settings.

`make_app(settings)` builds it; `app` is the one built from the environment (`REDIS_URL`,
`PARLEY_WORKER_*`), which `python -m workers` (`parley worker`) runs and the gateway's tool router
sends with. The tasks live in `workers.tools`, which the worker imports; the router sends by
task name and never imports them.

- Queues: `tools` (lookups: lookup_order, search_faq), `bookings` (tools that write: returns,
  callbacks, hand-offs, end of call), `webhooks` (registered webhook tools, so a slow backend
  holds up no shop tool), and the background model's `hearing` (a caller speech segment ->
  words) and `reasoning` (the call so far -> a tool call or a reply), declared explicitly; tasks
  are routed by name, anything else lands on `tools`. Hearing and reasoning hold a model per
  process, so they get workers of their own (`parley serve` starts one each).
- JSON only, both ways. Results go back over Redis pub/sub (see `workers.protocol`), not through
  a Celery result backend, so none is configured.
- `acks_late` with `reject_on_worker_lost`: a task is acknowledged after it ran; one whose
  process died is delivered again. Prefetch 1 per process, so a task waits in no busy worker.
- Redelivery of a dead worker's task: see `workers.settings` (visibility timeout, restore sweep).
- Transport: kombu's Redis transport, patched so a worker survives a Redis restart while it holds
  tasks (`workers.broker`).
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from workers import webhooks
from workers.protocol import HEAR_TASK, REASON_TASK, task_name
from workers.settings import WorkerSettings

BOOKING_TOOLS = ("create_return", "book_callback", "transfer", "end_call")
QUEUES = ("tools", "bookings", "webhooks", "hearing", "reasoning")


def make_app(settings: WorkerSettings | None = None) -> Celery:
    s = settings or WorkerSettings()
    app = Celery("parley", broker=s.redis_url, set_as_current=False)
    app.conf.update(
        broker_transport="workers.broker:Transport",  # kombu's Redis transport, one fix (see there)
        broker_transport_options={
            "visibility_timeout": s.visibility_timeout_s,
            "unacked_restore_interval": s.restore_interval_s,
            "unacked_restore_throttle": 1,  # sweep on every interval, not every 10th
            "socket_timeout": s.io_timeout_s,
            "socket_connect_timeout": s.io_timeout_s,
        },
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a worker waits out a Redis restart
        task_serializer="json",
        accept_content=["json"],
        result_backend=None,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # A task running when Redis goes away finishes (its outcome is stored once Redis is back);
        # its acknowledgement is lost with the connection (workers.broker) and it is answered again.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        task_queues=[Queue(q, routing_key=q) for q in QUEUES],
        task_default_queue="tools",
        task_default_routing_key="tools",
        task_create_missing_queues=False,
        task_routes={
            **{task_name(t): {"queue": "bookings", "routing_key": "bookings"} for t in BOOKING_TOOLS},
            task_name(webhooks.TASK): {"queue": "webhooks", "routing_key": "webhooks"},
            HEAR_TASK: {"queue": "hearing", "routing_key": "hearing"},
            REASON_TASK: {"queue": "reasoning", "routing_key": "reasoning"},
        },
        task_soft_time_limit=s.soft_time_limit_s,
        task_time_limit=s.time_limit_s,
        worker_concurrency=s.concurrency,
        worker_send_task_events=False,
        task_send_sent_event=False,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_enable_remote_control=True,  # `ping`: how `parley serve` knows a worker is up
        enable_utc=True,
    )
    app.parley_settings = s  # the tools read their limits and the Redis address from here
    return app


def queue_for(app: Celery, task: str) -> str:
    """The queue a task is routed to."""
    return app.conf.task_routes.get(task, {}).get("queue", app.conf.task_default_queue)


app = make_app()
