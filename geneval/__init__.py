"""geneval: honest, comparable evaluation of deep generative models.

    from geneval import fid, inception_score, kid          # pure functions of features / statistics
    from geneval import score                              # end to end: samples, reference → Record
    from geneval import likelihood                         # nats, bits/dim of explicit-density models
"""

__version__ = "0.1.0"

from geneval.metrics import fid, inception_score, kid  # noqa: E402
from geneval.metrics import density_coverage, prdc, precision_recall  # noqa: E402
from geneval.metrics import (  # noqa: E402
    bootstrap, class_histogram_kl, count_modes, fd_infinity, intra_fid, memorisation, ms_ssim, ms_ssim_diversity, ndb,
    stacked_modes,
)
from geneval.metrics import classifier_agreement, l1, psnr, ssim  # noqa: E402  (outputs vs targets / labels)
from geneval.metrics import authenticity, cmmd, fld, plot_prd, prd, rarity, vendi  # noqa: E402
from geneval.stats import GaussianStats  # noqa: E402
from geneval import likelihood  # noqa: E402


def score(samples, ref=None, **kwargs):
    """End-to-end scoring; see ``geneval.evaluate.score``. Imported lazily to keep ``import geneval`` light."""
    from geneval.evaluate import score as _score

    return _score(samples, ref, **kwargs)


__all__ = ["GaussianStats", "fid", "inception_score", "kid", "likelihood", "score", "__version__",
           "density_coverage", "prdc", "precision_recall", "bootstrap", "class_histogram_kl", "count_modes",
           "fd_infinity", "intra_fid", "memorisation", "ms_ssim", "ms_ssim_diversity", "ndb", "stacked_modes",
           "classifier_agreement", "l1", "psnr", "ssim", "vendi", "rarity", "authenticity", "prd", "plot_prd", "fld",
           "cmmd"]
