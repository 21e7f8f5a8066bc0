"""How the daily assets keep themselves current without a person: declarative automation conditions,
evaluated by one automation sensor (see analytics_defs/daily.py)."""

import dagster as dg


def refresh_on_upstream_update() -> dg.AutomationCondition:
    """Materialise a day again once a day it reads was updated (any day, not only the latest: late data
    reaches older days too), when every blocking check of what it reads passed (a failed quality gate
    stops it), but never while a run of it or of what it reads is queued or running: the
    update is remembered until handled, so automation never queues more runs than it finishes and never
    loses an update that arrived during a run."""
    return (
        dg.AutomationCondition.any_deps_updated().since_last_handled()
        & dg.AutomationCondition.all_deps_blocking_checks_passed()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label("refresh on upstream update")
