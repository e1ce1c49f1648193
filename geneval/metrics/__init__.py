"""Metrics: pure functions of features or statistics, one file per family, each naming its paper.

Each family registers its ``MetricSpec`` (``geneval.metrics.base``) where it is defined; ``METRICS`` lists
them with whether higher is better, which extractor layer role each reads, and its parameters (``Param``).
"""

from __future__ import annotations

from geneval.metrics.base import (
    METRICS, MetricCache, MetricInputs, MetricSpec, MetricValue, Param, declared_params, register_metric,
)
from geneval.metrics.fid import fid, frechet_distance
from geneval.metrics.inception_score import Estimate, inception_score
from geneval.metrics.kid import kid
from geneval.metrics.prdc import PRDC, density_coverage, prdc, precision_recall
from geneval.metrics.intra_fid import IntraFID, intra_fid
from geneval.metrics.modes import class_histogram_kl, count_modes, stacked_modes
from geneval.metrics.ndb import ndb
from geneval.metrics.memorisation import memorisation
from geneval.metrics.ms_ssim import ms_ssim, ms_ssim_diversity
from geneval.metrics.ssim import l1, psnr, ssim
from geneval.metrics.agreement import classifier_agreement
from geneval.metrics.fd_infinity import fd_infinity
from geneval.metrics.bootstrap import bootstrap
from geneval.metrics.vendi import vendi
from geneval.metrics.rarity import rarity
from geneval.metrics.authenticity import authenticity
from geneval.metrics.prd import plot_prd, prd
from geneval.metrics.fld import fld
from geneval.metrics.cmmd import cmmd

__all__ = [
    "METRICS", "MetricCache", "MetricInputs", "MetricSpec", "MetricValue", "Param", "declared_params", "register_metric",
    "Estimate", "fid", "frechet_distance", "inception_score", "kid",
    "PRDC", "density_coverage", "prdc", "precision_recall", "IntraFID", "intra_fid", "class_histogram_kl",
    "count_modes", "stacked_modes", "ndb", "memorisation", "ms_ssim", "ms_ssim_diversity", "fd_infinity", "bootstrap",
    "l1", "psnr", "ssim", "classifier_agreement", "vendi", "rarity", "authenticity", "prd", "plot_prd", "fld",
    "cmmd",
]
