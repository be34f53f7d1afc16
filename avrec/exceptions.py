"""Exceptions and warnings raised by avrec.

Every error avrec raises on purpose derives from :class:`AvrecError`, so
``except avrec.exceptions.AvrecError`` catches all of them. Where a built-in
exception is the natural base, the avrec error inherits from it too, so code
written against plain Python (``except ValueError``) keeps working::

    AvrecError (Exception)
    ├── DataValidationError (ValueError)      bad interactions, ids, shapes, weights
    │   └── UnknownIdError (KeyError)         an external id that is not in a Vocabulary
    ├── NotFittedError (sklearn NotFittedError: ValueError, AttributeError)
    │                                         a model used before ``fit``
    ├── MediaDecodeError (RuntimeError)       corrupt, truncated or unsupported media
    ├── PersistenceError (OSError)            a saved model or file that cannot be read back
    │   └── DecryptionError                   wrong key, or encrypted data modified or truncated
    ├── ConfigurationError (ValueError)       an invalid hyperparameter, found in ``fit``
    ├── PrivacyBudgetExceeded (RuntimeError)  a release that would overspend a DP budget
    └── AccessDenied (PermissionError)        an access policy refused a read

    AvrecWarning (UserWarning)
    └── DataWarning                           suspicious but usable data (e.g. dropped rows)

Examples
--------
>>> from avrec.exceptions import AvrecError, DataValidationError
>>> issubclass(DataValidationError, ValueError) and issubclass(DataValidationError, AvrecError)
True
"""

from __future__ import annotations

from sklearn.exceptions import NotFittedError as _SklearnNotFittedError

__all__ = [
    "AccessDenied",
    "AvrecError",
    "AvrecWarning",
    "ConfigurationError",
    "DataValidationError",
    "DataWarning",
    "DecryptionError",
    "MediaDecodeError",
    "NotFittedError",
    "PersistenceError",
    "PrivacyBudgetExceeded",
    "UnknownIdError",
]


class AvrecError(Exception):
    """Base class of every error avrec raises on purpose."""


class DataValidationError(AvrecError, ValueError):
    """Input data is malformed: NaN or negative weights, mismatched lengths, empty data.

    The message names the offending field (``"weights"``, ``"user_ids"`` ...).
    """


class UnknownIdError(DataValidationError, KeyError):
    """An external id is not in the :class:`~avrec.data.Vocabulary` and an error was requested."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class NotFittedError(AvrecError, _SklearnNotFittedError):
    """A model was used for inference before :meth:`fit` succeeded.

    Also a :class:`sklearn.exceptions.NotFittedError`, so scikit-learn's
    ``check_is_fitted`` machinery and user code written for it both work.
    """


class MediaDecodeError(AvrecError, RuntimeError):
    """A media file is corrupt, truncated, unsupported or lacks the requested stream.

    The message names the file and the cause.
    """


class PersistenceError(AvrecError, OSError):
    """A saved artefact cannot be read back (missing parts, wrong format or version)."""


class DecryptionError(PersistenceError):
    """Encrypted data cannot be decrypted: wrong key or passphrase, or modified or truncated.

    Authenticated encryption cannot tell a wrong key from a modified file; the
    message says which is likely. Never accompanied by partial plaintext.
    """


class ConfigurationError(AvrecError, ValueError):
    """A hyperparameter has an invalid value; raised by ``fit``, never by ``__init__``."""


class PrivacyBudgetExceeded(AvrecError, RuntimeError):
    """A differentially private release would spend more than the remaining budget."""


class AccessDenied(AvrecError, PermissionError):
    """An :class:`~avrec.privacy.AccessPolicy` does not allow this read.

    The message says who asked for what, for which purpose, and which rule was
    missing; the refusal is in the audit log too. Nothing was read.
    """


class AvrecWarning(UserWarning):
    """Base class of the warnings avrec emits."""


class DataWarning(AvrecWarning):
    """Input data is usable but suspicious (for example, rows were dropped)."""
