"""Customer features and CLV training tables built from raw transaction logs.

A transaction log has one row per purchase (or refund): who, when, how much. This
module turns it into one row of features per customer as of a given day, and into a
training table for customer lifetime value: features as of a calibration day and, as
the target, the customer's net spend over the following `horizon_days`.

Rules applied everywhere (training, prediction, one customer or many):

* Dates are read as days: ISO 8601 strings (``"1997-01-01"``, ``"1997-01-01T10:30:00Z"``),
  YYYYMMDD integers or strings (``19970101``) and datetime objects. Times are dropped;
  dates with a UTC offset are converted to UTC first.
* Amounts are netted per customer per day, so a refund on the day of its purchase
  cancels it. A day whose net amount is above 0 is a *purchase day*; a day whose net is
  0 or below is not, but its net still counts towards the customer's spend. Spend
  totals are floored at 0.
* Features as of day D use only transactions dated on or before D.
* Lines without a customer id (guest purchases) are skipped and counted, not refused.
* A customer with transactions but no purchase day on or before D (every purchase
  refunded) gets the *no-purchase row* when scored: 0 purchase days, repeat purchases
  and spend, recency and tenure counted from their transactions, averages missing
  (`NO_PURCHASE_FEATURES`); the model's estimate for it is served with a warning.
* An unreadable value is reported with every other one, not only the first.

Plain pandas and numpy: never imports Django.

It stays one module past 400 lines: training tables and scored customers must be
built by the same rules (above), one customer or many, so the parsing, the daily netting
and the features they share live together.
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from leadml.ml.dates import EARLIEST_DATE, LATEST_DATE
from leadml.ml.errors import DataError, RecordsError
from leadml.ml.parsing import to_numeric

CUSTOMER_ID = "customer_id"
DATE = "date"
AMOUNT = "amount"

RECENT_WINDOW_DAYS = 90
MAX_AMOUNT = 1e12  # per transaction; larger values are unreadable, not summed to infinity
# The plausible dates of leadml.ml.dates, as days without a time zone.
EARLIEST_DAY = EARLIEST_DATE.tz_localize(None)
LATEST_DAY = LATEST_DATE.tz_localize(None)

FEATURE_DESCRIPTIONS: dict[str, str] = {
    "purchase_days": "number of purchase days (days with net amount > 0) up to and including as_of",
    "frequency": "repeat purchase days: purchase_days - 1 (BTYD 'x')",
    "recency_days": "days from the last purchase day to as_of",
    "tenure_days": "days from the first purchase day to as_of (BTYD 'T')",
    "age_at_last_days": "days from the first to the last purchase day (BTYD recency 't_x')",
    "total_spend": "net amount of all transactions up to as_of, refunds included, floored at 0",
    "avg_spend": "total_spend / purchase_days",
    "max_spend": "largest net amount of a single purchase day",
    "first_purchase_value": "net amount of the first purchase day",
    "last_purchase_value": "net amount of the last purchase day",
    "avg_repeat_spend": (
        "mean net amount of the repeat purchase days (all but the first); NaN without a repeat purchase "
        "(the monetary value the Gamma-Gamma model uses)"
    ),
    "spend_last_90_days": (
        f"net amount of transactions in the {RECENT_WINDOW_DAYS} days ending on as_of "
        f"(as_of - {RECENT_WINDOW_DAYS - 1} .. as_of), floored at 0"
    ),
    "purchases_last_90_days": f"purchase days in the {RECENT_WINDOW_DAYS} days ending on as_of",
    "avg_days_between": "mean days between consecutive purchase days: age_at_last_days / frequency; NaN with one",
}
FEATURE_COLUMNS: tuple[str, ...] = tuple(FEATURE_DESCRIPTIONS)

TARGET_NAME = "future_spend"
# Unreadable values a message lists by row; every one is in the error's `problems`.
MESSAGE_EXAMPLES = 5

_EIGHT_DIGITS = re.compile(r"^\d{8}$")
_DATE_HELP = "ISO 8601 (e.g. 2024-01-31 or 2024-01-31T10:30:00Z), YYYYMMDD (e.g. 20240131) or a datetime"


@dataclass(frozen=True)
class TransactionColumns:
    """Names of the customer, date and amount columns in a raw transaction log."""

    customer: str = CUSTOMER_ID
    date: str = DATE
    amount: str = AMOUNT


# --- Parsing ---------------------------------------------------------------------


# One shared default (the dataclass is frozen): the log's usual column names.
DEFAULT_COLUMNS = TransactionColumns()


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NaT:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    if isinstance(value, str) and not value.strip():
        return True
    return False


def _parse_dates(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Return (days as tz-naive datetime64[ns] normalised to midnight, mask of unreadable values).

    Both are indexed like `values`. Missing values count as unreadable: a transaction
    must have a date, and so do dates outside the plausible years (EARLIEST_DAY ..
    LATEST_DAY), which nanoseconds could not all hold.
    """
    index = values.index
    values = values.reset_index(drop=True)
    if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(values.dtype):
        parsed = pd.Series(_plausible_days(values))
    elif pd.api.types.is_bool_dtype(values.dtype):
        parsed = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    else:
        if pd.api.types.is_numeric_dtype(values.dtype):
            values = values.astype(object)
        kinds = values.map(_date_kind)
        texts = pd.Series(
            [_date_text(value, kind) for value, kind in zip(values, kinds, strict=True)], dtype=object
        )
        parsed = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
        compact = (kinds == "yyyymmdd").to_numpy()
        if compact.any():
            parsed[compact] = _plausible_days(pd.to_datetime(texts[compact], format="%Y%m%d", errors="coerce"))
        iso = (kinds == "iso").to_numpy()
        if iso.any():
            parsed[iso] = _plausible_days(pd.to_datetime(texts[iso], format="ISO8601", errors="coerce", utc=True))
        objects = (kinds == "datetime").to_numpy()
        if objects.any():
            stamps = pd.to_datetime(values[objects].map(_as_utc_timestamp), errors="coerce", utc=True)
            parsed[objects] = _plausible_days(stamps)
    parsed = parsed.dt.normalize()
    parsed.index = index
    return parsed, parsed.isna()


def _plausible_days(stamps: pd.Series) -> np.ndarray:
    """Timestamps (any unit; aware ones in UTC) as tz-naive datetime64[ns], NaT outside the plausible years.

    pandas reads a year like 1 or 9999 at a coarser unit than nanoseconds; those are
    dropped before the cast, which would overflow.
    """
    if isinstance(stamps.dtype, pd.DatetimeTZDtype):
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    plausible = stamps.where((stamps >= EARLIEST_DAY) & (stamps < LATEST_DAY))
    return plausible.astype("datetime64[ns]").to_numpy()


def _date_text(value: Any, kind: str) -> str:
    if kind == "yyyymmdd":
        return value.strip() if isinstance(value, str) else str(int(value))
    if kind == "iso":
        return str(value).strip()
    return ""


def _date_kind(value: Any) -> str:
    if _is_missing(value) or isinstance(value, bool | np.bool_):
        return "bad"
    if isinstance(value, dt.date | np.datetime64):  # datetime and pd.Timestamp are dates too
        return "datetime"
    if isinstance(value, int | np.integer | float | np.floating):
        try:
            number = float(value)
        except OverflowError:
            return "bad"
        return "yyyymmdd" if number.is_integer() and 10_000_000 <= number <= 99_999_999 else "bad"
    if isinstance(value, str):
        return "yyyymmdd" if _EIGHT_DIGITS.match(value.strip()) else "iso"
    return "bad"


def _as_utc_timestamp(value: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _parse_amounts(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Return (amounts as floats, mask of unreadable or missing values)."""
    if pd.api.types.is_bool_dtype(values.dtype):
        return pd.Series(np.nan, index=values.index), pd.Series(True, index=values.index)
    if pd.api.types.is_numeric_dtype(values.dtype):
        numbers = values.astype(float)
    else:
        # A true/false amount is not an amount (to_numeric would read it as 0/1).
        numbers = to_numeric(values.map(lambda value: np.nan if isinstance(value, bool | np.bool_) else value))
    # Amounts beyond MAX_AMOUNT are unreadable: summing them would overflow to infinity.
    # (NaN and the infinities compare False, so they are unreadable too.)
    return numbers, ~(numbers.abs() <= MAX_AMOUNT)


def _customer_text(value: Any) -> str | None:
    if _is_missing(value):
        return None
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))  # 17.0 read from a CSV column with gaps is customer "17"
    text = str(value).strip()
    return text or None


def _describe(value: Any) -> str:
    return "an empty value" if _is_missing(value) else repr(value.item() if isinstance(value, np.generic) else value)


def _as_day(value: Any, *, field: str) -> pd.Timestamp:
    """Read one date (same rules as transaction dates) as a tz-naive midnight Timestamp."""
    parsed, bad = _parse_dates(pd.Series([value], dtype=object))
    if bool(bad.iloc[0]):
        raise DataError(f"{field} must be a date ({_DATE_HELP}); got {_describe(value)}", field=field)
    return pd.Timestamp(parsed.iloc[0])


# --- Normalising a log -------------------------------------------------------------


@dataclass(frozen=True)
class TransactionLog:
    """A normalised log and what reading it skipped."""

    log: pd.DataFrame  # customer_id (str), date (datetime64, day, tz-naive), amount (float)
    skipped_without_customer: int = 0  # lines with no customer id (guest purchases)
    skipped_amount: float = 0.0  # their net amount

    def summary(self) -> dict[str, Any]:
        return {
            "transactions_read": int(len(self.log)),
            "skipped_without_customer": self.skipped_without_customer,
            "skipped_amount": round(self.skipped_amount, 2),
        }


def normalise_transactions(frame: pd.DataFrame, columns: TransactionColumns = DEFAULT_COLUMNS) -> pd.DataFrame:
    """Return the log as columns customer_id (str), date (datetime64, day, tz-naive), amount (float).

    See `read_transactions`, which also says how many lines had no customer id.
    """
    return read_transactions(frame, columns).log


def read_transactions(frame: pd.DataFrame, columns: TransactionColumns = DEFAULT_COLUMNS) -> TransactionLog:
    """Normalise a raw log: one row per input row with a customer id, sorted by customer and date.

    Lines without a customer id are skipped and counted. Raises DataError naming the
    column when one is absent, and RecordsError naming every row whose date or amount
    cannot be read (missing included).
    """
    for name in (columns.customer, columns.date, columns.amount):
        if name not in frame.columns:
            shown = ", ".join(repr(str(column)) for column in list(frame.columns)[:20])
            raise DataError(f"the transactions have no column {name!r} (columns: {shown})", field=name)

    customers = frame[columns.customer].map(_customer_text)
    known = customers.notna().to_numpy()
    dates, bad_dates = _parse_dates(frame[columns.date])
    amounts, bad_amounts = _parse_amounts(frame[columns.amount])
    problems: list[tuple[str, str]] = []
    messages: list[str] = []
    fields: list[str] = []
    checks = ((columns.date, bad_dates, "a date", f"dates ({_DATE_HELP})"), (columns.amount, bad_amounts, "a number", "numbers"))
    for column, bad, one, many in checks:
        # A line skipped for its missing customer id is not worth refusing the log for.
        rows = frame.index[bad.to_numpy() & known]
        if not len(rows):
            continue
        values = frame.loc[rows, column]
        problems += [(f"rows[{row}].{column}", f"{column} is not {one}: {_describe(value)}") for row, value in values.items()]
        shown = ", ".join(f"row {row!r}: {_describe(value)}" for row, value in values.head(MESSAGE_EXAMPLES).items())
        more = f" and {len(rows) - MESSAGE_EXAMPLES} more" if len(rows) > MESSAGE_EXAMPLES else ""
        messages.append(f"column {column!r}: {len(rows)} value(s) are not {many}, e.g. {shown}{more}")
        fields.append(column)
    if problems:
        raise RecordsError("; ".join(messages), field=fields[0], problems=tuple(problems))

    skipped = int((~known).sum())
    skipped_amount = float(np.nansum(amounts.to_numpy()[~known & ~bad_amounts.to_numpy()])) if skipped else 0.0
    result = pd.DataFrame(
        {
            CUSTOMER_ID: customers[known].astype(str).to_numpy(),
            DATE: dates[known].to_numpy(dtype="datetime64[ns]"),
            AMOUNT: amounts[known].to_numpy(dtype=float),
        }
    )
    ordered = result.iloc[_customer_order(result[CUSTOMER_ID], result[DATE])].reset_index(drop=True)
    return TransactionLog(log=ordered, skipped_without_customer=skipped, skipped_amount=skipped_amount)


def _customer_order(customers: pd.Series, dates: pd.Series) -> np.ndarray:
    """Positions sorting rows by customer, then date: ids made of digits first, by number, then the rest as text."""
    ids = customers.astype(str)
    digits = ids.str.fullmatch(r"\d{1,18}").to_numpy(dtype=bool)
    numbers = np.where(digits, pd.to_numeric(ids.where(digits, "0")).to_numpy(dtype=np.int64), 0)
    # np.lexsort sorts by the last key first; the text breaks ties such as "001" and "1".
    return np.lexsort((dates.to_numpy(), ids.to_numpy(dtype=str), numbers, ~digits))


def _ensure_normalised(transactions: pd.DataFrame) -> pd.DataFrame:
    """Accept a normalised log as is; normalise anything else with the default column names."""
    if (
        list(transactions.columns[:3]) == [CUSTOMER_ID, DATE, AMOUNT]
        and pd.api.types.is_datetime64_dtype(transactions[DATE].dtype)
        and not isinstance(transactions[DATE].dtype, pd.DatetimeTZDtype)
        and pd.api.types.is_float_dtype(transactions[AMOUNT].dtype)
        and pd.api.types.is_object_dtype(transactions[CUSTOMER_ID].dtype)
        and not transactions[[DATE, AMOUNT]].isna().any().any()
        and bool((transactions[DATE] == transactions[DATE].dt.normalize()).all())
    ):
        return transactions
    return normalise_transactions(transactions, TransactionColumns())


def _daily(transactions: pd.DataFrame) -> pd.DataFrame:
    """Net amount per customer per day, sorted by customer and day."""
    daily = transactions.groupby([CUSTOMER_ID, DATE], sort=True, observed=True)[AMOUNT].sum().reset_index()
    return daily.iloc[_customer_order(daily[CUSTOMER_ID], daily[DATE])].reset_index(drop=True)


# --- Features ----------------------------------------------------------------------------


def _features_from_daily(daily: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    daily = daily[daily[DATE] <= as_of]
    purchases = daily[daily[AMOUNT] > 0]
    if purchases.empty:
        empty = pd.DataFrame({name: pd.Series(dtype=float) for name in FEATURE_COLUMNS})
        empty.index = pd.Index([], dtype=object, name=CUSTOMER_ID)
        return empty

    by_customer = purchases.groupby(CUSTOMER_ID, sort=False)
    count = by_customer.size().astype(float)
    first_day = by_customer[DATE].min()
    last_day = by_customer[DATE].max()
    first_value = by_customer[AMOUNT].first()  # days are sorted within each customer
    last_value = by_customer[AMOUNT].last()
    purchase_sum = by_customer[AMOUNT].sum()
    customers = count.index

    def days(delta: pd.Series[pd.Timedelta]) -> pd.Series:
        return (delta / pd.Timedelta(days=1)).astype(float)

    total = daily.groupby(CUSTOMER_ID)[AMOUNT].sum().reindex(customers).clip(lower=0.0)
    window_start = as_of - pd.Timedelta(days=RECENT_WINDOW_DAYS - 1)
    recent = daily[daily[DATE] >= window_start]
    recent_spend = recent.groupby(CUSTOMER_ID)[AMOUNT].sum().reindex(customers, fill_value=0.0).clip(lower=0.0)
    recent_purchases = (recent[AMOUNT] > 0).groupby(recent[CUSTOMER_ID]).sum().reindex(customers, fill_value=0)

    frequency = count - 1.0
    age_at_last = days(last_day - first_day)
    with np.errstate(divide="ignore", invalid="ignore"):
        repeat_mean = ((purchase_sum - first_value) / frequency).where(frequency > 0)
        gap = (age_at_last / frequency).where(frequency > 0)

    features = pd.DataFrame(
        {
            "purchase_days": count,
            "frequency": frequency,
            "recency_days": days(as_of - last_day),
            "tenure_days": days(as_of - first_day),
            "age_at_last_days": age_at_last,
            "total_spend": total,
            "avg_spend": total / count,
            "max_spend": by_customer[AMOUNT].max(),
            "first_purchase_value": first_value,
            "last_purchase_value": last_value,
            "avg_repeat_spend": repeat_mean,
            "spend_last_90_days": recent_spend,
            "purchases_last_90_days": recent_purchases,
            "avg_days_between": gap,
        },
        index=customers,
    )
    features = features[list(FEATURE_COLUMNS)].astype(float)
    features.index = pd.Index(features.index.astype(str), dtype=object, name=CUSTOMER_ID)
    return features


def customer_features(transactions: pd.DataFrame, as_of: Any) -> pd.DataFrame:
    """Return one row of float features per customer (index customer_id) as of the day `as_of`.

    `transactions` is a log from `normalise_transactions` (a log with columns customer_id,
    date and amount is normalised first). Transactions after `as_of` are ignored;
    customers without a purchase day on or before it are absent. Columns: FEATURE_COLUMNS,
    described in FEATURE_DESCRIPTIONS.
    """
    day = _as_day(as_of, field="as_of")
    return _features_from_daily(_daily(_ensure_normalised(transactions)), day)


def training_table(
    transactions: pd.DataFrame, *, calibration_end: Any, horizon_days: int
) -> tuple[pd.DataFrame, pd.Series]:
    """Return (features, target) for CLV training.

    Features are `customer_features` as of `calibration_end` (inclusive), with the id as a
    `customer_id` column; the target is each customer's net spend, floored at 0, in
    (calibration_end, calibration_end + horizon_days]. Only customers with a purchase day
    on or before calibration_end are rows. Both are indexed 0..n-1 in customer order.
    """
    if isinstance(horizon_days, bool) or not isinstance(horizon_days, int | np.integer) or horizon_days < 1:
        raise DataError(f"horizon_days must be a whole number of days >= 1; got {horizon_days!r}", field="horizon_days")
    end = _as_day(calibration_end, field="calibration_end")
    log = _ensure_normalised(transactions)
    if log.empty:
        raise DataError("there are no transactions", field="calibration_end")
    first, last = log[DATE].min(), log[DATE].max()
    if not (first <= end < last):
        raise DataError(
            f"calibration_end {end.date()} must leave transactions on both sides: the log runs from "
            f"{first.date()} to {last.date()}",
            field="calibration_end",
        )

    daily = _daily(log)
    features = _features_from_daily(daily, end)
    if features.empty:
        raise DataError(
            f"no customer has a purchase (a day with a net amount above 0) on or before {end.date()}",
            field="calibration_end",
        )
    window = daily[(daily[DATE] > end) & (daily[DATE] <= end + pd.Timedelta(days=int(horizon_days)))]
    target = (
        window.groupby(CUSTOMER_ID)[AMOUNT].sum().reindex(features.index, fill_value=0.0).clip(lower=0.0).astype(float)
    )
    target = target.reset_index(drop=True).rename(TARGET_NAME)
    return features.reset_index(), target


# What a customer with no purchase day on or before as_of is scored from (all refunded,
# or no transactions at all): no purchases and no spend; recency and tenure counted from
# their first and last transactions (missing without any); averages missing.
NO_PURCHASE_FEATURES: dict[str, str] = {
    "purchase_days": "0",
    "frequency": "0 (no repeat purchase)",
    "recency_days": "days from the last transaction to as_of (missing without transactions)",
    "tenure_days": "days from the first transaction to as_of (missing without transactions)",
    "age_at_last_days": "0",
    "total_spend": "0",
    "avg_spend": "0",
    "max_spend": "0",
    "first_purchase_value": "0",
    "last_purchase_value": "0",
    "avg_repeat_spend": "missing",
    "spend_last_90_days": "0",
    "purchases_last_90_days": "0",
    "avg_days_between": "missing",
}


@dataclass(frozen=True)
class CustomerFeatures:
    """One scored customer's features, or why their history cannot be read."""

    features: dict[str, float] | None  # FEATURE_COLUMNS (NaN where missing); None when unreadable
    problems: tuple[tuple[str, str], ...] = ()  # (field within the record, message), every one
    warning: str | None = None  # set when scored from the no-purchase row


def features_for_customers(histories: Sequence[tuple[Any, Any]]) -> list[CustomerFeatures]:
    """Return the features of many customers, each (transactions [{date, amount}, ...], as_of), at once.

    The same builder as `customer_features`: every history's transactions are parsed in
    one pass and netted per day together, then features are built with one group-by per
    distinct as_of, so a batch of 10,000 customers takes seconds, not minutes. A history
    with unreadable parts gets all of them in `problems` (fields "as_of",
    "transactions", "transactions[i]", "transactions[i].date", "transactions[i].amount");
    one without a purchase day on or before as_of gets the no-purchase row
    (NO_PURCHASE_FEATURES) and a warning.
    """
    batch = _collect(histories)
    dates, bad_dates = _parse_dates(pd.Series(batch.raw_dates, dtype=object))
    amounts, bad_amounts = _parse_amounts(pd.Series(batch.raw_amounts, dtype=object))
    owner_array = np.asarray(batch.owners, dtype=np.int64)
    for row in np.flatnonzero(bad_dates.to_numpy() | bad_amounts.to_numpy()):
        owner, index = int(owner_array[row]), batch.elements[row]
        if bad_dates.iloc[row]:
            batch.unreadable.setdefault(owner, []).append(
                (f"transactions[{index}].date",
                 f"transactions[{index}].date is not a date ({_DATE_HELP}): {_describe(batch.raw_dates[row])}")
            )
        if bad_amounts.iloc[row]:
            batch.unreadable.setdefault(owner, []).append(
                (f"transactions[{index}].amount",
                 f"transactions[{index}].amount is not a number: {_describe(batch.raw_amounts[row])}")
            )
    results: list[CustomerFeatures | None] = [None] * len(histories)
    for owner, problems in batch.unreadable.items():
        results[owner] = CustomerFeatures(None, tuple(problems))

    good = ~np.isin(owner_array, list(batch.unreadable)) if len(owner_array) else np.zeros(0, dtype=bool)
    log = pd.DataFrame(
        {
            CUSTOMER_ID: owner_array[good].astype(str).astype(object),
            DATE: dates.to_numpy(dtype="datetime64[ns]")[good],
            AMOUNT: amounts.to_numpy(dtype=float)[good],
        }
    )
    _fill_features(results, _daily(log), batch.days)
    return [result for result in results if result is not None]


@dataclass
class _Batch:
    """Every readable transaction of a batch of histories in flat lists, and the problems found so far."""

    days: dict[int, pd.Timestamp] = field(default_factory=dict)  # history position -> its as_of
    unreadable: dict[int, list[tuple[str, str]]] = field(default_factory=dict)  # history position -> problems
    owners: list[int] = field(default_factory=list)  # per transaction: the history's position
    elements: list[int] = field(default_factory=list)  # per transaction: its index in the history
    raw_dates: list[Any] = field(default_factory=list)
    raw_amounts: list[Any] = field(default_factory=list)


def _collect(histories: Sequence[tuple[Any, Any]]) -> _Batch:
    batch = _Batch()
    # Every as_of in one parse: one value at a time costs more than the features themselves.
    as_of_values = pd.Series([as_of for _, as_of in histories], dtype=object)
    as_of_days, bad_as_of = _parse_dates(as_of_values)
    for position, (transactions, as_of) in enumerate(histories):
        problems: list[tuple[str, str]] = []
        if bad_as_of.iloc[position]:
            problems.append(("as_of", f"as_of must be a date ({_DATE_HELP}); got {_describe(as_of)}"))
        else:
            batch.days[position] = pd.Timestamp(as_of_days.iloc[position])
        readable = _readable(transactions, problems)
        if problems:
            batch.unreadable[position] = problems
        for index, element in readable:
            batch.owners.append(position)
            batch.elements.append(index)
            batch.raw_dates.append(element[DATE])
            batch.raw_amounts.append(element[AMOUNT])
    return batch


def _readable(transactions: Any, problems: list[tuple[str, str]]) -> list[tuple[int, Mapping[str, Any]]]:
    """The (index, transaction) pairs of one history that have a date and an amount; the rest go to `problems`."""
    if isinstance(transactions, str | bytes | Mapping) or not isinstance(transactions, Sequence):
        problems.append(("transactions", "transactions must be a list of {date, amount} objects"))
        return []
    readable = []
    for index, element in enumerate(transactions):
        if not isinstance(element, Mapping):
            problems.append(
                (f"transactions[{index}]", f"transactions[{index}] must be an object with date and amount; "
                 f"got {_describe(element)}")
            )
            continue
        absent = [key for key in (DATE, AMOUNT) if key not in element]
        problems += [(f"transactions[{index}].{key}", f"transactions[{index}] has no {key!r}") for key in absent]
        if not absent:
            readable.append((index, element))
    return readable


def _fill_features(
    results: list[CustomerFeatures | None], daily: pd.DataFrame, days: Mapping[int, pd.Timestamp]
) -> None:
    """Build the features of every history not yet answered, one group-by per distinct as_of."""
    pending = [position for position in range(len(results)) if results[position] is None]
    by_day: dict[pd.Timestamp, list[int]] = {}
    for position in pending:
        by_day.setdefault(days[position], []).append(position)
    for day, positions in by_day.items():
        wanted = daily[daily[CUSTOMER_ID].isin({str(position) for position in positions})]
        rows = _features_from_daily(wanted, day).to_dict("index")
        seen = wanted[wanted[DATE] <= day].groupby(CUSTOMER_ID)[DATE].agg(["min", "max"]).to_dict("index")
        for position in positions:
            key = str(position)
            if key in rows:
                results[position] = CustomerFeatures({str(name): float(value) for name, value in rows[key].items()})
            else:
                results[position] = _no_purchase(seen.get(key), day)


def _no_purchase(seen: Mapping[Hashable, pd.Timestamp] | None, day: pd.Timestamp) -> CustomerFeatures:
    """The no-purchase row (NO_PURCHASE_FEATURES) and the warning that goes with it."""
    features = {name: 0.0 for name in FEATURE_COLUMNS}
    features |= {"avg_repeat_spend": float("nan"), "avg_days_between": float("nan")}
    if seen is None:
        features |= {"recency_days": float("nan"), "tenure_days": float("nan")}
        warning = f"no transactions on or before {day.date()}: scored as a customer with no purchase"
    else:
        features["recency_days"] = float((day - seen["max"]) / pd.Timedelta(days=1))
        features["tenure_days"] = float((day - seen["min"]) / pd.Timedelta(days=1))
        warning = (
            f"no purchase on or before {day.date()} (every purchase refunded: net amount 0 or below): "
            "scored as a customer with no purchase"
        )
    return CustomerFeatures(features, warning=warning)


def features_for_customer(transactions: Sequence[Mapping[str, Any]], as_of: Any) -> dict[str, float]:
    """Return one customer's features as of `as_of` from their transactions [{date, amount}, ...].

    The same builder as `customer_features`, so the names and values match the training
    table's row for that customer (NaN where the table has NaN). Raises DataError with
    field "transactions[i].date" / "transactions[i].amount" for an unreadable element and
    field "transactions" when there is no purchase day on or before `as_of`
    (`features_for_customers` scores such a customer instead).
    """
    (result,) = features_for_customers([(transactions, as_of)])
    if result.problems:
        field, message = result.problems[0]
        raise DataError(message, field=field)
    if result.warning is not None:
        raise DataError(f"no purchase (a day with a net amount above 0) on or before {_as_day(as_of, field='as_of').date()}",
                        field="transactions")
    assert result.features is not None
    return result.features
