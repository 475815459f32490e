"""The event stream in the SQLite store (migration 003): events beside messages."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from chinwag.admin import _message_json
from chinwag.storage.base import Gone, NewMessage
from chinwag.storage.sqlite import SqliteStore

MSG = NewMessage(1000, "a:ann", "Ann", "ann", "lobby", None, None, "first words", "c1")


async def test_events_are_applied_to_their_target_and_export_holds_messages_only(
    tmp_path: Path,
) -> None:
    async with await SqliteStore.open(tmp_path / "db") as store:
        target = (await store.append(MSG, cid_ttl_ms=1000)).message
        edit = replace(
            MSG, ts_ms=2000, body="second words", cid=None, kind="edit", target=target.id
        )
        edited = (await store.append(edit, cid_ttl_ms=1000)).message
        assert edited.id > target.id and edited.kind == "edit"
        after_edit = await store.get_message(target.id)
        assert after_edit is not None
        assert (after_edit.body, after_edit.edited_ms) == ("second words", 2000)
        assert await store.get_message(edited.id) is None  # events are not messages
        gone = replace(edit, ts_ms=3000, body="", kind="delete")
        await store.append(gone, cid_ttl_ms=1000)
        with pytest.raises(Gone):
            await store.append(replace(edit, ts_ms=4000), cid_ttl_ms=1000)
        exported = await store.export_messages(room="lobby", after=0, upto=10**9, limit=10)
        assert [(m.id, m.body, m.deleted) for m in exported] == [(target.id, "", True)]
        row = _message_json(exported[0], None)
        assert row["deleted"] is True and "body" not in row and row["edited_ms"] == 2000
        page = await store.backlog_page("a:ann", 0, 10**9, since_ms=0, limit=10)
        assert page == []  # ann is no member: nothing, events included
    conn = sqlite3.connect(tmp_path / "db")
    try:
        bodies = conn.execute("SELECT body FROM messages WHERE kind IS NULL OR kind = 'edit'")
        assert [b for (b,) in bodies] == ["", ""]  # the message and its edit: both erased
    finally:
        conn.close()
