"""CLV from transaction logs: customer features, training tables and the BTYD models. No database."""
from __future__ import annotations

import io
import math
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression
from sklearn.metrics import mean_absolute_error, r2_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from leadml.ml.btyd import (
    OUTPUT_COLUMNS,
    BTYDFeatures,
    bgnbd_expected_purchases,
    bgnbd_p_alive,
    fit_bgnbd,
    fit_gamma_gamma,
)
from leadml.ml.errors import DataError
from leadml.ml.transactions import (
    FEATURE_COLUMNS,
    FEATURE_DESCRIPTIONS,
    TransactionColumns,
    customer_features,
    features_for_customer,
    normalise_transactions,
    training_table,
)
from tests.conftest import shared_dataset

REPO = Path(__file__).resolve().parents[2]


def log(rows: list[tuple[object, object, object]]) -> pd.DataFrame:
    return normalise_transactions(pd.DataFrame(rows, columns=["customer_id", "date", "amount"]))


@pytest.fixture
def shop() -> pd.DataFrame:
    return log(
        [
            ("a", "2024-01-01", 30.0),
            ("a", "2024-01-01", -30.0),  # refunded the same day: not a purchase day
            ("a", "2024-01-10", 20.0),
            ("a", "2024-02-09", 50.0),
            ("a", "2024-02-09", -10.0),  # partial refund: the day nets 40
            ("a", "2024-03-01", -15.0),  # refund on its own day: counts in spend, not a purchase
            ("a", "2024-03-15", 100.0),  # after the cutoff used below
            ("b", "2024-02-01", 10.0),
            ("b", "2024-02-20", -25.0),  # refunds more than was spent: spend floors at 0
            ("c", "2024-03-12", 60.0),  # first purchase after the cutoff: not a row
        ]
    )


def test_transaction_modules_never_import_django() -> None:
    code = (
        "import sys; import leadml.ml.transactions, leadml.ml.btyd; "
        "assert 'django' not in sys.modules, sorted(m for m in sys.modules if m.startswith('django'))"
    )
    completed = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr


# --- Normalising ------------------------------------------------------------------------


def test_normalise_reads_every_date_form_and_renames_columns() -> None:
    frame = pd.DataFrame(
        {
            "who": [7, 7.0, " 7 ", 12, "x"],
            "when": [
                19970101,
                "1997-01-02T22:15:00",
                datetime(1997, 1, 3, 9, 30),
                "19970104",
                pd.Timestamp("1997-01-05T23:30:00-05:00"),  # 04:30 UTC the next day
            ],
            "value": ["12.50", 3, -1.5, 0, 4],
        }
    )
    result = normalise_transactions(frame, TransactionColumns(customer="who", date="when", amount="value"))
    assert list(result.columns) == ["customer_id", "date", "amount"]
    assert result["customer_id"].tolist() == ["7", "7", "7", "12", "x"]  # ids by number, then text
    assert result["date"].dt.strftime("%Y-%m-%d").tolist() == [
        "1997-01-01", "1997-01-02", "1997-01-03", "1997-01-04", "1997-01-06",
    ]
    assert result["date"].dt.tz is None
    assert (result["date"] == result["date"].dt.normalize()).all()
    assert result["amount"].tolist() == [12.5, 3.0, -1.5, 0.0, 4.0]


@pytest.mark.parametrize(
    ("column", "bad", "example"),
    [
        ("when", "yesterday", "'yesterday'"),
        ("when", 970101, "970101"),  # six digits: not YYYYMMDD
        ("when", None, "an empty value"),
        ("value", "$5", "'$5'"),
        ("value", None, "an empty value"),
    ],
)
def test_normalise_names_the_bad_column_and_gives_an_example(column: str, bad: object, example: str) -> None:
    frame = pd.DataFrame({"who": ["a", "b"], "when": ["2024-01-01", "2024-01-02"], "value": [1.0, 2.0]}, dtype=object)
    frame.loc[1, column] = bad
    with pytest.raises(DataError) as caught:
        normalise_transactions(frame, TransactionColumns(customer="who", date="when", amount="value"))
    assert caught.value.field == column
    assert repr(column) in caught.value.message
    assert example in caught.value.message


@pytest.mark.parametrize(
    "bad",
    [
        "0001-01-03",  # ISO 8601: pandas reads it, at a coarser unit than nanoseconds
        "9999-12-31T23:00:00Z",
        "00010101",  # YYYYMMDD
        datetime(1, 1, 1),
        pd.Timestamp("9000-01-01", tz="UTC").as_unit("s"),
    ],
)
def test_normalise_names_a_date_outside_the_plausible_years(bad: object) -> None:
    frame = pd.DataFrame({"who": ["a", "b"], "when": ["2024-01-01", "2024-01-02"], "value": [1.0, 2.0]}, dtype=object)
    frame.loc[1, "when"] = bad
    with pytest.raises(DataError) as caught:
        normalise_transactions(frame, TransactionColumns(customer="who", date="when", amount="value"))
    assert caught.value.field == "when"


def test_normalise_names_a_missing_column() -> None:
    with pytest.raises(DataError) as caught:
        normalise_transactions(pd.DataFrame({"customer_id": ["a"], "date": ["2024-01-01"]}))
    assert caught.value.field == "amount"


# --- Features ------------------------------------------------------------------------------


def test_customer_features_net_refunds_and_ignore_later_transactions(shop: pd.DataFrame) -> None:
    features = customer_features(shop, date(2024, 3, 10))
    assert list(features.columns) == list(FEATURE_COLUMNS) == list(FEATURE_DESCRIPTIONS)
    assert list(features.index) == ["a", "b"]  # c buys only after the cutoff
    assert features.index.name == "customer_id"
    assert all(dtype == np.float64 for dtype in features.dtypes)

    a = features.loc["a"]
    assert a["purchase_days"] == 2  # 01-10 and 02-09; 01-01 nets to 0, 03-01 is a refund
    assert a["frequency"] == 1
    assert a["recency_days"] == 30  # 02-09 .. 03-10
    assert a["tenure_days"] == 60  # 01-10 .. 03-10
    assert a["age_at_last_days"] == 30
    assert a["total_spend"] == pytest.approx(20 + 40 - 15)
    assert a["avg_spend"] == pytest.approx(45 / 2)
    assert a["max_spend"] == 40
    assert a["first_purchase_value"] == 20
    assert a["last_purchase_value"] == 40
    assert a["avg_repeat_spend"] == 40
    assert a["spend_last_90_days"] == pytest.approx(45)
    assert a["purchases_last_90_days"] == 2
    assert a["avg_days_between"] == 30

    b = features.loc["b"]
    assert b["purchase_days"] == 1 and b["frequency"] == 0
    assert b["total_spend"] == 0  # 10 - 25, floored
    assert b["avg_spend"] == 0
    assert math.isnan(b["avg_days_between"]) and math.isnan(b["avg_repeat_spend"])


def test_customer_features_cutoff_is_inclusive_and_windows_count_90_days(shop: pd.DataFrame) -> None:
    on_the_day = customer_features(shop, "2024-03-15")
    assert on_the_day.loc["a", "purchase_days"] == 3
    assert on_the_day.loc["a", "recency_days"] == 0
    before = customer_features(shop, "2024-03-14")
    assert before.loc["a", "purchase_days"] == 2
    # 2024-04-08 - 89 days = 2024-01-10: the first purchase is the window's first day.
    assert customer_features(shop, "2024-04-08").loc["a", "purchases_last_90_days"] == 3
    assert customer_features(shop, "2024-04-09").loc["a", "purchases_last_90_days"] == 2
    assert customer_features(shop, "2023-12-31").empty


def test_features_for_customer_matches_the_table_row(shop: pd.DataFrame) -> None:
    rows = shop[shop["customer_id"] == "a"]
    transactions = [
        {"date": day.strftime("%Y%m%d") if i % 2 else day.date().isoformat(), "amount": amount}
        for i, (day, amount) in enumerate(zip(rows["date"], rows["amount"], strict=True))
    ]
    one = features_for_customer(transactions, as_of="2024-03-10")
    row = customer_features(shop, "2024-03-10").loc["a"].to_dict()
    assert list(one) == list(FEATURE_COLUMNS)
    assert one == pytest.approx(row, nan_ok=True)

    single = features_for_customer([{"date": "2024-01-05", "amount": "9.5"}], as_of=date(2024, 1, 5))
    assert single["purchase_days"] == 1 and math.isnan(single["avg_days_between"])


@pytest.mark.parametrize(
    ("transactions", "field"),
    [
        ([{"date": "2024-01-01", "amount": 5}, {"date": "31/01/2024", "amount": 5}], "transactions[1].date"),
        ([{"date": "2024-01-01", "amount": 5}, {"date": "0001-01-03", "amount": 5}], "transactions[1].date"),
        ([{"date": "99991231", "amount": 5}], "transactions[0].date"),
        ([{"date": "2024-01-01", "amount": "five"}], "transactions[0].amount"),
        ([{"date": "2024-01-01"}], "transactions[0].amount"),
        (["2024-01-01"], "transactions[0]"),
        ([], "transactions"),
        ([{"date": "2024-01-01", "amount": -5}], "transactions"),  # only a refund: no purchase
    ],
)
def test_features_for_customer_names_the_bad_element(transactions: list[object], field: str) -> None:
    with pytest.raises(DataError) as caught:
        features_for_customer(transactions, as_of="2024-02-01")  # type: ignore[arg-type]
    assert caught.value.field == field


def test_features_for_customer_rejects_an_unreadable_as_of() -> None:
    with pytest.raises(DataError) as caught:
        features_for_customer([{"date": "2024-01-01", "amount": 5}], as_of="soon")
    assert caught.value.field == "as_of"


# --- Training tables ---------------------------------------------------------------------------


def test_training_table_target_window_is_open_at_the_start_and_closed_at_the_end() -> None:
    transactions = log(
        [
            ("a", "2024-01-01", 10.0),
            ("a", "2024-01-31", 1000.0),  # on calibration_end: a feature, not the target
            ("a", "2024-02-01", 5.0),  # first day of the window
            ("a", "2024-03-01", 7.0),  # last day (calibration_end + 30)
            ("a", "2024-03-02", 900.0),  # after the window
            ("b", "2024-01-15", 20.0),
            ("b", "2024-02-10", -50.0),  # refund in the window: target floors at 0
            ("c", "2024-02-15", 80.0),  # no purchase before calibration_end: not a row
        ]
    )
    features, target = training_table(transactions, calibration_end="2024-01-31", horizon_days=30)
    assert features["customer_id"].tolist() == ["a", "b"]
    assert list(features.columns) == ["customer_id", *FEATURE_COLUMNS]
    assert features.loc[0, "total_spend"] == 1010
    assert target.tolist() == [12.0, 0.0]
    assert target.index.equals(features.index)


@pytest.mark.parametrize(
    ("calibration_end", "horizon_days", "field"),
    [
        ("2023-12-31", 30, "calibration_end"),  # nothing before
        ("2024-03-01", 30, "calibration_end"),  # nothing after
        ("not a date", 30, "calibration_end"),
        ("2024-01-15", 0, "horizon_days"),
    ],
)
def test_training_table_checks_its_window(calibration_end: str, horizon_days: int, field: str) -> None:
    transactions = log([("a", "2024-01-01", 10.0), ("a", "2024-03-01", 10.0)])
    with pytest.raises(DataError) as caught:
        training_table(transactions, calibration_end=calibration_end, horizon_days=horizon_days)
    assert caught.value.field == field


# --- BTYD models ------------------------------------------------------------------------------------


def simulate_bgnbd(n: int, r: float, alpha: float, a: float, b: float, seed: int) -> pd.DataFrame:
    """Customers from the BG/NBD story (as `lifetimes` simulates it); times in weeks."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        T = rng.uniform(26.0, 39.0)
        rate = rng.gamma(r, 1.0 / alpha)
        dropout = rng.beta(a, b)
        times: list[float] = []
        now = rng.exponential(1.0 / rate)
        while now < T:
            times.append(now)
            if rng.random() < dropout:
                break
            now += rng.exponential(1.0 / rate)
        rows.append({"x": len(times), "t_x": times[-1] if times else 0.0, "T": T})
    return pd.DataFrame(rows)


def test_bgnbd_recovers_simulated_parameters() -> None:
    truth = {"r": 0.5, "alpha": 5.0, "a": 0.8, "b": 2.5}
    data = simulate_bgnbd(8000, **truth, seed=11)
    fitted = fit_bgnbd(data["x"], data["t_x"], data["T"])
    assert fitted.converged
    for name, value in truth.items():
        assert fitted.params[name] == pytest.approx(value, rel=0.3), (name, fitted.params)


def test_gamma_gamma_recovers_simulated_parameters() -> None:
    rng = np.random.default_rng(5)
    p, q, v = 6.0, 4.0, 15.0
    counts = rng.integers(1, 8, size=4000)
    scales = rng.gamma(q, 1.0 / v, size=len(counts))  # nu per customer
    means = np.array([rng.gamma(p, 1.0 / nu, size=x).mean() for x, nu in zip(counts, scales, strict=True)])
    fitted = fit_gamma_gamma(counts, means)
    assert fitted.params["p"] == pytest.approx(p, rel=0.25)
    assert fitted.params["q"] == pytest.approx(q, rel=0.25)
    assert fitted.params["v"] == pytest.approx(v, rel=0.35)


def test_p_alive_is_one_without_repeats_and_falls_with_silence() -> None:
    params = {"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.4}
    alive = bgnbd_p_alive(params, np.array([0, 3, 3]), np.array([0.0, 30.0, 5.0]), np.array([39.0, 39.0, 39.0]))
    assert alive[0] == 1.0
    assert 0 < alive[2] < alive[1] < 1


def btyd_frame(seed: int, n: int = 3000) -> pd.DataFrame:
    data = simulate_bgnbd(n, r=0.4, alpha=4.0, a=0.8, b=2.5, seed=seed)
    data.index = pd.RangeIndex(100, 100 + n)  # not 0..n-1: outputs must keep the caller's index
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "frequency": data["x"].astype(float),
            "age_at_last_days": data["t_x"] * 7,
            "tenure_days": data["T"] * 7,
            "avg_repeat_spend": np.where(data["x"] > 0, rng.gamma(6.0, 5.0, size=len(data)), np.nan),
            "other": rng.normal(size=len(data)),
        },
        index=data.index,
    )


def test_btyd_features_append_predictions_and_pickle() -> None:
    frame = btyd_frame(3)
    transformer = BTYDFeatures(horizon_days=90).fit(frame)
    assert transformer.fit_ok_, transformer.fit_message_
    out = transformer.transform(frame)
    assert list(out.columns) == [*frame.columns, *OUTPUT_COLUMNS]
    assert list(transformer.get_feature_names_out()) == list(out.columns)
    assert out.index.equals(frame.index)
    assert out[list(OUTPUT_COLUMNS)].notna().all().all()
    assert out["btyd_p_alive"].between(0, 1).all()
    assert np.allclose(out["btyd_expected_spend"], out["btyd_expected_purchases"] * out["btyd_expected_value"])
    # More repeat purchases with the same timing means more expected purchases.
    assert out.groupby("frequency")["btyd_expected_purchases"].mean().loc[[1, 3, 6]].is_monotonic_increasing

    buffer = io.BytesIO()
    joblib.dump(transformer, buffer)
    buffer.seek(0)
    pd.testing.assert_frame_equal(joblib.load(buffer).transform(frame), out)
    assert clone(transformer).get_params() == transformer.get_params()


def test_btyd_features_fall_back_when_there_are_too_few_repeat_buyers() -> None:
    frame = pd.DataFrame(
        {
            "frequency": [0.0, 0.0, 1.0, 0.0],
            "age_at_last_days": [0.0, 0.0, 14.0, 0.0],
            "tenure_days": [30.0, 60.0, 90.0, 10.0],
            "avg_repeat_spend": [np.nan, np.nan, 25.0, np.nan],
        }
    )
    transformer = BTYDFeatures(horizon_days=30).fit(frame)
    assert transformer.fit_ok_ is False
    assert "BG/NBD not fitted" in transformer.fit_message_ and "Gamma-Gamma not fitted" in transformer.fit_message_
    out = transformer.transform(frame)
    assert np.isfinite(out[list(OUTPUT_COLUMNS)].to_numpy()).all()
    assert (out["btyd_expected_purchases"] > 0).all()
    assert out.loc[2, "btyd_expected_value"] == pytest.approx(25.0)


def test_btyd_features_give_nan_for_rows_with_missing_inputs() -> None:
    frame = btyd_frame(4, n=500)
    transformer = BTYDFeatures(horizon_days=30).fit(frame)
    frame.loc[frame.index[0], "tenure_days"] = np.nan
    out = transformer.transform(frame)
    assert out.loc[frame.index[0], list(OUTPUT_COLUMNS)].isna().all()
    assert out.loc[frame.index[1:], list(OUTPUT_COLUMNS)].notna().all().all()


def test_btyd_features_need_their_columns() -> None:
    with pytest.raises(DataError) as caught:
        BTYDFeatures(horizon_days=30).fit(pd.DataFrame({"frequency": [1.0]}))
    assert caught.value.field == "age_at_last_days"


# --- The CDNOW benchmark -------------------------------------------------------------------------------


@pytest.mark.slow
def test_bgnbd_and_gamma_gamma_reproduce_the_published_cdnow_fits() -> None:
    path = shared_dataset("cdnow/cdnow_customers_summary_with_transactions.csv")
    summary = pd.read_csv(path)
    bgnbd = fit_bgnbd(summary["x"], summary["t_x"], summary["T"])
    published = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}  # Fader, Hardie & Lee (2005)
    for name, value in published.items():
        assert bgnbd.params[name] == pytest.approx(value, abs=0.005), (name, bgnbd.params)
    assert bgnbd.log_likelihood == pytest.approx(-9582.4, abs=0.5)
    # The paper's worked example (x=2, t_x=30.43, T=38.86: 1.226 purchases in the next 39 weeks)
    # and, over the sample, the same conditional expectations the `lifetimes` package computes.
    one = bgnbd_expected_purchases(bgnbd.params, 39.0, np.array([2.0]), np.array([30.43]), np.array([38.86]))
    assert one[0] == pytest.approx(1.226, abs=0.001)
    assert bgnbd_p_alive(bgnbd.params, np.array([2.0]), np.array([30.43]), np.array([38.86]))[0] == pytest.approx(
        0.7266, abs=0.0005
    )
    total = bgnbd_expected_purchases(bgnbd.params, 39.0, summary["x"], summary["t_x"], summary["T"]).sum()
    assert total == pytest.approx(1653.4, abs=0.5)
    gamma = fit_gamma_gamma(summary["x"], summary["zbar"])
    for name, value in {"p": 6.25, "q": 3.74, "v": 15.44}.items():  # Fader, Hardie & Lee (2005b)
        assert gamma.params[name] == pytest.approx(value, abs=0.01), (name, gamma.params)


@pytest.mark.slow
def test_btyd_pipeline_on_cdnow_beats_the_reference_holdout_metrics() -> None:
    path = shared_dataset("cdnow/CDNOW_master.txt")
    raw = pd.read_csv(path, sep=r"\s+")
    transactions = normalise_transactions(raw, TransactionColumns("customer_id", "date", "dollar_value"))
    features, target = training_table(transactions, calibration_end="1997-09-30", horizon_days=273)
    # The dataset README's split: all 23,570 customers, in id order, halved.
    train_ids, test_ids = train_test_split(
        transactions["customer_id"].drop_duplicates().to_numpy(), test_size=0.5, random_state=0
    )
    ids = features.pop("customer_id")
    train = ids.isin(set(train_ids)).to_numpy()
    pipeline = Pipeline(
        [
            ("btyd", BTYDFeatures(horizon_days=273)),
            ("select", ColumnTransformer([("spend", "passthrough", ["btyd_expected_spend"])])),
            ("impute", SimpleImputer(strategy="median")),
            ("model", LinearRegression(fit_intercept=False)),
        ]
    )
    pipeline.fit(features[train], target[train])
    assert pipeline.named_steps["btyd"].fit_ok_
    predicted = pd.Series(np.clip(pipeline.predict(features[~train]), 0, None), index=ids[~train])
    # Test customers without a purchase day by calibration_end (only $0.00 orders) are predicted 0.
    window = transactions[
        (transactions["date"] > "1997-09-30") & (transactions["date"] <= pd.Timestamp("1997-09-30") + pd.Timedelta(days=273))
    ]
    actual = window.groupby("customer_id")["amount"].sum().clip(lower=0).reindex(test_ids, fill_value=0.0)
    predicted = predicted.reindex(test_ids, fill_value=0.0)
    assert len(actual) == 11785
    assert r2_score(actual, predicted) >= 0.42
    assert mean_absolute_error(actual, predicted) <= 34.2
