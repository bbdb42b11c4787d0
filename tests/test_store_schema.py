import datetime as dt

from sqlalchemy import select

from duban.store.db import transaction
from duban.store.migrate import current
from duban.store.models import Indicator, Observation, Unit


def test_fresh_database_is_migrated_to_the_newest_revision(engine):
    assert current(engine) is not None


def test_timestamps_come_back_timezone_aware_in_utc(engine):
    shanghai = dt.timezone(dt.timedelta(hours=8))
    with transaction(engine) as s:
        s.add(Unit(code="fgj", name="区发改局", emails=["fgj@example.org"], kind="department"))
        s.add(Indicator(code="x", name="X", measure="%", kind="level", direction="at_least"))
        s.add(Observation(indicator_code="x", period="2023-06", value=1.0,
                          imported_at=dt.datetime(2023, 7, 1, 9, 0, tzinfo=shanghai)))
    with transaction(engine) as s:
        obs = s.scalars(select(Observation)).one()
        assert obs.imported_at == dt.datetime(2023, 7, 1, 1, 0, tzinfo=dt.UTC)
        assert obs.imported_at.tzinfo is not None
        assert s.get(Unit, "fgj").emails == ["fgj@example.org"]
