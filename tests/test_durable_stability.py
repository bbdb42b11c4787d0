"""durable-rules corrupts its heap when a session keeps facts that passed a rule's first test and failed
the rest; the compiler gives every fact a catch-all match. These run in a subprocess so a crash is a failure."""

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    from duban.engine.loader import load_rule_set
    from duban.engine.compile import compile_rule_set, FACT_SCHEMA
    rules = load_rule_set('rules/lucheng')
    compiled = compile_rule_set(rules)
    def fact(rule, **values):
        f = {k: t() for k, t in FACT_SCHEMA.fields.items()}
        f.update(rule=rule, **values)
        return f
    for i in range(400):
        compiled.evaluate([fact('lucheng.service_investment_share', gap=-1.5),
                           fact('lucheng.task_deadline', days=100.0),
                           fact('lucheng.unit_pace', lag=-2.0, completion=50.0)])
    print('survived')
    """
)


def test_facts_that_match_no_decision_do_not_crash_the_engine_over_many_evaluations():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "survived" in done.stdout
