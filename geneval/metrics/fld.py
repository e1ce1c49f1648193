"""FLD, the Feature Likelihood Divergence (Jiralerspong et al. 2023, "Feature Likelihood Divergence: Evaluating the
Generalization of Generative Models Using Samples").

Three feature sets: ``train`` (the model's training data: ``--ref``), ``test`` (held-out real data the model never
saw: ``--heldout``) and the generated samples. As the reference implementation (marcojira/fld, ``FLD(eval_feat=
"test")``, ``fld/MoG.py``) does:

1. At most ``gen_size`` = 10,000 generated samples are used (a seeded random subset beyond that).
2. All three sets are standardised with the test set's per-dimension mean and (unbiased) standard deviation.
3. A Gaussian KDE is centred on the generated samples: the mixture (1/m) Σ_j N(x | g_j, σ_j² I). Its per-sample
   log-variances s_j = log σ_j² are fitted to the train set by Adam (lr 0.5, batches of 10,000 shuffled train
   samples, at most 50 epochs, stopping once the epoch loss moved < 5e-4 over the last 5 epochs), starting from
   s_j = log((min_i ‖x_i − g_j‖² + 1e-3)/d) and clamped to [−40, 40] after each step. During the fit only, each
   train sample x also has an extra, unweighted component: a Gaussian of log-variance s_0 (fitted too) at squared
   distance 0.81·‖x − x̄‖² from the train mean x̄, which bounds every sample's likelihood from below.
4. The score is the test set's mean negative log-likelihood per dimension, −(1/d) log p(x_test), minus the same
   quantity for a baseline KDE centred on min(m, N_train/2) shuffled train samples and fitted on the other train
   samples, times 100. Lower is better; memorised training samples raise it (test samples fall between them).

Feature dimensions that are constant over the test set (e.g. a ReLU unit that no held-out image activates) have
standard deviation 0: the reference divides by it, so every standardised test sample holds a NaN (0/0) and its
FLD is NaN — undefined. Here those dimensions are left out of all three sets, listed in ``dropped_dims`` (and
warned about by ``geneval score``), and FLD is computed on the others, d counting only them: a dimension in which
the test set does not vary has no test-set scale to standardise by, so it can carry no test likelihood. Where the
reference is defined (no constant dimension) nothing changes; where it is not, the value equals the reference's
on the features without those dimensions (tests/test_metrics_fld.py).

The randomness (the subset, the shuffles) comes from one ``numpy.random.Generator(seed)``, in the reference's
order. All arithmetic is float64 (the reference runs in float32). The fit's gradient is computed in closed form
over row chunks rather than by autograd over a whole batch: d/ds_j of the loss is
−(1/(B d)) Σ_i r_ij (½ ‖x_i − g_j‖² e^{−s_j} − d/2), r_ij the responsibilities.

Memory: the squared distances of the fit set to the centres are cached, float64, as the reference caches them
(float32): 8 × N_train × min(N_gen, 10,000) bytes (4 GB at N_train = 50,000), then the baseline's
8 × (N_train − m) × m; never an N×N matrix of one set. tests/test_metrics_fld.py transcribes the reference's
algorithm (autograd Adam over whole batches) in float64 and agrees to ≤ 1e-9 relative.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from geneval.errors import GenevalInputError
from geneval.metrics.base import MetricInputs, MetricSpec, MetricValue, Param, register_metric
from geneval.metrics.knn import check_same_dim
from geneval.stats import as_feature_matrix

DEFAULT_GEN_SIZE = 10_000
LR = 0.5
NUM_EPOCHS = 50
BATCH_SIZE = 10_000
ORIGIN_DIST_PROP = 0.1
_ROWS = 1024  # rows per chunk of the distance and gradient computations


@dataclass(frozen=True)
class FLDResult:
    fld: float
    test_nll: float  # mean NLL per dimension of the test set under the KDE on the generated samples
    baseline_nll: float  # the same under the KDE on half of the train set
    num_gen_used: int
    epochs: int  # of the generated KDE's fit
    baseline_epochs: int
    seed: int
    dropped_dims: tuple[int, ...] = ()  # feature dimensions constant over the test set, left out (see ``fld``)


def sq_distances(x: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """float64 ‖x_i − c_j‖² ``[len(x), len(c)]``, computed over row chunks (≥ 0)."""
    c_norms = (centres * centres).sum(1)
    out = torch.empty((len(x), len(centres)), dtype=torch.float64)
    for lo in range(0, len(x), _ROWS):
        rows = x[lo : lo + _ROWS]
        block = out[lo : lo + _ROWS]
        torch.mm(rows, centres.T, out=block)
        block.mul_(-2).add_((rows * rows).sum(1)[:, None]).add_(c_norms[None, :]).clamp_(min=0)
    return out


class GaussianKDE:
    """(1/m) Σ_j N(x | centres_j, exp(log_var_j) I), with per-centre log-variances fitted by maximum likelihood."""

    def __init__(self, centres: torch.Tensor):
        self.centres = centres
        self.count, self.dim = centres.shape
        self.log_var = torch.zeros(self.count, dtype=torch.float64)

    def _component_lls(self, d2: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
        out = d2 * (-0.5 * torch.exp(-log_var))
        out -= (self.dim / 2) * log_var
        out -= (self.dim / 2) * math.log(2 * math.pi)
        return out

    def fit(self, x: torch.Tensor, rng: np.random.Generator) -> int:
        """Fit the log-variances to ``x`` as the reference does; returns the number of epochs run."""
        mean_x = x.mean(dim=0, keepdim=True)
        x = x[torch.from_numpy(rng.choice(len(x), len(x), replace=False))]
        d2 = sq_distances(x, self.centres)
        self.log_var = ((d2.min(dim=0).values + 1e-3) / self.dim).log()
        origin_log_var = torch.zeros((), dtype=torch.float64)
        origin_d2 = (1 - ORIGIN_DIST_PROP) ** 2 * sq_distances(x, mean_x)[:, 0]
        params = [self.log_var.requires_grad_(), origin_log_var.requires_grad_()]
        optimiser = torch.optim.Adam(params, lr=LR)
        losses: list[float] = []
        epoch = 0
        for epoch in range(NUM_EPOCHS):
            batch_losses = []
            for lo in range(0, len(x), BATCH_SIZE):
                hi = min(lo + BATCH_SIZE, len(x))
                loss, grad, origin_grad = self._loss_and_grad(d2[lo:hi], origin_d2[lo:hi], origin_log_var.detach())
                optimiser.zero_grad()
                self.log_var.grad, origin_log_var.grad = grad, origin_grad
                optimiser.step()
                with torch.no_grad():
                    self.log_var.clamp_(-40, 40)
                batch_losses.append(loss)
            losses.append(sum(batch_losses) / len(batch_losses))
            if epoch > 5 and max(abs(losses[-1] - losses[-j]) for j in range(1, 6)) < 5e-4:
                break
        self.log_var = self.log_var.detach()
        return epoch + 1

    def _loss_and_grad(self, d2: torch.Tensor, origin_d2: torch.Tensor,
                       origin_log_var: torch.Tensor) -> tuple[float, torch.Tensor, torch.Tensor]:
        """The batch loss −mean_i log p̃(x_i) / d (with the origin component) and its gradients, over row chunks."""
        log_var = self.log_var.detach()
        inv_var, origin_inv_var = torch.exp(-log_var), torch.exp(-origin_log_var)
        total_ll, grad, origin_grad = 0.0, torch.zeros_like(log_var), torch.zeros((), dtype=torch.float64)
        for lo in range(0, len(d2), _ROWS):
            block = d2[lo : lo + _ROWS]
            lls = self._component_lls(block, log_var) - math.log(self.count)
            origin = self._component_lls(origin_d2[lo : lo + _ROWS], origin_log_var)
            norm = torch.logaddexp(torch.logsumexp(lls, dim=1), origin)
            total_ll += float(norm.sum())
            lls.sub_(norm[:, None]).exp_()  # responsibilities r_ij
            grad += (lls * (0.5 * block * inv_var - self.dim / 2)).sum(0)
            origin_grad += (torch.exp(origin - norm) * (0.5 * origin_d2[lo : lo + _ROWS] * origin_inv_var
                                                        - self.dim / 2)).sum()
        scale = -1.0 / (len(d2) * self.dim)
        return -total_ll / (len(d2) * self.dim), grad * scale, origin_grad * scale

    def nll_per_dim(self, x: torch.Tensor) -> torch.Tensor:
        """−log p(x_i) / d for each row of ``x`` (no origin component)."""
        out = torch.empty(len(x), dtype=torch.float64)
        for lo in range(0, len(x), _ROWS):
            lls = self._component_lls(sq_distances(x[lo : lo + _ROWS], self.centres), self.log_var)
            out[lo : lo + _ROWS] = -(torch.logsumexp(lls, dim=1) - math.log(self.count)) / self.dim
        return out


def _standardise(test: torch.Tensor, *sets: torch.Tensor) -> list[torch.Tensor]:
    mean, std = test.mean(dim=0), test.std(dim=0)
    return [(s - mean) / std for s in (test, *sets)]


def fld(gen, train, test, *, gen_size: int = DEFAULT_GEN_SIZE, seed: int = 0) -> FLDResult:
    """Test FLD of generated features against the model's training features and held-out test features."""
    feats = [torch.from_numpy(as_feature_matrix(v, what=f"FLD {name} features"))
             for v, name in ((gen, "generated"), (train, "train"), (test, "test"))]
    check_same_dim(("generated", feats[0].numpy()), ("train", feats[1].numpy()), ("test", feats[2].numpy()),
                   what="FLD")
    g, tr, te = feats
    if isinstance(gen_size, bool) or not isinstance(gen_size, (int, np.integer)) or gen_size < 1:
        raise GenevalInputError(f"FLD: gen_size must be a positive integer, got {gen_size!r}")
    for name, count, least in (("generated", len(g), 2), ("train", len(tr), 4), ("test", len(te), 2)):
        if count < least:
            raise GenevalInputError(f"FLD: needs at least {least} {name} samples, got {count}")
    constant = te.std(dim=0) == 0
    if bool(constant.all()):
        raise GenevalInputError(f"FLD: all {len(constant)} feature dimensions are constant over the test set; FLD "
                                "standardises by the test set's standard deviation")
    dropped = tuple(int(i) for i in torch.nonzero(constant)[:, 0])
    if dropped:  # the reference divides by 0 there and returns NaN; see the module docstring
        keep = torch.nonzero(~constant)[:, 0]
        g, tr, te = g[:, keep], tr[:, keep], te[:, keep]
    rng = np.random.default_rng(seed)
    if len(g) > gen_size:
        g = g[torch.from_numpy(rng.choice(len(g), gen_size, replace=False))]
    te_n, tr_n, g_n = _standardise(te, tr, g)
    kde = GaussianKDE(g_n)
    epochs = kde.fit(tr_n, rng)
    test_nll = float(kde.nll_per_dim(te_n).mean())
    # The baseline, as the reference: it standardises its (already standardised) inputs again by the test set.
    te_b, tr_b = _standardise(te_n, tr_n)
    tr_b = tr_b[torch.from_numpy(rng.choice(len(tr_b), len(tr_b), replace=False))]
    split = min(len(g), len(tr_b) // 2)
    baseline = GaussianKDE(tr_b[:split])
    baseline_epochs = baseline.fit(tr_b[split:], rng)
    baseline_nll = float(baseline.nll_per_dim(te_b).mean())
    return FLDResult(100 * (test_nll - baseline_nll), test_nll, baseline_nll, len(g), epochs, baseline_epochs, seed,
                     dropped)


def _score_fld(inputs: MetricInputs) -> MetricValue:
    if inputs.heldout is None:
        raise GenevalInputError("fld needs held-out real samples that the model never saw (--heldout, e.g. "
                                "fashion-mnist:test when --ref is fashion-mnist:train, the model's training set)")
    seed = inputs.options.seed
    result = fld(inputs.gen_features(), inputs.ref_features(), inputs.heldout.features[inputs.layer],
                 gen_size=inputs.params["fld_gen_size"], seed=seed)
    if result.dropped_dims:
        inputs.warnings.append(
            f"fld: {len(result.dropped_dims)} feature dimensions are constant over the held-out set (the reference "
            f"divides by their zero standard deviation and returns NaN); FLD is computed on the other "
            f"{inputs.heldout.features[inputs.layer].shape[1] - len(result.dropped_dims)}")
    return MetricValue(result.fld, None, {
        "test_nll_per_dim": result.test_nll, "baseline_nll_per_dim": result.baseline_nll,
        "num_gen_used": result.num_gen_used, "num_heldout": inputs.heldout.count, "fit_epochs": result.epochs,
        "baseline_fit_epochs": result.baseline_epochs, "seed": seed, "eval_set": "test (held-out)",
        "dims_dropped_constant_over_test": list(result.dropped_dims)})


register_metric(MetricSpec(
    "fld", "FLD", higher_is_better=False, needs_reference=True, reference_needs_features=True,
    compute=_score_fld, layer_role="prdc", needs_heldout=True,
    params=(Param("fld_gen_size", int, DEFAULT_GEN_SIZE, "FLD: most generated samples used (a seeded subset).",
                  min=1),),
    reference="Jiralerspong et al. 2023 (marcojira/fld, FLD(eval_feat='test'))",
    ci_caveat="resampling with replacement duplicates generated samples, which become duplicate KDE centres "
              "(fewer distinct ones), and each resample re-fits the bandwidths; the resamples' FLD is biased high, "
              "and so is the interval",
))
