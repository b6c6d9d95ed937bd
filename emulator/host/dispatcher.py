"""The host's work loop: runs ready instances, entities and activities as they come.

One scheduler thread hands work to two thread pools: one for orchestration
episodes and entity batches (at most one at a time per instance, as the
extension's instance lock guarantees), one for activities, so that independent
orchestrations progress in parallel. Each pool runs at most as many items at
once as host.json's ``maxConcurrentOrchestratorFunctions`` /
``maxConcurrentActivityFunctions`` allow (the extension's defaults on a
Dedicated or Premium plan: 10 per processor).

The scheduler does not scan the store for work. The store tells it what each
committed change queued (``DurableStore.on_new_work``): an instance whose message
is visible becomes ready, one whose message is a durable timer waits in a heap
until it is due, an activity work item joins a FIFO queue. What was queued
before the host started is read once at start. So scheduling costs the same
whether ten or ten thousand instances wait.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from .activity_runner import ActivityRunner
from .catalog import FunctionCatalog
from .entity_runner import EntityRunner
from .invoker import Invoker
from .orchestration_runner import OrchestrationRunner
from .store import ActivityWorkItem, DurableStore, NewWork
from .versioning import VersioningSettings, VersionRejected

__all__ = ["Dispatcher", "default_concurrency"]

log = logging.getLogger("emulator.host.dispatcher")

# After an unexpected error in an episode (a host bug, not an orchestration
# failure), wait before retrying that instance instead of spinning on it.
_ERROR_BACKOFF_SECONDS = 1.0
# An instance whose version this host rejects (versionFailureStrategy Reject)
# keeps its messages; it is looked at again after 1 s, then 2, 4... up to a minute.
_REJECT_FIRST_SECONDS = 1.0
_REJECT_MAX_SECONDS = 60.0


def default_concurrency() -> int:
    """The extension's default for both limits outside the Consumption plan: 10 per processor."""
    return 10 * (os.cpu_count() or 1)


class Dispatcher:
    """Schedules durable work from the store onto worker threads."""

    def __init__(
        self,
        store: DurableStore,
        catalog: FunctionCatalog,
        invoker: Invoker,
        versioning: VersioningSettings,
        activity_workers: int | None = None,
        orchestration_workers: int | None = None,
    ) -> None:
        self._store = store
        self._orchestrations = OrchestrationRunner(store, catalog, invoker, versioning)
        self._entities = EntityRunner(store, catalog, invoker)
        self._activities = ActivityRunner(store, catalog, invoker)
        self.activity_limit = activity_workers or default_concurrency()
        self.episode_limit = orchestration_workers or default_concurrency()
        self._episode_pool = ThreadPoolExecutor(self.episode_limit, "episode")
        self._activity_pool = ThreadPoolExecutor(self.activity_limit, "activity")
        self._wake = threading.Condition()
        self._stopping = False
        # Instances (and entities) that may have a visible message, oldest first.
        self._ready: dict[str, None] = {}
        # (when, tie-breaker, instance id): durable timers and back-offs not yet due.
        self._due: list[tuple[float, int, str]] = []
        self._sequence = itertools.count()
        self._busy_instances: set[str] = set()
        self._not_before: dict[str, float] = {}
        self._reject_delay: dict[str, float] = {}
        # Activity work items waiting for a thread, and the ids queued or running.
        self._queued_activities: deque[ActivityWorkItem] = deque()
        self._known_activities: set[int] = set()
        self._running_activities = 0
        self._thread = threading.Thread(target=self._loop, name="dispatcher", daemon=True)
        store.on_new_work(self._on_new_work)

    def start(self) -> None:
        """Pick up what the store already holds, then start scheduling."""
        for instance_id, due in self._store.queued_instances():
            self._on_new_work(NewWork(messages=[(instance_id, due)]))
        self._on_new_work(NewWork(activities=self._store.pending_activities()))
        self._thread.start()

    def stop(self) -> None:
        """Stop scheduling and wait for running work to finish."""
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        if self._thread.is_alive():
            self._thread.join()
        self._episode_pool.shutdown(wait=True, cancel_futures=True)
        self._activity_pool.shutdown(wait=True, cancel_futures=True)

    def notify(self) -> None:
        """Wake the scheduler (the store already reports new work by itself)."""
        with self._wake:
            self._wake.notify_all()

    @property
    def backlog(self) -> dict[str, int]:
        """How much is ready, waiting for a time, and running (for logs and tests)."""
        with self._wake:
            return {
                "ready": len(self._ready),
                "timers": len(self._due),
                "episodesRunning": len(self._busy_instances),
                "activitiesQueued": len(self._queued_activities),
                "activitiesRunning": self._running_activities,
            }

    # -- what the store reports ------------------------------------------------

    def _on_new_work(self, work: NewWork) -> None:
        now = time.time()
        with self._wake:
            for instance_id, visible_at in work.messages:
                if visible_at <= now:
                    self._ready[instance_id] = None
                else:
                    heapq.heappush(self._due, (visible_at, next(self._sequence), instance_id))
            for item in work.activities:
                if item.id not in self._known_activities:
                    self._known_activities.add(item.id)
                    self._queued_activities.append(item)
            self._wake.notify_all()

    # -- the loop ------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._wake:
                if self._stopping:
                    return
                episodes, activities = self._take_work(time.time())
                if not episodes and not activities:
                    timeout = max(0.0, self._due[0][0] - time.time()) if self._due else None
                    self._wake.wait(timeout)
                    continue
            for instance_id in episodes:
                self._episode_pool.submit(self._run_instance, instance_id)
            for item in activities:
                self._activity_pool.submit(self._run_activity, item)

    def _take_work(self, now: float) -> tuple[list[str], list[ActivityWorkItem]]:
        """What may start now, within the limits (called with the lock held)."""
        while self._due and self._due[0][0] <= now:
            _, _, instance_id = heapq.heappop(self._due)
            self._ready[instance_id] = None
        episodes: list[str] = []
        free = self.episode_limit - len(self._busy_instances)
        if free > 0 and self._ready:
            # Oldest first; only as far as needed (busy ones stay ready for later), so
            # a long queue of ready instances costs nothing per pass.
            taken: list[str] = []
            for instance_id in self._ready:
                if instance_id in self._busy_instances:
                    continue  # ready again once its episode ends
                taken.append(instance_id)
                if self._not_before.get(instance_id, 0.0) > now:
                    continue  # backing off: its own entry in the heap brings it back
                episodes.append(instance_id)
                if len(episodes) == free:
                    break
            for instance_id in taken:
                del self._ready[instance_id]
            self._busy_instances.update(episodes)
        activities: list[ActivityWorkItem] = []
        while self._queued_activities and self._running_activities < self.activity_limit:
            activities.append(self._queued_activities.popleft())
            self._running_activities += 1
        return episodes, activities

    def _run_instance(self, instance_id: str) -> None:
        retry_at: float | None = None
        try:
            if instance_id.startswith("@"):
                self._entities.run_batch(instance_id)
            else:
                self._orchestrations.run_episode(instance_id)
            self._reject_delay.pop(instance_id, None)
        except VersionRejected as exc:
            delay = self._reject_delay.get(instance_id, _REJECT_FIRST_SECONDS / 2) * 2
            delay = min(delay, _REJECT_MAX_SECONDS)
            self._reject_delay[instance_id] = delay
            log.info("not running %s: %s Retrying in %.0fs.", instance_id, exc, delay)
            retry_at = time.time() + delay
        except Exception:
            log.exception("episode of %s failed; retrying in %.1fs", instance_id, 1.0)
            retry_at = time.time() + _ERROR_BACKOFF_SECONDS
        finally:
            # Messages that arrived during the episode, or that one episode leaves (an
            # entity's batch limit, events that start an episode of their own).
            due = self._store.next_visible(instance_id) if retry_at is None else None
            with self._wake:
                self._busy_instances.discard(instance_id)
                if retry_at is not None:
                    self._not_before[instance_id] = retry_at
                    heapq.heappush(self._due, (retry_at, next(self._sequence), instance_id))
                else:
                    self._not_before.pop(instance_id, None)
                    if due is not None and due <= time.time():
                        self._ready[instance_id] = None
                self._wake.notify_all()

    def _run_activity(self, item: ActivityWorkItem) -> None:
        done = False
        try:
            self._activities.run(item)
            done = True
        except Exception:
            log.exception(
                "activity work item %d could not be recorded; retrying in %.1fs",
                item.id,
                _ERROR_BACKOFF_SECONDS,
            )
        finally:
            with self._wake:
                self._running_activities -= 1
                if done:
                    self._known_activities.discard(item.id)
                self._wake.notify_all()
        if not done:
            # Still in the store: run it again later (at-least-once, as in Azure).
            timer = threading.Timer(_ERROR_BACKOFF_SECONDS, self._requeue, (item,))
            timer.daemon = True
            timer.start()

    def _requeue(self, item: ActivityWorkItem) -> None:
        with self._wake:
            self._queued_activities.append(item)
            self._wake.notify_all()
