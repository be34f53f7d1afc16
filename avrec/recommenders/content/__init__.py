"""Content-based recommenders: rank items by their audio/video features.

They take ``item_features=`` in ``fit`` and score items without interactions
(cold start) from their features alone.

Examples
--------
>>> import numpy as np
>>> from avrec.recommenders.content import ContentKNN
>>> X = np.array([[1, 0, 0], [0, 1, 0]])
>>> F = np.array([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1]])
>>> ContentKNN(standardize=False).fit(X, item_features=F).recommend([0], k=1)[0].tolist()
[[2]]
"""

from avrec.recommenders.content._content_knn import ContentKNN
from avrec.recommenders.content._feature_to_factor import FeatureToFactor

__all__ = ["ContentKNN", "FeatureToFactor"]
