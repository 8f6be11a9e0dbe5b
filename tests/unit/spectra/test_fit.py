"""Per-pixel solvers against scipy's reference implementations."""

import numpy as np
import pytest
from scipy.optimize import minimize, nnls

from xanes_stream.spectra.fit import FitError, fit_spectra, project_simplex, solve


@pytest.fixture
def problem():
    rng = np.random.default_rng(1)
    basis = np.abs(rng.normal(size=(40, 4))) + np.linspace(0, 1, 40)[:, None]
    truth = rng.normal(0.3, 0.4, size=(4, 200))  # some negative: constraints bite
    spectra = basis @ truth + rng.normal(0, 0.05, size=(40, 200))
    return basis, spectra


def test_lstsq_matches_numpy(problem):
    basis, spectra = problem
    ours = fit_spectra(spectra, basis, "lstsq")
    np.testing.assert_allclose(ours, np.linalg.lstsq(basis, spectra, rcond=None)[0], atol=1e-9)


def test_nnls_is_exact_not_clipped(problem):
    basis, spectra = problem
    ours = fit_spectra(spectra, basis, "nnls")
    expected = np.stack([nnls(basis, spectra[:, p])[0] for p in range(spectra.shape[1])], axis=1)
    np.testing.assert_allclose(ours, expected, atol=1e-7)
    clipped = np.clip(np.linalg.lstsq(basis, spectra, rcond=None)[0], 0, None)
    assert np.abs(clipped - expected).max() > 1e-3  # the problem does distinguish the two


def _simplex_reference(basis, y):
    k = basis.shape[1]
    result = minimize(
        lambda c: np.sum((basis @ c - y) ** 2),
        np.full(k, 1 / k),
        jac=lambda c: 2 * basis.T @ (basis @ c - y),
        bounds=[(0, None)] * k,
        constraints={"type": "eq", "fun": lambda c: c.sum() - 1, "jac": lambda c: np.ones(k)},
        method="SLSQP",
        options={"ftol": 1e-14, "maxiter": 500},
    )
    return result.x


def test_nnls_sum_to_one_matches_constrained_optimizer(problem):
    basis, spectra = problem
    ours = fit_spectra(spectra[:, :30], basis, "nnls", sum_to_one=True)
    expected = np.stack([_simplex_reference(basis, spectra[:, p]) for p in range(30)], axis=1)
    np.testing.assert_allclose(ours.sum(axis=0), 1.0, atol=1e-9)
    np.testing.assert_allclose(ours, expected, atol=1e-5)


def test_lstsq_sum_to_one_sums_to_one(problem):
    basis, spectra = problem
    ours = fit_spectra(spectra, basis, "lstsq", sum_to_one=True)
    np.testing.assert_allclose(ours.sum(axis=0), 1.0, atol=1e-9)


@pytest.mark.parametrize("sum_to_one", [False, True])
def test_admm_converges_to_exact_solution(problem, sum_to_one):
    basis, spectra = problem
    exact = fit_spectra(spectra, basis, "nnls", sum_to_one=sum_to_one)
    admm = fit_spectra(
        spectra, basis, "admm", sum_to_one=sum_to_one, admm_iterations=5000, admm_tolerance=1e-9
    )
    np.testing.assert_allclose(admm, exact, atol=2e-3)
    assert (admm >= 0).all()


def test_project_simplex():
    rng = np.random.default_rng(2)
    v = rng.normal(size=(5, 100))
    p = project_simplex(v)
    np.testing.assert_allclose(p.sum(axis=0), 1, atol=1e-12)
    assert (p >= 0).all()
    # optimality: no simplex vertex is closer than the projection
    for vertex in np.eye(5):
        assert (np.sum((v - p) ** 2, 0) <= np.sum((v - vertex[:, None]) ** 2, 0) + 1e-12).all()


def test_collinear_references_do_not_crash():
    base = np.linspace(0, 1, 30)
    basis = np.stack([base, base * (1 + 1e-9)], axis=1)
    coefficients = fit_spectra(np.outer(base, np.ones(5)), basis, "nnls")
    np.testing.assert_allclose(basis @ coefficients, np.outer(base, np.ones(5)), atol=1e-6)


def test_too_many_references_for_nnls_is_clear():
    with pytest.raises(FitError, match="admm"):
        solve(np.eye(11), np.ones((11, 2)), "nnls")
