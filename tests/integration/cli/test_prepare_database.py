"""The database step of `up` and `init`, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import func, insert, select

from dealwatch.up import prepare_database
from services.common.db import ConsumedOffsetRow, make_engine
from services.common.settings import load_settings

pytestmark = pytest.mark.integration


def stored_offsets(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(ConsumedOffsetRow)).scalar_one())
    finally:
        engine.dispose()


def store_an_offset(url: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(ConsumedOffsetRow).values(group_id="g", topic="t", partition=0, next_offset=42)
            )
    finally:
        engine.dispose()


def test_a_fresh_embedded_broker_voids_the_consumer_positions_an_earlier_run_stored(db_url: str) -> None:
    settings = load_settings(database_url=db_url)
    prepare_database(settings, embedded_broker=True)
    store_an_offset(db_url)

    prepare_database(settings, embedded_broker=True)

    assert stored_offsets(db_url) == 0


def test_a_configured_broker_keeps_the_stored_consumer_positions(db_url: str) -> None:
    settings = load_settings(database_url=db_url)
    prepare_database(settings, embedded_broker=False)
    store_an_offset(db_url)

    prepare_database(settings, embedded_broker=False)

    assert stored_offsets(db_url) == 1
