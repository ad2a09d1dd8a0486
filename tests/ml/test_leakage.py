"""Leakage judged from evidence: power alone, outcome words, one-class filling, what a probe says."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from demo.data import generate_leads
from leadml.ml.promotion import decide_promotion
from leadml.ml.quality import OUTCOME_VOCABULARY, outcome_words, quality_report
from leadml.ml.targets import encode_target
from leadml.ml.train import train_model
from leadml.ml.types import TrainingConfig

PLANTED = ("deal_amount", "tags", "lead_quality", "last_activity", "followup_owner")
# One small grid per algorithm: these tests are about which columns train, not about tuning.
SMALL_GRIDS = {
    "random_forest": {"max_depth": [8]},
    "gradient_boosting": {"max_leaf_nodes": [15]},
    "logistic_regression": {"C": [1.0]},
    "neural_network": {"alpha": [1.0]},
}


def planted_leads(rows: int = 600, seed: int = 3) -> tuple[pd.DataFrame, pd.Series]:
    """Demo leads plus five columns the sales team writes during or after the sale.

    deal_amount: the outcome in disguise (one strong column); tags: "Closed by ...",
    "Lost to ...", "Already a student"; lead_quality: a judgement named like one;
    last_activity: a snapshot with "Converted to Lead" among its values; followup_owner:
    filled almost only for converted leads.
    """
    frame = generate_leads(rows, seed=seed)
    labels = encode_target(frame.pop("status"), model_type="lead_conversion", positive_values=["customer", "won"])
    rng = np.random.default_rng(seed)
    won = labels.to_numpy() == 1

    def by_outcome(if_won: tuple[list, list], if_lost: tuple[list, list]) -> np.ndarray:
        return np.where(
            won,
            rng.choice(np.array(if_won[0], dtype=object), rows, p=if_won[1]),
            rng.choice(np.array(if_lost[0], dtype=object), rows, p=if_lost[1]),
        )

    frame["deal_amount"] = np.where(won, rng.normal(5000, 300, rows), rng.normal(0, 50, rows)).round(2)
    frame["tags"] = by_outcome(
        (["Closed by Horizzon", "Will revert after reading the email", "Lost to EINS", None], [0.55, 0.25, 0.05, 0.15]),
        (["Ringing", "Already a student", "Interested in other courses", "Will revert after reading the email", None],
         [0.3, 0.15, 0.15, 0.05, 0.35]),
    )
    frame["lead_quality"] = by_outcome(
        (["High in Relevance", "Might be", "Not Sure", None], [0.4, 0.3, 0.1, 0.2]),
        (["Might be", "Not Sure", "Low in Relevance", "Worst", None], [0.1, 0.2, 0.15, 0.15, 0.4]),
    )
    frame["last_activity"] = by_outcome(
        (["SMS Sent", "Email Opened", "Page Visited on Website", "Converted to Lead"], [0.45, 0.35, 0.15, 0.05]),
        (["SMS Sent", "Email Opened", "Page Visited on Website", "Converted to Lead", "Olark Chat Conversation"],
         [0.12, 0.4, 0.13, 0.15, 0.2]),
    )
    frame["followup_owner"] = np.where(won ^ (rng.random(rows) < 0.08), rng.choice(["ana", "ben", "chloe"], rows), None)
    return frame, labels


@pytest.fixture(scope="module")
def leads() -> tuple[pd.DataFrame, pd.Series]:
    return planted_leads()


@pytest.fixture(scope="module")
def trained(leads: tuple[pd.DataFrame, pd.Series]) -> dict[str, object]:
    frame, labels = leads
    leaky = train_model(
        frame, labels, model_type="lead_conversion", algorithm="auto",
        config=TrainingConfig(cv_folds=3, param_grid=SMALL_GRIDS),
    )
    # The honest model is `auto` on the columns without the planted ones. Training is
    # deterministic, so on the same columns `auto` makes the same choice: training only
    # the algorithm it chose gives that model at a quarter of the cost.
    chosen = leaky.algorithm
    honest = train_model(
        frame.drop(columns=list(PLANTED)), labels, model_type="lead_conversion", algorithm=chosen,
        config=TrainingConfig(cv_folds=3, param_grid=SMALL_GRIDS[chosen]),
    )
    return {"leaky": leaky, "honest": honest}


def test_outcome_words_match_names_and_values_word_by_word() -> None:
    assert "last activity" in OUTCOME_VOCABULARY
    assert outcome_words("Last Notable Activity") == ["last activity"]
    assert outcome_words("lastActivity") == ["last activity"]
    assert outcome_words("Closed by Horizzon") == ["closed"]
    assert outcome_words("Converted to Lead") == ["converted"]
    assert outcome_words("lead_quality") == ["quality"]
    # Whole words only: "poutcome" (a previous campaign's outcome, known before the call) is not "outcome".
    assert outcome_words("poutcome") == [] and outcome_words("emp.var.rate") == []


def test_upload_report_flags_every_planted_column_with_its_evidence(leads: tuple[pd.DataFrame, pd.Series]) -> None:
    frame, labels = leads
    report = quality_report(frame, labels, model_type="lead_conversion")
    suspects = {item["column"]: item for item in report["leakage_suspects"]}
    assert set(suspects) == set(PLANTED), report["leakage_suspects"]
    assert suspects["deal_amount"]["power"] > 0.95
    assert "converted" in suspects["last_activity"]["value_words"]
    assert suspects["last_activity"]["name_words"] == ["last activity"]
    assert {"closed", "lost", "already"} <= set(suspects["tags"]["value_words"])
    assert suspects["lead_quality"]["name_words"] == ["quality"]
    assert suspects["followup_owner"]["one_class_fill"] is True
    # Every candidate column carries its evidence; the honest ones have no verdict.
    evidence = {item["column"]: item for item in report["column_evidence"]}
    assert evidence["engagement_score"]["verdict"] is None and evidence["engagement_score"]["power"] > 0.6
    assert report["leakage_warnings"] == []


def test_auto_excludes_every_planted_column_and_scores_as_the_honest_model(trained: dict[str, object]) -> None:
    leaky, honest = trained["leaky"], trained["honest"]
    leakage = leaky.report["leakage"]
    assert set(leakage["excluded"]) == set(PLANTED)
    assert not set(PLANTED) & set(leaky.bundle.schema.names)
    assert leaky.bundle.schema.names == honest.bundle.schema.names
    assert abs(leaky.metrics["roc_auc"] - honest.metrics["roc_auc"]) <= 0.01
    # The report says what the leak was worth on CV, and what each suspect adds alone.
    assert leakage["cv_with_suspects"] > leakage["cv_without_suspects"] + 0.05
    assert leakage["leak_worth"] == pytest.approx(leakage["cv_with_suspects"] - leakage["cv_without_suspects"])
    rows = {item["column"]: item for item in leakage["evidence"]}
    assert rows["tags"]["drop_cost"] > 0.02 and rows["deal_amount"]["probe_importance_share"] > 0.5
    assert rows["lead_score"]["model_importance_share"] is not None
    assert {item["column"] for item in leaky.report["leakage_excluded"]} == set(PLANTED)


def test_allow_columns_keeps_a_suspect_and_says_so(leads: tuple[pd.DataFrame, pd.Series]) -> None:
    frame, labels = leads
    kept = train_model(
        frame[["lead_score", "engagement_score", "source", "last_activity"]], labels,
        model_type="lead_conversion", algorithm="logistic_regression",
        config=TrainingConfig(cv_folds=3, allow_columns=("last_activity",)),
    )
    assert "last_activity" in kept.bundle.schema.names
    assert kept.report["leakage"]["allowed"] == ["last_activity"]


def test_an_honest_version_is_compared_with_the_leaky_active_one_without_its_leak(
    leads: tuple[pd.DataFrame, pd.Series], trained: dict[str, object]
) -> None:
    frame, labels = leads
    honest = trained["leaky"]  # trained on every column, it left the suspects out
    # A forest that leans on the leak: without it (blanked, as for a new lead) it ranks poorly.
    leaky = train_model(
        frame, labels, model_type="lead_conversion", algorithm="gradient_boosting",
        config=TrainingConfig(cv_folds=3, allow_columns=PLANTED, param_grid={"max_leaf_nodes": [15]}),
    )
    assert leaky.metrics["roc_auc"] > honest.metrics["roc_auc"] + 0.05  # the leak wins a plain comparison
    decision = decide_promotion(challenger=honest.bundle, holdout=honest.holdout, champion=leaky.bundle, champion_version=1)
    assert decision.promote, decision.reason
    assert "promoted as the honest model" in decision.reason
    assert "leakage suspects" in decision.leakage_note and "deal_amount" in decision.leakage_note
    assert decision.champion_score > decision.challenger_score >= decision.champion_score_without_suspects
    # Between two honest versions the margin still applies.
    again = decide_promotion(challenger=honest.bundle, holdout=honest.holdout, champion=honest.bundle, champion_version=2)
    assert not again.promote and again.leakage_note == ""
