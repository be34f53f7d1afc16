"""Privacy: differential-privacy mechanisms, accounting and DP training, pseudonymisation.

Mechanisms add calibrated noise to a release and can charge a
:class:`PrivacyAccountant`, which refuses (with
:class:`~avrec.exceptions.PrivacyBudgetExceeded`) any release that would overspend
its budget before anything is sampled.

Around the releases: keyed pseudonyms (:class:`Pseudonymizer`), k-anonymity and
l-diversity for user-attribute tables (:func:`mondrian`, :func:`check_k_anonymity`,
:func:`check_l_diversity`), AES-256-GCM encryption at rest (:func:`encrypt_file`,
:func:`save_encrypted`), a hash-chained :class:`AuditLog` of what was done, and
deny-by-default access control (:class:`AccessPolicy`, :class:`AccessGuard`) that
records every read in it.
"""

from __future__ import annotations

from avrec.privacy._access_guard import AccessGuard
from avrec.privacy._access_policy import AccessDecision, AccessPolicy
from avrec.privacy._accountant import PrivacyAccountant, PrivacyRelease
from avrec.privacy._audit import EpsilonEstimate, estimate_epsilon
from avrec.privacy._audit_log import AuditLog, AuditVerification, record_release
from avrec.privacy._contribution import bound_contributions
from avrec.privacy._counts import (
    discrete_gaussian,
    discrete_gaussian_sigma,
    discrete_laplace,
    noisy_count,
)
from avrec.privacy._dp_recommenders import DPEASE, DPItemKNN
from avrec.privacy._dpbpr import DPBPR
from avrec.privacy._dpvbpr import DPVBPR
from avrec.privacy._encrypted_storage import load_encrypted, save_encrypted
from avrec.privacy._encryption import (
    decrypt_bytes,
    decrypt_file,
    encrypt_bytes,
    encrypt_file,
    generate_key,
)
from avrec.privacy._exponential import exponential_mechanism
from avrec.privacy._kanonymity import (
    KAnonymityReport,
    LDiversityReport,
    check_k_anonymity,
    check_l_diversity,
)
from avrec.privacy._mechanisms import gaussian_mechanism, gaussian_sigma, laplace_mechanism
from avrec.privacy._mondrian import MondrianResult, mondrian
from avrec.privacy._pseudonymize import Pseudonymizer
from avrec.privacy._randomized_response import (
    debias_randomized_response,
    randomized_response,
)
from avrec.privacy._randomness import SecureRandom
from avrec.privacy._rdp import (
    DEFAULT_RDP_ORDERS,
    dpsgd_epsilon,
    dpsgd_noise_multiplier,
    gaussian_rdp,
    rdp_to_epsilon,
)
from avrec.privacy._releases import (
    cooccurrence_sensitivity,
    dp_item_cooccurrence,
    dp_item_popularity,
    noise_std,
    popularity_sensitivity,
)

__all__ = [
    "AccessDecision",
    "AccessGuard",
    "AccessPolicy",
    "AuditLog",
    "AuditVerification",
    "DEFAULT_RDP_ORDERS",
    "DPBPR",
    "DPEASE",
    "DPItemKNN",
    "DPVBPR",
    "EpsilonEstimate",
    "KAnonymityReport",
    "LDiversityReport",
    "MondrianResult",
    "PrivacyAccountant",
    "PrivacyRelease",
    "Pseudonymizer",
    "SecureRandom",
    "bound_contributions",
    "check_k_anonymity",
    "check_l_diversity",
    "cooccurrence_sensitivity",
    "debias_randomized_response",
    "decrypt_bytes",
    "decrypt_file",
    "discrete_gaussian",
    "discrete_gaussian_sigma",
    "discrete_laplace",
    "dp_item_cooccurrence",
    "dp_item_popularity",
    "dpsgd_epsilon",
    "dpsgd_noise_multiplier",
    "encrypt_bytes",
    "encrypt_file",
    "estimate_epsilon",
    "exponential_mechanism",
    "gaussian_mechanism",
    "gaussian_rdp",
    "gaussian_sigma",
    "generate_key",
    "laplace_mechanism",
    "load_encrypted",
    "mondrian",
    "noise_std",
    "noisy_count",
    "popularity_sensitivity",
    "randomized_response",
    "rdp_to_epsilon",
    "record_release",
    "save_encrypted",
]
