"""Small fixed feature/label arrays that several measure tests check hand formulas on."""

import numpy as np

# Six samples, three features, three classes of two samples each.
F6 = np.array([
    [1.0, 0.5, -0.2],
    [0.8, 0.1, 0.3],
    [-0.5, 1.2, 0.0],
    [-0.9, 0.7, 0.4],
    [0.2, -1.0, 1.1],
    [0.4, -0.6, 0.9],
])
Y6 = np.array([0, 0, 1, 1, 2, 2])
