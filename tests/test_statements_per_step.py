"""How much database work a typical step of a declaration costs (issue 18): the statements and
transactions one message makes, counted at the driver on SQLite and PostgreSQL.

A level step ("Đạt": store the answer, rescore, ask for photos) and a no-photo step ("Không có
ảnh": on to the next item) each run in one transaction for the step itself, then a second one
marks the message answered once its replies are sent. Before issue 18 the level step took 10
statements besides the mark (the duplicate check and the submission on their own, the account's
last message time written on every message, the answers read twice, the photos on their own);
now the one load query reads what the step needs, answer levels and photo counts included.
On PostgreSQL the reads run before BEGIN, and a step whose only write is the engine's one
statement sends no BEGIN or COMMIT at all (storage/db.transaction)."""

from __future__ import annotations

from sqlalchemy import event

from tests.support.scripts import register_citizen


class Statements:
    """SQL statements per transaction (BEGIN itself not counted), as the driver sees them."""

    def __init__(self, engine) -> None:
        self.transactions: list[list[str]] = []
        sync = engine.sync_engine
        event.listen(sync, "begin", lambda _conn: self.transactions.append([]))
        event.listen(sync, "before_cursor_execute", self._statement)

        self.outside: list[list[str]] = []  # PostgreSQL: the statements run before BEGIN
        if engine.dialect.name == "postgresql":
            event.listen(sync, "after_cursor_execute", self._ran)

    def _statement(self, _conn, _cursor, statement: str, *_args) -> None:
        if not statement.lstrip().upper().startswith("BEGIN") and self.transactions:
            self.transactions[-1].append(statement.split(None, 1)[0].upper())

    def _ran(self, conn, _cursor, statement: str, *_args) -> None:
        if len(self.outside) < len(self.transactions):
            self.outside.append([])
        if not conn.connection.dbapi_connection._connection.is_in_transaction():
            self.outside[-1].append(statement.split(None, 1)[0].upper())

    def clear(self) -> None:
        self.transactions.clear()
        self.outside.clear()


async def test_a_typical_step_is_one_small_transaction_and_a_mark(person, suite_app):
    hoa = person("hoa")
    await register_citizen(hoa)
    await hoa.taps("Bắt đầu")
    await hoa.taps("Đạt")
    await hoa.taps("Không có ảnh")  # item 1 done: items 2 and 3 are typical steps
    # On PostgreSQL the conversation and the processed message are written by one statement (a
    # WITH: storage/deliveries.save_position_and_record); on SQLite by two.
    postgres = suite_app.engine.dialect.name == "postgresql"
    engine_rows = ["WITH"] if postgres else ["UPDATE", "INSERT"]
    counted = Statements(suite_app.engine)

    turn = await hoa.taps("Đạt")
    assert turn.choices == ["Không có ảnh"]
    step, mark = counted.transactions
    # The load (account, conversation, person, submission, duplicate check, the submission's
    # answer levels and photo counts), the new answer, the score, then the conversation and the
    # processed message. On PostgreSQL all four writes are the one statement
    # (deliveries.foldable_answer), run without BEGIN or COMMIT (storage/db.transaction).
    if postgres:
        assert step == ["SELECT", "WITH"], step
        assert counted.outside[0] == step, counted.outside
    else:
        # The score's version-checked UPDATE, the answer's INSERT, then the engine's two rows.
        assert step == ["SELECT", "UPDATE", "INSERT", *engine_rows], step
    assert mark == ["UPDATE"]

    counted.clear()
    turn = await hoa.taps("Không có ảnh")
    assert turn.text.startswith("Mục 3/10")
    step, mark = counted.transactions
    # The load, then the conversation and the processed message. Nothing written that the step
    # did not change (the account's last message time is kept for a few minutes; the person, the
    # account and the submission's state are untouched).
    assert step == ["SELECT", *engine_rows], step
    assert mark == ["UPDATE"]
    if postgres:
        # One write: no BEGIN and no COMMIT, every statement on its own (storage/db.transaction).
        assert counted.outside[0] == step, counted.outside

    await hoa.taps("Đạt một phần")  # item 3
    turn = await hoa.says("quay lại")  # back to item 3's level: a change of mind
    assert turn.text.startswith("Mục 3/10"), turn.text
    counted.clear()
    turn = await hoa.taps("Đạt")
    step, _mark = counted.transactions
    # An item answered before: its row is read to be changed, then updated with the score.
    assert step == ["SELECT", "SELECT", "UPDATE", "UPDATE", *engine_rows], step
    assert turn.choices == ["Không có ảnh"]


async def test_the_menu_reads_roles_and_applications_once(person, suite_app):
    """The menu asks for each staff role in turn (leader, officer, province): one read of the
    person's grants serves them all within the step."""
    hoa = person("hoa")
    await register_citizen(hoa)
    counted = Statements(suite_app.engine)
    turn = await hoa.says("/menu")
    assert turn.choices
    step, mark = counted.transactions
    reads = [statement for statement in step if statement == "SELECT"]
    # the load, the person's applications, their roles
    assert len(reads) <= 3, step
    assert mark == ["UPDATE"]
