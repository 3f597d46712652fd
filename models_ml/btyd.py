"""BG/NBD + Gamma-Gamma (lifetimes) on the BTYD columns of customer_features.

BTYD models need no labels: they are fit on the history up to the cutoff they predict from, so
`predict` fits on the frame it is given (one cutoff at a time) and `fit` learns nothing (the model is
transductive: its parameters at a cutoff come from that cutoff's own repeat-purchase summary, which is
what the data knew then). Time is converted from days to weeks.
Prediction = expected purchases in the horizon x expected value per purchase; no discounting.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import warnings

import numpy as np
import pandas as pd
from lifetimes import BetaGeoFitter, GammaGammaFitter, ModifiedBetaGeoFitter
from lifetimes.utils import ConvergenceError

from models_ml.base import CLVModel

log = logging.getLogger(__name__)
DAYS_PER_WEEK = 7.0


def per_cutoff(frame: pd.DataFrame, one_cutoff) -> pd.DataFrame:
    """`one_cutoff(rows)` on each cutoff's rows (the models are fit per cutoff), in the frame's row order."""
    parts = [one_cutoff(group) for _, group in frame.groupby("cutoff_date", sort=False)]
    return pd.concat(parts).loc[frame.index] if parts else pd.DataFrame(index=frame.index)


def btyd_weeks(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """lifetimes' (frequency, recency, T) from the feature table's BTYD columns, recency and T in weeks."""
    return (frame["btyd_frequency"].to_numpy(float), frame["btyd_recency"].to_numpy(float) / DAYS_PER_WEEK,
            frame["btyd_t"].to_numpy(float) / DAYS_PER_WEEK)


def fit_bgnbd(frequency, recency, T, penalizer: float = 0.0) -> BetaGeoFitter:
    """BG/NBD (Fader, Hardie & Lee 2005) by maximum likelihood. lifetimes prints the optimiser state
    when it fails to converge; that goes to the log instead."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        return BetaGeoFitter(penalizer_coef=penalizer).fit(frequency, recency, T)


def fit_mbgnbd(frequency, recency, T, penalizer: float = 0.0) -> ModifiedBetaGeoFitter:
    """MBG/NBD (Batislam, Denizel & Filiztekin 2007): BG/NBD where a customer may also drop out right after
    the first purchase, so one-time buyers silent for long are not all alive."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        return ModifiedBetaGeoFitter(penalizer_coef=penalizer).fit(frequency, recency, T)


DEGENERATE_SHAPE = 1e-3
# A Pareto/NBD fit whose most silent customer is still this likely alive cannot express dropout at all
ALIVE_FLOOR_OF_A_STUCK_FIT = 0.95  # BG/NBD's a or b below this: the dropout distribution has collapsed onto 0 and 1


def fit_gamma_gamma(frequency, monetary_value, penalizer: float = 0.0) -> GammaGammaFitter:
    """Gamma-Gamma spend model (Fader & Hardie 2013) on repeat buyers with positive spend."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GammaGammaFitter(penalizer_coef=penalizer).fit(frequency, monetary_value)


class BgNbdGammaGamma(CLVModel):
    """Expected horizon revenue = BG/NBD expected purchases x Gamma-Gamma expected order value.

    Parameters
    ----------
    horizon_days : int
        Prediction window after the cutoff, in days.
    penalizer : float
        L2 penalty on the fitted parameters (lifetimes' ``penalizer_coef``).

    Notes
    -----
    Both models are fit per cutoff on the repeat-purchase summary up to it (``btyd_frequency``,
    ``btyd_recency``, ``btyd_t`` in weeks, ``btyd_monetary_value``); no labels are used.

    References
    ----------
    .. [1] Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005). "Counting Your Customers the Easy Way:
       An Alternative to the Pareto/NBD Model". Marketing Science 24(2), 275-284.
    .. [2] Fader, P. S. and Hardie, B. G. S. (2013). "The Gamma-Gamma Model of Monetary Value".
       http://www.brucehardie.com/notes/025/
    """

    name = "bgnbd_gg"

    def __init__(self, horizon_days: int = 365, penalizer: float = 0.001, max_fit_rows: int = 50_000):
        self.horizon_days = horizon_days
        self.penalizer = penalizer
        self.max_fit_rows = max_fit_rows

    def fit(self, X: pd.DataFrame, y=None) -> "BgNbdGammaGamma":
        """Nothing to learn from labels: the models are fit per cutoff at prediction time."""
        return self

    def required_columns(self) -> list[str]:
        return ["cutoff_date", "btyd_frequency", "btyd_recency", "btyd_t", "btyd_monetary_value", "avg_order_value"]

    def components(self, frame: pd.DataFrame) -> pd.DataFrame:
        """expected_orders, p_alive, expected_order_value and btyd_clv per row, fit per cutoff."""
        return per_cutoff(frame, self._components_one_cutoff)

    def _components_one_cutoff(self, frame: pd.DataFrame) -> pd.DataFrame:
        x, t_x, T = btyd_weeks(frame)
        horizon_weeks = self.horizon_days / DAYS_PER_WEEK
        fit_rows = seeded_sample(len(frame), self.max_fit_rows)
        bg = self._fit_bgnbd_converging(x[fit_rows], t_x[fit_rows], T[fit_rows])
        with np.errstate(all="ignore"):
            expected_orders = np.asarray(bg.conditional_expected_number_of_purchases_up_to_time(horizon_weeks, x, t_x, T), float)
            p_alive = np.asarray(bg.conditional_probability_alive(x, t_x, T), float)
        degenerate = min(bg.params_["a"], bg.params_["b"]) < DEGENERATE_SHAPE
        if degenerate or not np.isfinite(expected_orders).all():
            # a collapsed fit (Online Retail at 2010-11-30: a = b = 0) or lifetimes' hypergeometric terms
            # overflowing: MBG/NBD on the same summary, where it evaluates
            log.warning("BG/NBD at cutoff %s: a = %.3g, b = %.3g%s, expectation not finite for %d customers: MBG/NBD "
                        "used instead", frame["cutoff_date"].iloc[0], bg.params_["a"], bg.params_["b"],
                        " (degenerate)" if degenerate else "", int((~np.isfinite(expected_orders)).sum()))
            try:
                mbg = fit_mbgnbd(x[fit_rows], t_x[fit_rows], T[fit_rows], self.penalizer)
                with np.errstate(all="ignore"):
                    modified = np.asarray(mbg.conditional_expected_number_of_purchases_up_to_time(horizon_weeks, x, t_x, T), float)
                    modified_alive = np.asarray(mbg.conditional_probability_alive(x, t_x, T), float)
                usable = np.isfinite(modified) if degenerate else ~np.isfinite(expected_orders) & np.isfinite(modified)
                expected_orders = np.where(usable, modified, expected_orders)
                p_alive = np.where(usable, modified_alive, p_alive)
            except ConvergenceError:
                log.warning("MBG/NBD did not converge either at cutoff %s", frame["cutoff_date"].iloc[0])
        # lifetimes' hypergeometric terms overflow for a few very frequent buyers: their observed
        # purchase rate stands in, and they count as alive
        unstable = ~np.isfinite(expected_orders)
        if unstable.any():
            log.warning("BG/NBD expectation not finite for %d customers: observed rate used", unstable.sum())
            expected_orders[unstable] = (x[unstable] + 1) / np.maximum(T[unstable], 1) * horizon_weeks
        p_alive = np.where(np.isfinite(p_alive), p_alive, 1.0)
        order_value = self._expected_order_value(frame, x)
        return pd.DataFrame({
            "expected_orders": expected_orders,
            "p_alive": p_alive,
            "expected_order_value": order_value,
            "btyd_clv": np.clip(expected_orders * order_value, 0, None),
        }, index=frame.index)

    def _expected_order_value(self, frame: pd.DataFrame, x: np.ndarray) -> np.ndarray:
        """Gamma-Gamma conditional expected order value. When q <= 1 the model has no finite mean
        (spend too heavy-tailed) or too few repeat buyers exist, each customer's own average order
        value stands in."""
        # rounded like the model inputs (features.feature_matrix): the warehouse's float sums differ in the
        # last bits from run to run, and the fit must not
        monetary = frame["btyd_monetary_value"].to_numpy(float).round(9)
        own_average = np.where((x > 0) & (monetary > 0), monetary, frame["avg_order_value"].to_numpy(float))
        repeat = (x > 0) & (monetary > 0)
        if repeat.sum() < 10:
            return own_average
        gg = None
        for penalizer in (self.penalizer, 0.01, 0.1):
            try:
                gg = fit_gamma_gamma(x[repeat], monetary[repeat], penalizer)
                break
            except ConvergenceError:
                log.warning("Gamma-Gamma did not converge with penalizer %s; retrying with a larger one", penalizer)
        if gg is None:
            log.warning("Gamma-Gamma did not converge: own average order values used")
            return own_average
        if gg.params_["q"] <= 1:
            log.warning("Gamma-Gamma q = %.3f <= 1 (no finite mean spend): own average order values used",
                        gg.params_["q"])
            return own_average
        return np.asarray(gg.conditional_expected_average_profit(np.where(repeat, x, 0), np.where(repeat, monetary, 0)), float)

    def _fit_bgnbd_converging(self, x, t_x, T) -> BetaGeoFitter:
        """Fit BG/NBD, raising the penalizer step by step when the optimiser does not converge."""
        for penalizer in (self.penalizer, 0.01, 0.1, 1.0):
            try:
                return fit_bgnbd(x, t_x, T, penalizer)
            except ConvergenceError:
                log.warning("BG/NBD did not converge with penalizer %s; retrying with a larger one", penalizer)
        raise ConvergenceError("BG/NBD did not converge even with penalizer 1.0")

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Expected horizon revenue per row, the models fit on each cutoff's own rows of X."""
        return self.components(X)["btyd_clv"].to_numpy(float)


def seeded_sample(rows: int, at_most: int) -> np.ndarray:
    """Row positions to fit a cutoff's parameters on: all of them, or a seeded sample of `at_most`."""
    if rows <= at_most:
        return np.arange(rows)
    return np.sort(np.random.default_rng(0).choice(rows, at_most, replace=False))


def fit_pareto_nbd(frequency, recency, T, penalizer: float = 0.0):
    """Pareto/NBD (Schmittlein, Morrison & Colombo 1987) by maximum likelihood: lifetimes' likelihood, on the
    distinct (frequency, recency, T) triples weighted by how many customers share each (the same likelihood
    as one term per customer, on a third fewer rows: a shop's one-time buyers differ only by T).

    Minimised here rather than by `ParetoNBDFitter.fit`, which starts from a random point of numpy's global
    generator (so a re-run on the same data published other P(alive) values, by up to 1e-5 on the 1M
    benchmark shop) and never checks that the optimiser converged. Here: a fixed start (the centre of
    lifetimes' random one), L-BFGS-B first (2.4 s instead of Nelder-Mead's 8.3 s on the 1M shop's
    50,000-customer sample, the same optimum), lifetimes' Nelder-Mead when L-BFGS-B does not report
    convergence, ConvergenceError when neither does. T is rescaled as lifetimes does. The last few fits are
    kept by their summary's hash, so the same summary is fit once."""
    triples = np.column_stack([np.asarray(frequency, float), np.asarray(recency, float), np.asarray(T, float)])
    distinct, counts = np.unique(triples, axis=0, return_counts=True)
    key = (hashlib.sha1(distinct.tobytes() + counts.tobytes()).hexdigest(), float(penalizer), repr(PARETO_NBD_METHODS))
    if key in _PARETO_FITS:  # the same summary fit again (P(alive) and a Pareto/NBD fallback score one cutoff)
        return _PARETO_FITS[key]
    fitted = _fit_pareto_nbd_triples(distinct, counts, penalizer)
    _PARETO_FITS[key] = fitted
    while len(_PARETO_FITS) > 16:
        _PARETO_FITS.pop(next(iter(_PARETO_FITS)))
    return fitted


_PARETO_FITS: dict = {}  # the latest fits by their summary's hash and penalizer


def _fit_pareto_nbd_triples(distinct: np.ndarray, counts: np.ndarray, penalizer: float):
    from lifetimes import ParetoNBDFitter
    from lifetimes.utils import _scale_time
    from scipy.optimize import minimize

    scale = _scale_time(distinct[:, 2])
    args = (distinct[:, 0].astype(int), distinct[:, 1] * scale, distinct[:, 2] * scale, counts, penalizer)
    failures = []
    for method, options in PARETO_NBD_METHODS:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            found = minimize(ParetoNBDFitter._negative_log_likelihood, np.ones(4), args=args, method=method, **options)
        if found.success and np.all(np.isfinite(found.x)) and np.all(found.x > 0):
            r, alpha, s, beta = found.x
            fitted = ParetoNBDFitter(penalizer_coef=penalizer)
            fitted.params_ = pd.Series([r, alpha / scale, s, beta / scale], index=["r", "alpha", "s", "beta"])
            return fitted
        failures.append(f"{method}: {found.message}")
        log.info("Pareto/NBD: %s did not converge (%s)", method, found.message)
    raise ConvergenceError("Pareto/NBD did not converge: " + "; ".join(failures))


# (scipy method, its arguments): tried in turn until one reports convergence
PARETO_NBD_METHODS = (
    ("L-BFGS-B", {"bounds": [(1e-8, None)] * 4}),
    ("Nelder-Mead", {"tol": 1e-4, "options": {"maxiter": 2000}}),  # lifetimes' own settings
)


class AliveModel:
    """P(alive) and expected orders in the horizon for the score table, from Pareto/NBD fitted per
    cutoff (on a seeded sample of at most `max_fit_rows` customers; predictions for everyone).

    Unlike BG/NBD, where a customer can only drop out right after a repeat purchase (so every one-time
    buyer has P(alive) = 1), Pareto/NBD lets customers leave at any time: a one-time buyer silent for a
    year is probably gone. Values the model cannot evaluate (non-finite) are left NULL, never set to 1.

    Parameters
    ----------
    horizon_days : int
        Window of the expected orders, in days.
    max_fit_rows : int
        Customers sampled (seeded) to fit each cutoff's parameters.
    penalizer : float
        L2 penalty on the fitted parameters.

    References
    ----------
    .. [1] Schmittlein, D. C., Morrison, D. G. and Colombo, R. (1987). "Counting Your Customers: Who Are
       They and What Will They Do Next?". Management Science 33(1), 1-24.
    .. [2] Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005). "RFM and CLV: Using Iso-Value Curves for
       Customer Base Analysis". Journal of Marketing Research 42(4), 415-430.
    """

    def __init__(self, horizon_days: int = 365, max_fit_rows: int = 50_000, penalizer: float = 0.001):
        self.horizon_days, self.max_fit_rows, self.penalizer = horizon_days, max_fit_rows, penalizer

    def components(self, frame: pd.DataFrame) -> pd.DataFrame:
        return per_cutoff(frame, self._one_cutoff)

    def _one_cutoff(self, frame: pd.DataFrame) -> pd.DataFrame:
        x, t_x, T = btyd_weeks(frame)
        fit_rows = seeded_sample(len(frame), self.max_fit_rows)
        try:
            model = fit_pareto_nbd(x[fit_rows], t_x[fit_rows], T[fit_rows], self.penalizer)
        except Exception as exc:  # noqa: BLE001 - lifetimes raises several kinds; the columns stay NULL
            log.warning("Pareto/NBD did not fit at cutoff %s (%s): p_alive and expected_orders left NULL",
                        frame["cutoff_date"].iloc[0], exc)
            return pd.DataFrame({"p_alive": np.nan, "expected_orders": np.nan}, index=frame.index)
        with np.errstate(all="ignore"):
            p_alive = np.asarray(model.conditional_probability_alive(x, t_x, T), float)
            expected = np.asarray(model.conditional_expected_number_of_purchases_up_to_time(
                np.full(len(x), self.horizon_days / DAYS_PER_WEEK), x, t_x, T), float)
        p_alive = np.where(np.isfinite(p_alive), np.clip(p_alive, 0, 1), np.nan)
        expected = np.where(np.isfinite(expected) & (expected >= 0), expected, np.nan)
        silent = (T - t_x) > 0.5 * np.maximum(T, 1)  # quiet for over half the time since their first purchase
        if silent.mean() > 0.05 and np.nanmin(p_alive, initial=1.0) > ALIVE_FLOOR_OF_A_STUCK_FIT:
            # nobody can leave (s -> 0 or beta -> infinity; Online Retail with one year of data): P(alive) from
            # MBG/NBD. The expected orders stay Pareto/NBD's: judged in the backtest they predict better there
            # (Online Retail, paretonbd_gg: Poisson deviance 771 with them, 1,035 with MBG/NBD's)
            log.warning("Pareto/NBD at cutoff %s gives P(alive) near 1 to every customer (s = %.3g, beta = %.3g) although "
                        "%.0f%% have been silent for over half their time: MBG/NBD used for p_alive",
                        frame["cutoff_date"].iloc[0], model.params_["s"], model.params_["beta"], 100 * silent.mean())
            try:
                mbg = fit_mbgnbd(x[fit_rows], t_x[fit_rows], T[fit_rows], self.penalizer)
                with np.errstate(all="ignore"):
                    p_alive = np.asarray(mbg.conditional_probability_alive(x, t_x, T), float)
                p_alive = np.where(np.isfinite(p_alive), np.clip(p_alive, 0, 1), np.nan)
            except ConvergenceError:
                log.warning("MBG/NBD did not converge either: p_alive left NULL")
                p_alive = np.full(len(x), np.nan)
        return pd.DataFrame({"p_alive": p_alive, "expected_orders": expected}, index=frame.index)


class ParetoNbdGammaGamma(BgNbdGammaGamma):
    """Expected horizon revenue = Pareto/NBD expected purchases x Gamma-Gamma expected order value, fit per
    cutoff like `BgNbdGammaGamma` (no labels). Pareto/NBD lets a one-time buyer drop out, which BG/NBD does
    not; where Pareto/NBD cannot be evaluated for a customer, their observed purchase rate stands in."""

    name = "paretonbd_gg"

    def _components_one_cutoff(self, frame: pd.DataFrame) -> pd.DataFrame:
        x, t_x, T = btyd_weeks(frame)
        alive = AliveModel(self.horizon_days, self.max_fit_rows, self.penalizer)._one_cutoff(frame)
        expected_orders = alive["expected_orders"].to_numpy(float)
        unstable = ~np.isfinite(expected_orders)
        if unstable.any():
            log.warning("Pareto/NBD expectation not finite for %d customers: observed rate used", unstable.sum())
            expected_orders[unstable] = (x[unstable] + 1) / np.maximum(T[unstable], 1) * self.horizon_days / DAYS_PER_WEEK
        order_value = self._expected_order_value(frame, x)
        return pd.DataFrame({"expected_orders": expected_orders, "p_alive": alive["p_alive"].to_numpy(float),
                             "expected_order_value": order_value,
                             "btyd_clv": np.clip(expected_orders * order_value, 0, None)}, index=frame.index)
