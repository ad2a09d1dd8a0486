"""Buy-Till-You-Die models: BG/NBD for purchase counts, Gamma-Gamma for spend per purchase.

* BG/NBD (Fader, Hardie & Lee 2005, "Counting Your Customers the Easy Way"): while
  alive a customer buys at a Poisson rate λ ~ Gamma(r, α); after each purchase they
  drop out with probability p ~ Beta(a, b). Fitted to (x, t_x, T) per customer: repeat
  purchases, time of the last purchase and time observed, both counted from the first
  purchase.
* Gamma-Gamma (Fader, Hardie & Lee 2005b, "RFM and CLV: Using Iso-Value Curves"): the
  value of a customer's purchases is Gamma(p, ν) with ν ~ Gamma(q, γ), independent of
  the purchase process. Fitted to (x, m_x), the count and mean value of repeat purchases
  of customers with at least one.

Both are fitted by maximum likelihood with scipy.optimize over log-parameters, within
bounds, with the log-likelihood written in gammaln/betaln/logsumexp form so that large
counts and long histories stay finite. `BTYDFeatures` wraps them as a scikit-learn
transformer that appends each customer's expected purchases, probability of being
alive, expected purchase value and expected spend over a horizon, so they can feed a
regressor in one Pipeline. Plain numpy/scipy/scikit-learn: never imports Django.

It stays one module past 400 lines: the two models share the fitting helper and the
parameter bounds, and `BTYDFeatures`, which wraps both, is pickled with every lifetime-value
version that uses it, so its module path stays put.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, special
from sklearn.base import BaseEstimator, TransformerMixin

from leadml.ml.errors import ConfigError, DataError, InputError
from leadml.ml.parsing import to_numeric

# Log-parameters are kept within [-LOG_BOUND, LOG_BOUND]: parameters in [4.5e-5, 2.2e4].
LOG_BOUND = 10.0
# Fewer customers with a repeat purchase than this and a model is not fitted.
MIN_REPEATERS = 5

OUTPUT_COLUMNS: tuple[str, ...] = (
    "btyd_expected_purchases",
    "btyd_p_alive",
    "btyd_expected_value",
    "btyd_expected_spend",
)


class FitError(RuntimeError):
    """A BTYD model that could not be fitted (too little data, the optimizer failed)."""


@dataclass(frozen=True)
class FitResult:
    params: dict[str, float]
    log_likelihood: float  # summed over customers, penalty excluded
    n_customers: int
    converged: bool
    message: str


# --- Shared fitting ---------------------------------------------------------------------


def _minimise(
    objective: Callable[[np.ndarray], float], starts: list[np.ndarray], names: tuple[str, ...]
) -> tuple[np.ndarray, bool, str]:
    """Minimise `objective` over log-parameters from several starts; return (best, converged, message)."""
    bounds = [(-LOG_BOUND, LOG_BOUND)] * len(names)
    best: optimize.OptimizeResult | None = None
    for start in starts:
        try:
            result = optimize.minimize(objective, start, method="L-BFGS-B", bounds=bounds)
            if np.isfinite(result.fun) and (best is None or result.fun < best.fun):
                best = result
        except (ValueError, FloatingPointError, ArithmeticError):
            continue
    if best is None:
        raise FitError("the optimizer found no finite likelihood from any start")
    # Polish: line searches of L-BFGS-B on finite-difference gradients can stop just short.
    polished = optimize.minimize(
        objective, best.x, method="Nelder-Mead",
        options={"xatol": 1e-7, "fatol": 1e-10, "maxiter": 4000, "maxfev": 8000},
    )
    x = np.clip(polished.x, -LOG_BOUND, LOG_BOUND) if np.isfinite(polished.fun) else best.x
    final = objective(x)
    if not np.isfinite(final) or final > best.fun:
        x, final = best.x, best.fun
    at_bound = [name for name, value in zip(names, x, strict=True) if abs(value) >= LOG_BOUND - 1e-3]
    converged = bool(best.success or polished.success)
    message = "converged" if converged else f"optimizer: {best.message}"
    if at_bound:
        message += f"; at the bound: {', '.join(at_bound)}"
    return x, converged, message


def _group(columns: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Collapse identical rows into one with a weight: likelihoods are sums over customers."""
    frame = pd.DataFrame(columns)
    counted = frame.groupby(list(columns), sort=False).size().reset_index(name="_weight")
    return {name: counted[name].to_numpy(dtype=float) for name in columns}, counted["_weight"].to_numpy(dtype=float)


# --- BG/NBD ----------------------------------------------------------------------------------


def bgnbd_log_likelihood(
    r: float, alpha: float, a: float, b: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> np.ndarray:
    """Per-customer BG/NBD log-likelihood (FHL 2005, eq. 6), in a form that stays finite."""
    x = np.asarray(x, dtype=float)
    t_x = np.asarray(t_x, dtype=float)
    T = np.asarray(T, dtype=float)
    common = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha) - special.betaln(a, b)
    still_alive = special.betaln(a, b + x) - (r + x) * np.log(alpha + T)
    repeaters = x > 0
    dropped = np.full_like(x, -np.inf)
    dropped[repeaters] = special.betaln(a + 1, b + x[repeaters] - 1) - (r + x[repeaters]) * np.log(
        alpha + t_x[repeaters]
    )
    return common + special.logsumexp(np.stack([still_alive, dropped]), axis=0)


def fit_bgnbd(
    x: np.ndarray, t_x: np.ndarray, T: np.ndarray, *, penalizer: float = 0.0
) -> FitResult:
    """Fit BG/NBD (r, alpha, a, b) by maximum likelihood; raises FitError when it cannot.

    `penalizer` adds penalizer * sum(param**2) to the mean negative log-likelihood (as
    the `lifetimes` package does), pulling parameters away from degenerate fits.
    """
    x, t_x, T = (np.asarray(values, dtype=float) for values in (x, t_x, T))
    if len(x) == 0:
        raise FitError("no customers to fit BG/NBD on")
    repeaters = int((x > 0).sum())
    if repeaters < MIN_REPEATERS:
        raise FitError(f"BG/NBD needs at least {MIN_REPEATERS} customers with a repeat purchase; got {repeaters}")
    if np.all(T <= 0):
        raise FitError("every customer was observed for no time (T = 0)")
    grouped, weights = _group({"x": x, "t_x": t_x, "T": T})
    total = weights.sum()

    def objective(log_params: np.ndarray) -> float:
        params = np.exp(log_params)
        r, alpha, a, b = params
        with np.errstate(all="ignore"):
            ll = bgnbd_log_likelihood(r, alpha, a, b, grouped["x"], grouped["t_x"], grouped["T"])
        value = -(weights @ ll) / total + penalizer * float(np.sum(params**2))
        return float(value) if np.isfinite(value) else np.inf

    rate = max(float(x.sum() / max(T.sum(), 1e-9)), 1e-6)
    starts = [
        np.log([1.0, 1.0 / rate, 1.0, 1.0]),
        np.log([0.5, 0.5 / rate, 0.5, 2.0]),
        np.zeros(4),
    ]
    log_params, converged, message = _minimise(objective, starts, ("r", "alpha", "a", "b"))
    params = dict(zip(("r", "alpha", "a", "b"), (float(value) for value in np.exp(log_params)), strict=True))
    ll = float(
        weights
        @ bgnbd_log_likelihood(
            params["r"], params["alpha"], params["a"], params["b"], grouped["x"], grouped["t_x"], grouped["T"]
        )
    )
    if not np.isfinite(ll):
        raise FitError("BG/NBD fit ended with a non-finite likelihood")
    return FitResult(params, ll, len(x), converged, message)


def bgnbd_p_alive(params: dict[str, float], x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """P(still alive at T | x, t_x, T); 1 for customers without a repeat purchase (the model's assumption)."""
    r, alpha, a, b = (params[name] for name in ("r", "alpha", "a", "b"))
    x, t_x, T = (np.asarray(values, dtype=float) for values in (x, t_x, T))
    with np.errstate(all="ignore"):
        log_odds_dead = np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) + (r + x) * (
            np.log(alpha + T) - np.log(alpha + t_x)
        )
        p = special.expit(-log_odds_dead)
    return np.where(x > 0, p, 1.0)


def bgnbd_expected_purchases(
    params: dict[str, float], t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> np.ndarray:
    """E[repeat purchases in (T, T + t] | x, t_x, T] (FHL 2005, eq. 10)."""
    r, alpha, a, b = (params[name] for name in ("r", "alpha", "a", "b"))
    x, t_x, T = (np.asarray(values, dtype=float) for values in (x, t_x, T))
    if abs(a - 1.0) < 1e-6:  # the closed form divides by a - 1; the limit is continuous
        a = 1.0 + 1e-6
    with np.errstate(all="ignore"):
        z = t / (alpha + T + t)
        hyper = special.hyp2f1(r + x, b + x, a + b + x - 1, z)
        shrink = np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + T + t)))
        numerator = (a + b + x - 1) / (a - 1) * (1.0 - shrink * hyper)
        expected = numerator * bgnbd_p_alive(params, x, t_x, T)
        # Where the hypergeometric series does not give a usable number (very large x),
        # use the alive probability times the posterior purchase rate, dropout ignored.
        fallback = bgnbd_p_alive(params, x, t_x, T) * (r + x) / (alpha + T) * t
        usable = np.isfinite(expected) & (expected >= 0)
    return np.where(usable, expected, fallback)


# --- Gamma-Gamma ---------------------------------------------------------------------------


def gamma_gamma_log_likelihood(p: float, q: float, v: float, x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Per-customer log-likelihood of the mean repeat value m over x purchases (FHL 2005b)."""
    x = np.asarray(x, dtype=float)
    m = np.asarray(m, dtype=float)
    return (
        special.gammaln(p * x + q) - special.gammaln(p * x) - special.gammaln(q)
        + q * np.log(v) + (p * x - 1) * np.log(m) + p * x * np.log(x)
        - (p * x + q) * np.log(v + m * x)
    )


def fit_gamma_gamma(x: np.ndarray, m: np.ndarray, *, penalizer: float = 0.0) -> FitResult:
    """Fit Gamma-Gamma (p, q, v) to customers with x > 0 repeat purchases of mean value m > 0."""
    x = np.asarray(x, dtype=float)
    m = np.asarray(m, dtype=float)
    keep = (x > 0) & np.isfinite(m) & (m > 0)
    x, m = x[keep], m[keep]
    if len(x) < MIN_REPEATERS:
        raise FitError(
            f"Gamma-Gamma needs at least {MIN_REPEATERS} customers with a repeat purchase of positive value; "
            f"got {len(x)}"
        )
    if np.allclose(m, m[0]):
        raise FitError("every repeat purchase has the same value; Gamma-Gamma cannot be fitted")
    grouped, weights = _group({"x": x, "m": m})
    total = weights.sum()

    def objective(log_params: np.ndarray) -> float:
        params = np.exp(log_params)
        p, q, v = params
        with np.errstate(all="ignore"):
            ll = gamma_gamma_log_likelihood(p, q, v, grouped["x"], grouped["m"])
        value = -(weights @ ll) / total + penalizer * float(np.sum(params**2))
        return float(value) if np.isfinite(value) else np.inf

    mean = float(np.mean(m))
    starts = [np.log([1.0, 2.0, mean]), np.log([5.0, 3.0, 2.0 * mean]), np.zeros(3)]
    log_params, converged, message = _minimise(objective, starts, ("p", "q", "v"))
    params = dict(zip(("p", "q", "v"), (float(value) for value in np.exp(log_params)), strict=True))
    ll = float(weights @ gamma_gamma_log_likelihood(params["p"], params["q"], params["v"], grouped["x"], grouped["m"]))
    if not np.isfinite(ll):
        raise FitError("Gamma-Gamma fit ended with a non-finite likelihood")
    if params["q"] <= 1.0:
        raise FitError(f"Gamma-Gamma fit has q = {params['q']:.3g} <= 1: the expected purchase value is infinite")
    return FitResult(params, ll, len(x), converged, message)


def gamma_gamma_expected_value(params: dict[str, float], x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """E[value of a purchase | x, m]: (v + x m) p / (p x + q - 1); the population mean p v / (q - 1) when x = 0."""
    p, q, v = (params[name] for name in ("p", "q", "v"))
    x = np.asarray(x, dtype=float)
    m = np.where(np.isfinite(m) & (x > 0), np.asarray(m, dtype=float), 0.0)
    return (v + x * m) * p / (p * x + q - 1.0)


# --- The transformer --------------------------------------------------------------------------


class BTYDFeatures(BaseEstimator, TransformerMixin):
    """Append BG/NBD + Gamma-Gamma predictions to a frame of customer features.

    Reads, per row, repeat purchases (`frequency_column`), time from the first to the
    last purchase (`recency_column`, BTYD recency), time from the first purchase to now
    (`tenure_column`, T) in days, and the mean value of repeat purchases
    (`monetary_column`; NaN or 0 without one). `fit` fits both models on the rows it is
    given; `transform` returns the frame with OUTPUT_COLUMNS appended:

    * btyd_expected_purchases: expected purchase days in the next `horizon_days`;
    * btyd_p_alive: probability the customer is still active;
    * btyd_expected_value: expected value of one purchase (Gamma-Gamma posterior mean);
    * btyd_expected_spend: btyd_expected_purchases * btyd_expected_value.

    Times are converted to units of `time_unit_days` for fitting (weeks by default, as
    in the papers). When a model cannot be fitted (too few repeat buyers, optimizer
    failure) the transformer still works, with empirical fallbacks: a pooled
    gamma-Poisson purchase rate ignoring dropout (p_alive 1), and each customer's mean
    value shrunk towards the population mean. `fit_ok_` is then False and
    `fit_message_` says why. Rows with a missing input get NaN outputs.
    """

    def __init__(
        self,
        horizon_days: float = 365.0,
        time_unit_days: float = 7.0,
        frequency_column: str = "frequency",
        recency_column: str = "age_at_last_days",
        tenure_column: str = "tenure_days",
        monetary_column: str = "avg_repeat_spend",
        penalizer: float = 0.0,
    ) -> None:
        self.horizon_days = horizon_days
        self.time_unit_days = time_unit_days
        self.frequency_column = frequency_column
        self.recency_column = recency_column
        self.tenure_column = tenure_column
        self.monetary_column = monetary_column
        self.penalizer = penalizer

    # -- inputs

    def _columns(self) -> tuple[str, str, str, str]:
        return (self.frequency_column, self.recency_column, self.tenure_column, self.monetary_column)

    def _as_frame(self, X: Any) -> pd.DataFrame:
        if isinstance(X, pd.DataFrame):
            return X
        names = getattr(self, "feature_names_in_", None)
        array = np.asarray(X)
        if names is None or array.ndim != 2 or array.shape[1] != len(names):
            raise InputError("BTYDFeatures needs a DataFrame with named columns", field="X")
        return pd.DataFrame(array, columns=list(names))

    def _inputs(self, frame: pd.DataFrame, *, fitting: bool) -> tuple[np.ndarray, ...]:
        missing = [name for name in self._columns() if name not in frame.columns]
        if missing:
            message = f"BTYDFeatures needs column(s) {', '.join(map(repr, missing))}"
            raise (DataError if fitting else InputError)(message, field=missing[0])
        unit = float(self.time_unit_days)
        x = to_numeric(frame[self.frequency_column]).to_numpy(dtype=float)
        t_x = to_numeric(frame[self.recency_column]).to_numpy(dtype=float) / unit
        T = to_numeric(frame[self.tenure_column]).to_numpy(dtype=float) / unit
        m = to_numeric(frame[self.monetary_column]).to_numpy(dtype=float)
        with np.errstate(invalid="ignore"):
            x = np.round(np.clip(x, 0, None))
            T = np.clip(T, 0, None)
            t_x = np.clip(np.minimum(t_x, T), 0, None)
            t_x = np.where(x > 0, t_x, 0.0)  # no repeat purchase: recency is 0 by definition
        valid = np.isfinite(x) & np.isfinite(t_x) & np.isfinite(T)
        return x, t_x, T, m, valid

    # -- fitting

    def fit(self, X: Any, y: Any = None) -> BTYDFeatures:
        for name in ("horizon_days", "time_unit_days"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not float(value) > 0:
                raise ConfigError(f"{name} must be a positive number of days; got {value!r}", field=name)
        frame = self._as_frame(X)
        self.feature_names_in_ = np.asarray([str(name) for name in frame.columns], dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        x, t_x, T, m, valid = self._inputs(frame, fitting=True)
        x, t_x, T, m = x[valid], t_x[valid], T[valid], m[valid]
        messages = []

        self.bgnbd_params_: dict[str, float] | None = None
        self.bgnbd_log_likelihood_: float | None = None
        try:
            result = fit_bgnbd(x, t_x, T, penalizer=float(self.penalizer))
            self.bgnbd_params_ = result.params
            self.bgnbd_log_likelihood_ = result.log_likelihood
            bgnbd_ok = result.converged
            messages.append(f"BG/NBD: {result.message}")
        except FitError as error:
            bgnbd_ok = False
            messages.append(f"BG/NBD not fitted ({error}); pooled purchase rate used")
        # Fallback purchase model, no dropout: each customer's rate is gamma-Poisson with shape 1
        # and the pooled rate as prior mean, i.e. (1 + x) / (T_pooled + T); nobody repeating means 0.
        repeat_total = float(x.sum()) if len(x) else 0.0
        time_total = float(T.sum()) if len(T) else 0.0
        if repeat_total > 0 and time_total > 0:
            self.fallback_rate_shape_ = 1.0
            self.fallback_rate_scale_ = time_total / repeat_total
        else:
            self.fallback_rate_shape_ = 0.0
            self.fallback_rate_scale_ = 1.0

        repeat_values = (x > 0) & np.isfinite(m) & (m > 0)
        self.population_value_ = float(np.mean(m[repeat_values])) if repeat_values.any() else 0.0
        self.gamma_gamma_params_: dict[str, float] | None = None
        self.gamma_gamma_log_likelihood_: float | None = None
        try:
            result = fit_gamma_gamma(x, m, penalizer=float(self.penalizer))
            self.gamma_gamma_params_ = result.params
            self.gamma_gamma_log_likelihood_ = result.log_likelihood
            gamma_ok = result.converged
            messages.append(f"Gamma-Gamma: {result.message}")
        except FitError as error:
            gamma_ok = False
            messages.append(f"Gamma-Gamma not fitted ({error}); mean values shrunk to the population mean used")

        self.fit_ok_ = bool(bgnbd_ok and gamma_ok)
        self.fit_message_ = "; ".join(messages)
        return self

    # -- predicting

    def predict_components(self, X: Any) -> pd.DataFrame:
        """Return OUTPUT_COLUMNS for the rows of X (same index)."""
        if not hasattr(self, "fit_ok_"):
            raise InputError("BTYDFeatures is not fitted yet", field="X")
        frame = self._as_frame(X)
        x, t_x, T, m, valid = self._inputs(frame, fitting=False)
        horizon = float(self.horizon_days) / float(self.time_unit_days)
        xs, t_xs, Ts = (np.where(valid, values, 0.0) for values in (x, t_x, T))

        if self.bgnbd_params_ is not None:
            purchases = bgnbd_expected_purchases(self.bgnbd_params_, horizon, xs, t_xs, Ts)
            p_alive = bgnbd_p_alive(self.bgnbd_params_, xs, t_xs, Ts)
        else:
            purchases = (self.fallback_rate_shape_ + xs) / (self.fallback_rate_scale_ + Ts) * horizon
            p_alive = np.ones_like(xs)

        if self.gamma_gamma_params_ is not None:
            value = gamma_gamma_expected_value(self.gamma_gamma_params_, xs, m)
        else:
            observed = np.where((xs > 0) & np.isfinite(m), m, 0.0)
            value = (xs * observed + self.population_value_) / (xs + 1.0)

        outputs = pd.DataFrame(
            {
                "btyd_expected_purchases": purchases,
                "btyd_p_alive": p_alive,
                "btyd_expected_value": value,
                "btyd_expected_spend": purchases * value,
            },
            index=frame.index,
        )
        outputs.loc[~valid, :] = np.nan
        return outputs.astype(float)

    def transform(self, X: Any) -> pd.DataFrame:
        frame = self._as_frame(X)
        outputs = self.predict_components(frame)
        kept = frame.drop(columns=[name for name in OUTPUT_COLUMNS if name in frame.columns])
        return pd.concat([kept, outputs], axis=1)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        if input_features is None:
            input_features = getattr(self, "feature_names_in_", None)
        if input_features is None:
            raise InputError("BTYDFeatures is not fitted yet", field="X")
        kept = [str(name) for name in input_features if str(name) not in OUTPUT_COLUMNS]
        return np.asarray(kept + list(OUTPUT_COLUMNS), dtype=object)
