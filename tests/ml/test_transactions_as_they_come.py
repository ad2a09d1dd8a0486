"""Transaction logs as they come: guest lines, refunded customers, every bad line named, batches at once."""
from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pytest

from leadml.ml.errors import DataError, RecordsError
from leadml.ml.transactions import (
    FEATURE_COLUMNS,
    NO_PURCHASE_FEATURES,
    TransactionColumns,
    features_for_customer,
    features_for_customers,
    read_transactions,
)


def test_lines_without_a_customer_id_are_skipped_and_counted() -> None:
    frame = pd.DataFrame(
        {
            "who": ["a", None, "b", " ", np.nan, "a"],
            "when": ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04", "garbage", "2024-01-05"],
            "value": [10.0, 99.0, 5.0, 1.0, 7.0, 2.0],
        }
    )
    read = read_transactions(frame, TransactionColumns("who", "when", "value"))
    assert read.log["customer_id"].tolist() == ["a", "a", "b"]
    # A guest line's unreadable date does not refuse the log: the line is skipped anyway.
    assert read.skipped_without_customer == 3 and read.skipped_amount == pytest.approx(107.0)
    assert read.summary() == {"transactions_read": 3, "skipped_without_customer": 3, "skipped_amount": 107.0}


def test_every_unreadable_line_is_named_not_only_the_first() -> None:
    frame = pd.DataFrame(
        {
            "who": ["a", "b", "c", "d", "e"],
            "when": ["2024-01-01", "yesterday", "2024-01-03", "soon", "2024-01-05"],
            "value": [1.0, 2.0, "lots", 4.0, None],
        },
    )
    with pytest.raises(RecordsError) as caught:
        read_transactions(frame, TransactionColumns("who", "when", "value"))
    problems = dict(caught.value.problems)
    assert set(problems) == {"rows[1].when", "rows[3].when", "rows[2].value", "rows[4].value"}
    assert "'soon'" in problems["rows[3].when"] and "an empty value" in problems["rows[4].value"]
    assert caught.value.field == "when" and "2 value(s) are not dates" in caught.value.message


def test_batch_features_are_the_single_customer_builder_s_for_every_customer() -> None:
    rng = np.random.default_rng(4)
    histories = [
        (
            [
                {"date": f"2024-{int(month):02d}-{int(day):02d}", "amount": round(float(amount), 2)}
                for month, day, amount in zip(rng.integers(1, 13, 6), rng.integers(1, 28, 6), rng.gamma(2, 30, 6))
            ],
            as_of,
        )
        for as_of in ["2024-12-31", "2024-06-30", "20241001"] * 20
    ]
    batch = features_for_customers(histories)
    assert len(batch) == len(histories)
    for (transactions, as_of), result in zip(histories, batch):
        try:
            single = features_for_customer(transactions, as_of)
        except DataError:
            assert result.warning is not None  # no purchase yet by that as_of: the no-purchase row
            continue
        assert result.problems == () and result.warning is None
        assert result.features is not None and list(result.features) == list(FEATURE_COLUMNS)
        # Equal up to the last bit of a sum: pandas adds a group's values in another order among many groups.
        assert result.features == pytest.approx(single, rel=1e-12, nan_ok=True)


def test_a_customer_whose_purchases_were_all_refunded_gets_the_no_purchase_row_and_a_warning() -> None:
    refunded, nothing, good = features_for_customers(
        [
            ([{"date": "2024-01-10", "amount": 50}, {"date": "2024-01-10", "amount": -50},
              {"date": "2024-02-01", "amount": -5}], "2024-03-01"),
            ([], "2024-03-01"),
            ([{"date": "2024-01-10", "amount": 50}], "2024-03-01"),
        ]
    )
    assert refunded.problems == () and "every purchase refunded" in (refunded.warning or "")
    assert refunded.features is not None
    assert refunded.features["purchase_days"] == 0 and refunded.features["total_spend"] == 0
    assert refunded.features["tenure_days"] == 51 and refunded.features["recency_days"] == 29
    assert math.isnan(refunded.features["avg_repeat_spend"])
    assert set(NO_PURCHASE_FEATURES) == set(FEATURE_COLUMNS)
    assert nothing.features is not None and math.isnan(nothing.features["tenure_days"])
    assert "no transactions" in (nothing.warning or "")
    assert good.warning is None and good.features is not None and good.features["purchase_days"] == 1


def test_a_bad_history_lists_every_bad_element() -> None:
    (result,) = features_for_customers(
        [([{"date": "yesterday", "amount": "five"}, {"date": "2024-01-01"}, 7, {"date": "2024-01-02", "amount": 1}],
          "soon")]
    )
    assert result.features is None
    assert {field for field, _ in result.problems} == {
        "as_of", "transactions[0].date", "transactions[0].amount", "transactions[1].amount", "transactions[2]",
    }


def test_ten_thousand_customers_are_built_in_seconds() -> None:
    rng = np.random.default_rng(0)
    days = pd.date_range("2024-01-01", "2024-12-31").strftime("%Y-%m-%d").to_numpy()
    histories = [
        ([{"date": str(day), "amount": float(amount)} for day, amount in zip(rng.choice(days, 10), rng.gamma(2, 20, 10))],
         "2024-12-31")
        for _ in range(10_000)
    ]
    started = time.perf_counter()
    built = features_for_customers(histories)
    seconds = time.perf_counter() - started
    assert len(built) == 10_000 and all(result.features is not None for result in built)
    # One customer at a time took ~31 ms each (5 minutes for these); one pass takes a few seconds.
    assert seconds < 30, f"10,000 customers took {seconds:.1f}s"
