"""Durable state of the host emulator, in one SQLite file.

Everything the Durable extension keeps in Azure Storage lives here: instances
(the "Instances" table), their histories (the "History" table), the control
queue of each instance (``messages``: new history events, with a visibility
time so that durable timers are just delayed messages, as in the Azure Storage
backend), the work-item queue of activities, and entity state.

A message or work item is deleted only in the transaction that records its
effect, so a process killed at any point redoes the unfinished work on restart:
orchestration episodes replay, activities run again (at-least-once, as in
Azure).
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ActivityWorkItem",
    "DurableStore",
    "InstanceRecord",
    "Message",
    "NewWork",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    instance_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    runtime_status TEXT NOT NULL,
    input TEXT,
    output TEXT,
    custom_status TEXT,
    created_time TEXT NOT NULL,
    last_updated_time TEXT NOT NULL,
    parent_instance_id TEXT,
    parent_execution_id TEXT,
    parent_task_id INTEGER,
    suspended INTEGER NOT NULL DEFAULT 0,
    replay TEXT NOT NULL DEFAULT '{}',
    version TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS history (
    instance_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (instance_id, position)
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id TEXT NOT NULL,
    execution_id TEXT,
    body TEXT NOT NULL,
    visible_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_instance ON messages (instance_id, id);
CREATE INDEX IF NOT EXISTS messages_by_time ON messages (visible_at);
CREATE TABLE IF NOT EXISTS activities (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    task_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    input TEXT
);
CREATE TABLE IF NOT EXISTS entities (
    entity_id TEXT PRIMARY KEY,
    state TEXT,
    last_modified TEXT NOT NULL
);
"""


@dataclass
class InstanceRecord:
    """One orchestration instance, as the status API reports it."""

    instance_id: str
    name: str
    execution_id: str
    runtime_status: str
    input: str | None
    output: str | None
    custom_status: str | None
    created_time: str
    last_updated_time: str
    parent_instance_id: str | None = None
    parent_execution_id: str | None = None
    parent_task_id: int | None = None
    suspended: bool = False
    # Host-side replay bookkeeping (see orchestration.ReplayState).
    replay: dict[str, Any] = field(default_factory=dict)
    # ExecutionStarted.Version of every execution of the instance ("" when none).
    version: str = ""


@dataclass
class Message:
    """A new history event waiting in an instance's control queue."""

    id: int
    instance_id: str
    execution_id: str | None
    body: dict[str, Any]
    visible_at: float


@dataclass
class ActivityWorkItem:
    """An activity invocation waiting for (or being run by) a worker."""

    id: int
    instance_id: str
    execution_id: str
    task_id: int
    name: str
    input: str | None


@dataclass
class NewWork:
    """What a committed change queued: messages (instance id, visible at) and activities."""

    messages: list[tuple[str, float]] = field(default_factory=list)
    activities: list[ActivityWorkItem] = field(default_factory=list)


@dataclass
class EpisodeCommit:
    """Everything an orchestration episode or entity batch changes, applied atomically."""

    consumed_message_ids: list[int] = field(default_factory=list)
    instance: InstanceRecord | None = None
    reset_history: bool = False
    append_history: list[dict[str, Any]] = field(default_factory=list)
    new_messages: list[tuple[str, str | None, dict[str, Any], float]] = field(default_factory=list)
    new_activities: list[tuple[str, str, int, str, str | None]] = field(default_factory=list)
    new_instances: list[InstanceRecord] = field(default_factory=list)
    cancelled_timer_ids: list[tuple[str, int]] = field(default_factory=list)
    entity_state: tuple[str, str | None] | None = None
    completed_activity_id: int | None = None


class DurableStore:
    """Thread-safe access to the emulator's SQLite state file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        # WAL + NORMAL: a killed process loses nothing committed; only an OS
        # crash could lose the last transactions, which Azure Storage would not.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        _add_missing_columns(self._db)
        self._listeners: list[Callable[[NewWork], None]] = []

    def on_new_work(self, listener: Callable[[NewWork], None]) -> None:
        """Call ``listener`` after every committed change that queued messages or activities.

        It runs on the committing thread, after the transaction and outside the
        store's lock, so it may read the store; it must not block.
        """
        self._listeners.append(listener)

    def _announce(self, work: NewWork) -> None:
        if work.messages or work.activities:
            for listener in self._listeners:
                listener(work)

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- instances ---------------------------------------------------------

    def get_instance(self, instance_id: str) -> InstanceRecord | None:
        """Return the instance, or None when there is none with this id."""
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM instances WHERE instance_id = ?", (instance_id,)
            ).fetchone()
        return _instance_from_row(row) if row else None

    def list_instances(self) -> list[InstanceRecord]:
        """All orchestration instances, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM instances ORDER BY created_time").fetchall()
        return [_instance_from_row(r) for r in rows]

    def get_history(self, instance_id: str) -> list[dict[str, Any]]:
        """The committed history of the instance's current execution."""
        with self._lock:
            rows = self._db.execute(
                "SELECT event FROM history WHERE instance_id = ? ORDER BY position",
                (instance_id,),
            ).fetchall()
        return [json.loads(r["event"]) for r in rows]

    def get_played_history(self, instance_id: str) -> tuple[int, str]:
        """The committed history as the next episode replays it: how many events, and
        their JSON objects joined by ``", "`` (as ``json.dumps`` joins a list's items),
        each with ``IsPlayed`` true.

        Kept as the stored text: an episode sends the history on as it is, so it
        need not be parsed and serialized again by the host (the worker's SDK
        parses it, as it does in Azure).
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT event FROM history WHERE instance_id = ? ORDER BY position",
                (instance_id,),
            ).fetchall()
        text = ", ".join(r[0] for r in rows)
        if _NOT_PLAYED in text:
            # Events are stored played (see commit); files of older emulators stored them
            # as they were sent. No string value can hold this text (its quotes would be
            # escaped), so only the events' own fields are changed.
            text = text.replace(_NOT_PLAYED, _PLAYED)
        return len(rows), text

    def create_instance(
        self,
        record: InstanceRecord,
        start_event: dict[str, Any],
        overridable_states: frozenset[str],
    ) -> bool:
        """Create (or replace) an instance and queue its ExecutionStarted event.

        Returns False, changing nothing, when an instance with this id exists in
        a state that may not be overridden. The check and the write are one
        transaction, so two concurrent starts with one id cannot both succeed.
        """
        with self._transaction() as db:
            row = db.execute(
                "SELECT runtime_status FROM instances WHERE instance_id = ?",
                (record.instance_id,),
            ).fetchone()
            if row is not None and row["runtime_status"] not in overridable_states:
                return False
            if row is not None:
                self._delete_instance_rows(db, record.instance_id)
            _insert_instance(db, record)
            db.execute(
                "INSERT INTO messages (instance_id, execution_id, body, visible_at)"
                " VALUES (?, ?, ?, ?)",
                (record.instance_id, record.execution_id, json.dumps(start_event), 0.0),
            )
        self._announce(NewWork(messages=[(record.instance_id, 0.0)]))
        return True

    def purge_instance(self, instance_id: str) -> int:
        """Delete an instance with its history and queues; return how many were deleted.

        Like the Azure Storage backend, this does not check the instance's status.
        """
        with self._transaction() as db:
            row = db.execute(
                "SELECT runtime_status FROM instances WHERE instance_id = ?", (instance_id,)
            ).fetchone()
            if row is None:
                return 0
            self._delete_instance_rows(db, instance_id)
        return 1

    def purge_instances(
        self,
        created_from: dt.datetime,
        created_to: dt.datetime | None,
        statuses: frozenset[str] | None,
    ) -> int:
        """Delete every instance created in ``[created_from, created_to]`` with one of ``statuses``.

        As the Azure Storage backend's purge by filter (DurableTask.AzureStorage
        ``AzureTableTrackingStore.DeleteHistoryAsync``): both bounds inclusive,
        no upper bound when ``created_to`` is None. ``statuses`` None means any
        status: running instances go too, and so do entities, which Azure
        Storage keeps as instances ``@name@key`` created at their last batch
        (approximated here by when their state was last written). Returns how
        many were deleted.
        """

        def in_window(text: str) -> bool:
            moment = _parse_stored_time(text)
            return moment >= created_from and (created_to is None or moment <= created_to)

        with self._transaction() as db:
            doomed = [
                row["instance_id"]
                for row in db.execute(
                    "SELECT instance_id, runtime_status, created_time FROM instances"
                )
                if (statuses is None or row["runtime_status"] in statuses)
                and in_window(row["created_time"])
            ]
            for instance_id in doomed:
                self._delete_instance_rows(db, instance_id)
            if statuses is None:
                entities = [
                    row["entity_id"]
                    for row in db.execute("SELECT entity_id, last_modified FROM entities")
                    if in_window(row["last_modified"])
                ]
                for entity_id in entities:
                    db.execute("DELETE FROM entities WHERE entity_id = ?", (entity_id,))
                    db.execute("DELETE FROM messages WHERE instance_id = ?", (entity_id,))
                doomed += entities
        return len(doomed)

    @staticmethod
    def _delete_instance_rows(db: sqlite3.Connection, instance_id: str) -> None:
        for table in ("instances", "history", "messages", "activities"):
            db.execute(f"DELETE FROM {table} WHERE instance_id = ?", (instance_id,))

    def set_suspended(self, instance_id: str, suspended: bool, status: str) -> None:
        """Mark an instance suspended or resumed."""
        with self._transaction() as db:
            db.execute(
                "UPDATE instances SET suspended = ?, runtime_status = ?, last_updated_time = ?"
                " WHERE instance_id = ?",
                (int(suspended), status, _now_iso(), instance_id),
            )

    # -- messages ----------------------------------------------------------

    def enqueue_message(
        self,
        instance_id: str,
        body: dict[str, Any],
        execution_id: str | None = None,
        visible_at: float = 0.0,
    ) -> None:
        """Put a new event in an instance's (or entity's) control queue."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO messages (instance_id, execution_id, body, visible_at)"
                " VALUES (?, ?, ?, ?)",
                (instance_id, execution_id, json.dumps(body), visible_at),
            )
        self._announce(NewWork(messages=[(instance_id, visible_at)]))

    def queued_instances(self) -> list[tuple[str, float]]:
        """Every instance (or entity) with messages, and when its first one is visible,
        in the order their oldest messages arrived (what a restarted host has to do)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT instance_id, MIN(visible_at), MIN(id) AS first FROM messages"
                " GROUP BY instance_id ORDER BY first"
            ).fetchall()
        return [(r[0], r[1]) for r in rows]

    def next_visible(self, instance_id: str) -> float | None:
        """When the instance's first message is (or was) visible; None without messages."""
        with self._lock:
            row = self._db.execute(
                "SELECT MIN(visible_at) FROM messages WHERE instance_id = ?", (instance_id,)
            ).fetchone()
        return None if row is None else row[0]

    def visible_messages(self, instance_id: str, now: float) -> list[Message]:
        """The instance's visible messages, in arrival order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM messages WHERE instance_id = ? AND visible_at <= ? ORDER BY id",
                (instance_id, now),
            ).fetchall()
        return [
            Message(
                id=r["id"],
                instance_id=r["instance_id"],
                execution_id=r["execution_id"],
                body=json.loads(r["body"]),
                visible_at=r["visible_at"],
            )
            for r in rows
        ]

    def delete_messages(self, ids: list[int]) -> None:
        """Drop messages that can have no effect (e.g. for a finished instance)."""
        with self._transaction() as db:
            db.executemany("DELETE FROM messages WHERE id = ?", [(i,) for i in ids])

    # -- activities --------------------------------------------------------

    def pending_activities(self) -> list[ActivityWorkItem]:
        """Every activity work item not yet recorded as done, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM activities ORDER BY id").fetchall()
        return [
            ActivityWorkItem(
                id=r["id"],
                instance_id=r["instance_id"],
                execution_id=r["execution_id"],
                task_id=r["task_id"],
                name=r["name"],
                input=r["input"],
            )
            for r in rows
        ]

    # -- entities ----------------------------------------------------------

    def get_entity_state(self, entity_id: str) -> tuple[bool, str | None]:
        """Whether the entity exists, and its serialized state."""
        with self._lock:
            row = self._db.execute(
                "SELECT state FROM entities WHERE entity_id = ?", (entity_id,)
            ).fetchone()
        return (row is not None, row["state"] if row else None)

    # -- the one atomic write of an episode ----------------------------------

    def commit(self, change: EpisodeCommit) -> None:
        """Apply everything one episode, entity batch or activity completion produced."""
        work = NewWork(messages=[(i, v) for (i, _, _, v) in change.new_messages])
        with self._transaction() as db:
            db.executemany(
                "DELETE FROM messages WHERE id = ?",
                [(i,) for i in change.consumed_message_ids],
            )
            if change.completed_activity_id is not None:
                db.execute("DELETE FROM activities WHERE id = ?", (change.completed_activity_id,))
            if change.instance is not None:
                inst = change.instance
                if change.reset_history:
                    db.execute("DELETE FROM history WHERE instance_id = ?", (inst.instance_id,))
                start = db.execute(
                    "SELECT COALESCE(MAX(position), -1) + 1 FROM history WHERE instance_id = ?",
                    (inst.instance_id,),
                ).fetchone()[0]
                # Stored as the next episodes replay them: played.
                db.executemany(
                    "INSERT INTO history (instance_id, position, event) VALUES (?, ?, ?)",
                    [
                        (inst.instance_id, start + i, json.dumps({**e, "IsPlayed": True}))
                        for i, e in enumerate(change.append_history)
                    ],
                )
                _insert_instance(db, inst, replace=True)
            for child in change.new_instances:
                exists = db.execute(
                    "SELECT runtime_status FROM instances WHERE instance_id = ?",
                    (child.instance_id,),
                ).fetchone()
                if exists is not None:
                    self._delete_instance_rows(db, child.instance_id)
                _insert_instance(db, child)
            for instance_id, timer_task_id in change.cancelled_timer_ids:
                for row in db.execute(
                    "SELECT id, body FROM messages WHERE instance_id = ?", (instance_id,)
                ).fetchall():
                    body = json.loads(row["body"])
                    if body.get("EventType") == 11 and body.get("TimerId") == timer_task_id:
                        db.execute("DELETE FROM messages WHERE id = ?", (row["id"],))
            db.executemany(
                "INSERT INTO messages (instance_id, execution_id, body, visible_at)"
                " VALUES (?, ?, ?, ?)",
                [(i, x, json.dumps(b), v) for (i, x, b, v) in change.new_messages],
            )
            for activity in change.new_activities:
                cursor = db.execute(
                    "INSERT INTO activities (instance_id, execution_id, task_id, name, input)"
                    " VALUES (?, ?, ?, ?, ?)",
                    activity,
                )
                assert cursor.lastrowid is not None
                work.activities.append(ActivityWorkItem(cursor.lastrowid, *activity))
            if change.entity_state is not None:
                entity_id, state = change.entity_state
                if state is None:
                    db.execute("DELETE FROM entities WHERE entity_id = ?", (entity_id,))
                else:
                    db.execute(
                        "INSERT OR REPLACE INTO entities (entity_id, state, last_modified)"
                        " VALUES (?, ?, ?)",
                        # Microseconds: a purge by filter compares it with the window.
                        (
                            entity_id,
                            state,
                            dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                        ),
                    )
        self._announce(work)


def _insert_instance(db: sqlite3.Connection, r: InstanceRecord, replace: bool = False) -> None:
    db.execute(
        ("INSERT OR REPLACE" if replace else "INSERT")
        + " INTO instances (instance_id, name, execution_id, runtime_status, input, output,"
        " custom_status, created_time, last_updated_time, parent_instance_id,"
        " parent_execution_id, parent_task_id, suspended, replay, version)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            r.instance_id,
            r.name,
            r.execution_id,
            r.runtime_status,
            r.input,
            r.output,
            r.custom_status,
            r.created_time,
            r.last_updated_time,
            r.parent_instance_id,
            r.parent_execution_id,
            r.parent_task_id,
            int(r.suspended),
            json.dumps(r.replay),
            r.version,
        ),
    )


def _instance_from_row(row: sqlite3.Row) -> InstanceRecord:
    return InstanceRecord(
        instance_id=row["instance_id"],
        name=row["name"],
        execution_id=row["execution_id"],
        runtime_status=row["runtime_status"],
        input=row["input"],
        output=row["output"],
        custom_status=row["custom_status"],
        created_time=row["created_time"],
        last_updated_time=row["last_updated_time"],
        parent_instance_id=row["parent_instance_id"],
        parent_execution_id=row["parent_execution_id"],
        parent_task_id=row["parent_task_id"],
        suspended=bool(row["suspended"]),
        replay=json.loads(row["replay"]),
        version=row["version"],
    )


_NOT_PLAYED = '"IsPlayed": false'
_PLAYED = '"IsPlayed": true'


def _add_missing_columns(db: sqlite3.Connection) -> None:
    """Bring a state file written by an older emulator up to the current schema.

    ``instances.version`` came with orchestration versioning; the instances
    of older files had ``""`` in their ExecutionStarted events, as it defaults.
    """
    columns = {row["name"] for row in db.execute("PRAGMA table_info(instances)")}
    if "version" not in columns:
        db.execute("ALTER TABLE instances ADD COLUMN version TEXT NOT NULL DEFAULT ''")


def _parse_stored_time(text: str) -> dt.datetime:
    """A stored timestamp (``...Z``, with or without fraction) as an aware UTC datetime."""
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z"
