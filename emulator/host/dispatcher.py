"""The host's work loop: picks up ready instances, entities and activities.

One scheduler thread looks at the store whenever something changed (or when
the next durable timer is due) and hands work to two thread pools: one for
orchestration episodes and entity batches (at most one at a time per instance,
as the extension's instance lock guarantees), one for activities, so that
independent orchestrations progress in parallel.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from .activity_runner import ActivityRunner
from .catalog import FunctionCatalog
from .entity_runner import EntityRunner
from .invoker import Invoker
from .orchestration_runner import OrchestrationRunner
from .store import ActivityWorkItem, DurableStore
from .versioning import VersioningSettings, VersionRejected

__all__ = ["Dispatcher"]

log = logging.getLogger("emulator.host.dispatcher")

# After an unexpected error in an episode (a host bug, not an orchestration
# failure), wait before retrying that instance instead of spinning on it.
_ERROR_BACKOFF_SECONDS = 1.0
# An instance whose version this host rejects (versionFailureStrategy Reject)
# keeps its messages; it is looked at again after 1 s, then 2, 4... up to a minute.
_REJECT_FIRST_SECONDS = 1.0
_REJECT_MAX_SECONDS = 60.0


class Dispatcher:
    """Schedules durable work from the store onto worker threads."""

    def __init__(
        self,
        store: DurableStore,
        catalog: FunctionCatalog,
        invoker: Invoker,
        versioning: VersioningSettings,
        activity_workers: int = 16,
        orchestration_workers: int = 4,
    ) -> None:
        self._store = store
        self._orchestrations = OrchestrationRunner(store, catalog, invoker, versioning)
        self._entities = EntityRunner(store, catalog, invoker)
        self._activities = ActivityRunner(store, catalog, invoker)
        self._episode_pool = ThreadPoolExecutor(orchestration_workers, "episode")
        self._activity_pool = ThreadPoolExecutor(activity_workers, "activity")
        self._wake = threading.Condition()
        self._changed = True
        self._stopping = False
        self._busy_instances: set[str] = set()
        self._running_activities: set[int] = set()
        self._not_before: dict[str, float] = {}
        self._reject_delay: dict[str, float] = {}
        self._thread = threading.Thread(target=self._loop, name="dispatcher", daemon=True)

    def start(self) -> None:
        """Start scheduling."""
        self._thread.start()

    def stop(self) -> None:
        """Stop scheduling and wait for running work to finish."""
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        self._thread.join()
        self._episode_pool.shutdown(wait=True, cancel_futures=True)
        self._activity_pool.shutdown(wait=True, cancel_futures=True)

    def notify(self) -> None:
        """Tell the scheduler that the store changed."""
        with self._wake:
            self._changed = True
            self._wake.notify_all()

    def _loop(self) -> None:
        while True:
            with self._wake:
                if self._stopping:
                    return
                self._changed = False
                busy = set(self._busy_instances)
                running = set(self._running_activities)
            now = time.time()
            busy |= {i for i, t in self._not_before.items() if t > now}
            ready, next_due = self._store.ready_instances(now, busy)
            for instance_id in ready:
                with self._wake:
                    self._busy_instances.add(instance_id)
                self._episode_pool.submit(self._run_instance, instance_id)
            for item in self._store.pending_activities(running):
                with self._wake:
                    self._running_activities.add(item.id)
                self._activity_pool.submit(self._run_activity, item)
            backoffs = [t for t in self._not_before.values() if t > now]
            if backoffs:
                next_due = min([*backoffs, next_due] if next_due else backoffs)
            with self._wake:
                if not self._changed and not self._stopping:
                    timeout = None if next_due is None else max(0.0, next_due - time.time())
                    self._wake.wait(timeout)

    def _run_instance(self, instance_id: str) -> None:
        try:
            if instance_id.startswith("@"):
                self._entities.run_batch(instance_id)
            else:
                self._orchestrations.run_episode(instance_id)
            self._not_before.pop(instance_id, None)
            self._reject_delay.pop(instance_id, None)
        except VersionRejected as exc:
            delay = self._reject_delay.get(instance_id, _REJECT_FIRST_SECONDS / 2) * 2
            delay = min(delay, _REJECT_MAX_SECONDS)
            self._reject_delay[instance_id] = delay
            log.info("not running %s: %s Retrying in %.0fs.", instance_id, exc, delay)
            self._not_before[instance_id] = time.time() + delay
        except Exception:
            log.exception("episode of %s failed; retrying in %.1fs", instance_id, 1.0)
            self._not_before[instance_id] = time.time() + _ERROR_BACKOFF_SECONDS
        finally:
            with self._wake:
                self._busy_instances.discard(instance_id)
            self.notify()

    def _run_activity(self, item: ActivityWorkItem) -> None:
        try:
            self._activities.run(item)
        except Exception:
            log.exception("activity work item %d could not be recorded", item.id)
        finally:
            with self._wake:
                self._running_activities.discard(item.id)
            self.notify()
