"""train-offers shows where it is: feature rows per send day, tuning, each learner, evaluation, refit."""

from __future__ import annotations

import io

from rich.console import Console
from rich.progress import Progress

from features.config import OfferCatalog
from tests.offers_synthetic import offer_log
from training.offers.config import OfferModelConfig
from training.offers.dataset import offer_training_rows
from training.offers.pipeline import fit_and_evaluate


class Recorded(Progress):
    """A rich Progress that remembers every description it was given (the screen refreshes only 10 times a second)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.said: list[str] = []

    def add_task(self, description, *args, **kw):
        self.said.append(description)
        return super().add_task(description, *args, **kw)

    def update(self, task_id, *, description=None, **kw):
        if description is not None:
            self.said.append(description)
        return super().update(task_id, description=description, **kw)


def test_train_offers_progress_covers_every_step():
    tables, _ = offer_log(n_customers=600, campaigns=3, seed=2)
    catalog = OfferCatalog()
    config = OfferModelConfig(trials=0, learners=("t", "s"), min_conversions_per_arm=5)
    screen = io.StringIO()
    bar = Recorded(console=Console(file=screen, force_terminal=True, width=100))
    with bar:
        rows = offer_training_rows(tables, catalog=catalog, progress=bar)
        days = bar.tasks[0]
        assert (days.completed, days.total) == (3, 3) and days.description.startswith("feature rows as of ")
        fit_and_evaluate(rows, catalog=catalog, config=config, progress=bar)
    steps = bar.tasks[1]
    assert steps.total == 2 + 2 + int(config.refit_on_all) and steps.completed == steps.total
    assert steps.description == "done"
    said = " | ".join(bar.said)
    for phase in ("feature rows per send day", "tuning", "fitting the t-learner", "fitting the s-learner"):
        assert phase in said, said
    assert "evaluating policies on held-out sends" in said and "refitting the t-learner on every send" in said
    assert "feature rows as of" in screen.getvalue()  # drawn on the terminal
