"""A synthetic province-scale programme: the data set the evaluation and report benchmarks run on.

At scale 1: 3,000 units, 6,000 indicators with 60 months of observations each (360,000 rows),
2,000 projects (plans per year, 60 months of investment), 10,000 tasks. `scale` multiplies every
count, so 2× and 4× show how the cost grows. Rows go straight into the store with bulk inserts:
the benchmark is about evaluating, the import path has its own benchmark.

The rule set (bench/province_rules) is the bundled rules' shape at province size: thresholds on
growth and share indicators, pace of every cumulative indicator and project, deadlines of every
task, monthly figures due, and praise.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert

from duban.store.db import create_all, make_engine
from duban.store.models import (
    Indicator,
    IndicatorUnit,
    Observation,
    Programme,
    Project,
    ProjectInvestment,
    ProjectPlan,
    ProjectUnit,
    Target,
    Task,
    TaskUnit,
    Unit,
)

RULES_DIR = Path(__file__).with_name("province_rules")
PROGRAMME = "province"
WORKING_GROUP = "zhuanban"
YEARS = range(2023, 2028)
MONTHS = [f"{year}-{month:02d}" for year in YEARS for month in range(1, 13)]
CATEGORIES = ("战略支撑型", "产业赋能型", "生活美好型")
# The moment the benchmark evaluates: the July 2025 dispatch, half-way through the programme.
EVALUATE_AT = dt.datetime(2025, 7, 15, 1, 0, tzinfo=dt.UTC)
IMPORTED_AT = dt.datetime(2025, 7, 1, tzinfo=dt.UTC)
BATCH = 20_000


@dataclass(frozen=True)
class ProvinceSize:
    units: int
    indicators: int
    projects: int
    tasks: int
    observations: int
    investments: int


def size_at(scale: float) -> ProvinceSize:
    indicators = int(6_000 * scale)
    projects = int(2_000 * scale)
    return ProvinceSize(
        units=int(3_000 * scale),
        indicators=indicators,
        projects=projects,
        tasks=int(10_000 * scale),
        observations=indicators * len(MONTHS),
        investments=projects * len(MONTHS),
    )


def _insert(engine: Engine, model: type, rows: list[dict[str, Any]]) -> None:
    with engine.begin() as connection:
        for start in range(0, len(rows), BATCH):
            connection.execute(insert(model), rows[start:start + BATCH])


def build_store(path: Path, scale: float = 1.0, seed: int = 7) -> Engine:
    """Create a SQLite store at `path` holding the province programme at `scale`; returns its engine."""
    rng = random.Random(seed)
    size = size_at(scale)
    engine = make_engine(f"sqlite:///{path}")
    create_all(engine)
    unit_codes = [f"u{i:05d}" for i in range(size.units)]
    _insert(engine, Programme, [{
        "code": PROGRAMME, "name": "某省服务业高质量发展“十百千”工程（2023—2027年）",
        "start": dt.date(2023, 1, 1), "end": dt.date(2027, 12, 31), "document": "基准测试数据",
    }])
    _insert(engine, Unit, [
        {"code": WORKING_GROUP, "name": "省服务业工作专班", "emails": ["zhuanban@province.example.org"], "kind": "working_group"},
        *({"code": code, "name": f"第{i + 1}责任单位", "emails": [f"{code}@province.example.org"],
           "kind": "county" if i % 10 == 0 else "department"} for i, code in enumerate(unit_codes)),
    ])

    indicators: list[dict[str, Any]] = []
    links: list[dict[str, Any]] = []
    targets: list[dict[str, Any]] = []
    observations: list[dict[str, Any]] = []
    for i in range(size.indicators):
        code = f"ind{i:06d}"
        kind = "cumulative" if i % 3 != 2 else ("growth" if i % 6 == 2 else "level")
        measure = "%" if kind != "cumulative" else "亿元"
        # Cumulative figures here are monthly amounts (当月值), as the generator below draws them.
        indicators.append({"code": code, "name": f"指标{i + 1}", "measure": measure, "kind": kind, "direction": "at_least",
                           "reported_as": "month" if kind == "cumulative" else ""})
        lead = unit_codes[i % size.units]
        helper = unit_codes[(i * 7 + 1) % size.units]
        links.append({"indicator_code": code, "unit_code": lead, "position": 0})
        if helper != lead:
            links.append({"indicator_code": code, "unit_code": helper, "position": 1})
        # One indicator in ten runs behind: its monthly amounts fall short of the target's pace.
        pace = 0.75 if rng.random() < 0.1 else rng.uniform(0.95, 1.2)
        for year in YEARS:
            annual = round(rng.uniform(50, 500), 1)
            if kind == "cumulative":
                targets.append({"indicator_code": code, "scope": str(year), "unit_code": "", "value": annual})
            for month in range(1, 13):
                period = f"{year}-{month:02d}"
                if rng.random() < 0.005:
                    continue  # a month a unit forgot to report
                if kind == "cumulative":
                    value = annual / 12 * pace * rng.uniform(0.9, 1.1)
                elif kind == "growth":
                    value = rng.gauss(9.0, 2.0)
                else:
                    value = rng.gauss(70.0, 4.0)
                observations.append({"indicator_code": code, "period": period, "unit_code": "", "value": round(value, 3),
                                     "source_file": "province.csv", "imported_at": IMPORTED_AT})
        if kind == "cumulative":
            targets.append({"indicator_code": code, "scope": "final", "unit_code": "", "value": 1000.0})
    _insert(engine, Indicator, indicators)
    _insert(engine, IndicatorUnit, links)
    _insert(engine, Target, targets)
    del indicators, links, targets
    _insert(engine, Observation, observations)
    del observations

    projects: list[dict[str, Any]] = []
    project_units: list[dict[str, Any]] = []
    plans: list[dict[str, Any]] = []
    investments: list[dict[str, Any]] = []
    for i in range(size.projects):
        code = f"prj{i:05d}"
        projects.append({"code": code, "name": f"重大项目{i + 1}", "category": CATEGORIES[i % 3],
                         "level": "省级" if i % 5 == 0 else "市级", "total_investment": 50.0})
        project_units.append({"project_code": code, "unit_code": unit_codes[(i * 3) % size.units], "position": 0})
        pace = 0.7 if rng.random() < 0.1 else rng.uniform(0.95, 1.2)
        for year in YEARS:
            planned = round(rng.uniform(2, 20), 2)
            plans.append({"project_code": code, "year": year, "planned_investment": planned})
            for month in range(1, 13):
                investments.append({"project_code": code, "period": f"{year}-{month:02d}",
                                    "value": round(planned / 12 * pace * rng.uniform(0.8, 1.2), 3),
                                    "source_file": "province.csv", "imported_at": IMPORTED_AT})
    _insert(engine, Project, projects)
    _insert(engine, ProjectUnit, project_units)
    _insert(engine, ProjectPlan, plans)
    _insert(engine, ProjectInvestment, investments)
    del projects, project_units, plans, investments

    tasks: list[dict[str, Any]] = []
    task_units: list[dict[str, Any]] = []
    first = dt.date(2023, 3, 31)
    span = (dt.date(2027, 12, 31) - first).days
    for i in range(size.tasks):
        code = f"task{i:06d}"
        deadline = first + dt.timedelta(days=rng.randrange(span))
        done = rng.random() < 0.85
        done_on = deadline - dt.timedelta(days=rng.randrange(-10, 60)) if done else None
        tasks.append({"code": code, "title": f"重点任务{i + 1}", "measures": "按计划推进", "goal": "按期完成",
                      "deadline": deadline, "deadline_text": f"{deadline.year}年{deadline.month}月底前",
                      "status": "done" if done else "open", "done_on": done_on})
        lead = unit_codes[(i * 5) % size.units]
        task_units.append({"task_code": code, "unit_code": lead, "position": 0})
    _insert(engine, Task, tasks)
    _insert(engine, TaskUnit, task_units)
    return engine


__all__ = ["EVALUATE_AT", "RULES_DIR", "ProvinceSize", "build_store", "size_at"]
