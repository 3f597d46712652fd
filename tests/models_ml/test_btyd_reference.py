"""Published CDNOW numbers (../shared/REFERENCE.md) reproduced with our BTYD fitters and metrics."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from clv.config import BUNDLED_DATA_DIR
from models_ml.btyd import fit_bgnbd, fit_gamma_gamma
from models_ml.metrics import decile_mape, mae, normalized_gini, rmse, spearman

pytestmark = pytest.mark.fast  # the daily loop: make test-fast

CDNOW = BUNDLED_DATA_DIR / "cdnow"


@pytest.fixture(scope="module")
def calibration() -> pd.DataFrame:
    """Weeks 1-39 summary as published (x, t_x, T in weeks, zbar = mean repeat spend)."""
    return pd.read_parquet(CDNOW / "cdnow_customers_summary_with_transactions.parquet")


@pytest.fixture(scope="module")
def holdout(calibration) -> pd.DataFrame:
    """Weeks 40-78 from the transaction sample: purchase days (same-day orders merged) and spend."""
    raw = pd.read_parquet(CDNOW / "cdnow_sample.parquet")
    raw["date"] = pd.to_datetime(raw["date"], format="%Y%m%d")
    later = raw[raw["date"] > "1997-09-30"].assign(customer=raw["sample_id"].astype(int))
    purchases = later.groupby("customer")["date"].nunique()
    spend = later.groupby("customer")["dollar_value"].sum()
    return pd.DataFrame({"purchases": calibration["ID"].map(purchases).fillna(0),
                         "spend": calibration["ID"].map(spend).fillna(0)})


@pytest.fixture(scope="module")
def bgnbd(calibration):
    return fit_bgnbd(calibration["x"], calibration["t_x"], calibration["T"])


@pytest.fixture(scope="module")
def gamma_gamma(calibration):
    repeat = calibration[calibration["x"] > 0]
    return fit_gamma_gamma(repeat["x"], repeat["zbar"])


def test_bgnbd_parameters_match_fader_hardie_lee(bgnbd):
    published = {"r": 0.2425945, "alpha": 4.4136019, "a": 0.7929199, "b": 2.4258881}
    for name, value in published.items():
        assert bgnbd.params_[name] == pytest.approx(value, rel=0.005), name


def test_gamma_gamma_parameters_match_fader_hardie(gamma_gamma):
    for name, value in {"p": 6.25, "q": 3.74, "v": 15.44}.items():
        assert gamma_gamma.params_[name] == pytest.approx(value, rel=0.005), name


def test_single_customer_expectation(bgnbd):
    expected = bgnbd.conditional_expected_number_of_purchases_up_to_time(39, 2, 30.43, 38.86)
    assert float(expected) == pytest.approx(1.226, abs=0.001)


def test_holdout_purchases_by_calibration_frequency(calibration, holdout, bgnbd):
    """The 39-week holdout comparison: mean actual and BG/NBD-predicted purchases by frequency 0..7+."""
    predicted = bgnbd.conditional_expected_number_of_purchases_up_to_time(
        39, calibration["x"], calibration["t_x"], calibration["T"])
    groups = calibration["x"].clip(upper=7)
    actual_means = holdout["purchases"].groupby(groups).mean().round(3).tolist()
    predicted_means = pd.Series(np.asarray(predicted)).groupby(groups.to_numpy()).mean().round(3).tolist()
    assert actual_means == [0.237, 0.697, 1.393, 1.560, 2.532, 2.947, 3.862, 6.359]
    assert predicted_means == pytest.approx([0.225, 0.523, 1.044, 1.520, 2.164, 2.654, 3.504, 6.157], abs=0.002)
    assert holdout["purchases"].sum() == 1882 and calibration["x"].sum() == 2457


def test_spend_metrics_match_the_published_evaluation(calibration, holdout, bgnbd, gamma_gamma):
    """BG/NBD x Gamma-Gamma 39-week spend: normalized Gini 0.638, Spearman 0.426, MAE 30.42, RMSE 72.30,
    decile MAPE 0.266 (ours 0.263: equal predictions are split across deciles by position, and the
    published tie rule is not stated)."""
    expected_purchases = bgnbd.conditional_expected_number_of_purchases_up_to_time(
        39, calibration["x"], calibration["t_x"], calibration["T"])
    order_value = gamma_gamma.conditional_expected_average_profit(calibration["x"], calibration["zbar"])
    predicted = np.asarray(expected_purchases * order_value, float)
    actual = holdout["spend"].to_numpy(float)
    assert normalized_gini(actual, predicted) == pytest.approx(0.638, abs=0.001)
    assert spearman(actual, predicted) == pytest.approx(0.426, abs=0.001)
    assert mae(actual, predicted) == pytest.approx(30.42, abs=0.02)
    assert rmse(actual, predicted) == pytest.approx(72.30, abs=0.02)
    assert decile_mape(actual, predicted) == pytest.approx(0.266, abs=0.005)


def test_pareto_nbd_matches_the_published_cdnow_fit(calibration):
    """Schmittlein, Morrison & Colombo (1987) on CDNOW, as reported by Fader, Hardie & Lee (2005) and the
    BTYD R package: r=0.553, alpha=10.578, s=0.606, beta=11.669; the single-customer checks too."""
    from models_ml.btyd import fit_pareto_nbd

    fitted = fit_pareto_nbd(calibration["x"], calibration["t_x"], calibration["T"])
    for name, value in {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}.items():
        assert fitted.params_[name] == pytest.approx(value, rel=0.005), name
    x, t_x, T = np.array([26.0]), np.array([30.86]), np.array([31.0])
    assert fitted.conditional_expected_number_of_purchases_up_to_time(np.array([52.0]), x, t_x, T)[0] == \
        pytest.approx(25.46, abs=0.01)
    assert fitted.conditional_probability_alive(x, t_x, T)[0] == pytest.approx(0.9979, abs=0.0005)


def test_pareto_nbd_on_distinct_triples_is_the_per_customer_fit(calibration):
    """Fitting on the distinct (x, t_x, T) triples, weighted by how many customers share each, maximises
    the same likelihood as lifetimes' one row per customer: the same parameters, on fewer rows."""
    from lifetimes import ParetoNBDFitter

    from models_ml.btyd import fit_pareto_nbd

    x, t_x, T = calibration["x"], calibration["t_x"], calibration["T"]
    assert len(np.unique(np.column_stack([x, t_x, T]), axis=0)) < 0.8 * len(x)
    compressed = fit_pareto_nbd(x, t_x, T, penalizer=0.001)
    per_customer = ParetoNBDFitter(penalizer_coef=0.001).fit(x, t_x, T)
    for name in ("r", "alpha", "s", "beta"):
        assert compressed.params_[name] == pytest.approx(per_customer.params_[name], rel=2e-3), name


def test_p_alive_of_one_time_buyers_falls_with_silence():
    """BG/NBD gives every one-time buyer P(alive) = 1; the score table's Pareto/NBD does not: the longer a
    one-time buyer has been silent, the less likely they are still a customer."""
    from models_ml.btyd import AliveModel

    summary = pd.read_parquet(CDNOW / "cdnow_customers_summary_with_transactions.parquet")
    frame = pd.DataFrame({"cutoff_date": "1997-09-30", "btyd_frequency": summary["x"],
                          "btyd_recency": summary["t_x"] * 7, "btyd_t": summary["T"] * 7})
    silent = pd.DataFrame({"cutoff_date": "1997-09-30", "btyd_frequency": [0, 0, 0],
                           "btyd_recency": [0, 0, 0], "btyd_t": [7.0, 90.0, 270.0]})
    components = AliveModel(365).components(pd.concat([frame, silent], ignore_index=True)).tail(3)
    p_alive = components["p_alive"].to_numpy()
    assert p_alive[0] > p_alive[1] > p_alive[2] and p_alive[2] < 0.7
    assert (components["expected_orders"].to_numpy() > 0).all()


def test_pareto_nbd_by_l_bfgs_b_reaches_the_nelder_mead_optimum(calibration, monkeypatch):
    """The fit tries L-BFGS-B first (three times faster at scale): on CDNOW it must land where lifetimes'
    Nelder-Mead does, to the customer's P(alive)."""
    from models_ml import btyd

    x, t_x, T = calibration["x"], calibration["t_x"], calibration["T"]
    fast = btyd.fit_pareto_nbd(x, t_x, T, penalizer=0.001)
    monkeypatch.setattr(btyd, "PARETO_NBD_METHODS", btyd.PARETO_NBD_METHODS[1:])
    nelder_mead = btyd.fit_pareto_nbd(x, t_x, T, penalizer=0.001)
    gap = np.abs(fast.conditional_probability_alive(x, t_x, T) - nelder_mead.conditional_probability_alive(x, t_x, T))
    assert np.max(gap) < 1e-4


def test_pareto_nbd_falls_back_to_nelder_mead_when_l_bfgs_b_does_not_converge(calibration, monkeypatch, caplog):
    """L-BFGS-B held to two iterations does not converge: the fit comes from Nelder-Mead and still matches
    the published parameters. When no method converges the fit raises (AliveModel then leaves P(alive) NULL
    rather than publish an unconverged value)."""
    from lifetimes.utils import ConvergenceError

    from models_ml import btyd

    x, t_x, T = calibration["x"], calibration["t_x"], calibration["T"]
    two_iterations = {"bounds": [(1e-8, None)] * 4, "options": {"maxiter": 2}}
    monkeypatch.setattr(btyd, "PARETO_NBD_METHODS", (("L-BFGS-B", two_iterations), btyd.PARETO_NBD_METHODS[1]))
    with caplog.at_level("INFO", logger="models_ml.btyd"):
        fitted = btyd.fit_pareto_nbd(x, t_x, T)
    assert "L-BFGS-B did not converge" in caplog.text
    for name, value in {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}.items():
        assert fitted.params_[name] == pytest.approx(value, rel=0.005), name

    monkeypatch.setattr(btyd, "PARETO_NBD_METHODS", (("L-BFGS-B", two_iterations),
                                                     ("Nelder-Mead", {"options": {"maxiter": 5}})))
    with pytest.raises(ConvergenceError, match="did not converge"):
        btyd.fit_pareto_nbd(x, t_x, T)
    frame = pd.DataFrame({"cutoff_date": "1997-09-30", "btyd_frequency": x, "btyd_recency": t_x * 7,
                          "btyd_t": T * 7})
    assert btyd.AliveModel(365).components(frame)["p_alive"].isna().all()


def test_p_alive_is_the_same_on_a_re_run(calibration):
    """A re-run on the same data publishes the same P(alive), whatever state numpy's global random generator
    is in (lifetimes' own fit starts from a random point of it)."""
    from models_ml.btyd import AliveModel

    frame = pd.DataFrame({"cutoff_date": "1997-09-30", "btyd_frequency": calibration["x"],
                          "btyd_recency": calibration["t_x"] * 7, "btyd_t": calibration["T"] * 7})
    runs = []
    for seed in (1, 2):
        np.random.seed(seed)
        runs.append(AliveModel(365).components(frame))
    pd.testing.assert_frame_equal(runs[0], runs[1], check_exact=True)


def test_a_degenerate_bgnbd_fit_falls_back_to_mbgnbd_and_a_sound_one_does_not(calibration, monkeypatch, caplog):
    """Online Retail at 2010-11-30: BG/NBD fitted a = b = 0 and 541 customers got a non-finite expectation
    that fell back to their observed rate. A collapsed fit now hands the cutoff to MBG/NBD, with a warning
    naming the parameters; CDNOW's sound fit keeps BG/NBD and warns nothing."""
    from models_ml import btyd

    frame = pd.DataFrame({"cutoff_date": "1997-09-30", "btyd_frequency": calibration["x"],
                          "btyd_recency": calibration["t_x"] * 7, "btyd_t": calibration["T"] * 7,
                          "btyd_monetary_value": calibration["zbar"], "avg_order_value": calibration["zbar"]})
    with caplog.at_level("WARNING", logger="models_ml.btyd"):
        sound = btyd.BgNbdGammaGamma(273).components(frame)
    assert "MBG/NBD used instead" not in caplog.text and np.isfinite(sound["expected_orders"]).all()
    fitted = btyd.fit_bgnbd(calibration["x"], calibration["t_x"], calibration["T"])

    def collapsed(*args, **kwargs):
        fitted.params_["a"], fitted.params_["b"] = 1e-9, 1e-9
        return fitted

    monkeypatch.setattr(btyd, "fit_bgnbd", collapsed)
    caplog.clear()
    with caplog.at_level("WARNING", logger="models_ml.btyd"):
        rescued = btyd.BgNbdGammaGamma(273).components(frame)
    assert "a = 1e-09, b = 1e-09 (degenerate)" in caplog.text and "MBG/NBD used instead" in caplog.text
    assert np.isfinite(rescued["expected_orders"]).all() and (rescued["p_alive"] < 1).any()
    mbg = btyd.fit_mbgnbd(calibration["x"], calibration["t_x"], calibration["T"], 0.001)
    expected = mbg.conditional_expected_number_of_purchases_up_to_time(273 / 7, calibration["x"], calibration["t_x"],
                                                                      calibration["T"])
    assert rescued["expected_orders"].to_numpy() == pytest.approx(np.asarray(expected, float))


def test_pareto_nbd_that_lets_nobody_leave_is_replaced_by_mbgnbd_and_a_sound_fit_is_kept(calibration, monkeypatch,
                                                                                        caplog):
    """Online Retail with one year of data: Pareto/NBD gave P(alive) 1.0 to all 4,266 customers, without a
    warning. A fit where nobody can leave (here s = 1e-9) while many customers are long silent now warns and
    takes P(alive) from MBG/NBD; CDNOW's sound fit keeps Pareto/NBD's own values."""
    from models_ml import btyd

    frame = pd.DataFrame({"cutoff_date": "1997-09-30", "btyd_frequency": calibration["x"],
                          "btyd_recency": calibration["t_x"] * 7, "btyd_t": calibration["T"] * 7})
    with caplog.at_level("WARNING", logger="models_ml.btyd"):
        sound = btyd.AliveModel(273).components(frame)
    assert "MBG/NBD used" not in caplog.text and sound["p_alive"].min() < 0.5
    fitted = btyd.fit_pareto_nbd(calibration["x"], calibration["t_x"], calibration["T"], 0.001)
    stuck = copy.deepcopy(fitted)
    stuck.params_["s"] = 1e-9  # no dropout at all: the most silent customer is 0.96 alive
    monkeypatch.setattr(btyd, "fit_pareto_nbd", lambda *args, **kwargs: stuck)
    caplog.clear()
    with caplog.at_level("WARNING", logger="models_ml.btyd"):
        rescued = btyd.AliveModel(273).components(frame)
    assert "gives P(alive) near 1 to every customer" in caplog.text and "MBG/NBD used" in caplog.text
    assert rescued["p_alive"].min() < 0.5 and rescued["p_alive"].notna().all()
    # the expected orders stay the fit's own (the backtest judges them: on Online Retail they beat MBG/NBD's)
    own = stuck.conditional_expected_number_of_purchases_up_to_time(273 / 7, calibration["x"], calibration["t_x"],
                                                                    calibration["T"])
    assert rescued["expected_orders"].to_numpy() == pytest.approx(np.asarray(own, float))
